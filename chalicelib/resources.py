"""The one registry of the AWS resources the app expects: every table and queue is declared here
once, and everything else loops over these declarations: settings (names and URLs from the
environment), wiring, the local stack (tables, queues, pollers), the deploy template (resources,
environment, event sources, notifications, queue policies) and the test fixtures.

Table definitions are derived from the PynamoDB models; the bucket's CORS and lifecycle rules
and the queue settings are plain data here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from .adapters.models import Models
from .domain.keys import ARCHIVE_PREFIX, DROP_MARKER, DROP_PREFIX, UPLOAD_PREFIX

QUEUE_VISIBILITY_TIMEOUT = 960   # > the processing function's 900 s timeout, as AWS requires
QUEUE_MAX_RECEIVES = 5           # then the message goes to the dead-letter queue
QUEUE_RETENTION_SECONDS = 4 * 24 * 3600   # SQS's default, stated: the DLQ must keep messages longer
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
ABORT_MULTIPART_DAYS = 1
ARCHIVE_RETENTION_DAYS = 7
# Drop folders are an inbox, not storage: a folder's objects go 30 days after they were written
# (with their batch before that, if it is deleted); outputs and archives are elsewhere.
DROP_RETENTION_DAYS = 30


@dataclass(frozen=True)
class TableSpec:
    key: str          # how code names it: Settings.tables[key], Models attribute `model`
    model: str        # the PynamoDB model class attribute on Models
    env: str          # the environment variable holding its name
    default: str      # its name locally
    logical_id: str   # its CloudFormation resource
    stream: str | None = None           # StreamViewType of the table's DynamoDB Stream, if it has one
    stream_handler: str | None = None   # the Chalice function consuming that stream (app.py)
    stream_batch_size: int = 100

    @property
    def stream_placeholder_arn(self) -> str:
        """Chalice wants a literal ARN in @app.on_dynamodb_record; the deploy template points the
        event source at the stack's table instead, and the local stack polls the table's stream."""
        return f"arn:aws:dynamodb:us-east-1:123456789012:table/{self.default}/stream/placeholder"

    def stream_source(self) -> dict:
        """The keyword arguments of Chalice's @app.on_dynamodb_record for this table's stream.
        TRIM_HORIZON: a change made before the event source mapping exists is not lost (events
        have stable ids and webhook deliveries are keyed by them, so a replay sends nothing twice)."""
        return {"stream_arn": self.stream_placeholder_arn, "batch_size": self.stream_batch_size,
                "starting_position": "TRIM_HORIZON", "name": self.stream_handler}


@dataclass(frozen=True)
class QueueSpec:
    """A queue, its dead-letter queue, and the function it feeds."""
    key: str                    # Settings.queue_urls[key]
    name: str                   # the queue's name (and Chalice's `queue=`)
    env: str                    # the environment variable holding its URL
    logical_id: str             # its CloudFormation resource (the DLQ's is derived)
    handler: str                # the Chalice function consuming it (app.py)
    batch_size: int = 10
    max_concurrency: int | None = None       # Lambda's MaximumConcurrency for the event source
    report_failures: bool = True             # the handler returns {"batchItemFailures": [...]}
    s3_prefixes: tuple[str, ...] = ()        # S3 ObjectCreated under these prefixes is sent here
    s3_suffix: str | None = None             # ... when the key also ends with this
    local_workers: int | None = 1            # pollers in the local stack; None: the WORKERS setting
    visibility_timeout: int = QUEUE_VISIBILITY_TIMEOUT
    max_receives: int = QUEUE_MAX_RECEIVES

    @property
    def dlq_name(self) -> str:
        return dlq_name(self.name)

    @property
    def dlq_logical_id(self) -> str:
        return self.logical_id.replace("Queue", "DeadLetterQueue")

    def event_source(self) -> dict:
        """The keyword arguments of Chalice's @app.on_sqs_message for this queue."""
        source = {"queue": self.name, "batch_size": self.batch_size, "name": self.handler}
        if self.max_concurrency:
            source["maximum_concurrency"] = self.max_concurrency
        return source


# Every committed change of a batch is a stream record: the batch lifecycle events come from there
# (publish_batch_events), so no transition anywhere has to remember to announce itself.
BATCHES = TableSpec("batches", "Batch", "BATCHES_TABLE", "imgbatch-batches", "BatchesTable",
                    stream="NEW_AND_OLD_IMAGES", stream_handler="publish_batch_events")
TABLES = (
    BATCHES,
    TableSpec("jobs", "Job", "JOBS_TABLE", "imgbatch-jobs", "JobsTable"),
    TableSpec("pipelines", "Pipeline", "PIPELINES_TABLE", "imgbatch-pipelines", "PipelinesTable"),
    TableSpec("meta", "Meta", "META_TABLE", "imgbatch-meta", "MetaTable"),
    TableSpec("webhooks", "Webhook", "WEBHOOKS_TABLE", "imgbatch-webhooks", "WebhooksTable"),
    TableSpec("deliveries", "Delivery", "DELIVERIES_TABLE", "imgbatch-deliveries", "DeliveriesTable"),
    TableSpec("counters", "Counter", "COUNTERS_TABLE", "imgbatch-counters", "CountersTable"),
    TableSpec("manifests", "Manifest", "MANIFESTS_TABLE", "imgbatch-manifests", "ManifestsTable"),
)

# S3 notifications land here: an upload is counted within seconds, whatever the processing backlog.
# An arrival is a few milliseconds of work: 100 functions keep up with thousands of files a second
# (bench/dynamo_model.py).
ARRIVALS = QueueSpec("arrivals", "imgbatch-arrivals", "ARRIVAL_QUEUE_URL", "ArrivalQueue", "register_uploads",
                     s3_prefixes=(UPLOAD_PREFIX,), max_concurrency=100)
# Registered uploads and retries, one render each. Each file's transitions touch its job and its
# bucket's counter only (domain/buckets.py), so one batch takes 1,000 concurrent functions: about
# 5,900 files/s in the DynamoDB model with no throttling (docs/benchmarks.md "Scale"); 1,000 is
# also the event source's maximum.
UPLOADS = QueueSpec("uploads", "imgbatch-uploads", "UPLOAD_QUEUE_URL", "UploadQueue", "process_upload",
                    max_concurrency=1000, local_workers=None)
# Archives too large to build inside an API request.
ARCHIVES = QueueSpec("archives", "imgbatch-archives", "ARCHIVE_QUEUE_URL", "ArchiveQueue", "build_archive",
                     batch_size=1, report_failures=False)
# Their parts, one task (a run of consecutive parts, at most ARCHIVE_TASK_BYTES) per message, built
# in parallel; the function that counts the last task completes the upload (services/archives.py).
# 100 concurrent functions: a 50 GB archive is about 100 tasks of 512 MiB (docs/benchmarks.md).
ARCHIVE_PARTS = QueueSpec("archive_parts", "imgbatch-archive-parts", "ARCHIVE_PARTS_QUEUE_URL", "ArchivePartsQueue",
                          "build_archive_part", batch_size=1, max_concurrency=100, report_failures=False,
                          local_workers=2)
# Webhook deliveries, one attempt per message; retries come back through it with a delay.
# Each attempt waits at most WEBHOOK_TIMEOUT_SECONDS (10) and a batch of ten runs in parallel,
# so the function's 120 s and this visibility timeout leave room for a slow batch.
DELIVERIES = QueueSpec("deliveries", "imgbatch-deliveries", "DELIVERY_QUEUE_URL", "DeliveryQueue",
                       "deliver_webhooks", local_workers=2, visibility_timeout=180)

# Bounded steps of work too long for the request that asks for it (services/maintenance.py).
MAINTENANCE = QueueSpec("maintenance", "imgbatch-maintenance", "MAINTENANCE_QUEUE_URL", "MaintenanceQueue",
                        "run_maintenance", batch_size=1, report_failures=False)
# Drop-folder markers (drop/{owner}/{folder}/_READY): each makes a batch of its folder's objects,
# which then go through the arrivals queue like uploads. Other objects under drop/ announce nothing.
DROPS = QueueSpec("drops", "imgbatch-drops", "DROP_QUEUE_URL", "DropQueue", "register_drop",
                  batch_size=1, s3_prefixes=(DROP_PREFIX,), s3_suffix=DROP_MARKER)
QUEUES = (ARRIVALS, UPLOADS, ARCHIVES, ARCHIVE_PARTS, DELIVERIES, MAINTENANCE, DROPS)


@dataclass(frozen=True)
class BusSpec:
    env: str          # the environment variable holding its name
    default: str      # its name locally
    logical_id: str


@dataclass(frozen=True)
class KeySpec:
    env: str          # the environment variable holding its id or ARN
    alias: str        # locally the key is found by this alias
    logical_id: str


# Every event goes here too (Source "imgbatch", DetailType the event type).
EVENT_BUS = BusSpec("EVENT_BUS_NAME", "imgbatch-events", "EventBus")
# Encrypts webhook signing secrets at rest (adapters/secrets.py); KMS in AWS, moto's KMS locally.
WEBHOOK_KEY = KeySpec("WEBHOOK_KEY_ID", "alias/imgbatch-webhooks", "WebhookSecretsKey")


def queue_spec(name: str) -> QueueSpec:
    for spec in QUEUES:
        if spec.name == name:
            return spec
    raise KeyError(f"no queue named {name!r} in chalicelib/resources.py (known: {', '.join(q.name for q in QUEUES)})")


CORS_RULES = [{
    "AllowedOrigins": ["*"],
    # PUT: the parts of uploads in parts (presigned UploadPart URLs, each pinned to one part's size)
    "AllowedMethods": ["POST", "PUT", "GET", "HEAD"],
    "AllowedHeaders": ["*"],
    "ExposeHeaders": ["ETag", "Content-Disposition", "Content-Length"],
    "MaxAgeSeconds": 3600,
}]

LIFECYCLE_RULES = [
    {"ID": "abort-abandoned-multipart-uploads", "Status": "Enabled", "Filter": {"Prefix": ""},
     "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_DAYS}},
    {"ID": "expire-archives", "Status": "Enabled", "Filter": {"Prefix": ARCHIVE_PREFIX},
     "Expiration": {"Days": ARCHIVE_RETENTION_DAYS}},
    {"ID": "expire-drop-folders", "Status": "Enabled", "Filter": {"Prefix": DROP_PREFIX},
     "Expiration": {"Days": DROP_RETENTION_DAYS}},
]


def table_definitions(models: Models) -> list[dict]:
    """CreateTable parameters (boto3 spelling) for every table, from the models and TABLES."""
    out = []
    for spec in TABLES:
        table = _table(getattr(models, spec.model))
        if spec.stream:
            table["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": spec.stream}
        out.append(table)
    return out


def _keys(schema: list[dict]) -> list[dict]:
    # DynamoDB wants HASH before RANGE; PynamoDB lists them in attribute order.
    return sorted(({"AttributeName": k["AttributeName"], "KeyType": k["KeyType"]} for k in schema),
                  key=lambda k: k["KeyType"] != "HASH")


def _projection(p: dict) -> dict:
    out = {"ProjectionType": p["ProjectionType"]}
    if p.get("NonKeyAttributes"):
        out["NonKeyAttributes"] = list(p["NonKeyAttributes"])
    return out


def _table(model) -> dict:
    schema = model._get_schema()
    attrs = {a["AttributeName"]: a["AttributeType"] for a in schema["attribute_definitions"]}
    for index in schema["global_secondary_indexes"] + schema["local_secondary_indexes"]:
        attrs.update({a["AttributeName"]: a["AttributeType"] for a in index["attribute_definitions"]})
    table = {
        "TableName": model.Meta.table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in sorted(attrs.items())],
        "KeySchema": _keys(schema["key_schema"]),
    }
    gsis = [{"IndexName": i["index_name"], "KeySchema": _keys(i["key_schema"]), "Projection": _projection(i["projection"])}
            for i in schema["global_secondary_indexes"]]
    lsis = [{"IndexName": i["index_name"], "KeySchema": _keys(i["key_schema"]), "Projection": _projection(i["projection"])}
            for i in schema["local_secondary_indexes"]]
    if gsis:
        table["GlobalSecondaryIndexes"] = gsis
    if lsis:
        table["LocalSecondaryIndexes"] = lsis
    return table


def ttl_attribute(model) -> str | None:
    return getattr(model.Meta, "ttl_attribute", None)


def queue_attributes(dlq_arn: str, spec: QueueSpec = UPLOADS) -> dict:
    return {
        "VisibilityTimeout": str(spec.visibility_timeout),
        "MessageRetentionPeriod": str(QUEUE_RETENTION_SECONDS),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": spec.max_receives}),
    }


def notification_configuration(queue_arns: dict[str, str]) -> dict:
    """S3 -> SQS for every queue that declares prefixes; `queue_arns` maps queue key -> ARN."""
    return {"QueueConfigurations": [{
        "Id": f"{prefix.strip('/')}-to-{spec.key}",
        "QueueArn": queue_arns[spec.key],
        "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]
                           + ([{"Name": "suffix", "Value": spec.s3_suffix}] if spec.s3_suffix else [])}},
    } for spec in QUEUES for prefix in spec.s3_prefixes]}


def dlq_name(name: str) -> str:
    return f"{name}-dlq"


def dlq_attributes() -> dict:
    return {"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)}


@dataclass
class Created:
    """What create_all made: per queue key, its URL, ARN and dead-letter queue URL."""
    queue_urls: dict[str, str] = field(default_factory=dict)
    queue_arns: dict[str, str] = field(default_factory=dict)
    dlq_urls: dict[str, str] = field(default_factory=dict)


def _queue_with_dlq(sqs, spec: QueueSpec) -> tuple[str, str, str]:
    dlq_url = sqs.create_queue(QueueName=spec.dlq_name, Attributes=dlq_attributes())["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=spec.name, Attributes=queue_attributes(dlq_arn, spec))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn, dlq_url


def create_all(*, models: Models, dynamodb, s3, sqs, bucket: str, region: str, events=None, kms=None,
               bus_name: str = EVENT_BUS.default) -> Created:
    """Create tables, bucket (CORS, lifecycle, notifications), queues, and (given their clients)
    the event bus and the webhook secrets key (idempotent)."""
    existing = set(dynamodb.list_tables()["TableNames"])
    for model, table in zip([getattr(models, t.model) for t in TABLES], table_definitions(models)):
        if table["TableName"] not in existing:
            dynamodb.create_table(**table)
            if ttl_attribute(model):
                dynamodb.update_time_to_live(TableName=table["TableName"], TimeToLiveSpecification={
                    "Enabled": True, "AttributeName": ttl_attribute(model)})
    if region == "us-east-1":
        s3.create_bucket(Bucket=bucket)
    else:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": CORS_RULES})
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": LIFECYCLE_RULES})
    created = Created()
    for spec in QUEUES:
        url, arn, dlq_url = _queue_with_dlq(sqs, spec)
        created.queue_urls[spec.key], created.queue_arns[spec.key], created.dlq_urls[spec.key] = url, arn, dlq_url
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration=notification_configuration(created.queue_arns))
    if events is not None:
        try:
            events.create_event_bus(Name=bus_name)
        except events.exceptions.ResourceAlreadyExistsException:
            pass
    if kms is not None:
        aliases = {a["AliasName"] for a in kms.list_aliases()["Aliases"]}
        if WEBHOOK_KEY.alias not in aliases:
            key = kms.create_key(Description="imgbatch: webhook signing secrets")["KeyMetadata"]["KeyId"]
            kms.create_alias(AliasName=WEBHOOK_KEY.alias, TargetKeyId=key)
    return created
