"""Per-file processing and the batch state machine around it.

Delivery is at least once, unordered and concurrent, so every transition is a
conditional write (see adapters/repository.py): a duplicate event finds its job
already past the state it expects and changes nothing. Outputs have fixed keys,
so a crash between writing them and committing is repaired by redelivery.
"""
from __future__ import annotations

import logging
import tempfile
import threading
import time
import uuid
import zlib
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Callable

from ..domain import imaging, large_inputs
from ..domain.dropfolders import drop_job_id
from ..domain.pipelines import DEFAULTS, SETTINGS
from ..domain.batches import (
    CANCELLED, DELETING, FINAL_STATUSES, JOB_AWAITING, JOB_CANCELLED, JOB_FAILED, JOB_PROCESSING, PROCESSING,
    QUEUED, final_status,
)
from ..domain.keys import output_key, parse_drop_key, parse_upload_key, preview_key, upload_prefix
from ..errors import Conflict
from ..observability import (
    BATCHES_FINISHED, BYTES_IN, BYTES_OUT, FILES_FAILED, FILES_PROCESSED, FILES_SUCCEEDED, NOOP, PIPELINE_DURATION,
)
from ..ports import MAYBE_DONE
from .clock import iso, parse_iso, utcnow
from .ownership import owned_batch

log = logging.getLogger("imgbatch.processing")
SPOOL_IN_MEMORY = 16 * 1024 * 1024  # larger uploads spill to /tmp while decoding
CONTENDED_ATTEMPTS = 20  # a cancel or retry re-reads and tries again when the batch moved under it
BATCH_CACHE = 256        # batches a function instance remembers the immutable fields of
INLINE_JOBS = 1000       # a cancel or retry of a bigger batch moves its jobs in the background
RETRY_PROBE = 50         # failed files a big batch's retry looks at in the request for one it can run
# What a processing message carries of its job, so the processing function need not read it.
JOB_CONTEXT = ("batch_id", "job_id", "bucket", "position", "owner", "file_name", "size", "content_type", "key",
               "status", "attempt", "created_at")


def render_specs(pipelines: list[dict]) -> list[imaging.RenderSpec]:
    """A batch's pipeline snapshots as render specs (snapshots older than a setting lack it: default)."""
    return [imaging.RenderSpec(**{name: p.get(name, default) for name, default in _SPEC_DEFAULTS.items()},
                               format=p["format"])
            for p in pipelines]


_SPEC_DEFAULTS = {name: DEFAULTS[name] for name in SETTINGS if name not in ("format", "filename")}


class Processor:
    def __init__(self, repository, storage, settings, queue=None, clock=utcnow, maintenance=None, obs=NOOP):
        self.repo = repository
        self.storage = storage
        self.settings = settings
        self.queue = queue
        self.maintenance = maintenance
        self.clock = clock
        self.obs = obs
        self.limits = imaging.Limits(max_pixels=settings.max_pixels)
        # What a function instance knows of the batches it works on: the fields that never change
        # (owner, pipelines, buckets...) are read once, not once per file; no transition trusts it
        # for a status (their conditions decide).
        self._batches: OrderedDict[str, dict] = OrderedDict()
        self._jobs: dict[str, dict] = {}   # this invocation's jobs, read together (prefetch)
        # The forwards of the registrations an invocation is running on this thread, sent together
        # at its end (begin_registrations, flush_forwards); None: each forward goes at once.
        self._invocation = threading.local()

    def now(self) -> str:
        return iso(self.clock())

    def _batch(self, batch_id: str) -> dict | None:
        batch = self._batches.get(batch_id)
        if batch is None:
            batch = self.repo.get_batch(batch_id)
            if batch is None or batch["status"] == DELETING:
                return None
            self._batches[batch_id] = batch
            while len(self._batches) > BATCH_CACHE:
                self._batches.popitem(last=False)
        return batch

    def begin_registrations(self, keys: list[str]) -> None:
        """The start of one invocation of register_uploads: its jobs are read together, and its
        forwards wait for flush_forwards() (SendMessageBatch takes 10: one request, not ten)."""
        self._invocation.held = []
        self.prefetch(keys)

    def flush_forwards(self) -> None:
        """Send what the invocation's registrations forwarded. When this raises, every message of
        the invocation must be delivered again: a registration found processing forwards again."""
        held, self._invocation.held = getattr(self._invocation, "held", None), None
        if held:
            self._send(held)

    def prefetch(self, keys: list[str]) -> None:
        """Read the jobs of one invocation's objects together (one BatchGetItem per 100)."""
        self._jobs = {}
        by_batch: dict[str, list[str]] = {}
        for key in keys:
            ids = parse_upload_key(key)
            if ids:
                by_batch.setdefault(ids[0], []).append(ids[1])
        for batch_id, job_ids in by_batch.items():
            if self._batch(batch_id) is not None:
                self._jobs.update(self.repo.get_jobs(batch_id, job_ids))

    # -- an object arrived: count it at once, process it later ------------------
    def register_key(self, key: str, job: dict | None = None) -> str:
        """S3 accepted an upload: move its job to processing and count it as uploaded now, then
        hand it to the processing queue. This runs apart from the (possibly long) processing
        backlog, so `uploaded` tells what S3 has within seconds. Objects nobody may keep
        (unknown, late for a cancelled batch, or for a batch being deleted) are removed."""
        with self.obs.transition("upload.registered", **_ids(key)) as step:
            step.outcome = self._register(key, job)
            return step.outcome

    def _register(self, key: str, job: dict | None) -> str:
        found = self._locate(key, job)
        if isinstance(found, str):
            return found
        batch, job = found
        if job["status"] == JOB_AWAITING:
            if not self.repo.claim_upload(job, self.now()):
                return self._claim_lost(batch, key)
            job = {**job, "status": JOB_PROCESSING, "attempt": 1}   # what the claim wrote
            if batch["status"] == QUEUED:
                self._start(batch)
        elif job["status"] != JOB_PROCESSING:
            self.finalize_if_done(batch["id"])  # a duplicate; heal a final status a crash left unwritten
            return "duplicate"
        # Also for a job already processing: the forward may be what a crash lost.
        self._forward([job])
        return "registered"

    def _start(self, batch: dict) -> None:
        if self.repo.start_batch(batch, self.now()):
            self.obs.info("batch.started", batch_id=batch["id"], outcome="processing",
                          total_files=int(batch["total_files"]))
        batch["status"] = PROCESSING   # this instance need not try again

    def _forward(self, jobs: list[dict]) -> None:
        """To the processing queue, each with its job's state, so processing need not read it;
        inside an invocation's registrations, at its end (flush_forwards)."""
        held = getattr(self._invocation, "held", None)
        if held is not None:
            held.extend(jobs)
        else:
            self._send(jobs)

    def _send(self, jobs: list[dict]) -> None:
        if self.queue is None:
            raise RuntimeError("the processing queue is not configured (UPLOAD_QUEUE_URL)")
        self.queue.enqueue_keys([j["key"] for j in jobs], [{f: j.get(f) for f in JOB_CONTEXT} for j in jobs])

    def _locate(self, key: str, job: dict | None = None):
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
        batch = self._batch(batch_id)
        if job is None or job.get("job_id") != job_id:
            job = self._jobs.pop(job_id, None) or (self.repo.get_job(batch_id, job_id) if batch else None)
        if job is None or batch is None or job["key"] != key:
            # No batch asked for this object (deleted, being deleted, or never issued): an upload
            # goes; a drop-folder object stays with its folder.
            log.warning("%s %r: no batch expects it", "removing" if ours else "ignoring", key)
            if ours:
                self.storage.delete(key)
            return "ignored"
        if job["status"] == JOB_CANCELLED:
            if ours:
                self.storage.delete(key)  # arrived after cancel: not processed, not kept
            return "cancelled"
        return batch, job

    def _drop_ids(self, key: str) -> tuple[str, str] | None:
        """(batch_id, job_id) of a drop-folder object: its folder names the batch, its key the job."""
        drop = parse_drop_key(key)
        held = self.repo.drop_folder(drop.owner, drop.folder) if drop and not drop.is_marker else None
        return (held["batch_id"], drop_job_id(held["batch_id"], key)) if held else None

    def _claim_lost(self, batch: dict, key: str) -> str:
        """The claim did not count: a duplicate, or the batch is cancelled or going (the
        counters are closed); then the object is not kept."""
        fresh = self.repo.get_batch(batch["id"])
        if fresh is None or fresh["status"] in (CANCELLED, DELETING):
            if parse_upload_key(key) is not None:   # a drop-folder object stays with its folder
                self.storage.delete(key)
            return "cancelled" if fresh is not None and fresh["status"] == CANCELLED else "ignored"
        return "duplicate"

    # -- one uploaded object ---------------------------------------------------
    def process_key(self, key: str, job: dict | None = None) -> str:
        """Handle one object event (with the job's state when the arrival stage forwarded it);
        returns what happened (for logs and tests). One log line per file: its outcome (completed,
        failed, duplicate, ...) and how long it took."""
        with self.obs.transition("job.processed", **_ids(key)) as step:
            step.outcome = self._process(key, job, step.fields)
            return step.outcome

    def _process(self, key: str, job: dict | None, report: dict) -> str:
        found = self._locate(key, job)
        if isinstance(found, str):
            return found
        batch, job = found
        batch_id = batch["id"]
        if job["status"] == JOB_AWAITING:
            if not self.repo.claim_upload(job, self.now()):
                return self._claim_lost(batch, key)
            job = {**job, "status": JOB_PROCESSING, "attempt": 1}   # what the claim wrote
            if batch["status"] == QUEUED:
                self._start(batch)
        elif job["status"] != JOB_PROCESSING:
            # Already final: a duplicate. Still make sure the batch got its final status,
            # in case the worker that counted this job died before writing it.
            self.finalize_if_done(batch_id)
            return "duplicate"
        return self._run(batch, job, report)

    def _run(self, batch: dict, job: dict, report: dict) -> str:
        attempt = int(job["attempt"])
        started = time.perf_counter()
        try:
            outputs, preview = self._render_and_store(batch, job)
            error = None
        except imaging.ImageError as exc:
            outputs, preview, error = None, None, (exc.code, exc.message)
        pipeline_ms = round((time.perf_counter() - started) * 1000, 1)
        bytes_out = sum(int(o["size"]) for o in outputs) + int(preview["size"]) if outputs else 0
        report.update(attempt=attempt, pipeline_ms=pipeline_ms, bytes_in=int(job["size"]), bytes_out=bytes_out)
        if error:
            report["error_code"] = error[0]
        counted = self.repo.finish_job(job, attempt, self.now(), outputs=outputs, error=error, preview=preview)
        if counted:
            # counted with the job's own transition, so a redelivery never counts a file twice
            self.obs.metric(FILES_PROCESSED)
            self.obs.metric(PIPELINE_DURATION, pipeline_ms)
            self.obs.metric(BYTES_IN, int(job["size"]))
            if error:
                self.obs.metric(FILES_FAILED, dimension=error[0])
            else:
                self.obs.metric(FILES_SUCCEEDED)
                self.obs.metric(BYTES_OUT, bytes_out)
            if counted == MAYBE_DONE:   # the last of its bucket: the batch may be complete
                self.finalize_if_done(job["batch_id"], int(job.get("bucket") or 0))
            return "failed" if error else "completed"
        # Lost the race: a duplicate already counted this job, or the batch was cancelled or is
        # being deleted. Read *after* writing the outputs, so a delete that already swept the
        # prefix is seen here and nothing is left behind.
        if outputs is not None and self._discarded(job):
            for key in [out["key"] for out in outputs] + [preview["key"]]:
                self.storage.delete(key)
        return "duplicate"

    def _discarded(self, job: dict) -> bool:
        current = self.repo.get_job(job["batch_id"], job["job_id"])
        if current is None or current["status"] == JOB_CANCELLED:
            return True
        batch = self.repo.get_batch(job["batch_id"])
        if batch is None or batch["status"] == DELETING:
            self._batches.pop(job["batch_id"], None)
            return True
        return False

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
            with self.obs.span("render"):
                rendered = imaging.render(spool, render_specs(pipelines), self.limits, preview=True)
        outputs = []
        for pipeline, out in zip(pipelines, rendered):
            key = output_key(job["batch_id"], job["job_id"], pipeline["id"], out.extension)
            self.storage.put(key, out.data, out.content_type)
            # size and CRC-32 let a large archive be laid out without reading the outputs again
            outputs.append({"pipeline_id": pipeline["id"], "key": key, "format": out.format,
                            "width": out.width, "height": out.height, "size": len(out.data),
                            "crc32": zlib.crc32(out.data)})
        preview = rendered.preview
        # Beside the outputs (deleted with them), never in the ZIP; recorded by the same commit.
        key = preview_key(job["batch_id"], job["job_id"])
        self.storage.put(key, preview.data, preview.content_type)
        return outputs, {"key": key, "width": preview.width, "height": preview.height, "format": preview.format,
                         "size": len(preview.data)}

    # -- batch status ------------------------------------------------------------
    def finalize_if_done(self, batch_id: str, bucket: int | None = None) -> str | None:
        """Write the final status once every file is accounted for; exactly one caller wins.
        `bucket`: the one whose last file the caller just counted (see settled_batch)."""
        for _ in range(5):
            batch = self.repo.settled_batch(batch_id, after=bucket)
            if batch is None or batch["status"] in FINAL_STATUSES:
                return None
            status = final_status(int(batch["total_files"]), int(batch["succeeded"]), int(batch["failed"]),
                                  int(batch["cancelled"]))
            if status is None:
                return None
            if self.repo.finalize(batch, status, self.now()):
                self._finished(batch, status)
                return status
        return None

    def _finished(self, batch: dict, status: str) -> None:
        seconds = (self.clock() - parse_iso(batch["created_at"])).total_seconds()
        self.obs.info("batch.finished", batch_id=batch["id"], outcome=status, total_files=int(batch["total_files"]),
                      succeeded=int(batch["succeeded"]), failed=int(batch["failed"]),
                      cancelled=int(batch["cancelled"]), seconds_since_created=round(seconds, 3))
        self.obs.metric(BATCHES_FINISHED, dimension=status)

    def cancel(self, owner: str, batch_id: str) -> dict:
        """Cancel wins against any status that is not final: when the batch moves between our
        read and our conditional write (its first file starts, say), read again and retry."""
        for _ in range(CONTENDED_ATTEMPTS):
            batch = owned_batch(self.repo, owner, batch_id)
            if batch["status"] in FINAL_STATUSES:
                raise Conflict(f"batch {batch_id} is already {batch['status']}; only queued or processing "
                               "batches can be cancelled")
            if self.repo.finalize(batch, CANCELLED, self.now()):
                self._finished(batch, CANCELLED)
                break
        else:
            raise Conflict(f"batch {batch_id} kept changing while it was being cancelled; try again")
        if int(batch["total_files"]) <= INLINE_JOBS or self.maintenance is None:
            self.cancel_pending_jobs(batch_id)
        else:   # a big batch: its jobs are cancelled in the background (the batch is final already)
            self.maintenance.send({"kind": "cancel_jobs", "batch_id": batch_id})
        return self._current(owner, batch_id)

    def cancel_pending_jobs(self, batch_id: str) -> int:
        """Every unfinished job of a cancelled batch becomes cancelled, each counted with its
        own transition; then the batch leaves the sweep's index. Safe to run again (the sweep
        does, for a cancel a crash interrupted)."""
        self.repo.sync_counters(batch_id)   # a big batch's counters stop counting here, not in the request
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
            raise self._cancelled(batch_id)
        if int(batch["total_files"]) > INLINE_JOBS and self.maintenance is not None:
            return self._retry_in_background(owner, batch)
        failed = list(self.repo.jobs_with_status(batch_id, (JOB_FAILED,)))
        retriable = [j for j in failed if self.storage.head(j["key"]) is not None]
        if not retriable:
            raise Conflict(self._nothing_to_retry(batch_id, bool(failed)))
        now = self.now()
        self._mark_for_retry(owner, batch,
                             lambda b: b["status"] not in FINAL_STATUSES or self.repo.reopen_batch(b, now))
        reopened = [{**j, "status": JOB_PROCESSING, "attempt": int(j.get("attempt") or 0) + 1}
                    for j in retriable if self.repo.reopen_job(j, now)]
        self.obs.info("batch.retried", batch_id=batch_id, outcome="processing" if reopened else "nothing_reopened",
                      reopened=len(reopened))
        if reopened:
            self._forward(reopened)
        else:
            self.finalize_if_done(batch_id)  # reopened for nothing (another retry took them): close it again
        return self._current(owner, batch_id)

    def _mark_for_retry(self, owner: str, batch: dict, mark: Callable[[dict], bool]) -> None:
        """`mark` moves the batch to where its files may run again; it loses (False) when the
        batch changed since it was read, so it is read again, a bounded number of times."""
        for _ in range(CONTENDED_ATTEMPTS):
            if batch["status"] == CANCELLED:
                raise self._cancelled(batch["id"])
            if mark(batch):
                return
            batch = owned_batch(self.repo, owner, batch["id"])
        raise Conflict(f"batch {batch['id']} kept changing while it was being retried; try again")

    @staticmethod
    def _cancelled(batch_id: str) -> Conflict:
        return Conflict(f"batch {batch_id} was cancelled; cancelled batches cannot be retried")

    @staticmethod
    def _nothing_to_retry(batch_id: str, any_failed: bool) -> str:
        reason = ("it has no failed files" if not any_failed else
                  "none of its failed files has a stored upload to process again (they never arrived)")
        return f"nothing to retry in batch {batch_id}: {reason}"

    def _retry_in_background(self, owner: str, batch: dict) -> dict:
        """A big batch's retry: the request checks there is something to run (a stored upload among
        its first failed files), marks the batch (begin_retry: processing, and no final status
        until the background is done) and hands the files to retry_jobs, so it answers in a
        bounded time whatever the number of failed files."""
        batch_id = batch["id"]
        probed = 0
        for job in self.repo.jobs_with_status(batch_id, (JOB_FAILED,)):
            probed += 1
            if self.storage.head(job["key"]) is not None or probed >= RETRY_PROBE:
                break   # one can run, or too many looked at: the background step decides
        else:
            raise Conflict(self._nothing_to_retry(batch_id, probed > 0))
        self._mark_for_retry(owner, batch, lambda b: self.repo.begin_retry(b, self.now()))
        self.obs.info("batch.retried", batch_id=batch_id, outcome="in_background")
        self.maintenance.send({"kind": "retry_jobs", "batch_id": batch_id})
        return self._current(owner, batch_id)

    def retry_jobs(self, batch_id: str) -> int:
        """The background half of a big batch's retry (the maintenance queue): counters open,
        then every failed file with a stored upload reopened and forwarded, then the batch may
        take a final status again (end_retry) and takes it if nothing was reopened or all of it
        has finished already. One worker does it (take_retry): a duplicate delivery running beside
        it does nothing, and one after it finds the mark gone."""
        now = self.now()
        token = uuid.uuid4().hex
        stale = iso(self.clock() - timedelta(seconds=self.settings.stale_processing_seconds))
        if not self.repo.take_retry(batch_id, token, now, stale):
            return 0
        self.repo.sync_counters(batch_id)   # counting before any file reopens
        batch = self.repo.get_batch(batch_id)
        reopened: list[dict] = []
        if batch is not None and batch["status"] in (QUEUED, PROCESSING):
            failed = list(self.repo.jobs_with_status(batch_id, (JOB_FAILED,)))
            by_bucket: dict = {}
            with ThreadPoolExecutor(max_workers=8) as pool:
                heads = list(pool.map(lambda j: self.storage.head(j["key"]), failed))
                for job, head in zip(failed, heads):
                    if head is not None:
                        by_bucket.setdefault(job.get("bucket"), []).append(job)

                def reopen(jobs: list[dict]) -> list[dict]:   # one bucket's in turn: they share its counter
                    return [{**j, "status": JOB_PROCESSING, "attempt": int(j.get("attempt") or 0) + 1}
                            for j in jobs if self.repo.reopen_job(j, now, mark_batch=False)]
                reopened = [j for done in pool.map(reopen, by_bucket.values()) for j in done]
            if reopened:
                self._forward(reopened)
        self.repo.end_retry(batch_id, token)
        self.obs.info("batch.retried", batch_id=batch_id, outcome="processing" if reopened else "nothing_reopened",
                      reopened=len(reopened))
        self.finalize_if_done(batch_id)   # nothing reopened, or it all finished while the mark held
        return len(reopened)

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
            if batch.get("retrying"):   # a big retry's background half: resumed if its message was lost
                if batch["updated_at"] < stale:
                    self.retry_jobs(batch_id)
                continue
            message = f"the file was not uploaded before the upload deadline ({batch['upload_expires_at']})"
            expired_before = expired
            for job in self.repo.jobs_with_status(batch_id, (JOB_AWAITING, JOB_PROCESSING)):
                if job["status"] == JOB_AWAITING:
                    if self.storage.head(job["key"]) is not None:
                        self.register_key(job["key"], job)
                    elif self.repo.expire_job(job, self.now(), message):
                        expired += 1
                        self.obs.metric(FILES_FAILED, dimension="upload_expired")
                        self.obs.info("job.expired", batch_id=batch_id, job_id=job["job_id"], outcome="failed",
                                      error_code="upload_expired")
                elif job["updated_at"] < stale and self.repo.finish_job(
                        job, int(job["attempt"]), self.now(), error=(
                            "processing_failed", "processing did not finish after every retry; retry the batch "
                                                 "to try again")):
                    expired += 1
                    self.obs.metric(FILES_FAILED, dimension="processing_failed")
                    self.obs.info("job.expired", batch_id=batch_id, job_id=job["job_id"], outcome="failed",
                                  error_code="processing_failed")
            if expired > expired_before:   # uploads in parts that did not finish in time: their parts go too
                self.storage.abort_multipart_uploads(upload_prefix(batch_id))
            self.finalize_if_done(batch_id)
        for batch_id in self.repo.interrupted_cancels():
            self.cancel_pending_jobs(batch_id)
        return expired


def _ids(key: str) -> dict:
    """batch_id and job_id as correlation keys, when the key is in the upload layout."""
    ids = parse_upload_key(key)
    return {"batch_id": ids[0], "job_id": ids[1]} if ids else {"object_key": key}
