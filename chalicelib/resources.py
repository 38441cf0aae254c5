"""The one source of truth for the AWS resources the app expects.

Table definitions are derived from the PynamoDB models; the bucket's CORS and
lifecycle rules and the queue settings are plain data here. `make run`, the
tests (`create_all`) and the deploy template (deploy/template.py) all read them.
"""
from __future__ import annotations

import json

from .adapters.models import Models
from .domain.keys import ARCHIVE_PREFIX, UPLOAD_PREFIX
QUEUE_VISIBILITY_TIMEOUT = 960   # > the processing function's 900 s timeout, as AWS requires
QUEUE_MAX_RECEIVES = 5           # then the message goes to the dead-letter queue
QUEUE_RETENTION_SECONDS = 4 * 24 * 3600   # SQS's default, stated: the DLQ must keep messages longer
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
ABORT_MULTIPART_DAYS = 1
ARCHIVE_RETENTION_DAYS = 7

CORS_RULES = [{
    "AllowedOrigins": ["*"],
    "AllowedMethods": ["POST", "GET", "HEAD"],
    "AllowedHeaders": ["*"],
    "ExposeHeaders": ["ETag", "Content-Disposition", "Content-Length"],
    "MaxAgeSeconds": 3600,
}]

LIFECYCLE_RULES = [
    {"ID": "abort-abandoned-multipart-uploads", "Status": "Enabled", "Filter": {"Prefix": ""},
     "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_DAYS}},
    {"ID": "expire-archives", "Status": "Enabled", "Filter": {"Prefix": ARCHIVE_PREFIX},
     "Expiration": {"Days": ARCHIVE_RETENTION_DAYS}},
]


def table_definitions(models: Models) -> list[dict]:
    """CreateTable parameters (boto3 spelling) for every table, from the models."""
    return [_table(model) for model in models.all()]


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


def queue_attributes(dlq_arn: str) -> dict:
    return {
        "VisibilityTimeout": str(QUEUE_VISIBILITY_TIMEOUT),
        "MessageRetentionPeriod": str(QUEUE_RETENTION_SECONDS),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": QUEUE_MAX_RECEIVES}),
    }


def notification_configuration(queue_arn: str) -> dict:
    return {"QueueConfigurations": [{
        "Id": "uploads-to-queue",
        "QueueArn": queue_arn,
        "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": UPLOAD_PREFIX}]}},
    }]}


ARRIVAL_QUEUE = "imgbatch-arrivals"   # S3 notifications: uploads are counted on arrival
UPLOAD_QUEUE = "imgbatch-uploads"     # registered uploads (and retries) to process
ARCHIVE_QUEUE = "imgbatch-archives"
QUEUES = (ARRIVAL_QUEUE, UPLOAD_QUEUE, ARCHIVE_QUEUE)   # each with a dead-letter queue, dlq_name(name)


def dlq_name(name: str) -> str:
    return f"{name}-dlq"


def dlq_attributes() -> dict:
    return {"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)}


def _queue_with_dlq(sqs, name: str) -> tuple[str, str, str]:
    dlq_url = sqs.create_queue(QueueName=dlq_name(name),
                               Attributes=dlq_attributes())["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=name, Attributes=queue_attributes(dlq_arn))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn, dlq_url


def create_all(*, models: Models, dynamodb, s3, sqs, bucket: str, queue_name: str = UPLOAD_QUEUE,
               archive_queue_name: str = ARCHIVE_QUEUE, arrival_queue_name: str = ARRIVAL_QUEUE,
               region: str) -> dict:
    """Create tables, bucket (CORS, lifecycle, notifications) and queues; return the queue URLs/ARNs."""
    existing = set(dynamodb.list_tables()["TableNames"])
    for model, table in zip(models.all(), table_definitions(models)):
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
    queue_url, queue_arn, dlq_url = _queue_with_dlq(sqs, queue_name)
    archive_url, _, archive_dlq_url = _queue_with_dlq(sqs, archive_queue_name)
    arrival_url, arrival_arn, arrival_dlq_url = _queue_with_dlq(sqs, arrival_queue_name)
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration=notification_configuration(arrival_arn))
    return {"queue_url": queue_url, "queue_arn": queue_arn, "dlq_url": dlq_url,
            "archive_queue_url": archive_url, "archive_dlq_url": archive_dlq_url,
            "arrival_queue_url": arrival_url, "arrival_queue_arn": arrival_arn, "arrival_dlq_url": arrival_dlq_url}
