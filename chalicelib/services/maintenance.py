"""Bounded steps of work too long for the request that asks for it, run by run_maintenance from
the maintenance queue. Each step is idempotent (SQS delivers at least once)."""
from __future__ import annotations

import logging

log = logging.getLogger("imgbatch.maintenance")


class Maintenance:
    def __init__(self, batches, deleter, processor, dropfolders=None):
        self.batches = batches
        self.deleter = deleter
        self.processor = processor
        self.dropfolders = dropfolders

    def run(self, message: dict) -> None:
        kind, batch_id = message.get("kind"), message.get("batch_id")
        if kind == "materialize":
            self.batches.materialize(batch_id, int(message["chunk"]))
            if message.get("announce") and self.dropfolders is not None:   # in S3 already (drop folders)
                self.dropfolders.announce_chunk(batch_id, int(message["chunk"]))
        elif kind == "purge":
            self.deleter.purge(batch_id)
        elif kind == "cancel_jobs":
            self.processor.cancel_pending_jobs(batch_id)
        elif kind == "retry_jobs":
            self.processor.retry_jobs(batch_id)
        else:
            log.warning("ignoring a maintenance message of unknown kind: %.200r", message)
