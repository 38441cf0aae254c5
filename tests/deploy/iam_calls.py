"""Record every AWS call the app makes, attributed to the Lambda function that made it, and turn
the calls into the IAM permissions (action, resource ARN) they need.

Recording hooks botocore itself, below boto3 and PynamoDB alike: `BaseClient._make_api_call`
(every API call: boto3 clients and PynamoDB's own botocore session) and the presigners
(`generate_presigned_post` / `generate_presigned_url`: no call is made, but the URL is signed
with the function's role, so that role needs the action the URL performs).

Attribution: the workload runs the functions one at a time and says which one runs
(`recorder.function("process_upload")`); every call made meanwhile, by any thread, belongs to it.
"""
from __future__ import annotations

import ast
import fnmatch
import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlparse


@dataclass(frozen=True)
class Call:
    function: str | None
    service: str
    operation: str
    params: dict = field(compare=False, hash=False)


class Recorder:
    def __init__(self):
        self.calls: list[Call] = []
        self._labels: list[str | None] = [None]
        self._lock = threading.Lock()

    @contextmanager
    def function(self, name: str | None):
        """Calls made inside belong to `name` (None: not a Lambda function, e.g. the test's client)."""
        self._labels.append(name)
        try:
            yield
        finally:
            self._labels.pop()

    def add(self, service: str, operation: str, params: dict) -> None:
        with self._lock:
            self.calls.append(Call(self._labels[-1], service, operation, _compact(params)))

    @contextmanager
    def installed(self):
        """Patch botocore for the duration; clients must be created inside (presigners bind then)."""
        import botocore.client
        import botocore.signers

        recorder = self
        make_api_call = botocore.client.BaseClient._make_api_call
        presign_url = botocore.signers.generate_presigned_url
        presign_post = botocore.signers.generate_presigned_post

        def _make_api_call(client, operation_name, api_params):
            recorder.add(client.meta.service_model.service_name, operation_name, api_params)
            return make_api_call(client, operation_name, api_params)

        def generate_presigned_url(client, ClientMethod, Params=None, ExpiresIn=3600, HttpMethod=None):
            operation = client.meta.method_to_api_mapping.get(ClientMethod, ClientMethod)
            recorder.add(client.meta.service_model.service_name, f"presign:{operation}", Params or {})
            return presign_url(client, ClientMethod, Params=Params, ExpiresIn=ExpiresIn, HttpMethod=HttpMethod)

        def generate_presigned_post(client, Bucket, Key, Fields=None, Conditions=None, ExpiresIn=3600):
            recorder.add(client.meta.service_model.service_name, "presign:PostObject", {"Bucket": Bucket, "Key": Key})
            return presign_post(client, Bucket, Key, Fields=Fields, Conditions=Conditions, ExpiresIn=ExpiresIn)

        botocore.client.BaseClient._make_api_call = _make_api_call
        botocore.signers.generate_presigned_url = generate_presigned_url
        botocore.signers.generate_presigned_post = generate_presigned_post
        try:
            yield self
        finally:
            botocore.client.BaseClient._make_api_call = make_api_call
            botocore.signers.generate_presigned_url = presign_url
            botocore.signers.generate_presigned_post = presign_post

    def to_json(self) -> list[dict]:
        return [{"function": c.function, "service": c.service, "operation": c.operation, "params": c.params}
                for c in self.calls]


def _compact(params: dict) -> dict:
    """Only what decides the permission: names of tables, indexes, buckets, keys, queues."""
    out = {}
    for key in ("TableName", "IndexName", "Bucket", "Key", "Prefix", "QueueUrl", "KeyId", "UploadId"):
        if key in params:
            out[key] = params[key]
    if "RequestItems" in params:
        out["RequestItems"] = sorted(params["RequestItems"])
    if "TransactItems" in params:
        out["TransactItems"] = [(kind, op["TableName"]) for item in params["TransactItems"] for kind, op in item.items()]
    if "Entries" in params and all("EventBusName" in e for e in params["Entries"]):
        out["EventBusNames"] = sorted({e["EventBusName"] for e in params["Entries"]})
    if isinstance(params.get("CopySource"), dict):
        out["CopySource"] = {k: params["CopySource"][k] for k in ("Bucket", "Key")}
    if "Delete" in params and isinstance(params["Delete"], dict):
        out["Keys"] = [o["Key"] for o in params["Delete"].get("Objects", [])]
    return out


# -- calls -> permissions --------------------------------------------------------------

@dataclass(frozen=True)
class Need:
    action: str
    resource: str
    prefix: str | None = None   # s3:ListBucket: the s3:prefix the request carries (None: no prefix key)
    why: str = field(default="", compare=False)


class Arns:
    def __init__(self, region: str, account: str, partition: str = "aws"):
        self.region, self.account, self.partition = region, account, partition

    def table(self, name: str, index: str | None = None) -> str:
        arn = f"arn:{self.partition}:dynamodb:{self.region}:{self.account}:table/{name}"
        return f"{arn}/index/{index}" if index else arn

    def bucket(self, name: str) -> str:
        return f"arn:{self.partition}:s3:::{name}"

    def object(self, bucket: str, key: str) -> str:
        return f"arn:{self.partition}:s3:::{bucket}/{key}"

    def event_bus(self, name: str) -> str:
        return f"arn:{self.partition}:events:{self.region}:{self.account}:event-bus/{name}"

    def queue(self, url: str) -> str:
        name = urlparse(url).path.rstrip("/").rsplit("/", 1)[-1]
        return f"arn:{self.partition}:sqs:{self.region}:{self.account}:{name}"


_DYNAMO_SIMPLE = {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "DescribeTable"}
_TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
_S3_OBJECT = {"GetObject": "s3:GetObject", "PutObject": "s3:PutObject", "CreateMultipartUpload": "s3:PutObject",
              "UploadPart": "s3:PutObject", "CompleteMultipartUpload": "s3:PutObject",
              "AbortMultipartUpload": "s3:AbortMultipartUpload", "DeleteObject": "s3:DeleteObject",
              "ListParts": "s3:ListMultipartUploadParts",
              "presign:GetObject": "s3:GetObject", "presign:PostObject": "s3:PutObject",
              "presign:UploadPart": "s3:PutObject"}
_SQS = {"SendMessage": "sqs:SendMessage", "SendMessageBatch": "sqs:SendMessage",
        "ReceiveMessage": "sqs:ReceiveMessage", "DeleteMessage": "sqs:DeleteMessage",
        "DeleteMessageBatch": "sqs:DeleteMessage", "GetQueueAttributes": "sqs:GetQueueAttributes"}


class UnmappedCall(AssertionError):
    pass


def needs_for(call: Call, arns: Arns) -> list[Need]:
    p, op, why = call.params, call.operation, f"{call.service}.{call.operation}"
    if call.service == "dynamodb":
        if op in _DYNAMO_SIMPLE:
            return [Need(f"dynamodb:{op}", arns.table(p["TableName"], p.get("IndexName")), why=why)]
        if op in ("BatchGetItem", "BatchWriteItem"):
            return [Need(f"dynamodb:{op}", arns.table(t), why=why) for t in p["RequestItems"]]
        if op == "TransactWriteItems":
            return [Need(f"dynamodb:{_TRANSACT[kind]}", arns.table(table), why=why) for kind, table in p["TransactItems"]]
        if op == "TransactGetItems":
            return [Need("dynamodb:GetItem", arns.table(table), why=why) for _, table in p["TransactItems"]]
    if call.service == "s3":
        if op in ("HeadObject", "GetObject"):
            # Without s3:ListBucket, S3 answers 403 instead of 404 for a missing key, and the
            # app's Storage.head() and Storage.fetch() rely on the 404; these carry no s3:prefix.
            return [Need("s3:GetObject", arns.object(p["Bucket"], p["Key"]), why=why),
                    Need("s3:ListBucket", arns.bucket(p["Bucket"]), prefix=None, why=why + " (404 on a missing key)")]
        if op in _S3_OBJECT:
            return [Need(_S3_OBJECT[op], arns.object(p["Bucket"], p["Key"]), why=why)]
        if op == "UploadPartCopy":
            # writing the part is s3:PutObject on the upload's key; reading the range, s3:GetObject on the source
            source = p["CopySource"]
            return [Need("s3:PutObject", arns.object(p["Bucket"], p["Key"]), why=why),
                    Need("s3:GetObject", arns.object(source["Bucket"], source["Key"]), why=why + " (source)")]
        if op == "ListParts":
            return [Need("s3:ListMultipartUploadParts", arns.object(p["Bucket"], p["Key"]), why=why)]
        if op == "ListMultipartUploads":
            return [Need("s3:ListBucketMultipartUploads", arns.bucket(p["Bucket"]), why=why)]
        if op in ("ListObjectsV2", "ListObjects"):
            return [Need("s3:ListBucket", arns.bucket(p["Bucket"]), prefix=p.get("Prefix", ""), why=why)]
        if op == "ListMultipartUploads":
            return [Need("s3:ListBucketMultipartUploads", arns.bucket(p["Bucket"]), prefix=p.get("Prefix", ""),
                         why=why)]
        if op == "DeleteObjects":
            return [Need("s3:DeleteObject", arns.object(p["Bucket"], k), why=why) for k in p["Keys"]]
    if call.service == "sqs" and op in _SQS:
        return [Need(_SQS[op], arns.queue(p["QueueUrl"]), why=why)]
    if call.service == "events" and op == "PutEvents":
        return [Need("events:PutEvents", arns.event_bus(name), why=why) for name in p["EventBusNames"]]
    if call.service == "kms" and op in ("Encrypt", "Decrypt"):
        # the functions name the key by its ARN (WEBHOOK_KEY_ID from the stack)
        assert p["KeyId"].startswith("arn:"), p["KeyId"]
        return [Need(f"kms:{op}", p["KeyId"], why=why)]
    raise UnmappedCall(f"no IAM mapping for {call.service}.{op} ({call.function}); add it to tests/deploy/iam_calls.py")


# -- policies ----------------------------------------------------------------------------

@dataclass
class Statement:
    sid: str
    actions: list[str]
    resources: list[str]
    condition: dict

    def allows(self, need: Need) -> bool:
        if not any(fnmatch.fnmatchcase(need.action, a) for a in self.actions):
            return False
        if not any(_arn_match(r, need.resource) for r in self.resources):
            return False
        return _condition_allows(self.condition, need)


def _arn_match(pattern: str, arn: str) -> bool:
    # IAM ARN wildcards: * (any run, across '/' too) and ? (one character)
    return fnmatch.fnmatchcase(arn, pattern.replace("[", "[[]"))


def _condition_allows(condition: dict, need: Need) -> bool:
    if not condition:
        return True
    for operator, keys in condition.items():
        for key, values in keys.items():
            values = values if isinstance(values, list) else [values]
            if key != "s3:prefix" or operator not in ("StringLike", "StringEquals"):
                raise AssertionError(f"condition {operator} {key} is not understood by this test")
            if need.prefix is None:
                return False  # the key is absent from the request: the condition does not match
            match = fnmatch.fnmatchcase if operator == "StringLike" else (lambda a, b: a == b)
            if not any(match(need.prefix, v) for v in values):
                return False
    return True


def statements(document) -> list[Statement]:
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            document = ast.literal_eval(document)  # moto 5.2 stores CFN-created inline policies as repr()
    out = []
    for raw in document["Statement"]:
        assert raw["Effect"] == "Allow", f"unexpected {raw['Effect']} statement {raw.get('Sid')}"
        assert "NotAction" not in raw and "NotResource" not in raw, raw
        listify = (lambda v: v if isinstance(v, list) else [v])
        out.append(Statement(raw.get("Sid", ""), listify(raw["Action"]), listify(raw["Resource"]),
                             raw.get("Condition", {})))
    return out
