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

from ..domain import imaging, large_inputs
from ..domain.dropfolders import drop_job_id
from ..domain.pipelines import DEFAULTS, SETTINGS
from ..domain.batches import (
    CANCELLED, DELETING, FINAL_STATUSES, JOB_AWAITING, JOB_CANCELLED, JOB_FAILED, JOB_PROCESSING, QUEUED,
    final_status,
)
from ..errors import Conflict
from ..domain.keys import output_key, parse_drop_key, parse_upload_key, preview_key, upload_prefix
from .clock import iso, utcnow
from .ownership import owned_batch

log = logging.getLogger("imgbatch.processing")
SPOOL_IN_MEMORY = 16 * 1024 * 1024  # larger uploads spill to /tmp while decoding
CONTENDED_ATTEMPTS = 20  # a cancel or retry re-reads and tries again when the batch moved under it


def render_specs(pipelines: list[dict]) -> list[imaging.RenderSpec]:
    """A batch's pipeline snapshots as render specs (snapshots older than a setting lack it: default)."""
    return [imaging.RenderSpec(**{name: p.get(name, default) for name, default in _SPEC_DEFAULTS.items()},
                               format=p["format"])
            for p in pipelines]


_SPEC_DEFAULTS = {name: DEFAULTS[name] for name in SETTINGS if name not in ("format", "filename")}


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

    # -- an object arrived: count it at once, process it later ------------------
    def register_key(self, key: str) -> str:
        """S3 accepted an upload: move its job to processing and count it as uploaded now, then
        hand it to the processing queue. This runs apart from the (possibly long) processing
        backlog, so `uploaded` tells what S3 has within seconds. Objects nobody may keep
        (unknown, late for a cancelled batch, or for a batch being deleted) are removed."""
        found = self._locate(key)
        if isinstance(found, str):
            return found
        batch, job = found
        if job["status"] == JOB_AWAITING:
            if not self.repo.claim_upload(job, self.now()):
                return "duplicate"
            if batch["status"] == QUEUED:
                self.repo.start_batch(batch, self.now())
        elif job["status"] != JOB_PROCESSING:
            self.finalize_if_done(batch["id"])  # a duplicate; heal a final status a crash left unwritten
            return "duplicate"
        # Also for a job already processing: the forward may be what a crash lost.
        self._forward([key])
        return "registered"

    def _forward(self, keys: list[str]) -> None:
        if self.queue is None:
            raise RuntimeError("the processing queue is not configured (UPLOAD_QUEUE_URL)")
        self.queue.enqueue_keys(keys)

    def _locate(self, key: str):
        """(batch, job) for an object that should be processed, or what happened to it instead.
        Uploads (uploads/...) nobody expects are removed; drop-folder objects never are: they are
        the studio's, and go only with their batch (services/deletion.py)."""
        ids = parse_upload_key(key)
        ours = ids is not None
        if ids is None:
            ids = self._drop_ids(key)
            if ids is None:
                log.warning("ignoring object outside the upload layout and outside any drop folder batch: %r", key)
                return "ignored"
        batch_id, job_id = ids
        job = self.repo.get_job(batch_id, job_id)
        batch = self.repo.get_batch(batch_id) if job else None
        if job is None or batch is None or job["key"] != key or batch["status"] == DELETING:
            # No batch asked for this object (deleted, being deleted, or never issued): an upload
            # goes; a drop-folder object stays with its folder.
            log.warning("%s %r: no batch expects it", "removing" if ours else "ignoring", key)
            if ours:
                self.storage.delete(key)
            return "ignored"
        if batch["status"] == CANCELLED:
            if ours and job["status"] in (JOB_AWAITING, JOB_CANCELLED):
                self.storage.delete(key)  # arrived after cancel: not processed, not kept
            return "cancelled"
        return batch, job

    def _drop_ids(self, key: str) -> tuple[str, str] | None:
        """(batch_id, job_id) of a drop-folder object: its folder names the batch, its key the job."""
        drop = parse_drop_key(key)
        held = self.repo.drop_folder(drop.owner, drop.folder) if drop and not drop.is_marker else None
        return (held["batch_id"], drop_job_id(held["batch_id"], key)) if held else None

    # -- one uploaded object ---------------------------------------------------
    def process_key(self, key: str) -> str:
        """Handle one object event; returns what happened (for logs and tests)."""
        found = self._locate(key)
        if isinstance(found, str):
            return found
        batch, job = found
        batch_id = batch["id"]
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
            outputs, preview = self._render_and_store(batch, job)
            error = None
        except imaging.ImageError as exc:
            outputs, preview, error = None, None, (exc.code, exc.message)
        if self.repo.finish_job(job, attempt, self.now(), outputs=outputs, error=error, preview=preview):
            return "failed" if error else "completed"
        # Lost the race: a duplicate already counted this job, or the batch was cancelled or is
        # being deleted. Read *after* writing the outputs, so a delete that already swept the
        # prefix is seen here and nothing is left behind.
        if outputs and self._discarded(job):
            for key in [out["key"] for out in outputs] + [preview["key"]]:
                self.storage.delete(key)
        return "duplicate"

    def _discarded(self, job: dict) -> bool:
        current = self.repo.get_job(job["batch_id"], job["job_id"])
        if current is None or current["status"] == JOB_CANCELLED:
            return True
        batch = self.repo.get_batch(job["batch_id"])
        return batch is None or batch["status"] == DELETING

    def _render_and_store(self, batch: dict, job: dict) -> tuple[list[dict], dict]:
        stored = self.storage.fetch(job["key"])
        if stored is None:
            raise imaging.ImageError("missing_upload", "the uploaded file is no longer stored")
        size, body = stored
        with body, tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            if size != int(job["size"]):
                raise imaging.ImageError("size_mismatch", f"uploaded {size} bytes but the batch declared "
                                                          f"{int(job['size'])} bytes for this file")
            if size > self.settings.limits.max_file_size:   # drop folders hold files of any size
                raise imaging.ImageError("file_too_large", f"the file is {size} bytes, over the per-file limit "
                                                           f"of {self.settings.limits.max_file_size} bytes")
            for chunk in body.iter_chunks(1024 * 1024):
                spool.write(chunk)
            dropped = large_inputs.prepare(spool, size)
            if dropped:
                log.info("%s: decoding without %s", job["key"], ", ".join(dropped))
            # render() decides the type by the bytes and refuses anything else
            pipelines = batch["pipelines"]
            rendered = imaging.render(spool, render_specs(pipelines), self.limits, preview=True)
        outputs = []
        for pipeline, out in zip(pipelines, rendered):
            key = output_key(job["batch_id"], job["job_id"], pipeline["id"], out.extension)
            self.storage.put(key, out.data, out.content_type)
            outputs.append({"pipeline_id": pipeline["id"], "key": key, "format": out.format,
                            "width": out.width, "height": out.height, "size": len(out.data)})
        preview = rendered.preview
        # Beside the outputs (deleted with them), never in the ZIP; recorded by the same commit.
        key = preview_key(job["batch_id"], job["job_id"])
        self.storage.put(key, preview.data, preview.content_type)
        return outputs, {"key": key, "width": preview.width, "height": preview.height, "format": preview.format,
                         "size": len(preview.data)}

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
        """Cancel wins against any status that is not final: when the batch moves between our
        read and our conditional write (its first file starts, say), read again and retry."""
        for _ in range(CONTENDED_ATTEMPTS):
            batch = owned_batch(self.repo, owner, batch_id)
            if batch["status"] in FINAL_STATUSES:
                raise Conflict(f"batch {batch_id} is already {batch['status']}; only queued or processing "
                               "batches can be cancelled")
            if self.repo.finalize(batch, CANCELLED, self.now()):
                break
        else:
            raise Conflict(f"batch {batch_id} kept changing while it was being cancelled; try again")
        self.cancel_pending_jobs(batch_id)
        return self._current(owner, batch_id)

    def cancel_pending_jobs(self, batch_id: str) -> int:
        """Every unfinished job of a cancelled batch becomes cancelled, each counted with its
        own transition; then the batch leaves the sweep's index. Safe to run again (the sweep
        does, for a cancel a crash interrupted)."""
        now = self.now()
        pending = list(self.repo.jobs_with_status(batch_id, (JOB_AWAITING, JOB_PROCESSING)))
        with ThreadPoolExecutor(max_workers=8) as pool:
            moved = sum(pool.map(lambda j: self.repo.cancel_job(j, now), pending))
        self.storage.abort_multipart_uploads(upload_prefix(batch_id))   # nothing more is accepted
        self.repo.settle_cancel(batch_id)
        return moved

    def _current(self, owner: str, batch_id: str) -> dict:
        return owned_batch(self.repo, owner, batch_id)  # 404 when a delete got in meanwhile

    def retry(self, owner: str, batch_id: str) -> dict:
        """Failed files whose upload is stored run again. A final batch is reopened *before*
        its jobs: a cancel or delete that lands in between then stops the job reopening (its
        condition wants an open batch) instead of stranding a job in a closed batch."""
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
        for _ in range(CONTENDED_ATTEMPTS):
            if batch["status"] == CANCELLED:
                raise Conflict(f"batch {batch_id} was cancelled; cancelled batches cannot be retried")
            if batch["status"] not in FINAL_STATUSES or self.repo.reopen_batch(batch, now):
                break
            batch = owned_batch(self.repo, owner, batch_id)
        else:
            raise Conflict(f"batch {batch_id} kept changing while it was being retried; try again")
        reopened = [j for j in retriable if self.repo.reopen_job(j, now)]
        if reopened:
            self._forward([j["key"] for j in reopened])
        else:
            self.finalize_if_done(batch_id)  # reopened for nothing (another retry took them): close it again
        return self._current(owner, batch_id)

    # -- the sweep --------------------------------------------------------------------
    def expire_uploads(self) -> int:
        """Fail files still awaiting upload after the batch's deadline (plus a grace for
        uploads that were in flight), and files whose processing died for good (their
        message went to the dead-letter queue), so every batch reaches a final status.
        A file S3 holds was accepted before its deadline (the presigned policy expires with
        it): it is registered and processed, however long its event waits in a queue.
        Also finishes cancels a crash interrupted."""
        now = self.clock()
        cutoff = iso(now - timedelta(seconds=self.settings.expiry_grace_seconds))
        stale = iso(now - timedelta(seconds=self.settings.stale_processing_seconds))
        expired = 0
        for batch_id in self.repo.expired_batches(cutoff):
            batch = self.repo.get_batch(batch_id)
            if batch is None or batch["status"] in FINAL_STATUSES or batch["status"] == DELETING:
                continue
            message = f"the file was not uploaded before the upload deadline ({batch['upload_expires_at']})"
            expired_here = 0
            for job in self.repo.jobs_with_status(batch_id, (JOB_AWAITING, JOB_PROCESSING)):
                if job["status"] == JOB_AWAITING:
                    if self.storage.head(job["key"]) is not None:
                        self.register_key(job["key"])
                    else:
                        expired_here += self.repo.expire_job(job, self.now(), message)
                elif job["updated_at"] < stale:
                    expired += self.repo.finish_job(job, int(job["attempt"]), self.now(), error=(
                        "processing_failed", "processing did not finish after every retry; retry the batch "
                                             "to try again"))
            if expired_here:   # uploads in parts that did not finish in time: their parts go too
                self.storage.abort_multipart_uploads(upload_prefix(batch_id))
            expired += expired_here
            self.finalize_if_done(batch_id)
        for batch_id in self.repo.interrupted_cancels():
            self.cancel_pending_jobs(batch_id)
        return expired
