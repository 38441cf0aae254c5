"""Shared helpers of the deploy tier (imported by conftest.py and the test modules)."""
from __future__ import annotations

import copy
import functools
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / "build" / "package"
ARTIFACT_BUCKET = "imgbatch-deploy-artifacts"
ARTIFACT_KEY = "deployment.zip"
REGION, ACCOUNT = "us-east-1", "123456789012"   # moto's default account
STACK = "imgbatch"


@functools.lru_cache(maxsize=None)
def build_package() -> Path:
    """Run `python -m deploy.package` once per session (cached: fixtures in several modules share it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    result = subprocess.run([sys.executable, "-m", "deploy.package", "--out", str(PACKAGE_DIR)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=540)
    if result.returncode != 0:
        raise AssertionError(f"deploy.package failed ({result.returncode}):\n{result.stdout[-4000:]}\n"
                             f"{result.stderr[-6000:]}")
    return PACKAGE_DIR


def with_code_in_s3(sam: dict, bucket: str = ARTIFACT_BUCKET, key: str = ARTIFACT_KEY) -> dict:
    """What `aws cloudformation package` does: point every function's CodeUri at the uploaded zip."""
    sam = copy.deepcopy(sam)
    for resource in sam["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            assert resource["Properties"]["CodeUri"] == "./deployment.zip"
            resource["Properties"]["CodeUri"] = f"s3://{bucket}/{key}"
    return sam


def translate(sam: dict) -> dict:
    """SAM -> CloudFormation, offline: no IAM lookups (the managed-policy map is stubbed empty)."""
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    session = boto3.session.Session(region_name=REGION, aws_access_key_id="testing",
                                    aws_secret_access_key="testing")
    translator = Translator(managed_policy_map={}, sam_parser=Parser(), boto_session=session)
    return translator.translate(copy.deepcopy(sam), parameter_values={"AWS::AccountId": ACCOUNT},
                                get_managed_policy_map=lambda: {})


def create_stack(template: dict, package_dir: Path) -> dict:
    """Inside an active mock_aws: upload the zip, create the stack, return its outputs."""
    import boto3

    import moto_cfn
    moto_cfn.install()
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    s3.upload_file(str(package_dir / "deployment.zip"), ARTIFACT_BUCKET, ARTIFACT_KEY)
    cfn = boto3.client("cloudformation", region_name=REGION)
    with warnings.catch_warnings():
        # moto has no AWS::ApiGateway::Stage; the stage is the one resource it leaves out
        warnings.filterwarnings("ignore", message="Tried to parse AWS::ApiGateway::Stage")
        cfn.create_stack(StackName=STACK, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_IAM"])
    stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    # moto cannot run the functions (it would try Docker on every message): the tests play the
    # event source mappings themselves, so pause them once created (their settings stay).
    lam = boto3.client("lambda", region_name=REGION)
    for mapping in lam.list_event_source_mappings()["EventSourceMappings"]:
        lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    # moto's table streams invoke their mappings on every write whether enabled or not
    from moto.dynamodb.models import dynamodb_backends
    for table in dynamodb_backends[ACCOUNT][REGION].tables.values():
        table.lambda_event_source_mappings.clear()
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
