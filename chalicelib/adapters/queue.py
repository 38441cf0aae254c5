"""Queues: re-processing requests (retry) travel the upload queue in the shape of S3 events;
archive builds too large for an API request travel the archive queue, and their parts the
archive parts queue."""
from __future__ import annotations

import json


class UploadQueue:
    def __init__(self, sqs_client, queue_url: str | None):
        self.sqs = sqs_client
        self.url = queue_url

    def enqueue_keys(self, keys: list[str], jobs: list[dict] | None = None) -> None:
        """Send S3-shaped ObjectCreated records so the handler has one input format, each
        carrying its job's state when known (sqs_events.JOB_FIELD)."""
        if not self.url:
            raise RuntimeError("UPLOAD_QUEUE_URL is not configured")
        jobs = jobs or [None] * len(keys)
        bodies = [json.dumps(s3_event_for(key, job=job)) for key, job in zip(keys, jobs)]
        for start in range(0, len(bodies), 10):
            entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(bodies[start:start + 10])]
            self.sqs.send_message_batch(QueueUrl=self.url, Entries=entries)


def s3_event_for(key: str, bucket: str = "", job: dict | None = None) -> dict:
    from urllib.parse import quote_plus

    from .sqs_events import JOB_FIELD
    record = {"eventSource": "imgbatch:forward", "eventName": "ObjectCreated:Forward",
              "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key)}}}
    if job is not None:
        record[JOB_FIELD] = job
    return {"Records": [record]}


class MaintenanceQueue:
    def __init__(self, sqs_client, queue_url: str | None):
        self.sqs = sqs_client
        self.url = queue_url

    def send(self, message: dict) -> None:
        if not self.url:
            raise RuntimeError("MAINTENANCE_QUEUE_URL is not configured")
        self.sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps(message))

    def send_many(self, messages: list[dict]) -> None:
        for start in range(0, len(messages), 10):
            entries = [{"Id": str(i), "MessageBody": json.dumps(m)} for i, m in enumerate(messages[start:start + 10])]
            self.sqs.send_message_batch(QueueUrl=self.url, Entries=entries)


class ArchiveQueue:
    def __init__(self, sqs_client, queue_url: str | None, parts_url: str | None = None):
        self.sqs = sqs_client
        self.url = queue_url
        self.parts_url = parts_url

    def request_build(self, batch_id: str, partial: bool, prebuild: bool = False) -> None:
        if not self.url:
            raise RuntimeError("ARCHIVE_QUEUE_URL is not configured")
        message = {"batch_id": batch_id, "partial": partial}
        if prebuild:
            message["prebuild"] = True
        self.sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps(message))

    def request_prebuild(self, batch_id: str) -> None:
        """The whole ZIP of a batch that just became final (PREBUILD_ARCHIVES)."""
        self.request_build(batch_id, partial=False, prebuild=True)

    def request_tasks(self, tasks: list[dict]) -> None:
        if not self.parts_url:
            raise RuntimeError("ARCHIVE_PARTS_QUEUE_URL is not configured")
        for start in range(0, len(tasks), 10):
            entries = [{"Id": str(i), "MessageBody": json.dumps(task)} for i, task in enumerate(tasks[start:start + 10])]
            failed = self.sqs.send_message_batch(QueueUrl=self.parts_url, Entries=entries).get("Failed")
            if failed:
                raise RuntimeError(f"the parts queue refused {len(failed)} task(s): {failed[0].get('Message')}")
