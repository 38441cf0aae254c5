"""`make deploy STAGE=prod` and `make destroy STAGE=prod`: the stack in one command, either way.

    python -m deploy.stack deploy  [--stage prod] [--stack-name imgbatch-prod] [--region R]
                                   [--alarm-email you@example.com] [--log-level INFO]
                                   [--artifact-bucket B] [--package-dir build/package]
    python -m deploy.stack destroy [--stage prod] [--stack-name imgbatch-prod] [--region R] [--yes]

deploy:
1. packages (deploy/package.py: sam.json + deployment.zip), unless --package-dir points at one;
2. makes sure the artifact bucket exists (`imgbatch-artifacts-<account>-<region>`: private,
   encrypted), uploads the zip and the template under their SHA-256 (an unchanged build uploads
   nothing and changes nothing), points every function's CodeUri at the zip (what
   `aws cloudformation package` does);
3. creates a change set (CREATE or UPDATE; a stack whose first create failed is removed first)
   with the parameters: LogLevel and AlarmEmail when given, their previous values otherwise;
4. a change set without changes is deleted and reported ("no changes"), so running it again is
   harmless; otherwise it is executed and waited for;
5. prints the API URL, the dashboard and how to create the first API token.

destroy deletes the stack and says what stays: the tables and the bucket are `Retain` (data is
never deleted by a command that names only a stack), and the artifact bucket.

boto3 only (no AWS CLI needed); credentials and region from the usual AWS configuration.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import template as tmpl

CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")
WAIT_SECONDS = 5
TIMEOUT_SECONDS = 3600


class DeployError(RuntimeError):
    """Something the person deploying must act on; the message says what."""


def default_stack_name(stage: str) -> str:
    return f"imgbatch-{stage}"


@dataclass
class Aws:
    """The clients the commands use; tests hand in moto's, Lambda-free."""
    session: object
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self):
        self.cfn = self.session.client("cloudformation")
        self.s3 = self.session.client("s3")
        self.sts = self.session.client("sts")
        self.region = self.session.region_name

    @classmethod
    def from_environment(cls, region: str | None = None) -> "Aws":
        import boto3
        session = boto3.session.Session(region_name=region)
        if not session.region_name:
            raise DeployError("no AWS region: pass --region or set AWS_REGION (or a default in your AWS config)")
        return cls(session)


@dataclass
class Result:
    stack_name: str
    changed: bool
    outputs: dict[str, str]
    changes: list[str] = field(default_factory=list)


# -- deploy ------------------------------------------------------------------------------------

def deploy(aws: Aws, stage: str, stack_name: str, package_dir: Path | None = None, *,
           artifact_bucket: str | None = None, parameters: dict[str, str] | None = None,
           say: Callable[[str], None] = print) -> Result:
    if package_dir is None:
        from .package import package
        say(f"Packaging stage {stage} ...")
        package_dir = package(stage)
    sam = json.loads((package_dir / "sam.json").read_text())
    zip_path = package_dir / "deployment.zip"
    if not zip_path.is_file():
        raise DeployError(f"{zip_path} is missing: run `make package` (or drop --package-dir)")

    account = aws.sts.get_caller_identity()["Account"]
    bucket = artifact_bucket or f"imgbatch-artifacts-{account}-{aws.region}"
    ensure_artifact_bucket(aws, bucket, say)
    code_key = upload_once(aws, bucket, f"{stack_name}/code", zip_path.read_bytes(), ".zip", say)
    template = with_code_at(sam, bucket, code_key)
    body = json.dumps(template, sort_keys=True).encode()
    template_key = upload_once(aws, bucket, f"{stack_name}/templates", body, ".json", say)
    template_url = f"https://{bucket}.s3.{aws.region}.amazonaws.com/{template_key}"

    existing = _stack(aws, stack_name)
    if existing and existing["StackStatus"] == "ROLLBACK_COMPLETE":
        say(f"Stack {stack_name} failed its first create (ROLLBACK_COMPLETE) and holds nothing; removing it first.")
        aws.cfn.delete_stack(StackName=stack_name)
        _wait_gone(aws, stack_name)
        existing = None
    elif existing and existing["StackStatus"].endswith("_IN_PROGRESS") and \
            existing["StackStatus"] != "REVIEW_IN_PROGRESS":
        raise DeployError(f"stack {stack_name} is {existing['StackStatus']}; wait until it settles, then deploy again")
    change_type = "UPDATE" if existing and existing["StackStatus"] != "REVIEW_IN_PROGRESS" else "CREATE"

    declared = template.get("Parameters", {})
    given = {k: v for k, v in (parameters or {}).items() if v is not None}
    unknown = set(given) - set(declared)
    if unknown:
        raise DeployError(f"the template has no parameter(s) {sorted(unknown)}")
    stack_parameters = []
    for name, declaration in declared.items():
        if name in given:
            stack_parameters.append({"ParameterKey": name, "ParameterValue": given[name]})
        elif change_type == "UPDATE":   # keep what the stack has (an alarm email set once stays)
            stack_parameters.append({"ParameterKey": name, "UsePreviousValue": True})
        else:   # every value stated at creation: what the stack runs with is on record
            stack_parameters.append({"ParameterKey": name, "ParameterValue": declaration.get("Default", "")})

    name = f"deploy-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{hashlib.sha256(body).hexdigest()[:8]}"
    say(f"{'Creating' if change_type == 'CREATE' else 'Updating'} stack {stack_name} in {aws.region} "
        f"(change set {name}) ...")
    created = aws.cfn.create_change_set(
        StackName=stack_name, ChangeSetName=name, ChangeSetType=change_type, TemplateURL=template_url,
        Parameters=stack_parameters, Capabilities=CAPABILITIES,
        Tags=[{"Key": "project", "Value": "imgbatch"}, {"Key": "stage", "Value": stage}])
    change_set = _wait_change_set(aws, created["Id"])
    if change_set["Status"] == "FAILED":
        reason = change_set.get("StatusReason", "")
        if any(marker in reason for marker in NO_CHANGES):
            aws.cfn.delete_change_set(ChangeSetName=created["Id"])
            say(f"No changes: stack {stack_name} already runs this build with these parameters.")
            return Result(stack_name, False, outputs(aws, stack_name))
        raise DeployError(f"change set {name} failed: {reason}")
    changes = [f"{c['ResourceChange']['Action']:<7} {c['ResourceChange']['LogicalResourceId']} "
               f"({c['ResourceChange']['ResourceType']})" for c in change_set.get("Changes", [])]
    for line in changes[:40]:
        say(f"  {line}")
    if len(changes) > 40:
        say(f"  ... and {len(changes) - 40} more")
    aws.cfn.execute_change_set(ChangeSetName=created["Id"])
    status = _wait_settled(aws, stack_name)
    if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        raise DeployError(f"stack {stack_name} ended {status}:\n" + "\n".join(_failures(aws, stack_name)))
    return Result(stack_name, True, outputs(aws, stack_name), changes)


def ensure_artifact_bucket(aws: Aws, bucket: str, say) -> None:
    try:
        aws.s3.head_bucket(Bucket=bucket)
        return
    except aws.s3.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise DeployError(f"artifact bucket {bucket}: {exc}; pass --artifact-bucket with one you own") from None
    say(f"Creating the artifact bucket {bucket} (deployment packages and templates; private, encrypted).")
    if aws.region == "us-east-1":
        aws.s3.create_bucket(Bucket=bucket)
    else:
        aws.s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": aws.region})
    aws.s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    aws.s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})


def upload_once(aws: Aws, bucket: str, prefix: str, data: bytes, suffix: str, say) -> str:
    """Content-addressed: the same bytes have the same key and are uploaded once."""
    key = f"{prefix}/{hashlib.sha256(data).hexdigest()}{suffix}"
    try:
        aws.s3.head_object(Bucket=bucket, Key=key)
    except aws.s3.exceptions.ClientError:
        say(f"Uploading s3://{bucket}/{key} ({len(data) / 1e6:.1f} MB)")
        aws.s3.put_object(Bucket=bucket, Key=key, Body=data)
    return key


def with_code_at(sam: dict, bucket: str, key: str) -> dict:
    """What `aws cloudformation package` does: every function's CodeUri becomes the uploaded zip."""
    template = json.loads(json.dumps(sam))
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            if resource["Properties"]["CodeUri"] != "./deployment.zip":
                raise DeployError(f"unexpected CodeUri {resource['Properties']['CodeUri']!r}")
            resource["Properties"]["CodeUri"] = f"s3://{bucket}/{key}"
    return template


def outputs(aws: Aws, stack_name: str) -> dict[str, str]:
    stack = _stack(aws, stack_name)
    return {o["OutputKey"]: o["OutputValue"] for o in (stack or {}).get("Outputs", [])}


def _stack(aws: Aws, stack_name: str) -> dict | None:
    try:
        return aws.cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    except aws.cfn.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise


def _wait(aws: Aws, what: str, check: Callable[[], object]):
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        done = check()
        if done:
            return done
        if time.monotonic() > deadline:
            raise DeployError(f"gave up waiting for {what} after {TIMEOUT_SECONDS} s")
        aws.sleep(WAIT_SECONDS)


def _wait_change_set(aws: Aws, change_set_id: str) -> dict:
    def check():
        found = aws.cfn.describe_change_set(ChangeSetName=change_set_id)
        return found if found["Status"] in ("CREATE_COMPLETE", "FAILED") else None
    return _wait(aws, "the change set", check)


def _wait_settled(aws: Aws, stack_name: str) -> str:
    def check():
        status = (_stack(aws, stack_name) or {}).get("StackStatus", "DELETE_COMPLETE")
        return None if status.endswith("_IN_PROGRESS") else status
    return _wait(aws, f"stack {stack_name}", check)


def _wait_gone(aws: Aws, stack_name: str) -> None:
    def check():
        stack = _stack(aws, stack_name)
        if stack and stack["StackStatus"] == "DELETE_FAILED":
            raise DeployError(f"deleting stack {stack_name} failed:\n" + "\n".join(_failures(aws, stack_name)))
        return stack is None or stack["StackStatus"] == "DELETE_COMPLETE"
    _wait(aws, f"stack {stack_name} to be deleted", check)


def _failures(aws: Aws, stack_name: str) -> list[str]:
    try:
        events = aws.cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
    except aws.cfn.exceptions.ClientError:
        return []
    return [f"  {e['LogicalResourceId']} ({e['ResourceType']}): {e.get('ResourceStatusReason', '')}"
            for e in events if e.get("ResourceStatus", "").endswith("_FAILED")][:20]


def next_steps(result: Result, stage: str, region: str) -> str:
    out = result.outputs
    lines = [f"\nStack {result.stack_name} is ready{'' if result.changed else ' (unchanged)'}.",
             f"  API and web UI  {out.get('EndpointURL', '(no EndpointURL output)')}",
             f"  dashboard       {out.get('DashboardURL', '-')}",
             f"  alarms to       {out.get('AlarmTopicArn', '-')} (subscribe, or deploy with ALARM_EMAIL=you@example.com)",
             "",
             "First API token (printed once; only its SHA-256 is stored):",
             f"  .venv/bin/python -m deploy.tokens create --owner <studio> --stage {stage} --region {region}",
             f"then: curl -H 'Authorization: Bearer <token>' {out.get('EndpointURL', '<EndpointURL>')}batches"]
    return "\n".join(lines)


# -- destroy -----------------------------------------------------------------------------------

RETAINED_TYPES = {"AWS::DynamoDB::Table": "table", "AWS::S3::Bucket": "bucket"}


def retained(aws: Aws, stack_name: str) -> list[tuple[str, str, str]]:
    """(kind, physical name, logical id) of what deleting the stack keeps (DeletionPolicy Retain)."""
    body = aws.cfn.get_template(StackName=stack_name, TemplateStage="Processed")["TemplateBody"]
    template = json.loads(body) if isinstance(body, str) else body
    out = []
    for logical, resource in template.get("Resources", {}).items():
        if resource.get("DeletionPolicy") == "Retain":
            detail = aws.cfn.describe_stack_resource(StackName=stack_name, LogicalResourceId=logical)
            out.append((RETAINED_TYPES.get(resource["Type"], resource["Type"]),
                        detail["StackResourceDetail"]["PhysicalResourceId"], logical))
    return sorted(out)


def describe_retained(aws: Aws, kind: str, name: str) -> str:
    if kind == "bucket":
        count, size, truncated = 0, 0, False
        for page in aws.s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for obj in page.get("Contents", []):
                count, size = count + 1, size + obj["Size"]
            if count >= 100_000:
                truncated = True
                break
        return f"{'at least ' if truncated else ''}{count} objects, {size / 1e6:.1f} MB"
    if kind == "table":
        table = aws.session.client("dynamodb").describe_table(TableName=name)["Table"]
        return f"about {table.get('ItemCount', 0)} items (DynamoDB updates this count every ~6 hours)"
    return ""


def destroy(aws: Aws, stack_name: str, *, confirm: Callable[[str], bool] | None = None,
            say: Callable[[str], None] = print) -> list[tuple[str, str, str]]:
    stack = _stack(aws, stack_name)
    if stack is None or stack["StackStatus"] == "DELETE_COMPLETE":
        say(f"No stack {stack_name} in {aws.region}: nothing to remove.")
        return []
    kept = retained(aws, stack_name)
    details = {(kind, name): describe_retained(aws, kind, name) for kind, name, _ in kept}
    if confirm is not None and not confirm(stack_name):
        raise DeployError("not confirmed; nothing was removed")
    say(f"Deleting stack {stack_name} in {aws.region} ...")
    aws.cfn.delete_stack(StackName=stack_name)
    _wait_gone(aws, stack_name)
    say(f"Stack {stack_name} is gone: functions, API, queues, alarms, dashboard, log groups, the cursor key.")
    if kept:
        say("Kept, because they hold data (DeletionPolicy Retain):")
        for kind, name, _ in kept:
            say(f"  {kind:<6} {name}: {details[(kind, name)]}")
        say("A new deploy of this stage cannot create these names again until they are gone. To delete them "
            "(for good):\n" + "\n".join(
                f"  aws s3 rb s3://{name} --force" if kind == "bucket" else
                f"  aws dynamodb delete-table --table-name {name}" for kind, name, _ in kept))
    say("The artifact bucket (imgbatch-artifacts-<account>-<region>) is kept for other deploys.")
    return kept


# -- the commands ------------------------------------------------------------------------------

def main(argv: list[str] | None = None, aws: Aws | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.stack", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("deploy", help="package and deploy (create or update) the stack")
    down = commands.add_parser("destroy", help="delete the stack; tables and bucket are kept")
    for command in (up, down):
        command.add_argument("--stage", default=tmpl.DEFAULT_STAGE)
        command.add_argument("--stack-name", help="default: imgbatch-<stage>")
        command.add_argument("--region", help="default: AWS_REGION or your AWS configuration")
    up.add_argument("--package-dir", type=Path, help="deploy this package (sam.json + deployment.zip) as it is")
    up.add_argument("--artifact-bucket", help="default: imgbatch-artifacts-<account>-<region>, created if missing")
    up.add_argument("--alarm-email", help="email address for every alarm (stays set until changed)")
    up.add_argument("--log-level", choices=tmpl.LOG_LEVELS, help="the functions' log level (stays set until changed)")
    down.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    args = parser.parse_args(argv)
    stack_name = args.stack_name or default_stack_name(args.stage)
    try:
        aws = aws or Aws.from_environment(args.region)
        if args.command == "deploy":
            result = deploy(aws, args.stage, stack_name, args.package_dir and args.package_dir.resolve(),
                            artifact_bucket=args.artifact_bucket,
                            parameters={tmpl.LOG_LEVEL: args.log_level, "AlarmEmail": args.alarm_email})
            print(next_steps(result, args.stage, aws.region))
        else:
            destroy(aws, stack_name, confirm=None if args.yes else _ask)
    except DeployError as exc:
        print(f"{args.command} failed: {exc}", file=sys.stderr)
        return 1
    return 0


def _ask(stack_name: str) -> bool:
    if not sys.stdin.isatty():
        raise DeployError("refusing to delete without a terminal to confirm on; pass --yes (make destroy YES=1)")
    return input(f"Delete stack {stack_name}? Type its name to confirm: ").strip() == stack_name


if __name__ == "__main__":
    sys.exit(main())
