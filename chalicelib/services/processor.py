"""Per-file processing and the batch state machine around it.

Delivery is at least once, unordered and concurrent, so every transition is a
conditional write (see adapters/repository.py): a duplicate event finds its job
already past the state it expects and changes nothing. Outputs have fixed keys,
so a crash between writing them and committing is repaired by redelivery.
"""
from __future__ import annotations

import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from ..domain import imaging
from ..domain.pipelines import DEFAULTS, SETTINGS
from ..domain.batches import (
    CANCELLED, FINAL_STATUSES, JOB_AWAITING, JOB_FAILED, JOB_PROCESSING, QUEUED, final_status,
)
from ..errors import Conflict
from ..resources import OUTPUT_PREFIX
from .clock import iso, utcnow
from .ownership import owned_batch
from .processing import parse_key

log = logging.getLogger("imgbatch.processing")
SPOOL_IN_MEMORY = 16 * 1024 * 1024  # larger uploads spill to /tmp while decoding


def render_specs(pipelines: list[dict]) -> list[imaging.RenderSpec]:
    """A batch's pipeline snapshots as render specs (snapshots older than a setting lack it: default)."""
    return [imaging.RenderSpec(**{name: p.get(name, default) for name, default in _SPEC_DEFAULTS.items()},
                               format=p["format"])
            for p in pipelines]


_SPEC_DEFAULTS = {name: DEFAULTS[name] for name in SETTINGS if name not in ("format", "filename")}
PREVIEW_NAME = "preview.webp"


class Processor:
    def __init__(self, repository, storage, settings, queue=None, clock=utcnow):
        self.repo = repository
        self.storage = storage
        self.settings = settings
        self.queue = queue
        self.clock = clock
        self.limits = imaging.Limits(max_pixels=settings.max_pixels)

    def now(self) -> str:
        return iso(self.clock())

    # -- one uploaded object ---------------------------------------------------
    def process_key(self, key: str) -> str:
        """Handle one object event; returns what happened (for logs and tests)."""
        ids = parse_key(key)
        if ids is None:
            log.warning("ignoring object outside the upload layout: %r", key)
            return "ignored"
        batch_id, job_id = ids
        job = self.repo.get_job(batch_id, job_id)
        batch = self.repo.get_batch(batch_id) if job else None
        if job is None or batch is None or job["key"] != key:
            log.warning("no job for %r (batch deleted?); ignoring", key)
            return "ignored"
        if batch["status"] == CANCELLED:
            if job["status"] in (JOB_AWAITING, "cancelled"):
                self.storage.delete(key)  # arrived after cancel: not processed, not kept
            return "cancelled"
        if job["status"] == JOB_AWAITING:
            if not self.repo.claim_upload(job, self.now()):
                return "duplicate"
            # what the claim wrote, without reading it back
            job = {**job, "status": JOB_PROCESSING, "attempt": int(job.get("attempt") or 0) + 1}
            if batch["status"] == QUEUED:
                self.repo.start_batch(batch, self.now())
        elif job["status"] != JOB_PROCESSING:
            # Already final: a duplicate. Still make sure the batch got its final status,
            # in case the worker that counted this job died before writing it.
            self.finalize_if_done(batch_id)
            return "duplicate"
        outcome = self._run(batch, job)
        self.finalize_if_done(batch_id)
        return outcome

    def _run(self, batch: dict, job: dict) -> str:
        attempt = int(job["attempt"])
        try:
            outputs = self._render_and_store(batch, job)
            error = None
        except imaging.ImageError as exc:
            outputs, error = None, (exc.code, exc.message)
        if self.repo.finish_job(job, attempt, self.now(), outputs=outputs, error=error):
            return "failed" if error else "completed"
        # Lost the race: a duplicate already counted this job, or the batch was cancelled.
        current = self.repo.get_job(job["batch_id"], job["job_id"])
        if outputs and (current is None or current["status"] == "cancelled"):
            for out in outputs:
                self.storage.delete(out["key"])
        return "duplicate"

    def _render_and_store(self, batch: dict, job: dict) -> list[dict]:
        stored = self.storage.fetch(job["key"])
        if stored is None:
            raise imaging.ImageError("missing_upload", "the uploaded file is no longer stored")
        size, body = stored
        with body, tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            if size != int(job["size"]):
                raise imaging.ImageError("size_mismatch", f"uploaded {size} bytes but the batch declared "
                                                          f"{int(job['size'])} bytes for this file")
            for chunk in body.iter_chunks(1024 * 1024):
                spool.write(chunk)
            spool.seek(0)
            # render() decides the type by the bytes and refuses anything else
            pipelines = batch["pipelines"]
            rendered = imaging.render(spool, render_specs(pipelines), self.limits, preview=True)
        prefix = f"{OUTPUT_PREFIX}{job['batch_id']}/{job['job_id']}/"
        outputs = []
        for pipeline, out in zip(pipelines, rendered):
            key = f"{prefix}{pipeline['id']}.{out.extension}"
            self.storage.put(key, out.data, out.content_type)
            outputs.append({"pipeline_id": pipeline["id"], "key": key, "format": out.format,
                            "width": out.width, "height": out.height, "size": len(out.data)})
        preview = rendered.preview
        # Beside the outputs (so deleting a job's outputs deletes it), never in the ZIP.
        key = prefix + PREVIEW_NAME
        self.storage.put(key, preview.data, preview.content_type)
        self.repo.set_job_preview(job, int(job["attempt"]), {
            "key": key, "width": preview.width, "height": preview.height, "format": preview.format,
            "size": len(preview.data)})
        return outputs

    # -- batch status ------------------------------------------------------------
    def finalize_if_done(self, batch_id: str) -> str | None:
        """Write the final status once every file is accounted for; exactly one caller wins."""
        for _ in range(5):
            batch = self.repo.get_batch(batch_id)
            if batch is None or batch["status"] in FINAL_STATUSES:
                return None
            status = final_status(int(batch["total_files"]), int(batch["succeeded"]), int(batch["failed"]),
                                  int(batch["cancelled"]))
            if status is None:
                return None
            if self.repo.finalize(batch, status, self.now()):
                log.info("batch %s is %s", batch_id, status)
                return status
        return None

    def cancel(self, owner: str, batch_id: str) -> dict:
        batch = owned_batch(self.repo, owner, batch_id)
        if batch["status"] in FINAL_STATUSES or not self.repo.finalize(batch, CANCELLED, self.now()):
            current = self.repo.get_batch(batch_id)
            raise Conflict(f"batch {batch_id} is already {current['status'] if current else 'gone'}; "
                           "only queued or processing batches can be cancelled")
        now = self.now()
        pending = list(self.repo.jobs_with_status(batch_id, (JOB_AWAITING, JOB_PROCESSING)))
        with ThreadPoolExecutor(max_workers=8) as pool:
            moved = sum(pool.map(lambda j: self.repo.cancel_job(j, now), pending))
        if moved:
            self.repo.add_cancelled(batch_id, moved, now)
        return self.repo.get_batch(batch_id)

    def retry(self, owner: str, batch_id: str) -> dict:
        batch = owned_batch(self.repo, owner, batch_id)
        if batch["status"] == CANCELLED:
            raise Conflict(f"batch {batch_id} was cancelled; cancelled batches cannot be retried")
        failed = list(self.repo.jobs_with_status(batch_id, (JOB_FAILED,)))
        retriable = [j for j in failed if self.storage.head(j["key"]) is not None]
        if not retriable:
            reason = ("it has no failed files" if not failed else
                      "none of its failed files has a stored upload to process again (they never arrived)")
            raise Conflict(f"nothing to retry in batch {batch_id}: {reason}")
        now = self.now()
        reopened = [j for j in retriable if self.repo.reopen_job(j, now)]
        current = self.repo.get_batch(batch_id)
        if current["status"] in FINAL_STATUSES and current["status"] != CANCELLED:
            self.repo.reopen_batch(current, now)
        if self.queue is not None and reopened:
            self.queue.enqueue_keys([j["key"] for j in reopened])
        return self.repo.get_batch(batch_id)

    # -- upload expiry -------------------------------------------------------------
    def expire_uploads(self) -> int:
        """Fail files still awaiting upload after the batch's deadline (plus a grace for
        uploads that were in flight), and files whose processing died for good (their
        message went to the dead-letter queue), so every batch reaches a final status."""
        now = self.clock()
        cutoff = iso(now - timedelta(seconds=self.settings.expiry_grace_seconds))
        stale = iso(now - timedelta(seconds=self.settings.stale_processing_seconds))
        expired = 0
        for batch_id in self.repo.expired_batches(cutoff):
            batch = self.repo.get_batch(batch_id)
            if batch is None or batch["status"] in FINAL_STATUSES:
                continue
            message = f"the file was not uploaded before the upload deadline ({batch['upload_expires_at']})"
            for job in self.repo.jobs_with_status(batch_id, (JOB_AWAITING, JOB_PROCESSING)):
                if job["status"] == JOB_AWAITING:
                    expired += self.repo.expire_job(job, self.now(), message)
                elif job["updated_at"] < stale:
                    expired += self.repo.finish_job(job, int(job["attempt"]), self.now(), error=(
                        "processing_failed", "processing did not finish after every retry; retry the batch "
                                             "to try again"))
            self.finalize_if_done(batch_id)
        return expired

