"""The packaged template: lint-clean after SAM translation, and generated from resources.py.

cfn-lint does not expand SAM resources, so it would not see (for example) a dependency cycle
between the bucket, the queue policy and the functions' roles: the template is translated
with aws-sam-translator first (deploy_support.translate) and the result is linted.
"""
from __future__ import annotations

import copy
from dataclasses import replace
import json

import pytest
from cfnlint.api import ManualArgs, lint

from deploy_support import REGION, translate, with_code_in_s3

from chalicelib import resources
from deploy import template as tmpl


def lint_matches(template: dict) -> list[str]:
    matches = lint(json.dumps(template), config=ManualArgs(regions=[REGION], include_checks=["I"]))
    return [f"{m.rule.id} {m.message} ({'/'.join(map(str, m.path))})" for m in matches]


def test_translated_template_is_plain_cloudformation(cfn_template):
    assert "Transform" not in cfn_template
    types = {r["Type"] for r in cfn_template["Resources"].values()}
    assert not [t for t in types if t.startswith("AWS::Serverless::")]
    assert {"AWS::Lambda::Function", "AWS::Lambda::EventSourceMapping", "AWS::ApiGateway::RestApi",
            "AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::SQS::Queue", "AWS::SQS::QueuePolicy",
            "AWS::Events::Rule", "AWS::IAM::Role", "AWS::Logs::LogGroup"} <= types


def test_cfn_lint_is_clean_after_sam_translation(cfn_template):
    assert lint_matches(cfn_template) == []


def test_cfn_lint_is_clean_on_the_sam_template_too(sam_template):
    assert lint_matches(with_code_in_s3(sam_template)) == []


def test_lint_after_translation_catches_a_cycle(sam_template):
    """Why the bucket has a fixed Fn::Sub name: naming it with Ref in the queue policy makes a cycle
    (bucket -> queue policy -> bucket) that the linter reports once the template is translated."""
    broken = copy.deepcopy(with_code_in_s3(sam_template))
    condition = broken["Resources"]["ArrivalQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"][0]["Condition"]
    condition["ArnEquals"]["aws:SourceArn"] = {"Fn::GetAtt": ["StorageBucket", "Arn"]}
    assert any(m.startswith("E3004") for m in lint_matches(translate(broken)))


def test_tables_in_the_template_are_the_table_definitions(sam_template):
    config = tmpl.load_config()
    models = tmpl.models_for(config)
    for spec, model, wanted in zip(resources.TABLES, models.all(), resources.table_definitions(models)):
        table = sam_template["Resources"][spec.logical_id]
        props = dict(table["Properties"])
        ttl = props.pop("TimeToLiveSpecification", None)
        assert props.pop("PointInTimeRecoverySpecification") == {"PointInTimeRecoveryEnabled": True}
        wanted = dict(wanted)
        if "StreamSpecification" in wanted:   # CloudFormation spells an enabled stream by its view type alone
            assert wanted.pop("StreamSpecification") == {"StreamEnabled": True, "StreamViewType": spec.stream}
            assert props.pop("StreamSpecification") == {"StreamViewType": spec.stream}
        assert props == wanted
        assert ttl == ({"AttributeName": resources.ttl_attribute(model), "Enabled": True}
                       if resources.ttl_attribute(model) else None)
        assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"


def test_the_merge_template_follows_resources_py(monkeypatch):
    """Change resources.py and the template changes with it: nothing is copied by hand."""
    monkeypatch.setattr(resources, "CORS_RULES", [{**resources.CORS_RULES[0], "MaxAgeSeconds": 7}])
    monkeypatch.setattr(resources, "LIFECYCLE_RULES", resources.LIFECYCLE_RULES + [
        {"ID": "x", "Status": "Enabled", "Filter": {"Prefix": "outputs/"}, "Expiration": {"Days": 3}}])
    monkeypatch.setattr(resources, "QUEUES", tuple(
        replace(q, max_receives=9, s3_prefixes=("incoming/",) if q.s3_prefixes else ()) for q in resources.QUEUES))
    built = tmpl.build()["Resources"]
    bucket = built["StorageBucket"]["Properties"]
    assert bucket["CorsConfiguration"]["CorsRules"][0]["MaxAge"] == 7
    assert {"Id": "x", "Status": "Enabled", "Prefix": "outputs/", "ExpirationInDays": 3} in \
        bucket["LifecycleConfiguration"]["Rules"]
    assert bucket["NotificationConfiguration"]["QueueConfigurations"][0]["Filter"] == {
        "S3Key": {"Rules": [{"Name": "prefix", "Value": "incoming/"}]}}
    assert built["UploadQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 9


def test_unmappable_resource_settings_stop_the_build(monkeypatch):
    monkeypatch.setattr(resources, "LIFECYCLE_RULES", [{"ID": "t", "Status": "Enabled", "Filter": {"Prefix": ""},
                                                        "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]}])
    with pytest.raises(tmpl.TemplateError, match="Transitions"):
        tmpl.build()


def test_packaging_refuses_configs_that_break_least_privilege_or_sqs():
    config = tmpl.load_config()
    functions = tmpl.app_functions()
    no_policy = copy.deepcopy(config)
    del no_policy["stages"]["prod"]["lambda_functions"]["build_archive"]["iam_policy_file"]
    with pytest.raises(tmpl.TemplateError, match="build_archive.iam_policy_file"):
        tmpl.build(no_policy, functions=functions)
    autogen = {**copy.deepcopy(config), "autogen_policy": True}
    with pytest.raises(tmpl.TemplateError, match="autogen_policy"):
        tmpl.build(autogen, functions=functions)
    slow = copy.deepcopy(config)
    slow["stages"]["prod"]["lambda_functions"]["process_upload"]["lambda_timeout"] = resources.QUEUE_VISIBILITY_TIMEOUT + 1
    with pytest.raises(tmpl.TemplateError, match="visibility timeout"):
        tmpl.build(slow, functions=functions)


def test_every_function_is_configured_in_the_packaged_template(sam_template):
    res = sam_template["Resources"]
    # what the registry declares (chalicelib/resources.py): a new table, queue or stream handler is
    # checked here without this test naming it
    env_names = ({t.env for t in resources.TABLES} | {q.env for q in resources.QUEUES}
                 | {"BUCKET_NAME", resources.EVENT_BUS.env, resources.WEBHOOK_KEY.env})
    assert {"JOBS_TABLE", "UPLOAD_QUEUE_URL", "EVENT_BUS_NAME", "WEBHOOK_KEY_ID"} <= env_names
    functions = tmpl.app_functions()
    assert {fn.name for fn in functions} == ({"api_handler", "token_auth", "expire_uploads"}
                                             | {q.handler for q in resources.QUEUES}
                                             | {t.stream_handler for t in resources.TABLES if t.stream_handler})
    for fn in functions:
        props = res[fn.logical_id]["Properties"]
        variables = props["Environment"]["Variables"]
        assert set(variables) >= env_names, fn.name
        assert all(isinstance(variables[n], dict) for n in env_names), "Ref/Fn::Sub, not copied literals"
        assert props["FunctionName"] == {"Fn::Sub": "${AWS::StackName}-" + fn.name.replace("_", "-")}
        assert res[fn.log_group_id]["Properties"]["RetentionInDays"] == tmpl.LOG_RETENTION_DAYS
        assert props["CodeUri"] == "./deployment.zip" and props["Runtime"] == "python3.11"
    events = res["ProcessUpload"]["Properties"]["Events"]["ProcessUploadSqsEventSource"]["Properties"]
    assert events["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert events["Queue"] == {"Fn::Sub": "${UploadQueue.Arn}"}
    # what the DynamoDB model supports for one batch with bucketed counters (docs/benchmarks.md)
    assert events["ScalingConfig"] == {"MaximumConcurrency": 1000}
    assert res["BuildArchive"]["Properties"]["Events"]["BuildArchiveSqsEventSource"]["Properties"]["Queue"] == \
        {"Fn::Sub": "${ArchiveQueue.Arn}"}
    parts = res["BuildArchivePart"]["Properties"]["Events"]["BuildArchivePartSqsEventSource"]["Properties"]
    assert parts["Queue"] == {"Fn::Sub": "${ArchivePartsQueue.Arn}"}
    assert parts["BatchSize"] == 1 and parts["ScalingConfig"] == {"MaximumConcurrency": 100}
    assert res["ExpireUploads"]["Properties"]["Events"]["ExpireUploadsEvent"]["Properties"]["Schedule"] == \
        "rate(1 minute)"
    # the batches stream of this stack (not the decorator's placeholder), failures reported per record
    [(name, stream)] = res["PublishBatchEvents"]["Properties"]["Events"].items()
    assert stream["Type"] == "DynamoDB" and stream["Properties"]["Stream"] == {"Fn::GetAtt": ["BatchesTable", "StreamArn"]}
    assert stream["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert stream["Properties"]["StartingPosition"] == "TRIM_HORIZON"
    assert res["DeliverWebhooks"]["Properties"]["Events"]["DeliverWebhooksSqsEventSource"]["Properties"]["Queue"] == \
        {"Fn::Sub": "${DeliveryQueue.Arn}"}
    assert res["EventBus"]["Type"] == "AWS::Events::EventBus"
    assert res["WebhookSecretsKey"]["Properties"]["EnableKeyRotation"] is True
    drops = res["RegisterDrop"]["Properties"]["Events"]["RegisterDropSqsEventSource"]["Properties"]
    assert drops["Queue"] == {"Fn::Sub": "${DropQueue.Arn}"} and drops["BatchSize"] == 1
    # /tmp holds the largest upload the processor spools, plus headroom (README "The per-file limit")
    assert res["ProcessUpload"]["Properties"]["EphemeralStorage"] == {"Size": 6144}
    assert "EphemeralStorage" not in res["APIHandler"]["Properties"]


def test_uploads_in_parts_and_drop_folders_reach_the_bucket_configuration(sam_template):
    bucket = sam_template["Resources"]["StorageBucket"]["Properties"]
    assert "PUT" in bucket["CorsConfiguration"]["CorsRules"][0]["AllowedMethods"]
    rules = {r["Id"]: r for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["abort-abandoned-multipart-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert "Prefix" not in rules["abort-abandoned-multipart-uploads"]   # every prefix, drop/ too
    assert rules["expire-drop-folders"] == {"Id": "expire-drop-folders", "Status": "Enabled", "Prefix": "drop/",
                                            "ExpirationInDays": resources.DROP_RETENTION_DAYS}
    notifications = {json.dumps(n["Filter"], sort_keys=True): n["Queue"] for n in
                     bucket["NotificationConfiguration"]["QueueConfigurations"]}
    marker_only = {"S3Key": {"Rules": [{"Name": "prefix", "Value": "drop/"}, {"Name": "suffix", "Value": "_READY"}]}}
    assert notifications[json.dumps(marker_only, sort_keys=True)] == {"Fn::GetAtt": ["DropQueue", "Arn"]}
    assert "DropQueuePolicy" in sam_template["Resources"]


def test_tmp_follows_the_stages_per_file_limit():
    config = tmpl.load_config()
    assert tmpl.ephemeral_storage_mb(config) == 5 * 1024 + 1024
    small = copy.deepcopy(config)
    small["stages"]["prod"]["environment_variables"]["MAX_FILE_SIZE"] = str(100 * 1024 * 1024)
    assert tmpl.ephemeral_storage_mb(small) == 1124
    huge = copy.deepcopy(config)
    huge["stages"]["prod"]["environment_variables"]["MAX_FILE_SIZE"] = str(10 * 1024 ** 3)
    with pytest.raises(tmpl.TemplateError, match="10240 MB"):
        tmpl.build(huge, functions=tmpl.app_functions())


def test_gateway_responses_are_in_the_api_definition(cfn_template):
    body = cfn_template["Resources"]["RestAPI"]["Properties"]["Body"]
    responses = body[tmpl.GATEWAY_RESPONSES_KEY]
    for kind in ("UNAUTHORIZED", "ACCESS_DENIED"):
        assert responses[kind]["statusCode"] == 401
        assert json.loads(responses[kind]["responseTemplates"]["application/json"]) == {
            "Code": "UnauthorizedError", "Message": tmpl.UNAUTHORIZED_MESSAGE}
    # no CORS anywhere: the UI is same-origin and other origins' pages must not read the API
    assert "Access-Control" not in json.dumps(body)
    # the authorizer reads the Authorization header, which is what UNAUTHORIZED is about
    [(name, scheme)] = body["securityDefinitions"].items()
    assert scheme["name"] == "Authorization" and scheme["x-amazon-apigateway-authtype"] == "custom"
    # a revoked token stops working within this long (README "Tokens")
    assert scheme["x-amazon-apigateway-authorizer"]["authorizerResultTtlInSeconds"] == 60


def test_every_stack_generates_its_own_cursor_signing_key(sam_template):
    res = sam_template["Resources"]
    secret = res[tmpl.CURSOR_KEY]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32
    reference = {"Fn::Sub": "{{resolve:secretsmanager:${%s}:SecretString}}" % tmpl.CURSOR_KEY}
    for fn in tmpl.app_functions():
        assert res[fn.logical_id]["Properties"]["Environment"]["Variables"]["CURSOR_SIGNING_KEY"] == reference


# -- observability: tracing, alarms, dashboard (checked after SAM translation) -------------------

def by_type(template: dict, kind: str) -> dict:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_every_function_and_the_api_stage_trace_to_xray(cfn_template):
    functions = by_type(cfn_template, "AWS::Lambda::Function")
    assert len(functions) == len(tmpl.app_functions())
    for name, fn in functions.items():
        assert fn["Properties"]["TracingConfig"] == {"Mode": "Active"}, name
        role = cfn_template["Resources"][fn["Properties"]["Role"]["Fn::GetAtt"][0]]["Properties"]
        actions = {a for p in role["Policies"] for s in p["PolicyDocument"]["Statement"] for a in s["Action"]}
        assert {"xray:PutTraceSegments", "xray:PutTelemetryRecords"} <= actions, name
    [stage] = by_type(cfn_template, "AWS::ApiGateway::Stage").values()
    assert stage["Properties"]["TracingEnabled"] is True


def test_unknown_routes_answer_404_in_the_error_shape(cfn_template):
    from chalicelib.errors import NO_ROUTE
    response = cfn_template["Resources"]["RestAPI"]["Properties"]["Body"][tmpl.GATEWAY_RESPONSES_KEY][
        "MISSING_AUTHENTICATION_TOKEN"]
    assert response["statusCode"] == 404
    assert json.loads(response["responseTemplates"]["application/json"]) == {"Code": "NotFoundError", "Message": NO_ROUTE}


def alarms_by_metric(template: dict) -> dict[tuple, dict]:
    out = {}
    for logical, alarm in by_type(template, "AWS::CloudWatch::Alarm").items():
        p = alarm["Properties"]
        dims = tuple((d["Name"], json.dumps(d["Value"], sort_keys=True)) for d in p["Dimensions"])
        out[(p["Namespace"], p["MetricName"], dims)] = {**p, "logical_id": logical}
    return out


def test_alarms_cover_every_dlq_function_and_the_service_metrics(cfn_template):
    from chalicelib import observability
    found = alarms_by_metric(cfn_template)
    res = cfn_template["Resources"]
    for spec in resources.QUEUES:
        dims = (("QueueName", json.dumps({"Fn::GetAtt": [spec.dlq_logical_id, "QueueName"]})),)
        alarm = found.pop(("AWS/SQS", "ApproximateNumberOfMessagesVisible", dims))
        assert (alarm["Threshold"], alarm["ComparisonOperator"], alarm["Statistic"]) == (0, "GreaterThanThreshold",
                                                                                         "Maximum")
        assert res[spec.dlq_logical_id]["Properties"]["QueueName"] == spec.dlq_name
    for fn in tmpl.app_functions():
        assert res[fn.logical_id]["Type"] == "AWS::Lambda::Function"
        for metric in ("Errors", "Throttles"):
            alarm = found.pop(("AWS/Lambda", metric, (("FunctionName", json.dumps({"Ref": fn.logical_id})),)))
            assert (alarm["Threshold"], alarm["Statistic"]) == (0, "Sum")
    service = (("service", json.dumps(observability.SERVICE)),)
    p95 = found.pop((observability.NAMESPACE, "PipelineDuration", service))
    assert p95["ExtendedStatistic"] == "p95" and p95["Threshold"] == 60_000 and p95["Unit"] == "Milliseconds"
    archive = found.pop((observability.NAMESPACE, "ArchiveBuildsFailed", service))
    assert archive["Threshold"] == 0 and archive["Statistic"] == "Sum"
    [stage] = by_type(cfn_template, "AWS::ApiGateway::Stage").values()
    api = found.pop(("AWS/ApiGateway", "5XXError", (("ApiName", json.dumps({"Ref": "AWS::StackName"})),
                                                    ("Stage", json.dumps(stage["Properties"]["StageName"])))))
    assert api["Statistic"] == "Average" and api["Threshold"] == 0.05 and api["DatapointsToAlarm"] == 2
    # the API's name, which the 5xx metric is reported under, is the stack's name
    assert res["RestAPI"]["Properties"]["Name"] == {"Ref": "AWS::StackName"}
    assert not found, f"alarms nobody checked: {sorted(found)}"
    for alarm in by_type(cfn_template, "AWS::CloudWatch::Alarm").values():
        p = alarm["Properties"]
        assert p["AlarmActions"] == p["OKActions"] == [{"Ref": "AlarmTopic"}] and p["TreatMissingData"] == "notBreaching"
        assert p["AlarmDescription"]
    assert res["AlarmEmailSubscription"]["Condition"] == "HasAlarmEmail"


def dashboard_body(template: dict, names: dict) -> dict:
    [board] = by_type(template, "AWS::CloudWatch::Dashboard").values()
    body = board["Properties"]["DashboardBody"]["Fn::Sub"]
    import re
    return json.loads(re.sub(r"\$\{([^}]+)\}", lambda m: names[m.group(1)], body))


def test_the_dashboard_draws_every_metric_queue_function_and_alarm(cfn_template):
    from chalicelib import observability
    alarm_ids = list(by_type(cfn_template, "AWS::CloudWatch::Alarm"))
    names = {"AWS::Region": "eu-west-1", "AWS::StackName": "imgbatch-prod",
             **{fn.logical_id: f"imgbatch-prod-{fn.name}" for fn in tmpl.app_functions()},
             **{f"{a}.Arn": f"arn:aws:cloudwatch:eu-west-1:1:alarm:{a}" for a in alarm_ids}}
    widgets = dashboard_body(cfn_template, names)["widgets"]
    [alarm_widget] = [w for w in widgets if w["type"] == "alarm"]
    assert sorted(alarm_widget["properties"]["alarms"]) == sorted(names[f"{a}.Arn"] for a in alarm_ids)
    metrics = [m for w in widgets if w["type"] == "metric" for m in w["properties"]["metrics"]]
    text = json.dumps(metrics)
    for spec in observability.METRICS:
        if spec.dimension:
            assert f'MetricName=\\"{spec.name}\\"' in text and f"{spec.dimension},service" in text, spec.name
        else:
            assert [observability.NAMESPACE, spec.name, "service", observability.SERVICE] in metrics, spec.name
    for spec in resources.QUEUES:
        assert ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", spec.dlq_name,
                {"stat": "Maximum", "label": spec.dlq_name}] in metrics
    for fn in tmpl.app_functions():
        assert any(m[:4] == ["AWS/Lambda", "Errors", "FunctionName", f"imgbatch-prod-{fn.name}"] for m in metrics)
    assert all(w["properties"].get("region", "eu-west-1") == "eu-west-1" for w in widgets)
    # no two widgets overlap on the grid
    cells = [(w["x"], w["y"]) for w in widgets]
    assert len(cells) == len(set(cells))


def test_a_new_queue_or_metric_gets_its_alarm_and_widget(monkeypatch):
    """The monitoring loops over the registries: nothing to add by hand."""
    from chalicelib import observability
    extra = replace(resources.ARCHIVES, key="thumbs", name="imgbatch-thumbs", env="THUMB_QUEUE_URL",
                    logical_id="ThumbQueue", handler="build_archive")
    monkeypatch.setattr(resources, "QUEUES", resources.QUEUES + (extra,))
    metric = observability.MetricSpec("ThumbsDrawn", "Count", help="thumbnails drawn")
    monkeypatch.setattr(observability, "METRICS", observability.METRICS + (metric,))
    built = tmpl.build()
    assert "ThumbDeadLetterQueueDepthAlarm" in built["Resources"]
    body = built["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert "imgbatch-thumbs-dlq" in body and '"ThumbsDrawn"' in body
