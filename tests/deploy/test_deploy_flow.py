"""`make deploy` and `make destroy` (deploy/stack.py) end to end against moto's CloudFormation, S3
and STS: the artifact bucket is made, the package and template uploaded once, the stack created
through a change set, its outputs resolve and its functions' environments point at what it
created; a second run changes nothing; a new parameter updates it; destroy removes the stack and
names what it keeps. The package is the session's (`python -m deploy.package`, as `make deploy`
runs it)."""
from __future__ import annotations

import json
import warnings

import boto3
import pytest
from moto import mock_aws

from deploy_support import ACCOUNT, REGION

from chalicelib import resources
from chalicelib.settings import Settings
from deploy import stack as cmd
from deploy import template as tmpl

STACK = "imgbatch-prod"
ARTIFACTS = f"imgbatch-artifacts-{ACCOUNT}-{REGION}"


@pytest.fixture
def aws(aws_env):
    import moto_cfn
    moto_cfn.install()
    with mock_aws(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Tried to parse AWS::ApiGateway::Stage")
        yield cmd.Aws(boto3.session.Session(region_name=REGION), sleep=lambda s: None)


def run(aws, *argv) -> tuple[int, str]:
    lines = []
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cmd.main(list(argv), aws=aws)
    lines.append(out.getvalue())
    return code, "".join(lines)


def test_deploy_creates_the_stack_and_a_second_run_changes_nothing(aws, package_dir):
    code, text = run(aws, "deploy", "--stage", "prod", "--package-dir", str(package_dir))
    assert code == 0, text
    cfn, s3, lam = aws.cfn, aws.s3, aws.session.client("lambda")
    [stack] = cfn.describe_stacks(StackName=STACK)["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert {"Key": "stage", "Value": "prod"} in stack["Tags"]
    outputs = cmd.outputs(aws, STACK)

    # the artifact bucket holds the zip and the template, each under its SHA-256
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=ARTIFACTS)["Contents"]]
    assert sorted(k.split("/")[1] for k in keys) == ["code", "templates"]
    assert s3.get_public_access_block(Bucket=ARTIFACTS)["PublicAccessBlockConfiguration"]["BlockPublicAcls"]
    [code_key] = [k for k in keys if k.endswith(".zip")]
    zipped = s3.get_object(Bucket=ARTIFACTS, Key=code_key)["Body"].read()
    assert zipped == (package_dir / "deployment.zip").read_bytes()

    # outputs resolve to what exists, and the functions' environments point at it
    assert outputs["EndpointURL"].startswith("https://") and outputs["EndpointURL"].endswith("/api/")
    [api] = aws.session.client("apigateway").get_rest_apis()["items"]
    assert api["id"] in outputs["EndpointURL"] and api["name"] == STACK
    for fn in tmpl.app_functions():
        config = lam.get_function_configuration(FunctionName=f"{STACK}-{fn.name.replace('_', '-')}")
        assert config["TracingConfig"] == {"Mode": "Active"}
        settings = Settings.from_env({**config["Environment"]["Variables"], "AWS_REGION": REGION})
        for table in resources.TABLES:
            assert settings.table(table.key) == outputs[f"{table.logical_id}Name"]
            aws.session.client("dynamodb").describe_table(TableName=settings.table(table.key))
        for queue in resources.QUEUES:
            assert settings.queue_url(queue.key) == outputs[f"{queue.logical_id}Url"]
            aws.session.client("sqs").get_queue_attributes(QueueUrl=settings.queue_url(queue.key))
        assert settings.bucket == outputs["StorageBucketName"] == f"imgbatch-prod-uploads-{ACCOUNT}-{REGION}"
        s3.head_bucket(Bucket=settings.bucket)
        assert settings.log_level == "INFO" and settings.log_format == "json" and settings.metrics
    aws.session.client("cloudwatch").get_dashboard(DashboardName=outputs["DashboardName"])

    # what the person deploying reads: the URL and how to make the first token
    assert outputs["EndpointURL"] in text and "Creating stack imgbatch-prod" in text
    assert "python -m deploy.tokens create --owner <studio> --stage prod --region us-east-1" in text

    # idempotent: the same build again uploads nothing and changes nothing
    code, again = run(aws, "deploy", "--stage", "prod", "--package-dir", str(package_dir))
    assert code == 0, again
    assert "No changes" in again and "Uploading" not in again and outputs["EndpointURL"] in again
    assert len(s3.list_objects_v2(Bucket=ARTIFACTS)["Contents"]) == 2
    assert cfn.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    assert not [c for c in cfn.list_change_sets(StackName=STACK).get("Summaries", [])
                if c.get("ExecutionStatus") != "EXECUTE_COMPLETE"], "a change set without changes is left behind"


def test_a_parameter_updates_the_stack_and_later_runs_keep_it(aws, package_dir):
    assert run(aws, "deploy", "--package-dir", str(package_dir))[0] == 0
    code, text = run(aws, "deploy", "--package-dir", str(package_dir), "--log-level", "DEBUG",
                     "--alarm-email", "oncall@example.com")
    assert code == 0, text
    assert "Updating stack imgbatch-prod" in text
    params = {p["ParameterKey"]: p["ParameterValue"]
              for p in aws.cfn.describe_stacks(StackName=STACK)["Stacks"][0]["Parameters"]}
    assert params == {"LogLevel": "DEBUG", "AlarmEmail": "oncall@example.com"}
    # a later plain deploy keeps what was set (UsePreviousValue), so it is a no-op
    code, text = run(aws, "deploy", "--package-dir", str(package_dir))
    assert code == 0 and "No changes" in text, text


def test_destroy_removes_the_stack_and_says_what_it_keeps(aws, package_dir):
    assert run(aws, "deploy", "--package-dir", str(package_dir))[0] == 0
    outputs = cmd.outputs(aws, STACK)
    bucket = outputs["StorageBucketName"]
    aws.s3.put_object(Bucket=bucket, Key="outputs/b/j/a.jpg", Body=b"x" * 1000)
    code, text = run(aws, "destroy", "--stage", "prod", "--yes")
    assert code == 0, text
    stacks = [s for s in aws.cfn.list_stacks()["StackSummaries"] if s["StackName"] == STACK]
    assert {s["StackStatus"] for s in stacks} == {"DELETE_COMPLETE"}
    assert not aws.session.client("lambda").list_functions()["Functions"]
    # kept: the bucket with its objects, every table, the artifact bucket; and the output says so
    aws.s3.head_object(Bucket=bucket, Key="outputs/b/j/a.jpg")
    assert f"bucket {bucket}: 1 objects, 0.0 MB" in text
    for table in resources.TABLES:
        name = outputs[f"{table.logical_id}Name"]
        aws.session.client("dynamodb").describe_table(TableName=name)
        assert f"table  {name}" in text and f"aws dynamodb delete-table --table-name {name}" in text
    assert f"aws s3 rb s3://{bucket} --force" in text and "artifact bucket" in text
    aws.s3.head_bucket(Bucket=ARTIFACTS)
    # again: nothing to do, not an error
    code, text = run(aws, "destroy", "--yes")
    assert code == 0 and "nothing to remove" in text


def test_destroy_without_a_terminal_or_yes_refuses(aws, package_dir, monkeypatch):
    assert run(aws, "deploy", "--package-dir", str(package_dir))[0] == 0
    monkeypatch.setattr("sys.stdin", open("/dev/null"))
    code, text = run(aws, "destroy")
    assert code == 1 and "pass --yes" in text
    assert aws.cfn.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"


def test_the_package_is_rewritten_to_the_uploaded_code(package_dir):
    sam = json.loads((package_dir / "sam.json").read_text())
    template = cmd.with_code_at(sam, "b", "k.zip")
    uris = {r["Properties"]["CodeUri"] for r in template["Resources"].values()
            if r["Type"] == "AWS::Serverless::Function"}
    assert uris == {"s3://b/k.zip"}
    assert sam["Resources"]["APIHandler"]["Properties"]["CodeUri"] == "./deployment.zip"   # a copy was changed


def test_make_deploy_and_destroy_run_these_commands():
    import subprocess
    from deploy_support import ROOT

    def command(*args) -> list[str]:
        text = subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        [line] = [line for line in text.replace("\\\n", " ").splitlines() if "-m deploy.stack" in line]
        return line.split()[1:]

    assert command("deploy", "STAGE=prod", "ALARM_EMAIL=oncall@example.com", "LOG_LEVEL=DEBUG") == [
        "-m", "deploy.stack", "deploy", "--stage", '"prod"', "--alarm-email", '"oncall@example.com"',
        "--log-level", '"DEBUG"']
    assert command("destroy", "STAGE=staging", "YES=1") == ["-m", "deploy.stack", "destroy", "--stage",
                                                            '"staging"', "--yes"]
