"""Files built on request for download (results, contact sheets), staged in the bucket.

API Gateway answers at most 10 MB (Lambda 6 MB) and binary bodies need extra gateway setup, so
such a file is written to S3 once per content (its key holds a fingerprint of what went in) and
handed out as a short-lived URL, like the batch's ZIP (services/archives.py). An unchanged batch
reuses the stored file; any change makes a new one. They live under the batch's archive prefix,
so deleting the batch deletes them.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Callable

from ..domain.batches import DELETING
from ..errors import NotFound
from .clock import iso


def staged_download(repo, storage, settings, clock, batch_id: str, key: str, file_name: str,
                    build: Callable[[], int]) -> dict:
    """{"url", "file_name", "expires_at", "size"}: `build()` writes the object and returns its size,
    and runs only when no object with that key is stored yet."""
    head = storage.head(key)
    if head is not None:
        size = int(head["ContentLength"])
    else:
        size = build()
        # A delete that swept the batch's objects while this one was written would leave it behind.
        current = repo.get_batch(batch_id)
        if current is None or current["status"] == DELETING:
            storage.delete(key)
            raise NotFound(f"batch {batch_id} not found")
    ttl = settings.download_ttl_seconds
    return {"url": storage.presign_download(key, ttl, file_name), "file_name": file_name,
            "expires_at": iso(clock() + timedelta(seconds=ttl)), "size": size}
