"""Queues: re-processing requests (retry) travel the upload queue in the shape of S3 events;
archive builds too large for an API request travel the archive queue."""
from __future__ import annotations

import json


class UploadQueue:
    def __init__(self, sqs_client, queue_url: str | None):
        self.sqs = sqs_client
        self.url = queue_url

    def enqueue_keys(self, keys: list[str]) -> None:
        """Send S3-shaped ObjectCreated records so the handler has one input format."""
        if not self.url:
            raise RuntimeError("UPLOAD_QUEUE_URL is not configured")
        for start in range(0, len(keys), 10):
            entries = [{"Id": str(i), "MessageBody": json.dumps(s3_event_for(key))}
                       for i, key in enumerate(keys[start:start + 10])]
            self.sqs.send_message_batch(QueueUrl=self.url, Entries=entries)


def s3_event_for(key: str, bucket: str = "") -> dict:
    from urllib.parse import quote_plus
    return {"Records": [{"eventSource": "imgbatch:retry", "eventName": "ObjectCreated:Retry",
                         "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key)}}}]}


class ArchiveQueue:
    def __init__(self, sqs_client, queue_url: str | None):
        self.sqs = sqs_client
        self.url = queue_url

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
