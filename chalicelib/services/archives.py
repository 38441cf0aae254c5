"""Whole-batch ZIP downloads: plan, cache, build (inline or by the builder function), hand out a URL.

The archive streams from the outputs into S3 multipart parts in constant memory
(domain/archive.py + adapters/multipart.py); Lambda never returns the bytes.
An archive's key holds a fingerprint of everything it contains, so an unchanged
batch reuses its archive and any change (retry, more files finished) builds anew.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from ..domain.archive import (
    ArchiveJob, ArchiveOutput, PlannedEntry, manifest_arcname, plan_archive, stream_zip,
)
from ..domain.batches import DELETING, FINAL_STATUSES, JOB_COMPLETED, JOB_FINAL_STATUSES
from ..errors import BadRequest, Conflict, NotFound, NotReady
from ..domain.keys import archive_key
from ..observability import ARCHIVE_BUILD_DURATION, ARCHIVE_BUILDS_FAILED, ARCHIVE_BYTES, NOOP
from .clock import iso, utcnow
from .ownership import is_uuid, owned_batch

BUILD_STALE_AFTER = timedelta(minutes=16)  # the builder's 15-minute timeout, plus a margin
ASSUMED_BYTES_PER_SECOND = 40 * 1024 * 1024  # for Retry-After; measured S3->S3 streaming is faster


class ArchiveService:
    def __init__(self, repository, storage, settings, queue, clock=utcnow, obs=NOOP):
        self.repo = repository
        self.storage = storage
        self.settings = settings
        self.queue = queue
        self.clock = clock
        self.obs = obs

    # -- the API call ------------------------------------------------------------
    def request(self, owner: str, batch_id: str, partial: bool) -> dict:
        """{"status": "ready", "url", "file_name", "expires_at", "size"} or {"status": "building", "retry_after"}."""
        batch = owned_batch(self.repo, owner, batch_id)
        plan = self._plan(batch, partial)
        head = self.storage.head(plan.key)
        if head is not None:
            size = int(head["ContentLength"])
        elif plan.bytes <= self.settings.archive_sync_max_bytes and \
                len(plan.entries) < self.settings.archive_sync_max_entries:
            size = self._build(plan)
        else:
            now = self.clock()
            if self.repo.claim_archive_build(batch_id, plan.fingerprint, iso(now), iso(now - BUILD_STALE_AFTER)):
                self.queue.request_build(batch_id, partial)
            seconds = plan.bytes / ASSUMED_BYTES_PER_SECOND
            return {"status": "building", "retry_after": int(min(30, max(2, seconds / 4))),
                    "file_name": plan.file_name}
        expires = self.clock() + timedelta(seconds=self.settings.download_ttl_seconds)
        return {"status": "ready", "file_name": plan.file_name, "expires_at": iso(expires), "size": size,
                "url": self.storage.presign_download(plan.key, self.settings.download_ttl_seconds, plan.file_name)}

    # -- the builder function ------------------------------------------------------
    def build_requested(self, batch_id: str, partial: bool) -> str | None:
        batch = self.repo.get_batch(batch_id)
        if batch is None:
            return None  # deleted meanwhile
        try:
            plan = self._plan(batch, partial)
        except NotReady:
            return None
        if self.storage.head(plan.key) is None:
            try:
                self._build(plan)
            except NotFound:
                return None  # deleted while it was built
            finally:
                self.repo.release_archive_build(batch_id, plan.fingerprint)
        return plan.key

    # -- planning and building -----------------------------------------------------
    def _plan(self, batch: dict, partial: bool) -> "Plan":
        jobs = list(self.repo.all_jobs(batch["id"]))
        finished = [j for j in jobs if j["status"] in JOB_FINAL_STATUSES]
        total = int(batch["total_files"])
        if batch["status"] not in FINAL_STATUSES and not partial:
            raise NotReady(f"batch {batch['id']} is still {batch['status']} ({len(finished)} of {total} files "
                           "finished); wait for it to finish or add ?partial=true for what is finished so far")
        if not finished:
            raise NotReady(f"nothing in batch {batch['id']} is finished yet; try again once files are processed")
        pipelines = {p["id"]: p for p in batch["pipelines"]}
        archive_jobs = [_archive_job(j, pipelines) for j in jobs]
        base = batch["base_directory_name"]
        entries, manifest = plan_archive(base, archive_jobs, [p["name"] for p in batch["pipelines"]],
                                         {"prefix": batch["customer_prefix"], "date": batch["batch_date"]})
        digest = hashlib.sha256()
        digest.update(base.encode())
        digest.update(manifest)
        for e in entries:
            digest.update(f"\0{e.arcname}\0{e.key}\0{e.size}".encode())
        for j in sorted(jobs, key=lambda j: j["job_id"]):
            digest.update(f"\0{j['job_id']}:{j['status']}:{int(j.get('attempt') or 0)}".encode())
        fingerprint = digest.hexdigest()[:20]
        file_name = f"{base}.zip"
        return Plan(batch_id=batch["id"], entries=entries, manifest=manifest, manifest_name=manifest_arcname(base),
                    fingerprint=fingerprint, file_name=file_name,
                    key=archive_key(batch["id"], fingerprint, file_name),
                    bytes=sum(e.size for e in entries) + len(manifest))

    def _build(self, plan: "Plan") -> int:
        with self.obs.transition("archive.built", batch_id=plan.batch_id) as step:
            step.fields.update(key=plan.key, entries=len(plan.entries))
            chunks = stream_zip(plan.entries, self.storage.read_chunks, plan.manifest, plan.manifest_name)
            try:
                with self.obs.span("archive"):
                    result = self.storage.write_stream(plan.key, chunks, "application/zip", plan.file_name)
            except Exception:
                self.obs.metric(ARCHIVE_BUILDS_FAILED)
                raise
            seconds = step.elapsed_ms() / 1000
            step.fields.update(bytes=result["size"], parts=result["parts"])
            self.obs.metric(ARCHIVE_BUILD_DURATION, seconds)
            self.obs.metric(ARCHIVE_BYTES, result["size"])
            # A delete that swept the archives while this one was being written would leave it behind.
            current = self.repo.get_batch(plan.batch_id)
            if current is None or current["status"] == DELETING:
                self.storage.delete(plan.key)
                step.outcome = "deleted_meanwhile"
                raise NotFound(f"batch {plan.batch_id} not found")
            step.outcome = "built"
            return result["size"]

    # -- one job's output ------------------------------------------------------------
    def job_output(self, owner: str, job_id: str, pipeline_id: str | None) -> str:
        job = self.repo.find_job(job_id) if is_uuid(job_id) else None
        if job is None or job["owner"] != owner:
            raise NotFound(f"job {job_id} not found")
        if job["status"] != JOB_COMPLETED:
            raise Conflict(f"job {job_id} is {job['status']}; only completed jobs have outputs to download")
        outputs = job.get("outputs") or []
        if pipeline_id:
            chosen = [o for o in outputs if o["pipeline_id"] == pipeline_id]
            if not chosen:
                raise BadRequest(f"job {job_id} has no output for pipeline {pipeline_id}; its pipelines: "
                                 f"{', '.join(o['pipeline_id'] for o in outputs)}")
        elif len(outputs) > 1:
            raise BadRequest(f"job {job_id} has outputs of {len(outputs)} pipelines; choose one with "
                             f"?pipeline_id= (one of: {', '.join(o['pipeline_id'] for o in outputs)})")
        else:
            chosen = outputs
        out = chosen[0]
        stem = job["file_name"].rsplit(".", 1)[0] if "." in job["file_name"] else job["file_name"]
        ext = out["key"].rsplit(".", 1)[-1]
        return self.storage.presign_download(out["key"], self.settings.download_ttl_seconds, f"{stem}.{ext}")


@dataclass
class Plan:
    batch_id: str
    entries: list[PlannedEntry]
    manifest: bytes
    manifest_name: str
    fingerprint: str
    file_name: str
    key: str
    bytes: int


def _archive_job(job: dict, pipelines: dict) -> ArchiveJob:
    outputs = tuple(
        ArchiveOutput(pipeline_id=o["pipeline_id"],
                      pipeline_name=pipelines.get(o["pipeline_id"], {}).get("name", "output"),
                      key=o["key"], extension=o["key"].rsplit(".", 1)[-1], size=int(o["size"]),
                      width=int(o["width"]), height=int(o["height"]),
                      filename=pipelines.get(o["pipeline_id"], {}).get("filename"))
        for o in (job.get("outputs") or [])) if job["status"] == JOB_COMPLETED else ()
    return ArchiveJob(file_name=job["file_name"], status=job["status"], error_code=job.get("error_code"),
                      error_message=job.get("error_message"), outputs=outputs,
                      position=int(job["position"]) if job.get("position") is not None else None)
