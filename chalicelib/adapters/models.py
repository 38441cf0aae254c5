"""PynamoDB models: schema only. Built by `build_models` so table names and the
endpoint come from settings at wiring time, not from a class body frozen at import.

These classes are the one source of truth for the tables: `make run`, the tests
and the deploy template all derive their table definitions from them
(see chalicelib/resources.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Type

from pynamodb.attributes import (
    BooleanAttribute, JSONAttribute, ListAttribute, NumberAttribute, NumberSetAttribute, TTLAttribute,
    UnicodeAttribute,
)
from pynamodb.indexes import (
    GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection,
)
from pynamodb.models import Model

from .webhook_models import build_webhook_models

# Batch list indexes: one per (partition, sort) pair the list view can ask for.
# Partition attributes narrow by filter, sort attributes order the page.
BATCH_PARTITIONS = ("owner", "owner_status", "owner_prefix", "owner_status_prefix")
BATCH_SORTS = ("created_sk", "files_sk", "status_sk")
BATCH_INDEXES = tuple(
    (p, s) for p in BATCH_PARTITIONS for s in BATCH_SORTS
    # sorting by status inside one status is sorting by creation
    if not (s == "status_sk" and "status" in p)
)


def batch_index_name(partition: str, sort: str) -> str:
    return f"{partition}-{sort}".replace("_", "-")


@dataclass(frozen=True)
class Models:
    Batch: Type[Model]
    Job: Type[Model]
    Pipeline: Type[Model]
    Meta: Type[Model]
    Webhook: Type[Model]
    Delivery: Type[Model]
    Counter: Type[Model]
    Manifest: Type[Model]

    def all(self):
        """In the order of resources.TABLES."""
        return (self.Batch, self.Job, self.Pipeline, self.Meta, self.Webhook, self.Delivery, self.Counter,
                self.Manifest)


def _meta(table: str, region: str, host: str | None):
    # botocore's retries for throttling; PynamoDB's own default is 3
    attrs = {"table_name": table, "region": region, "billing_mode": "PAY_PER_REQUEST", "max_retry_attempts": 8}
    if host:
        attrs["host"] = host
    return type("Meta", (), attrs)


def _gsi(name: str, hash_attr: str, range_attr: str | None, projection) -> Type[GlobalSecondaryIndex]:
    body = {
        "Meta": type("Meta", (), {"index_name": name, "projection": projection}),
        hash_attr: UnicodeAttribute(hash_key=True),
    }
    if range_attr:
        body[range_attr] = UnicodeAttribute(range_key=True)
    return type(f"Index_{name.replace('-', '_')}", (GlobalSecondaryIndex,), body)


def build_models(*, batches: str, jobs: str, pipelines: str, meta: str, webhooks: str, deliveries: str,
                 counters: str, manifests: str, region: str,
                 host: str | None) -> Models:
    batch_attrs = dict(
        Meta=_meta(batches, region, host),
        id=UnicodeAttribute(hash_key=True),
        owner=UnicodeAttribute(),
        customer_prefix=UnicodeAttribute(),
        batch_date=UnicodeAttribute(),
        batch_counter=NumberAttribute(),
        base_directory_name=UnicodeAttribute(),
        description=UnicodeAttribute(),
        search_text=UnicodeAttribute(),
        pipeline_ids=ListAttribute(of=UnicodeAttribute),
        pipelines=JSONAttribute(),  # snapshots, so later edits never change a submitted batch
        total_pipelines=NumberAttribute(),
        total_files=NumberAttribute(),
        total_size=NumberAttribute(),
        status=UnicodeAttribute(),
        uploaded=NumberAttribute(default=0),
        succeeded=NumberAttribute(default=0),
        failed=NumberAttribute(default=0),
        cancelled=NumberAttribute(default=0),
        created_at=UnicodeAttribute(),
        updated_at=UnicodeAttribute(),
        started_at=UnicodeAttribute(null=True),
        completed_at=UnicodeAttribute(null=True),
        upload_expires_at=UnicodeAttribute(),
        sample_file_names=ListAttribute(of=UnicodeAttribute),
        # integration fields (API.md version 2); absent on batches stored before them
        metadata=JSONAttribute(null=True),
        dropbox_directory_id=UnicodeAttribute(null=True),
        monday_item_id=UnicodeAttribute(null=True),
        auto_upload_enabled=BooleanAttribute(null=True),
        monday_sync_enabled=BooleanAttribute(null=True),
        # index keys (derived, written together with the fields they mirror)
        owner_status=UnicodeAttribute(),
        owner_prefix=UnicodeAttribute(),
        owner_status_prefix=UnicodeAttribute(),
        created_sk=UnicodeAttribute(),
        files_sk=UnicodeAttribute(),
        status_sk=UnicodeAttribute(),
        # present only while the batch is not final: a sparse index for the expiry sweep
        open_shard=UnicodeAttribute(null=True),
        # domain/buckets.py: how many counter buckets the files are spread over; the counters
        # above hold the sums only once `counts_final` (else they are summed from the buckets)
        buckets=NumberAttribute(default=1),
        counts_final=BooleanAttribute(default=False),
        # files reopened by retries while the batch was open: a finisher's final write wants the
        # number it read before the counts (repository.finalize), so a reopen in between wins
        reopens=NumberAttribute(null=True),
        # a big batch's retry is under way in the background (services/processor.py): no final
        # status until it has reopened every file it will. "pending" until a worker takes it,
        # then that worker's token (one worker reopens, however often its message is delivered)
        retrying=UnicodeAttribute(null=True),
    )
    # List indexes carry only keys plus search_text, so counter updates during
    # processing never rewrite index items; pages are fetched with BatchGetItem.
    for partition, sort in BATCH_INDEXES:
        name = batch_index_name(partition, sort)
        batch_attrs[f"ix_{name.replace('-', '_')}"] = _gsi(name, partition, sort, IncludeProjection(["search_text"]))()
    batch_attrs["ix_open"] = _gsi("open-expiry", "open_shard", "upload_expires_at", KeysOnlyProjection())()
    Batch = type("Batch", (Model,), batch_attrs)

    # A job lives in its bucket's partition ("{batch_id}#{bucket}"), so one batch's writes spread
    # over its buckets' partitions (no LSI: it would pin a batch's jobs to one partition). File
    # order comes from the manifest chunks, not from an index.
    job_attrs = dict(
        Meta=_meta(jobs, region, host),
        bucket_key=UnicodeAttribute(hash_key=True),
        job_id=UnicodeAttribute(range_key=True),
        batch_id=UnicodeAttribute(),
        bucket=NumberAttribute(default=0),
        position=NumberAttribute(),
        owner=UnicodeAttribute(),
        file_name=UnicodeAttribute(),
        size=NumberAttribute(),
        content_type=UnicodeAttribute(),
        key=UnicodeAttribute(),
        status=UnicodeAttribute(),
        error_code=UnicodeAttribute(null=True),
        error_message=UnicodeAttribute(null=True),
        outputs=JSONAttribute(null=True),
        preview=JSONAttribute(null=True),  # {key, width, height, format, size} of the preview rendition
        attempt=NumberAttribute(default=0),
        input_deleted=BooleanAttribute(default=False),
        created_at=UnicodeAttribute(),
        updated_at=UnicodeAttribute(),
        started_at=UnicodeAttribute(null=True),
        completed_at=UnicodeAttribute(null=True),
        owner_status=UnicodeAttribute(),   # "{owner}#{status}#{spread}": spread over OWNER_STATUS_SPREAD keys
        updated_sk=UnicodeAttribute(),
        ix_job_id=_gsi("job-id", "job_id", None, KeysOnlyProjection())(),
        ix_owner_status=_gsi("owner-status-updated", "owner_status", "updated_sk", KeysOnlyProjection())(),
    )
    Job = type("Job", (Model,), job_attrs)

    Pipeline = type("Pipeline", (Model,), dict(
        Meta=_meta(pipelines, region, host),
        owner=UnicodeAttribute(hash_key=True),
        sk=UnicodeAttribute(range_key=True),   # "pipeline#<id>" or "name#<name key>" (uniqueness guard)
        id=UnicodeAttribute(null=True),
        spec=JSONAttribute(null=True),
        created_at=UnicodeAttribute(null=True),
        updated_at=UnicodeAttribute(null=True),
    ))

    # Counters, per-owner figures, API tokens, archive build locks and drop folders: small items whose key prefix
    # says which (adapters/repository.py MetaKey), so they share one table and its attributes.
    meta_attrs = dict(
        Meta=_meta(meta, region, host),
        id=UnicodeAttribute(hash_key=True),
        value=NumberAttribute(null=True),
        owner=UnicodeAttribute(null=True),
        total_batches=NumberAttribute(null=True),
        files_current=NumberAttribute(null=True),
        total_files_all_time=NumberAttribute(null=True),
        # archive build markers: one per (batch, content fingerprint) while a build runs
        state=UnicodeAttribute(null=True),
        started_at=UnicodeAttribute(null=True),
        expires=TTLAttribute(null=True),
        # ...and, for a build in parallel parts, its multipart upload and the tasks done so far
        upload_id=UnicodeAttribute(null=True),
        tasks_done=NumberSetAttribute(null=True),
        # drop folders: the batch a folder became (state "creating" while it is being made)
        batch_id=UnicodeAttribute(null=True),
    )
    meta_attrs["Meta"].ttl_attribute = "expires"
    for status in ("queued", "processing", "completed", "completed_with_errors", "failed", "cancelled"):
        meta_attrs[status] = NumberAttribute(null=True)
    Meta = type("MetaItem", (Model,), meta_attrs)
    tables = {"webhooks": webhooks, "deliveries": deliveries}
    Webhook, Delivery = build_webhook_models(lambda key: _meta(tables[key], region, host))

    # One small item per bucket of a batch: what its files have become. Every per-file
    # transition moves its job and this item together; `state` stops counting when the batch is
    # final, cancelled or deleted, which stops every later claim and finish.
    Counter = type("Counter", (Model,), dict(
        Meta=_meta(counters, region, host),
        bucket_key=UnicodeAttribute(hash_key=True),   # "{batch_id}#{bucket}"
        total=NumberAttribute(default=0),
        last=NumberAttribute(default=-1),              # total - 1: conditions cannot do arithmetic
        uploaded=NumberAttribute(default=0),
        succeeded=NumberAttribute(default=0),
        failed=NumberAttribute(default=0),
        cancelled=NumberAttribute(default=0),
        done=NumberAttribute(default=0),               # succeeded + failed + cancelled
        state=UnicodeAttribute(default="counting"),    # counting | cancelling | closed (repository)
        updated_at=UnicodeAttribute(null=True),        # the last change of one of its files
    ))

    # The file list in upload order, CHUNK_SIZE positions an item, each its own partition key:
    # [[job_id, file_name, size, content_type, bucket], ...].
    Manifest = type("ManifestChunk", (Model,), dict(
        Meta=_meta(manifests, region, host),
        chunk_key=UnicodeAttribute(hash_key=True),     # "{batch_id}#{chunk}"
        files=JSONAttribute(),
        materialized=BooleanAttribute(default=False),  # every job of the chunk has its item
    ))
    return Models(Batch, Job, Pipeline, Meta, Webhook, Delivery, Counter, Manifest)
