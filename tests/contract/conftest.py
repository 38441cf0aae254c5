"""Contract tier: one suite, two backends. Every test here runs on the in-memory adapters
(chalicelib/adapters/memory.py) and on the real ones against moto (mock_aws), and must pass the
same assertions on both: a difference is a bug in one of them."""
from __future__ import annotations

import itertools
import json
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from moto import mock_aws

from chalicelib import wiring
from chalicelib.domain import buckets as buckets_module
from chalicelib.domain.batches import (
    CANCELLED,
    COMPLETED,
    COMPLETED_WITH_ERRORS,
    FAILED,
    PROCESSING,
    QUEUED,
    NewBatch,
    NewJob,
)
from chalicelib.domain.buckets import bucket_of
from chalicelib.domain.keys import upload_key
from chalicelib.domain.naming import auto_description, directory_name
from chalicelib.resources import ARCHIVE_PARTS, DELIVERIES, MAINTENANCE, UPLOADS
from chalicelib.services.clock import iso
from chalicelib.settings import Settings
from tests import moto_s3

BACKENDS = ("memory", "dynamo")
BASE = datetime(2026, 3, 1, 9, 0, 0, 250000, tzinfo=timezone.utc)

# What the ports promise a record holds (ports.py); the DynamoDB repository hands out its index
# keys too, which are nobody's business, so the suite compares only these.
BATCH_FIELDS = ("id", "owner", "customer_prefix", "batch_date", "batch_counter", "base_directory_name",
                "description", "pipeline_ids", "pipelines", "total_pipelines", "total_files", "total_size", "status",
                "uploaded", "succeeded", "failed", "cancelled", "created_at", "updated_at", "started_at",
                "completed_at", "upload_expires_at", "sample_file_names")
JOB_FIELDS = ("batch_id", "job_id", "position", "owner", "file_name", "size", "content_type", "key", "status",
              "error_code", "error_message", "outputs", "preview", "attempt", "created_at", "updated_at",
              "started_at", "completed_at")


def batch_fields(batch: dict) -> dict:
    return {f: batch.get(f) for f in BATCH_FIELDS}


def job_fields(job: dict) -> dict:
    return {f: job.get(f) for f in JOB_FIELDS}


@dataclass
class Backend:
    name: str
    container: wiring.Container
    _reader: object = None
    _tap: str | None = None

    @property
    def repo(self):
        return self.container.repository

    def set_search_budget(self, monkeypatch, entries: int) -> None:
        """How many index entries one search request may examine (1,000 in production)."""
        if self.name == "memory":
            monkeypatch.setattr(self.repo, "search_scan_budget", entries)
        else:
            from chalicelib.adapters import repository
            monkeypatch.setattr(repository, "SEARCH_SCAN_BUDGET", entries)

    def processing_messages(self) -> list[str]:
        """Every upload key waiting in the processing queue, taken off it."""
        if self.name == "memory":
            return self.container.queue.take()
        from chalicelib.adapters.sqs_events import keys_in_message
        return [k for body in self._drain(self.container.settings.queue_url(UPLOADS.key)) for k in keys_in_message(body)]

    def put_part(self, url: str, data: bytes) -> str:
        """A client's PUT of one part to its presigned URL; the part's ETag."""
        if self.name == "memory":
            return self.container.storage.put_part(url, data)
        import requests
        response = requests.put(url, data=data, timeout=30)
        assert response.status_code == 200, (response.status_code, response.text[:300])
        return response.headers["ETag"]

    def arrival_messages(self) -> list[str]:
        if self.name == "memory":
            return self.container.arrival_queue.take()
        from chalicelib.adapters.sqs_events import keys_in_message
        from chalicelib.resources import ARRIVALS
        return [k for body in self._drain(self.container.settings.queue_url(ARRIVALS.key)) for k in keys_in_message(body)]

    def archive_messages(self) -> list[dict]:
        if self.name == "memory":
            return self.container.archive_queue.take()
        from chalicelib.resources import ARCHIVES
        return [json.loads(body) for body in self._drain(self.container.settings.queue_url(ARCHIVES.key))]

    def archive_task_messages(self) -> list[dict]:
        if self.name == "memory":
            return self.container.archive_queue.take_tasks()
        return [json.loads(body) for body in self._drain(self.container.settings.queue_url(ARCHIVE_PARTS.key))]

    def maintenance_messages(self) -> list[dict]:
        if self.name == "memory":
            return self.container.maintenance_queue.take()
        return [json.loads(body) for body in self._drain(self.container.settings.queue_url(MAINTENANCE.key))]

    def delivery_messages(self) -> list[dict]:
        if self.name == "memory":
            return self.container.deliveries.queue.take()
        return [json.loads(body) for body in self._drain(self.container.settings.queue_url(DELIVERIES.key))]

    def tap_bus(self) -> None:
        """From now on, what the event bus receives can be read (on AWS: a rule -> an SQS queue)."""
        if self.name == "memory":
            self.container.event_bus.take()
            return
        sqs, events, bus = self.container.sqs, self.container.events_client, self.container.settings.event_bus_name
        self._tap = sqs.create_queue(QueueName="contract-bus-tap")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self._tap, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="contract-tap", EventBusName=bus, EventPattern=json.dumps({"source": ["imgbatch"]}))
        events.put_targets(Rule="contract-tap", EventBusName=bus, Targets=[{"Id": "tap", "Arn": arn}])

    def bus_entries(self) -> list[dict]:
        """What the bus received since tap_bus() or the last call: {"source", "detail-type", "detail"}."""
        if self.name == "memory":
            return self.container.event_bus.take()
        return [{k: e[k] for k in ("source", "detail-type", "detail")}
                for e in map(json.loads, self._drain(self._tap))]

    def changes(self) -> list:
        """The committed changes of batch records since the last call, as publish_batch_events
        gets them (on AWS: the batches table's stream, read as Lambda's event source reads it)."""
        if self.name == "memory":
            return self.container.repository.take_changes()
        from chalicelib.adapters.batch_stream import BatchChanges
        if self._reader is None:
            self._reader = self.container.batch_stream_reader()
        decode = BatchChanges(self.container.models)
        out = []
        while records := self._reader.poll(1000):
            out += [decode.change(r["dynamodb"]["SequenceNumber"], r["dynamodb"].get("OldImage"),
                                  r["dynamodb"].get("NewImage")) for r in records]
        return out

    def set_min_part_size(self, monkeypatch, size: int) -> None:
        """S3's smallest part but the last (5 MiB), lowered so a test's parts stay small."""
        if self.name == "memory":
            monkeypatch.setattr(self.container.storage, "min_part_size", size)
        else:
            import moto.s3.models
            monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", size)

    def _drain(self, url: str) -> list[str]:
        sqs, bodies = self.container.sqs, []
        while True:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                return bodies
            for message in got:
                bodies.append(message["Body"])
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def walk(page_of, first_start=None) -> tuple[list[dict], list]:
    """Follow cursors to the end (each through JSON, as a client's cursor travels); return
    every item and the lengths of the pages that held any. (DynamoDB may hand a cursor with an
    exactly full last page, whose next page is empty; moto and the fake do not.)"""
    items, sizes, start = [], [], first_start
    for _ in range(1000):
        page = page_of(start)
        items += page.items
        sizes.append(len(page.items))
        if page.last_key is None:
            return items, sizes[:-1] if len(sizes) > 1 and sizes[-1] == 0 else sizes
        start = json.loads(json.dumps(page.last_key))
    raise AssertionError("cursors never ended")


@contextmanager
def open_backend(name: str):
    if name == "memory":
        yield Backend("memory", wiring.Container.in_memory(Settings()))
        return
    with mock_aws():
        settings = wiring.Container(Settings()).provision()
        yield Backend("dynamo", wiring.Container(settings))


@pytest.fixture(params=BACKENDS)
def backend(request):
    with open_backend(request.param) as opened:
        yield opened


@pytest.fixture(scope="module", params=BACKENDS)
def module_backend(request):
    """One backend for a whole module of tests that only read (a store is slow to fill on moto).
    A module that uses it must not use `backend` as well: moto has one state per process."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                            ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_CONFIG_FILE", "/nonexistent/aws-config"),
                            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")):
            mp.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            mp.delenv(name, raising=False)
        with open_backend(request.param) as opened:
            yield opened


@pytest.fixture
def repo(backend):
    return backend.repo


CHUNK = 2


@pytest.fixture
def small_chunks(monkeypatch):
    """Manifest chunks of CHUNK positions (1,000 in production), so a few files make several
    chunks; the DynamoDB repository imported the size by name (as tests/functional/test_scale.py
    patches it)."""
    from chalicelib.adapters import repository
    for module in (buckets_module, repository):
        monkeypatch.setattr(module, "CHUNK_SIZE", CHUNK)
    return CHUNK


@pytest.fixture(autouse=True)
def moto_multipart_as_s3(monkeypatch):
    """S3's NoSuchUpload for parts of a finished upload, and one completion (tests/moto_s3.py)."""
    moto_s3.no_such_upload_as_in_s3(monkeypatch)


_moments = itertools.count()


def new_batch(owner: str = "alice", files: int = 3, prefix: str = "PL_DXB", description: str | None = None,
              created: datetime | None = None, expires_in: int = 3600, names: list[str] | None = None,
              pipelines: tuple[dict, ...] = ({"id": "p-1", "name": "web", "format": "jpeg", "width": 800},),
              counter: int = 1, buckets: int = 1) -> NewBatch:
    """A batch as BatchService would hand it to the repository; each one created a moment
    (1.001 s) after the one before unless `created` says otherwise."""
    created = created or BASE + timedelta(seconds=1.001 * next(_moments))
    batch_id = str(uuid.uuid4())
    names = names or [f"{prefix}_{i:02d}.png" for i in range(files)]
    jobs = []
    for position, name in enumerate(names):
        job_id = str(uuid.uuid4())
        jobs.append(NewJob(job_id, position, name, 1000 + position, "image/png", upload_key(batch_id, job_id, name),
                           bucket_of(job_id, buckets)))
    date = created.strftime("%Y-%m-%d")
    return NewBatch(id=batch_id, owner=owner, customer_prefix=prefix, batch_date=date, batch_counter=counter,
                    base_directory_name=directory_name(prefix, date, counter),
                    description=description or auto_description(names), pipelines=tuple(pipelines),
                    created=created, created_at=iso(created),
                    upload_expires_at=iso(created + timedelta(seconds=expires_in)), jobs=tuple(jobs), buckets=buckets)


def build_catalogue(repo) -> list[dict]:
    """Seven of alice's batches across statuses, prefixes (one in lower case), sizes and
    descriptions, and one of bob's; alice's as stored, in creation order."""
    specs = [("PL_DXB", 3, QUEUED), ("pl_abc", 1, PROCESSING), ("PL_DXB", 5, COMPLETED), ("XX_YY", 2, FAILED),
             ("PL_DXB", 4, PROCESSING), ("XX_YY", 6, CANCELLED), ("PL_DXB", 2, COMPLETED_WITH_ERRORS)]
    made = []
    for n, (prefix, files, status) in enumerate(specs):
        new = new_batch(files=files, prefix=prefix, counter=n + 1,
                        description=f"shoot {n} of the Spring Lookbook" if n % 3 == 0 else None)
        repo.create_batch(new)
        if status != QUEUED:
            repo.start_batch(repo.get_batch(new.id), T_START)
            if status != PROCESSING:
                repo.finalize(repo.get_batch(new.id), status, T_END)
        made.append(repo.get_batch(new.id))
    repo.create_batch(new_batch(owner="bob", files=9))
    return made


T_START, T_END = iso(BASE + timedelta(minutes=1)), iso(BASE + timedelta(minutes=2))
