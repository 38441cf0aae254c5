"""Least privilege, derived: the calls the code makes decide what each function's role may do.

The packaged stack is created in moto; a representative workload (workload.py) runs every
function against the resources the stack created, with the environment the stack gave the
functions, while every AWS call is recorded with the function that made it. Each call is
mapped to the IAM action and resource ARN it needs (iam_calls.py), plus what the Lambda
service itself needs (logs; receiving from the SQS event source). Then, per function:
- every needed (action, resource) is allowed by the role's policy as CloudFormation resolved it,
- every (action, resource pattern) the policy grants is needed by some recorded call,
- no wildcard actions, no Resource "*" (but for X-Ray's two write actions, which take no resource),
  every pattern scoped to one of the stack's resources.
moto does not enforce IAM, so this is the check that a deployed function is neither denied a
call it makes nor given access it never uses.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from deploy_support import ACCOUNT, REGION, ROOT, STACK, create_stack
from iam_calls import Arns, Need, Recorder, Statement, needs_for, statements
from workload import Workload

from chalicelib import resources
from deploy import template as tmpl

APP_PREFIXES = ("uploads/", "outputs/", "archives/", "drop/")
# X-Ray supports no resource-level permissions for these: Resource "*" is the only form
XRAY_ACTIONS = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")


def function_name(name: str) -> str:
    return f"{STACK}-{name.replace('_', '-')}"


@pytest.fixture(scope="module")
def deployed(cfn_template, package_dir):
    with mock_aws():
        outputs = create_stack(cfn_template, package_dir)
        yield outputs


@pytest.fixture(scope="module")
def functions():
    return [fn.name for fn in tmpl.app_functions()]


@pytest.fixture(scope="module")
def observed(deployed, functions):
    from chalice.test import Client

    from chalicelib.settings import Settings

    lam = boto3.client("lambda", region_name=REGION)
    envs = {n: lam.get_function_configuration(FunctionName=function_name(n))["Environment"]["Variables"]
            for n in functions}
    first = envs[functions[0]]
    assert all(env == first for env in envs.values()), envs
    settings = Settings.from_env({**first, "AWS_REGION": REGION})
    recorder = Recorder()
    with recorder.installed():
        Workload(recorder, settings, lambda app: Client(app, stage_name="prod", project_dir=str(ROOT))).run()
    out = ROOT / "test-artifacts" / "aws-calls-deploy.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(recorder.to_json(), indent=1))
    return recorder


@pytest.fixture(scope="module")
def needs(observed, deployed, functions) -> dict[str, set[Need]]:
    arns = Arns(REGION, ACCOUNT)
    out: dict[str, set[Need]] = defaultdict(set)
    for call in observed.calls:
        if call.function is not None:
            out[call.function].update(needs_for(call, arns))
    # What the Lambda service does with the function's role, not the code:
    lam = boto3.client("lambda", region_name=REGION)
    for name in functions:
        group = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{function_name(name)}"
        out[name].add(Need("logs:CreateLogStream", f"{group}:log-stream:2026/01/01/[$LATEST]abc", why="Lambda logs"))
        out[name].add(Need("logs:PutLogEvents", f"{group}:log-stream:2026/01/01/[$LATEST]abc", why="Lambda logs"))
        if lam.get_function_configuration(FunctionName=function_name(name))["TracingConfig"]["Mode"] == "Active":
            # Lambda's X-Ray daemon sends the function's segments with the function's role
            for action in XRAY_ACTIONS:
                out[name].add(Need(action, "*", why="active tracing"))
        for mapping in lam.list_event_source_mappings(FunctionName=function_name(name))["EventSourceMappings"]:
            if ":dynamodb:" in mapping["EventSourceArn"]:
                actions = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                           "dynamodb:ListStreams")
            else:
                actions = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
            for action in actions:
                out[name].add(Need(action, mapping["EventSourceArn"], why="event source mapping"))
    return dict(out)


def role_statements(name: str) -> list[Statement]:
    lam, iam = boto3.client("lambda", region_name=REGION), boto3.client("iam", region_name=REGION)
    role = lam.get_function_configuration(FunctionName=function_name(name))["Role"].rsplit("/", 1)[-1]
    assert not iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"], "no managed policies expected"
    found = []
    for policy in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        found += statements(iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"])
    return found


@pytest.fixture(scope="module")
def policies(deployed, functions) -> dict[str, list[Statement]]:
    return {name: role_statements(name) for name in functions}


def missing_grants(needs: set[Need], granted: list[Statement]) -> list[str]:
    return sorted(f"{n.action} on {n.resource}" + (f" (prefix {n.prefix!r})" if n.action.startswith("s3:ListBucket") else "")
                  + f"  <- {n.why}" for n in needs if not any(s.allows(n) for s in granted))


def unused_grants(needs: set[Need], granted: list[Statement]) -> list[str]:
    unused = []
    for s in granted:
        for action in s.actions:
            for resource in s.resources:
                narrow = Statement(s.sid, [action], [resource], s.condition)
                if not any(narrow.allows(n) for n in needs):
                    unused.append(f"{s.sid}: {action} on {resource}")
    return unused


def test_the_workload_ran_every_function(observed, functions):
    ran = {c.function for c in observed.calls}
    assert set(functions) <= ran, f"functions that made no AWS call: {set(functions) - ran}"


def test_every_call_each_function_makes_is_allowed(needs, policies, functions):
    problems = {name: missing_grants(needs[name], policies[name]) for name in functions}
    assert not any(problems.values()), "denied in AWS:\n" + json.dumps(problems, indent=1)


def test_no_function_is_granted_more_than_it_uses(needs, policies, functions):
    problems = {name: unused_grants(needs[name], policies[name]) for name in functions}
    assert not any(problems.values()), "granted but never needed:\n" + json.dumps(problems, indent=1)


def test_no_wildcard_actions_and_every_resource_scoped_to_the_stack(policies, deployed):
    arns = Arns(REGION, ACCOUNT)
    owned = [arns.table(deployed[f"{t.logical_id}Name"]) for t in resources.TABLES]
    owned += [arns.queue(deployed[f"{q.logical_id}Url"]) for q in resources.QUEUES]
    owned += [f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{STACK}-"]
    owned += [arns.event_bus(deployed["EventBusName"]), deployed["WebhookKeyArn"]]
    bucket = arns.bucket(deployed["StorageBucketName"])
    for name, granted in policies.items():
        for s in granted:
            for action in s.actions:
                assert "*" not in action and "?" not in action, f"{name}/{s.sid}: wildcard action {action}"
            if s.resources == ["*"]:
                assert set(s.actions) <= set(XRAY_ACTIONS), f"{name}/{s.sid}: Resource * for {s.actions}"
                continue
            for resource in s.resources:
                fixed = resource.split("*", 1)[0].split("?", 1)[0]
                if fixed.startswith(bucket + "/"):
                    assert fixed[len(bucket) + 1:].startswith(APP_PREFIXES), f"{name}/{s.sid}: {resource}"
                    continue
                assert fixed == bucket or any(fixed.startswith(o) for o in owned), \
                    f"{name}/{s.sid}: {resource} is not scoped to a resource of the stack"
                tables = owned[:len(resources.TABLES)]
                if fixed.startswith(tuple(tables)):   # tables: the table itself, its indexes or its stream
                    table = next(o for o in tables if fixed.startswith(o))
                    assert fixed in (table, table + "/index/") or fixed.startswith(
                        (table + "/index/", table + "/stream/")), resource


def test_the_checks_have_teeth(needs, policies):
    """Drop one statement: a call becomes denied. Add a broad one: it is reported unused."""
    granted = policies["process_upload"]
    assert not missing_grants(needs["process_upload"], granted)
    for dropped in range(len(granted)):
        assert missing_grants(needs["process_upload"], granted[:dropped] + granted[dropped + 1:])
    extra = Statement("Extra", ["dynamodb:DeleteItem"], [f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/imgbatch-batches"], {})
    assert unused_grants(needs["process_upload"], granted + [extra]) == [
        f"Extra: dynamodb:DeleteItem on arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/imgbatch-batches"]


def test_policy_files_are_what_the_roles_carry(sam_template, functions):
    """The roles Chalice generated hold exactly the per-function policy files (nothing autogenerated)."""
    config = tmpl.load_config()
    by_logical = {fn.name: fn for fn in tmpl.app_functions()}
    for name in functions:
        policy_file = tmpl.lambda_config(config, "prod", name)["iam_policy_file"]
        document = json.loads((Path(tmpl.CONFIG_FILE).parent / policy_file).read_text())
        role_id = sam_template["Resources"][by_logical[name].logical_id]["Properties"]["Role"]["Fn::GetAtt"][0]
        role = sam_template["Resources"][role_id]["Properties"]
        assert [p["PolicyDocument"] for p in role["Policies"]] == [document]
        assert "ManagedPolicyArns" not in role
