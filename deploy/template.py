"""The merge template for `chalice package --merge-template`, built from chalicelib/resources.py.

Chalice generates the functions, their roles (from the per-function policy files in
.chalice/), the REST API, the authorizer and the schedule. Everything else the app
needs comes from here, derived from the same definitions `make run` and the tests use:

- every table of the registry (keys, GSIs, LSI, TTL) from the PynamoDB models,
- the bucket (CORS, lifecycle rules, S3 -> SQS notifications) and, for every queue S3 sends to,
  a queue policy that lets it (only from our bucket, only from our account),
- every queue of the registry, each with its dead-letter queue,
- per function: a fixed name, a log group with retention, the environment (every table name and
  queue URL the registry declares, and BUCKET_NAME, as Ref/Fn::Sub) and, for queue consumers that
  report partial failures, ReportBatchItemFailures on their SQS event source; process_upload gets
  the ephemeral storage (/tmp) its largest upload needs (Chalice has no setting for it),
- API Gateway responses that answer auth failures in Chalice's error shape (no CORS: the API
  serves its own UI and is not meant to be read by other origins' pages),
- the key that signs list cursors, generated once per stack in Secrets Manager and handed to the
  functions through a dynamic reference (resolved by CloudFormation: no runtime call, no IAM),
- the EventBridge bus every event goes to, the KMS key that encrypts webhook secrets, and the
  batches table's stream as the event source of its handler (Chalice writes the literal ARN of
  the decorator; the merge template points it at the stack's table, ReportBatchItemFailures on).

No cycles: the bucket's name is a fixed Fn::Sub string (never Ref/GetAtt to the bucket), so the
queue policy can name the bucket while the bucket's notification depends on the queue policy.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from chalice.utils import to_cfn_resource_name

from chalicelib import resources
from chalicelib.errors import MISSING_TOKEN, NO_ROUTE
from chalicelib.adapters.models import build_models

from . import monitoring

ROOT = Path(__file__).resolve().parents[1]
CONFIG_FILE = ROOT / ".chalice" / "config.json"
DEFAULT_STAGE = "prod"

BUCKET = "StorageBucket"
API = "RestAPI"  # Chalice's logical id of the REST API
LOG_RETENTION_DAYS = 30
UNAUTHORIZED_MESSAGE = MISSING_TOKEN
CURSOR_KEY = "CursorSigningKey"
LOG_LEVEL = "LogLevel"   # stack parameter: the functions' LOG_LEVEL (DEBUG while investigating)
LOG_LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]
# process_upload spools each upload to /tmp while decoding it (services/processor.py): /tmp holds
# the largest file allowed plus this much for Python, Pillow and the outputs.
SPOOLING_FUNCTIONS = ("process_upload",)
TMP_HEADROOM_MB = 1024
LAMBDA_TMP_MB = (512, 10240)


class TemplateError(RuntimeError):
    """The app, its config and resources.py disagree; packaging must stop."""


@dataclass(frozen=True)
class Function:
    name: str                 # Chalice's name: api_handler, token_auth, process_upload, ...
    logical_id: str           # its AWS::Serverless::Function in Chalice's template
    queue: str | None = None  # SQS event source queue name
    event_id: str | None = None
    stream_table: str | None = None   # the TableSpec key whose DynamoDB Stream feeds it

    @property
    def log_group_id(self) -> str:
        return f"{self.logical_id}LogGroup"

    @property
    def function_name(self) -> dict:
        return {"Fn::Sub": "${AWS::StackName}-" + self.name.replace("_", "-")}


def queue_id(queue: str) -> str:
    return resources.queue_spec(queue).logical_id


def dlq_id(queue: str) -> str:
    return resources.queue_spec(queue).dlq_logical_id


def queue_policy_id(spec: resources.QueueSpec) -> str:
    return f"{spec.logical_id}Policy"


def load_config(path: Path = CONFIG_FILE) -> dict:
    return json.loads(path.read_text())


def stage_environment(config: dict, stage: str = DEFAULT_STAGE) -> dict[str, str]:
    """Chalice's environment for a stage: the top-level variables, then the stage's."""
    if stage not in config.get("stages", {}):
        raise TemplateError(f"stage {stage!r} is not in .chalice/config.json")
    return {**config.get("environment_variables", {}), **config["stages"][stage].get("environment_variables", {})}


def lambda_config(config: dict, stage: str, name: str) -> dict:
    return config["stages"][stage].get("lambda_functions", {}).get(name, {})


def app_functions(app=None) -> list[Function]:
    """Every Lambda function Chalice makes for the app, with its logical id."""
    if app is None:
        from app import app
    functions = []
    if app.routes:
        functions.append(Function("api_handler", "APIHandler"))
    for auth in app.builtin_auth_handlers:
        functions.append(Function(auth.name, to_cfn_resource_name(auth.name)))
    for source in app.event_sources:
        kind = type(source).__name__
        logical_id = to_cfn_resource_name(source.name)
        if kind == "SQSEventConfig":
            try:
                resources.queue_spec(source.queue)
            except KeyError as exc:
                raise TemplateError(f"{source.name} listens to queue {source.queue!r}: {exc.args[0]}") from None
            functions.append(Function(source.name, logical_id, source.queue,
                                      to_cfn_resource_name(f"{source.name}-sqs-event-source")))
        elif kind == "DynamoDBEventConfig":
            tables = [t for t in resources.TABLES if t.stream_handler == source.name]
            if not tables:
                raise TemplateError(f"{source.name} reads a DynamoDB stream that no table in chalicelib/resources.py "
                                    "declares (TableSpec.stream_handler)")
            functions.append(Function(source.name, logical_id, event_id=to_cfn_resource_name(
                f"{source.name}-dynamodb-event-source"), stream_table=tables[0].key))
        elif kind in ("ScheduledEventConfig", "CloudWatchEventConfig"):
            functions.append(Function(source.name, logical_id))
        else:
            raise TemplateError(f"{source.name}: event source {kind} is not supported by the deploy template "
                                "(S3 events cannot be packaged; use S3 -> SQS, see ARCHITECTURE.md)")
    return functions


def bucket_name_sub(config: dict, stage: str = DEFAULT_STAGE) -> str:
    """A fixed, globally unique bucket name: the stage's BUCKET_NAME, the account and the region."""
    return stage_environment(config, stage)["BUCKET_NAME"] + "-${AWS::AccountId}-${AWS::Region}"


def table_names(config: dict, stage: str = DEFAULT_STAGE) -> dict[str, str]:
    """Table key -> the stage's table name."""
    env = stage_environment(config, stage)
    missing = [t.env for t in resources.TABLES if not env.get(t.env)]
    if missing:
        raise TemplateError(f"stage {stage}: environment_variables lacks {', '.join(missing)}")
    return {t.key: env[t.env] for t in resources.TABLES}


def ephemeral_storage_mb(config: dict, stage: str = DEFAULT_STAGE) -> int:
    """/tmp for the functions that spool uploads: the stage's per-file limit plus headroom."""
    from chalicelib.domain.batches import Limits
    raw = stage_environment(config, stage).get("MAX_FILE_SIZE")
    max_file = int(raw) if raw else Limits().max_file_size
    size = max(LAMBDA_TMP_MB[0], -(-max_file // (1024 * 1024)) + TMP_HEADROOM_MB)
    if size > LAMBDA_TMP_MB[1]:
        raise TemplateError(f"stage {stage}: MAX_FILE_SIZE {max_file} needs {size} MB of /tmp in process_upload; "
                            f"Lambda allows at most {LAMBDA_TMP_MB[1]} MB")
    return size


def models_for(config: dict, stage: str = DEFAULT_STAGE):
    # region/host do not enter the schema
    return build_models(**table_names(config, stage), region="us-east-1", host=None)


# -- resources.py (boto3 API spelling) -> CloudFormation spelling ----------------------

def cfn_cors_rules(rules: list[dict]) -> list[dict]:
    names = {"ID": "Id", "AllowedOrigins": "AllowedOrigins", "AllowedMethods": "AllowedMethods",
             "AllowedHeaders": "AllowedHeaders", "ExposeHeaders": "ExposedHeaders", "MaxAgeSeconds": "MaxAge"}
    out = []
    for rule in rules:
        unknown = set(rule) - set(names)
        if unknown:
            raise TemplateError(f"CORS rule field(s) {sorted(unknown)} have no CloudFormation mapping here")
        out.append({names[k]: v for k, v in rule.items()})
    return out


def cfn_lifecycle_rules(rules: list[dict]) -> list[dict]:
    out = []
    for rule in rules:
        cfn = {"Id": rule["ID"], "Status": rule["Status"]}
        for key, value in rule.items():
            if key in ("ID", "Status"):
                continue
            if key == "Filter":
                if set(value) - {"Prefix"}:
                    raise TemplateError(f"lifecycle rule {rule['ID']}: only prefix filters are mapped")
                if value.get("Prefix"):
                    cfn["Prefix"] = value["Prefix"]
            elif key == "Expiration" and set(value) == {"Days"}:
                cfn["ExpirationInDays"] = value["Days"]
            elif key == "AbortIncompleteMultipartUpload":
                cfn["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": value["DaysAfterInitiation"]}
            else:
                raise TemplateError(f"lifecycle rule {rule['ID']}: {key} has no CloudFormation mapping here")
        out.append(cfn)
    return out


_QUEUE_ARN_PLACEHOLDER = "arn:placeholder:queue"


def cfn_queue_notifications() -> list[dict]:
    arns = {spec.key: {"Fn::GetAtt": [spec.logical_id, "Arn"]} for spec in resources.QUEUES}
    out = []
    for config in resources.notification_configuration(arns)["QueueConfigurations"]:
        rules = [{"Name": r["Name"], "Value": r["Value"]} for r in config.get("Filter", {}).get("Key", {}).get("FilterRules", [])]
        for event in config["Events"]:
            entry = {"Event": event, "Queue": config["QueueArn"]}
            if rules:
                entry["Filter"] = {"S3Key": {"Rules": rules}}
            out.append(entry)
    return out


def cfn_queue(queue: str) -> dict:
    attributes = resources.queue_attributes(_QUEUE_ARN_PLACEHOLDER, resources.queue_spec(queue))
    redrive = json.loads(attributes.pop("RedrivePolicy"))
    if redrive.pop("deadLetterTargetArn") != _QUEUE_ARN_PLACEHOLDER:
        raise TemplateError("queue_attributes() must put the DLQ ARN in the redrive policy")
    properties = {"QueueName": queue, "SqsManagedSseEnabled": True,
                  "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": [dlq_id(queue), "Arn"]}, **redrive}}
    for key, value in attributes.items():
        properties[key] = int(value)
    return {"Type": "AWS::SQS::Queue", "DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete",
            "Properties": properties}


def cfn_dead_letter_queue(queue: str) -> dict:
    properties = {"QueueName": resources.dlq_name(queue), "SqsManagedSseEnabled": True}
    properties.update({k: int(v) for k, v in resources.dlq_attributes().items()})
    return {"Type": "AWS::SQS::Queue", "DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete",
            "Properties": properties}


def cfn_table(definition: dict, ttl: str | None) -> dict:
    properties = dict(definition)
    stream = properties.pop("StreamSpecification", None)
    if stream:
        if not stream.get("StreamEnabled"):
            raise TemplateError(f"{definition['TableName']}: a disabled stream has no CloudFormation spelling here")
        properties["StreamSpecification"] = {"StreamViewType": stream["StreamViewType"]}
    if ttl:
        properties["TimeToLiveSpecification"] = {"AttributeName": ttl, "Enabled": True}
    properties["PointInTimeRecoverySpecification"] = {"PointInTimeRecoveryEnabled": True}
    return {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
            "Properties": properties}


# -- the template ------------------------------------------------------------------

GATEWAY_RESPONSES_KEY = "x-amazon-apigateway-gateway-responses"


def gateway_responses() -> dict:
    """API Gateway's own answers in Chalice's error shape.

    UNAUTHORIZED is what API Gateway answers itself when the Authorization header is missing
    (the authorizer is not even called); ACCESS_DENIED when an authorizer denies. Both are
    401 UnauthorizedError, like the app's own answer to an unknown token (API.md)."""
    unauthorized = json.dumps({"Code": "UnauthorizedError", "Message": UNAUTHORIZED_MESSAGE})
    generic = '{"Code": "$context.error.responseType", "Message": $context.error.messageString}'
    out = {}
    for response_type in ("UNAUTHORIZED", "ACCESS_DENIED"):
        out[response_type] = {"statusCode": 401, "responseTemplates": {"application/json": unauthorized}}
    # API Gateway's answer to a method and path no route has (with a bearer token it reads as
    # 403 "Authorization header requires 'Credential' parameter"): a 404 like the local gateway's
    out["MISSING_AUTHENTICATION_TOKEN"] = {"statusCode": 404, "responseTemplates": {
        "application/json": json.dumps({"Code": "NotFoundError", "Message": NO_ROUTE})}}
    for response_type in ("DEFAULT_4XX", "DEFAULT_5XX"):
        out[response_type] = {"responseTemplates": {"application/json": generic}}
    return out


def environment(config: dict, stage: str) -> dict:
    """What every function gets: the names the app's Settings.from_env reads."""
    env = {t.env: {"Ref": t.logical_id} for t in resources.TABLES}
    env["BUCKET_NAME"] = {"Fn::Sub": bucket_name_sub(config, stage)}
    for spec in resources.QUEUES:
        env[spec.env] = {"Ref": spec.logical_id}
    env["CURSOR_SIGNING_KEY"] = {"Fn::Sub": "{{resolve:secretsmanager:${%s}:SecretString}}" % CURSOR_KEY}
    # GetAtt Name, what Ref gives in AWS too: moto's CloudFormation resolves a bus's Ref to no name
    env[resources.EVENT_BUS.env] = {"Fn::GetAtt": [resources.EVENT_BUS.logical_id, "Name"]}
    env[resources.WEBHOOK_KEY.env] = {"Fn::GetAtt": [resources.WEBHOOK_KEY.logical_id, "Arn"]}
    env["LOG_LEVEL"] = {"Ref": LOG_LEVEL}
    return env


def event_bus() -> dict:
    return {"Type": "AWS::Events::EventBus", "Properties": {"Name": {"Fn::Sub": "${AWS::StackName}-events"}}}


def webhook_key() -> dict:
    """Encrypts webhook signing secrets (adapters/secrets.py). The account administers it, as a
    new key's default policy says; the functions' roles get kms:Encrypt or kms:Decrypt on it."""
    return {"Type": "AWS::KMS::Key", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
            "Properties": {"Description": "imgbatch: encrypts webhook signing secrets", "EnableKeyRotation": True,
                           "KeyPolicy": {"Version": "2012-10-17", "Statement": [{
                               "Sid": "AccountAdministers", "Effect": "Allow",
                               "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
                               "Action": "kms:*", "Resource": "*"}]}}}


def cursor_signing_key() -> dict:
    """A random key per stack; CloudFormation keeps it across updates (GenerateSecretString runs
    once), so cursors stay valid until the secret is rotated or the stack is replaced."""
    return {"Type": "AWS::SecretsManager::Secret", "DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete",
            "Properties": {"Description": "imgbatch: HMAC-SHA256 key that signs list cursors",
                           "GenerateSecretString": {"PasswordLength": 64, "ExcludePunctuation": True}}}


def build(config: dict | None = None, stage: str = DEFAULT_STAGE, functions: list[Function] | None = None) -> dict:
    config = load_config() if config is None else config
    functions = app_functions() if functions is None else functions
    _check_config(config, stage, functions)
    out: dict = {"Parameters": {LOG_LEVEL: {
        "Type": "String", "Default": "INFO", "AllowedValues": LOG_LEVELS,
        "Description": "The functions' log level; DEBUG while investigating, then back"}},
        "Conditions": {}, "Resources": {}, "Outputs": {}}
    res, outputs = out["Resources"], out["Outputs"]

    models = models_for(config, stage)
    for spec, model, definition in zip(resources.TABLES, models.all(), resources.table_definitions(models)):
        res[spec.logical_id] = cfn_table(definition, resources.ttl_attribute(model))
        outputs[f"{spec.logical_id}Name"] = {"Value": {"Ref": spec.logical_id}}

    for spec in resources.QUEUES:
        res[spec.dlq_logical_id] = cfn_dead_letter_queue(spec.name)
        res[spec.logical_id] = cfn_queue(spec.name)
        outputs[f"{spec.logical_id}Url"] = {"Value": {"Ref": spec.logical_id}}
        outputs[f"{spec.dlq_logical_id}Url"] = {"Value": {"Ref": spec.dlq_logical_id}}

    bucket_name = bucket_name_sub(config, stage)
    notified = [spec for spec in resources.QUEUES if spec.s3_prefixes]
    for spec in notified:
        res[queue_policy_id(spec)] = {"Type": "AWS::SQS::QueuePolicy", "Properties": {
            "Queues": [{"Ref": spec.logical_id}],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Sid": "BucketNotifications", "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sqs:SendMessage",
                "Resource": {"Fn::GetAtt": [spec.logical_id, "Arn"]},
                "Condition": {
                    "ArnEquals": {"aws:SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:s3:::" + bucket_name}},
                    "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
                }}]}}}
    res[BUCKET] = {
        "Type": "AWS::S3::Bucket", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
        # S3 checks that it may send to the queue when the notification is written.
        "DependsOn": [queue_policy_id(spec) for spec in notified],
        "Properties": {
            "BucketName": {"Fn::Sub": bucket_name},
            "CorsConfiguration": {"CorsRules": cfn_cors_rules(resources.CORS_RULES)},
            "LifecycleConfiguration": {"Rules": cfn_lifecycle_rules(resources.LIFECYCLE_RULES)},
            "NotificationConfiguration": {
                "QueueConfigurations": cfn_queue_notifications()},
            "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                               "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
        },
    }
    outputs["StorageBucketName"] = {"Value": {"Ref": BUCKET}}

    res[CURSOR_KEY] = cursor_signing_key()
    res[resources.EVENT_BUS.logical_id] = event_bus()
    outputs["EventBusName"] = {"Value": {"Fn::GetAtt": [resources.EVENT_BUS.logical_id, "Name"]}}
    res[resources.WEBHOOK_KEY.logical_id] = webhook_key()
    outputs["WebhookKeyArn"] = {"Value": {"Fn::GetAtt": [resources.WEBHOOK_KEY.logical_id, "Arn"]}}
    env = environment(config, stage)
    for fn in functions:
        res[fn.log_group_id] = {
            "Type": "AWS::Logs::LogGroup", "DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete",
            "Properties": {"LogGroupName": {"Fn::Sub": "/aws/lambda/${AWS::StackName}-" + fn.name.replace("_", "-")},
                           "RetentionInDays": LOG_RETENTION_DAYS}}
        properties: dict = {"FunctionName": fn.function_name, "Environment": {"Variables": dict(env)}}
        if fn.name in SPOOLING_FUNCTIONS:
            properties["EphemeralStorage"] = {"Size": ephemeral_storage_mb(config, stage)}
        if fn.queue:
            event = {"Queue": {"Fn::Sub": "${%s.Arn}" % queue_id(fn.queue)}}  # Chalice uses Fn::Sub too
            if resources.queue_spec(fn.queue).report_failures:
                event["FunctionResponseTypes"] = ["ReportBatchItemFailures"]
            properties["Events"] = {fn.event_id: {"Properties": event}}
        if fn.stream_table:
            table = next(t for t in resources.TABLES if t.key == fn.stream_table)
            # Failed changes are reported and retried in order; retries go on until the record
            # leaves the stream (24 h), so no event is dropped while EventBridge or a table is down.
            properties["Events"] = {fn.event_id: {"Properties": {
                "Stream": {"Fn::GetAtt": [table.logical_id, "StreamArn"]},
                "FunctionResponseTypes": ["ReportBatchItemFailures"]}}}
        # The log group exists (with its retention) before the function can write to it.
        res[fn.logical_id] = {"DependsOn": [fn.log_group_id], "Properties": properties}

    # Gateway responses live in the API definition itself (not as separate GatewayResponse
    # resources, which drift from a RestApi defined by its Body).
    api_stage = None
    if any(fn.name == "api_handler" for fn in functions):
        api_stage = config["stages"][stage].get("api_gateway_stage", "api")
        res[API] = {"Properties": {"Name": {"Ref": "AWS::StackName"}, "TracingEnabled": True,
                                   "DefinitionBody": {GATEWAY_RESPONSES_KEY: gateway_responses()}}}

    # Alarms to a topic (and an email, if given), and one dashboard: monitoring.py
    topic = monitoring.alarm_topic()
    for section in ("Parameters", "Conditions", "Resources", "Outputs"):
        out[section].update(topic[section])
    alarms = monitoring.alarms(functions, api_stage)
    res.update(alarms)
    res[monitoring.DASHBOARD] = monitoring.dashboard(functions, api_stage, list(alarms))
    outputs["DashboardName"] = {"Value": {"Ref": monitoring.DASHBOARD}}
    outputs["DashboardURL"] = {"Value": {"Fn::Sub": "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/"
                                                    "home?region=${AWS::Region}#dashboards:name=${%s}"
                                                    % monitoring.DASHBOARD}}
    return out


def _check_config(config: dict, stage: str, functions: list[Function]) -> None:
    """Least privilege needs one policy file per function, and SQS consumers need a
    visibility timeout longer than the function may run."""
    stage_config = config["stages"][stage]
    if config.get("autogen_policy", True) or stage_config.get("autogen_policy", False):
        raise TemplateError("autogen_policy must be false: Chalice only sees calls in app.py")
    if not stage_config.get("xray", config.get("xray", False)):
        raise TemplateError(f"stages.{stage}.xray must be true: the functions trace to X-Ray (active tracing)")
    for fn in functions:
        fn_config = lambda_config(config, stage, fn.name)
        policy = fn_config.get("iam_policy_file")
        if not policy:
            raise TemplateError(f"stages.{stage}.lambda_functions.{fn.name}.iam_policy_file is missing: "
                                "every function needs its own least-privilege policy")
        if not (CONFIG_FILE.parent / policy).is_file():
            raise TemplateError(f"policy file .chalice/{policy} for {fn.name} does not exist")
        if fn.queue:
            timeout = fn_config.get("lambda_timeout", stage_config.get("lambda_timeout", 60))
            visibility = resources.queue_spec(fn.queue).visibility_timeout
            if visibility < timeout:
                raise TemplateError(f"{fn.name}: queue visibility timeout {visibility} s is "
                                    f"shorter than the function timeout {timeout} s")


def write(path: Path, config: dict | None = None, stage: str = DEFAULT_STAGE) -> dict:
    template = build(config, stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(template, indent=2, sort_keys=False) + "\n")
    return template
