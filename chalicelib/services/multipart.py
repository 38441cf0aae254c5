"""Resumable uploads of large files: one S3 multipart upload per job, filled by the client through
presigned part URLs (bytes never pass through Lambda), resumed from what S3 lists, completed and
aborted here. The completed object lands on the job's usual upload key, so S3 announces it like a
POST (ObjectCreated:CompleteMultipartUpload) and the arrival and processing path is unchanged,
size check included.

Nothing is stored about an upload but S3's own state: the upload in progress for a job's key is
found with ListMultipartUploads and its parts with ListParts, so any client (the CLI after a
crash, the browser after a reload) resumes where the last one stopped. Two clients starting at
once may create two uploads; both then take the oldest and the newer one is aborted, so they
converge on one. The part size depends on the file's size only (domain/multipart.py).
"""
from __future__ import annotations

from ..domain.batches import CANCELLED, JOB_AWAITING, JOB_CANCELLED
from ..domain.keys import parse_upload_key
from ..domain.multipart import PartPlan, plan_parts, uses_multipart
from ..errors import BadRequest, Conflict, NotFound
from .clock import iso, parse_iso, utcnow
from .ownership import is_uuid, owned_batch
from .paging import limit_param
from .views import job_view

PARTS_PAGE_DEFAULT, PARTS_PAGE_MAX = 100, 1000   # 1,000 part URLs are about 700 kB of JSON


class MultipartService:
    def __init__(self, repository, storage, settings, clock=utcnow):
        self.repo = repository
        self.storage = storage
        self.settings = settings
        self.clock = clock

    # -- start or resume -----------------------------------------------------------
    def start(self, owner: str, batch_id: str, job_id: str, params: dict) -> dict:
        """The job's upload in progress (a new one when there is none): its parts S3 holds and
        presigned URLs for the parts still to send after part `after`, `limit` at a time."""
        after = _int_param(params, "after", 0)
        limit = limit_param(params, "limit", PARTS_PAGE_DEFAULT, PARTS_PAGE_MAX)
        batch, job = self._job(owner, batch_id, job_id)
        self._check_uploadable(batch, job)
        remaining = self._remaining(batch)
        plan = self.plan(job)
        upload_id, held = self._current(job, create=True)
        check = plan.check({n: p["size"] for n, p in held.items()})
        todo = [n for n in check.to_send if n > after]
        page = todo[:limit]
        parts = [{"part_number": n, "size": plan.length(n),
                  "url": self.storage.presign_part(job["key"], upload_id, n, plan.length(n), remaining)}
                 for n in page]
        return {"upload": {
            **self._describe(batch, job, plan), "upload_id": upload_id,
            "parts_uploaded": check.uploaded, "bytes_uploaded": check.bytes_uploaded,
            "parts_wrong": [{"part_number": w.number, "size": w.size, "expected": w.expected} for w in check.wrong],
            "parts": parts, "next_after": page[-1] if len(todo) > len(page) else None,
        }}

    # -- complete ---------------------------------------------------------------------
    def complete(self, owner: str, batch_id: str, job_id: str) -> dict:
        """Join the parts into the file once S3 holds every one at its planned size; answers
        the same when asked again after success (a client that lost the answer)."""
        batch, job = self._job(owner, batch_id, job_id)
        if job["status"] not in (JOB_AWAITING, JOB_CANCELLED) and self._stored(job):
            return {"job": job_view(job)}   # it arrived already: completed before
        self._check_uploadable(batch, job)
        plan = self.plan(job)
        found = self._current(job, create=False)
        if found is None:
            if self._stored(job):
                return {"job": job_view(job)}   # completed; its arrival is on its way
            raise Conflict(f"{job['file_name']}: no upload in parts is in progress; start one with "
                           f"POST /batches/{batch_id}/jobs/{job_id}/multipart")
        self._remaining(batch)
        upload_id, held = found
        problem = plan.check({n: p["size"] for n, p in held.items()}).completion_problem(job["file_name"])
        if problem:
            raise BadRequest(problem)
        self.storage.complete_multipart(job["key"], upload_id,
                                        [(n, held[n]["etag"]) for n in range(1, plan.count + 1)])
        return {"job": job_view(self.repo.get_job(batch_id, job_id) or job)}

    # -- abort --------------------------------------------------------------------------
    def abort(self, owner: str, batch_id: str, job_id: str) -> None:
        """Drop the job's upload in progress and its parts; the file can be started again."""
        _, job = self._job(owner, batch_id, job_id)
        if parse_upload_key(job["key"]) is None:
            return
        for upload in self._uploads(job):
            self.storage.abort_multipart(job["key"], upload["upload_id"])

    # -- helpers ----------------------------------------------------------------------------
    def plan(self, job: dict) -> PartPlan:
        return plan_parts(int(job["size"]), self.settings.multipart_part_size)

    def _job(self, owner: str, batch_id: str, job_id: str) -> tuple[dict, dict]:
        batch = owned_batch(self.repo, owner, batch_id)
        job = self.repo.get_job(batch_id, job_id) if is_uuid(job_id) else None
        if job is None:
            raise NotFound(f"job {job_id} not found in batch {batch_id}")
        return batch, job

    def _check_uploadable(self, batch: dict, job: dict) -> None:
        name = job["file_name"]
        if parse_upload_key(job["key"]) is None:
            raise Conflict(f"{name} came from a drop folder; it is not uploaded through the API")
        if batch["status"] == CANCELLED:
            raise Conflict(f"batch {batch['id']} was cancelled; its files can no longer be uploaded")
        if job["status"] != JOB_AWAITING:
            raise Conflict(f"{name} is not awaiting upload (it is {job['status']}); there is nothing to upload")
        if not uses_multipart(int(job["size"]), self.settings.multipart_threshold):
            raise BadRequest(f"{name} is {int(job['size'])} bytes, not above the multipart threshold of "
                             f"{self.settings.multipart_threshold} bytes: upload it with its presigned POST "
                             f"(GET /batches/{batch['id']}/uploads)")

    def _remaining(self, batch: dict) -> int:
        """Seconds left in the batch's upload window; part URLs expire with it."""
        remaining = int((parse_iso(batch["upload_expires_at"]) - self.clock()).total_seconds())
        if remaining <= 0:
            raise Conflict(f"the upload window of batch {batch['id']} closed at {batch['upload_expires_at']} "
                           f"(now {iso(self.clock())}); files not uploaded by then fail as upload_expired")
        return remaining

    def _uploads(self, job: dict) -> list[dict]:
        # The listing is by prefix: another file's key may only extend this one in theory
        # (one file per job folder), but keep the exact key anyway.
        return [u for u in self.storage.multipart_uploads(job["key"]) if u["key"] == job["key"]]

    def _current(self, job: dict, create: bool) -> tuple[str, dict[int, dict]] | None:
        """(upload id, parts held) of the job's upload in progress: the oldest one, others are
        aborted. With `create`, one is started when there is none."""
        for _ in range(3):   # an upload aborted between our listing and ListParts: look again
            uploads = self._uploads(job)
            if not uploads:
                if not create:
                    return None
                self.storage.start_multipart(job["key"], job["content_type"])
                uploads = self._uploads(job)   # converge with a client that started one meanwhile
            oldest, newer = uploads[0], uploads[1:]
            for upload in newer:
                self.storage.abort_multipart(job["key"], upload["upload_id"])
            held = self.storage.list_parts(job["key"], oldest["upload_id"])
            if held is not None:
                return oldest["upload_id"], held
        raise Conflict(f"{job['file_name']}: its upload in parts kept being aborted while being read; try again")

    def _stored(self, job: dict) -> bool:
        head = self.storage.head(job["key"])
        return head is not None and int(head["ContentLength"]) == int(job["size"])

    def _describe(self, batch: dict, job: dict, plan: PartPlan) -> dict:
        return {"job_id": job["job_id"], "file_name": job["file_name"], "size": int(job["size"]),
                "method": "MULTIPART", "part_size": plan.part_size, "parts_total": plan.count,
                "expires_at": batch["upload_expires_at"]}


def _int_param(params: dict, name: str, default: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be a part number (an integer of 0 or more), got {raw!r}") from None
    if value < 0:
        raise BadRequest(f"{name} must be 0 or more, got {value}")
    return value
