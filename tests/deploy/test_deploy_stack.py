"""The translated template creates a stack in moto's CloudFormation, and what it creates is what
the app expects: compared with chalicelib/resources.py (the definitions `make run` and the
tests use) and with the Settings the functions build from the environment the stack gives them.

moto's CloudFormation skips some properties (TTL, bucket CORS/lifecycle/notifications, the REST
API body, SQS queue policies); moto_cfn.py hands them to moto's API implementation, as real
CloudFormation would. AWS::ApiGateway::Stage is not supported by moto and is not created.
"""
from __future__ import annotations

import json
import time

import boto3
import pytest
from moto import mock_aws

from deploy_support import ACCOUNT, REGION, STACK, create_stack

from chalicelib import resources
from chalicelib.adapters.models import build_models
from chalicelib.settings import DEV_CURSOR_SIGNING_KEY, Settings
from deploy import template as tmpl


@pytest.fixture(scope="module")
def deployed(cfn_template, package_dir):
    with mock_aws():
        yield create_stack(cfn_template, package_dir)


def client(service):
    return boto3.client(service, region_name=REGION)


def function_name(name: str) -> str:
    return f"{STACK}-{name.replace('_', '-')}"


@pytest.fixture(scope="module")
def settings(deployed) -> Settings:
    """What the app builds from the environment of the deployed API function."""
    env = client("lambda").get_function_configuration(FunctionName=function_name("api_handler"))["Environment"]
    return Settings.from_env({**env["Variables"], "AWS_REGION": REGION})


def test_every_function_gets_the_settings_the_app_reads(deployed, settings):
    for table in resources.TABLES:
        assert settings.table(table.key) == deployed[f"{table.logical_id}Name"]
    assert settings.bucket == deployed["StorageBucketName"] == f"imgbatch-prod-uploads-{ACCOUNT}-{REGION}"
    for queue in resources.QUEUES:
        assert settings.queue_url(queue.key) == deployed[f"{queue.logical_id}Url"]
    # the stack's own generated key, resolved by CloudFormation from Secrets Manager
    [secret] = client("secretsmanager").list_secrets()["SecretList"]
    key = client("secretsmanager").get_secret_value(SecretId=secret["ARN"])["SecretString"]
    assert settings.cursor_signing_key == key and len(key) == 64 and key != DEV_CURSOR_SIGNING_KEY
    lam = client("lambda")
    config = tmpl.load_config()
    for fn in tmpl.app_functions():
        cfg = lam.get_function_configuration(FunctionName=function_name(fn.name))
        assert cfg["Environment"]["Variables"] == lam.get_function_configuration(
            FunctionName=function_name("api_handler"))["Environment"]["Variables"], fn.name
        assert cfg["Runtime"] == "python3.11" and cfg["Handler"] == ("app.app" if fn.name == "api_handler"
                                                                     else f"app.{fn.name}")
        wanted = tmpl.lambda_config(config, "prod", fn.name)
        assert cfg["Timeout"] == wanted["lambda_timeout"] and cfg["MemorySize"] == wanted["lambda_memory_size"]


def test_tables_match_the_models(deployed, settings):
    ddb = client("dynamodb")
    models = build_models(**settings.tables, region=REGION, host=None)
    for model, wanted in zip(models.all(), resources.table_definitions(models)):
        table = ddb.describe_table(TableName=wanted["TableName"])["Table"]
        assert table["KeySchema"] == wanted["KeySchema"]
        assert sorted(table["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == wanted["AttributeDefinitions"]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"

        def indexes(items):
            return {i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in items or []}
        assert indexes(table.get("GlobalSecondaryIndexes")) == indexes(wanted.get("GlobalSecondaryIndexes"))
        assert indexes(table.get("LocalSecondaryIndexes")) == indexes(wanted.get("LocalSecondaryIndexes"))
        ttl = ddb.describe_time_to_live(TableName=wanted["TableName"])["TimeToLiveDescription"]
        if resources.ttl_attribute(model):
            assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": resources.ttl_attribute(model)}
        else:
            assert ttl["TimeToLiveStatus"] == "DISABLED"
    assert len(resources.table_definitions(models)) == len(resources.TABLES)
    stream = ddb.describe_table(TableName=settings.table("batches"))["Table"]["StreamSpecification"]
    assert stream == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    # no LSI: it would pin a batch's jobs to one partition (issue 15); file order is the manifest's
    jobs = next(d for d in resources.table_definitions(models) if d["TableName"] == settings.table("jobs"))
    assert "LocalSecondaryIndexes" not in jobs


def test_bucket_cors_lifecycle_notifications_match_resources(deployed, settings):
    s3 = client("s3")
    bucket = settings.bucket
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == resources.CORS_RULES
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] == resources.LIFECYCLE_RULES
    queue_arns = {q.key: client("sqs").get_queue_attributes(QueueUrl=settings.queue_url(q.key), AttributeNames=[
        "QueueArn"])["Attributes"]["QueueArn"] for q in resources.QUEUES}
    got = s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]
    wanted = resources.notification_configuration(queue_arns)["QueueConfigurations"]
    strip = (lambda configs: [{k: v for k, v in c.items() if k != "Id"} for c in configs])
    assert strip(got) == strip(wanted)
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4


def test_uploads_reach_the_arrival_queue_and_nothing_else_does(deployed, settings):
    s3, sqs = client("s3"), client("sqs")
    s3.put_object(Bucket=settings.bucket, Key="outputs/not/an/upload.png", Body=b"x")
    key = "uploads/3f0c3c8e-0000-4000-8000-000000000001/3f0c3c8e-0000-4000-8000-000000000002/a b.png"
    s3.put_object(Bucket=settings.bucket, Key=key, Body=b"x")
    keys = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not keys:
        for m in sqs.receive_message(QueueUrl=settings.queue_url("arrivals"), MaxNumberOfMessages=10).get("Messages", []):
            body = json.loads(m["Body"])
            keys += [r["s3"]["object"]["key"] for r in body.get("Records", [])]
    from chalicelib.adapters.sqs_events import keys_in_message
    # S3 URL-encodes the key in the event; the handler decodes it
    assert keys_in_message(json.dumps({"Records": [{"s3": {"object": {"key": k}}} for k in keys]})) == [key]


def test_queues_redrive_to_their_dead_letter_queues(deployed, settings):
    sqs = client("sqs")
    for spec in resources.QUEUES:
        attrs = sqs.get_queue_attributes(QueueUrl=settings.queue_url(spec.key), AttributeNames=["All"])["Attributes"]
        dlq = sqs.get_queue_attributes(QueueUrl=deployed[f"{spec.dlq_logical_id}Url"],
                                       AttributeNames=["All"])["Attributes"]
        wanted = resources.queue_attributes(dlq["QueueArn"], spec)
        assert json.loads(attrs["RedrivePolicy"]) == json.loads(wanted["RedrivePolicy"])
        assert attrs["VisibilityTimeout"] == wanted["VisibilityTimeout"]
        assert attrs["MessageRetentionPeriod"] == wanted["MessageRetentionPeriod"]
        assert dlq["MessageRetentionPeriod"] == resources.dlq_attributes()["MessageRetentionPeriod"]
        assert int(dlq["MessageRetentionPeriod"]) > int(attrs["MessageRetentionPeriod"])
        assert attrs["QueueArn"].rsplit(":", 1)[-1] == spec.name
        assert dlq["QueueArn"].rsplit(":", 1)[-1] == resources.dlq_name(attrs["QueueArn"].rsplit(":", 1)[-1])


def test_only_our_bucket_in_our_account_may_send_to_the_arrival_queue(deployed, settings):
    attrs = client("sqs").get_queue_attributes(QueueUrl=settings.queue_url("arrivals"),
                                               AttributeNames=["Policy", "QueueArn"])["Attributes"]
    policy = json.loads(attrs["Policy"])
    [statement] = policy["Statement"]
    assert statement["Effect"] == "Allow" and statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage" and statement["Resource"] == attrs["QueueArn"]
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": f"arn:aws:s3:::{settings.bucket}"},
                                      "StringEquals": {"aws:SourceAccount": ACCOUNT}}
    for key in ("uploads", "archives"):   # only our functions send to these
        assert "Policy" not in client("sqs").get_queue_attributes(
            QueueUrl=settings.queue_url(key), AttributeNames=["Policy"]).get("Attributes", {})


def test_event_sources_and_partial_batch_failures(deployed, settings):
    lam, sqs = client("lambda"), client("sqs")
    arn = (lambda url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])
    [upload] = lam.list_event_source_mappings(FunctionName=function_name("process_upload"))["EventSourceMappings"]
    assert upload["EventSourceArn"] == arn(settings.queue_url("uploads"))
    assert upload["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert upload["BatchSize"] == 10
    [arrival] = lam.list_event_source_mappings(FunctionName=function_name("register_uploads"))["EventSourceMappings"]
    assert arrival["EventSourceArn"] == arn(settings.queue_url("arrivals"))
    assert arrival["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    [archive] = lam.list_event_source_mappings(FunctionName=function_name("build_archive"))["EventSourceMappings"]
    assert archive["EventSourceArn"] == arn(settings.queue_url("archives")) and archive["BatchSize"] == 1
    for name in ("register_uploads", "process_upload", "build_archive"):
        timeout = lam.get_function_configuration(FunctionName=function_name(name))["Timeout"]
        assert timeout <= resources.QUEUE_VISIBILITY_TIMEOUT, name
    [delivery] = lam.list_event_source_mappings(FunctionName=function_name("deliver_webhooks"))["EventSourceMappings"]
    assert delivery["EventSourceArn"] == arn(settings.queue_url("deliveries"))
    assert delivery["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    timeout = lam.get_function_configuration(FunctionName=function_name("deliver_webhooks"))["Timeout"]
    assert timeout < resources.DELIVERIES.visibility_timeout
    [stream] = lam.list_event_source_mappings(FunctionName=function_name("publish_batch_events"))["EventSourceMappings"]
    table = client("dynamodb").describe_table(TableName=settings.table("batches"))["Table"]
    assert stream["EventSourceArn"] == table["LatestStreamArn"]
    assert stream["StartingPosition"] == "TRIM_HORIZON"


def test_events_reach_the_stacks_bus_and_secrets_its_key(deployed, settings):
    assert settings.event_bus_name == deployed["EventBusName"] == f"{STACK}-events"
    assert settings.webhook_key_id == deployed["WebhookKeyArn"]
    sealed = client("kms").encrypt(KeyId=settings.webhook_key_id, Plaintext=b"s")["CiphertextBlob"]
    assert client("kms").decrypt(CiphertextBlob=sealed)["Plaintext"] == b"s"
    assert client("events").describe_event_bus(Name=settings.event_bus_name)["Name"] == settings.event_bus_name


def test_the_sweep_runs_every_minute(deployed):
    events = client("events")
    [rule] = [r for r in events.list_rules()["Rules"] if "ExpireUploads" in r["Name"]]
    assert rule["ScheduleExpression"] == "rate(1 minute)" and rule["State"] == "ENABLED"
    [target] = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert target["Arn"].endswith(f":function:{function_name('expire_uploads')}")


def test_the_rest_api_has_every_route_behind_the_authorizer(deployed):
    from app import app
    apigw = client("apigateway")
    [api] = apigw.get_rest_apis()["items"]
    methods = {}
    for resource in apigw.get_resources(restApiId=api["id"], limit=500)["items"]:
        for method in resource.get("resourceMethods", {}):
            if method != "OPTIONS":
                methods[(resource["path"], method)] = apigw.get_method(
                    restApiId=api["id"], resourceId=resource["id"], httpMethod=method)["authorizationType"]
    wanted = {(path, method): "CUSTOM" if entry.authorizer else "NONE"
              for path, entries in app.routes.items() for method, entry in entries.items()}
    assert methods == wanted


def test_auth_failures_answer_in_the_chalice_error_shape_without_cors(deployed):
    apigw = client("apigateway")
    [api] = apigw.get_rest_apis()["items"]
    for response_type in ("UNAUTHORIZED", "ACCESS_DENIED"):
        response = apigw.get_gateway_response(restApiId=api["id"], responseType=response_type)
        assert str(response["statusCode"]) == "401"
        body = json.loads(response["responseTemplates"]["application/json"])
        assert body["Code"] == "UnauthorizedError" and "Authorization: Bearer" in body["Message"]
        assert "Access-Control" not in json.dumps(response.get("responseParameters", {}))


def test_alarms_watch_the_created_queues_functions_and_api(deployed, settings):
    cw = client("cloudwatch")
    alarms = cw.describe_alarms(MaxRecords=100)["MetricAlarms"]
    watched = {(a["Namespace"], a["MetricName"], tuple((d["Name"], d["Value"]) for d in a["Dimensions"])) for a in alarms}
    sqs = client("sqs")
    for spec in resources.QUEUES:
        dlq_name = sqs.get_queue_attributes(QueueUrl=deployed[f"{spec.dlq_logical_id}Url"],
                                            AttributeNames=["QueueArn"])["Attributes"]["QueueArn"].rsplit(":", 1)[-1]
        assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", (("QueueName", dlq_name),)) in watched
    functions = {f["FunctionName"] for f in client("lambda").list_functions()["Functions"]}
    for fn in tmpl.app_functions():
        assert function_name(fn.name) in functions
        for metric in ("Errors", "Throttles"):
            assert ("AWS/Lambda", metric, (("FunctionName", function_name(fn.name)),)) in watched
    assert ("AWS/ApiGateway", "5XXError", (("ApiName", STACK), ("Stage", "api"))) in watched
    [api] = client("apigateway").get_rest_apis()["items"]
    assert api["name"] == STACK   # what API Gateway reports its metrics under
    topic = deployed["AlarmTopicArn"]
    assert all(a["AlarmActions"] == [topic] and a["OKActions"] == [topic] for a in alarms)
    assert topic in [t["TopicArn"] for t in client("sns").list_topics()["Topics"]]


def test_the_dashboard_exists_and_names_the_created_resources(deployed, settings):
    body = json.loads(client("cloudwatch").get_dashboard(DashboardName=deployed["DashboardName"])["DashboardBody"])
    text = json.dumps(body)
    assert "${" not in text
    for fn in tmpl.app_functions():
        assert f'"{function_name(fn.name)}"' in text
    alarm_arns = {a["AlarmArn"] for a in client("cloudwatch").describe_alarms(MaxRecords=100)["MetricAlarms"]}
    [widget] = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert set(widget["properties"]["alarms"]) == alarm_arns
    assert deployed["DashboardURL"].endswith(f"#dashboards:name={deployed['DashboardName']}")


def test_unknown_routes_answer_404_not_found(deployed):
    from chalicelib.errors import NO_ROUTE
    apigw = client("apigateway")
    [api] = apigw.get_rest_apis()["items"]
    response = apigw.get_gateway_response(restApiId=api["id"], responseType="MISSING_AUTHENTICATION_TOKEN")
    assert str(response["statusCode"]) == "404"
    assert json.loads(response["responseTemplates"]["application/json"]) == {"Code": "NotFoundError",
                                                                             "Message": NO_ROUTE}
