"""The per-file use case behind each upload event."""
from __future__ import annotations

import logging

from ..domain.batches import JOB_AWAITING, QUEUED
from .clock import iso, utcnow
from .processing import parse_key

log = logging.getLogger("imgbatch.processing")


class Processor:
    def __init__(self, repository, storage, settings, clock=utcnow):
        self.repo = repository
        self.storage = storage
        self.settings = settings
        self.clock = clock

    def process_key(self, key: str) -> str:
        """Handle one uploaded object; returns what happened (for logs and tests)."""
        ids = parse_key(key)
        if ids is None:
            log.warning("ignoring object outside the upload layout: %r", key)
            return "ignored"
        batch_id, job_id = ids
        job = self.repo.get_job(batch_id, job_id)
        if job is None or job["key"] != key:
            log.warning("no job for %r (batch deleted?)", key)
            return "ignored"
        batch = self.repo.get_batch(batch_id)
        if batch is None:
            return "ignored"
        now = iso(self.clock())
        if job["status"] != JOB_AWAITING or not self.repo.claim_upload(job, now):
            log.info("duplicate or late event for job %s (status %s)", job_id, job["status"])
            return "duplicate"
        if batch["status"] == QUEUED:
            self.repo.start_batch(batch, now)
        # Image processing arrives with the processing issue; until then the
        # upload is recorded and the job waits in `processing`.
        return "recorded"
