"""Batch use cases: create (with presigned uploads), read, list, stats, jobs, delete."""
from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Callable

from ..domain import naming
from ..domain.batches import (
    BATCH_STATUSES, JOB_AWAITING, JOB_STATUSES, SORT_FIELDS, BatchQuery, CreateBatch, FileSpec, NewBatch, NewJob,
    parse_create, upload_window,
)
from ..domain.integrations import parse_patch
from ..domain.buckets import bucket_count, bucket_of, chunk_count, chunk_of
from ..domain.keys import parse_upload_key, upload_key
from ..domain.multipart import plan_parts, uses_multipart
from ..domain.validation import Invalid
from ..errors import BadRequest, NotFound, TooLarge
from ..observability import NOOP
from .clock import iso, parse_iso, utcnow
from .ownership import is_uuid, owned_batch
from .paging import Cursors, choice_param, limit_param
from .views import batch_view, job_view, multipart_upload_view, upload_view

UPLOADS_PER_RESPONSE = 1000   # keeps a response far below Lambda's 6 MB payload limit
JOBS_PAGE_DEFAULT, JOBS_PAGE_MAX = 1000, 1000


class BatchService:
    def __init__(self, repository, storage, settings, queue=None, clock=utcnow, new_id=lambda: str(uuid.uuid4()),
                 maintenance=None, obs=NOOP):
        self.repo = repository
        self.obs = obs
        self.storage = storage
        self.settings = settings
        self.queue = queue
        self.maintenance = maintenance
        self.clock = clock
        self.new_id = new_id
        self.cursors = Cursors(settings.cursor_signing_key)

    # -- create ------------------------------------------------------------
    def create(self, owner: str, payload) -> dict:
        batch, records = self.open(owner, self.parse(payload), self.new_id())
        uploads = self._presign(records[:UPLOADS_PER_RESPONSE], batch["upload_expires_at"])
        more = len(records) > UPLOADS_PER_RESPONSE
        next_cursor = self.cursors.encode(f"uploads|{batch['id']}", self.repo.jobs_after(
            records[UPLOADS_PER_RESPONSE - 1])) if more else None
        return {"batch": batch_view(batch), "uploads": uploads, "uploads_next_cursor": next_cursor}

    def parse(self, payload) -> CreateBatch:
        try:
            return parse_create(payload, self.settings.limits)
        except Invalid as exc:
            raise (TooLarge if exc.too_large else BadRequest)(exc.message) from None

    def open(self, owner: str, request: CreateBatch, batch_id: str,
             place: Callable[[str, FileSpec], tuple[str, str]] | None = None) -> tuple[dict, list[dict]]:
        """Store the batch and its jobs; (batch, job records). `place(batch_id, file)` gives each
        file's (job id, key): by default a new id and its upload key (drop folders place files
        where they already are). Raises BadRequest before writing anything when a pipeline is unknown."""
        pipelines = self._pipelines(owner, request)
        now = self.clock()
        names = [f.name for f in request.files]
        prefix = request.customer_prefix or naming.customer_prefix(names)
        batch_date = now.strftime("%Y-%m-%d")
        counter = self.repo.next_counter(owner, prefix, batch_date)
        buckets = bucket_count(len(request.files))
        jobs = []
        for position, spec in enumerate(request.files):
            job_id, key = place(batch_id, spec) if place else self._upload_place(batch_id, spec)
            jobs.append(NewJob(job_id, position, spec.name, spec.size, spec.content_type, key,
                               bucket_of(job_id, buckets)))
        new = NewBatch(
            id=batch_id, owner=owner, customer_prefix=prefix, batch_date=batch_date, batch_counter=counter,
            base_directory_name=naming.directory_name(prefix, batch_date, counter),
            description=request.description or naming.auto_description(names), pipelines=tuple(pipelines),
            created=now, created_at=iso(now),
            upload_expires_at=iso(now + timedelta(seconds=upload_window(
                self.settings.upload_ttl_seconds, len(request.files), sum(f.size for f in request.files)))),
            jobs=tuple(jobs),
            integrations=request.integrations, buckets=buckets)
        batch = self.repo.create_batch(new)   # the first chunk's jobs are materialised with it
        chunks = chunk_count(new.total_files)
        if chunks > 1 and self.maintenance is not None:   # the others in the background (or on demand)
            # files placed by the caller (drop folders) are stored already: the step announces them
            self.maintenance.send_many([{"kind": "materialize", "batch_id": batch_id, "chunk": c,
                                         "announce": place is not None} for c in range(1, chunks)])
        self.obs.info("batch.created", batch_id=batch_id, owner=owner, outcome=batch["status"],
                      base_directory_name=new.base_directory_name, files=len(jobs),
                      bytes=sum(f.size for f in request.files), pipelines=len(pipelines))
        return batch, new.job_records()

    def _upload_place(self, batch_id: str, spec: FileSpec) -> tuple[str, str]:
        job_id = self.new_id()
        return job_id, upload_key(batch_id, job_id, spec.name)

    def _pipelines(self, owner: str, request: CreateBatch) -> list[dict]:
        found = self.repo.get_pipelines(owner, [p for p in request.pipeline_ids if is_uuid(p)])  # ids are UUIDs
        missing = [p for p in request.pipeline_ids if p not in found]
        if missing:
            raise BadRequest(f"unknown pipeline id(s): {', '.join(missing)}; create them with POST /pipelines "
                             "or list yours with GET /pipelines")
        return [found[p] for p in request.pipeline_ids]

    def _presign(self, jobs: list[dict], expires_at: str) -> list[dict]:
        """U for each job: a presigned POST, or for files above the multipart threshold the
        plan of their parts (their URLs come from POST .../multipart). Files already in the
        bucket (drop folders) get none: nobody uploads them."""
        remaining = int((parse_iso(expires_at) - self.clock()).total_seconds())
        if remaining <= 0:
            return []
        uploads = []
        for j in jobs:
            if parse_upload_key(j["key"]) is None:
                continue
            size = int(j["size"])
            if uses_multipart(size, self.settings.multipart_threshold):
                plan = plan_parts(size, self.settings.multipart_part_size)
                uploads.append(multipart_upload_view(j, plan.part_size, plan.count, expires_at))
            else:
                uploads.append(upload_view(j, self.storage.presign_upload(j["key"], size, j["content_type"], remaining),
                                           expires_at))
        return uploads

    # -- uploads of an existing batch (large batches, resuming) ------------
    def uploads(self, owner: str, batch_id: str, params: dict) -> dict:
        batch = owned_batch(self.repo, owner, batch_id, counts=False)
        limit = limit_param(params, default=UPLOADS_PER_RESPONSE, maximum=UPLOADS_PER_RESPONSE)
        start = self.cursors.decode(params.get("cursor"), f"uploads|{batch_id}")
        page = self.repo.list_jobs(batch_id, limit, start)
        # An upload is handed out only once its job has a record (an arrival claims it).
        for chunk in sorted({chunk_of(int(j["position"])) for j in page.items}):
            self.repo.materialize_jobs(batch, chunk)
        waiting = [j for j in page.items if j["status"] == JOB_AWAITING]
        return {"uploads": self._presign(waiting, batch["upload_expires_at"]),
                "next_cursor": self.cursors.encode(f"uploads|{batch_id}", page.last_key)}

    # -- PATCH: description and integration fields, in any status -------------
    def update(self, owner: str, batch_id: str, payload) -> dict:
        try:
            changes = parse_patch(payload)
        except Invalid as exc:
            raise BadRequest(exc.message) from None
        batch = owned_batch(self.repo, owner, batch_id)
        updated = self.repo.update_batch_fields(batch, changes, iso(self.clock()))
        if updated is None:   # deleted meanwhile
            raise NotFound(f"batch {batch_id} not found")
        return {"batch": batch_view(updated)}

    def materialize(self, batch_id: str, chunk: int) -> int:
        """The background step after a big create (maintenance queue); idempotent."""
        batch = self.repo.get_batch(batch_id, counts=False)
        if batch is None or batch["status"] not in BATCH_STATUSES:   # gone, or being deleted
            return 0
        return self.repo.materialize_jobs(batch, chunk)

    # -- read ----------------------------------------------------------------
    def get(self, owner: str, batch_id: str, params: dict) -> dict:
        batch = owned_batch(self.repo, owner, batch_id)
        limit = limit_param(params, "jobs_limit", JOBS_PAGE_DEFAULT, JOBS_PAGE_MAX)
        start = self.cursors.decode(params.get("jobs_cursor"), f"jobs|{batch_id}", "jobs_cursor")
        page = self.repo.list_jobs(batch_id, limit, start)
        view = batch_view(batch)
        view["jobs"] = [job_view(j, self.preview_url) for j in page.items]
        view["jobs_next_cursor"] = self.cursors.encode(f"jobs|{batch_id}", page.last_key)
        return {"batch": view}

    def list(self, owner: str, params: dict) -> dict:
        prefix = (params.get("customer_prefix") or "").strip() or None
        if prefix and len(prefix) > naming.MAX_PREFIX_LENGTH:   # index keys have a size limit in DynamoDB
            raise BadRequest(f"customer_prefix must be at most {naming.MAX_PREFIX_LENGTH} characters")
        search = (params.get("search") or "").strip() or None
        if search and len(search) > 100:
            raise BadRequest("search must be at most 100 characters")
        query = BatchQuery(owner=owner, status=choice_param(params, "status", BATCH_STATUSES),
                           customer_prefix=prefix, search=search,
                           sort_by=choice_param(params, "sort_by", SORT_FIELDS, "created_at"),
                           ascending=choice_param(params, "sort_order", ("asc", "desc"), "desc") == "asc",
                           limit=limit_param(params))
        page = self.repo.list_batches(query, self.cursors.decode(params.get("cursor"), query.scope()))
        return {"batches": [batch_view(b) for b in page.items],
                "next_cursor": self.cursors.encode(query.scope(), page.last_key)}

    def stats(self, owner: str) -> dict:
        s = self.repo.stats(owner)
        total = s.get("total_batches", 0)
        out = {"total_batches": total}
        for status in BATCH_STATUSES:
            out[status] = s.get(status, 0)
        # Every figure covers the batches the owner has now, of every date and status: a deleted
        # batch leaves all of them at once (API.md's "all time" is across time, not past deletes).
        out["total_files_all_time"] = s.get("files_current", 0)
        out["avg_files_per_batch"] = round(s.get("files_current", 0) / total, 2) if total else 0
        out["max_files_in_batch"] = s.get("max_files_in_batch", 0)
        return out

    def preview_url(self, key: str) -> str:
        # Local signing, no request: about 0.6 ms a URL here (README "Previews").
        return self.storage.presign_download(key, self.settings.download_ttl_seconds)

    # -- jobs ----------------------------------------------------------------
    def get_job(self, owner: str, job_id: str) -> dict:
        job = self.repo.find_job(job_id) if is_uuid(job_id) else None
        if job is None or job["owner"] != owner:
            raise NotFound(f"job {job_id} not found")
        batch = self.repo.get_batch(job["batch_id"])
        if batch is None:
            raise NotFound(f"job {job_id} not found")
        return {"job": {**job_view(job, self.preview_url), "batch_id": batch["id"], "base_directory_name": batch["base_directory_name"]}}

    def jobs(self, owner: str, params: dict) -> dict:
        grouped = params.get("grouped")
        if grouped not in (None, "", "true", "false"):
            raise BadRequest(f"grouped must be true or false, got {grouped!r}")
        if grouped == "true":
            return self.list(owner, params)
        status = choice_param(params, "status", JOB_STATUSES)
        if status is None:
            raise BadRequest("give grouped=true (batches with their aggregates) or status=<job status> "
                             f"(one of: {', '.join(JOB_STATUSES)})")
        limit = limit_param(params)
        scope = f"jobs-by-status|{owner}|{status}"
        page = self.repo.jobs_by_status(owner, status, limit, self.cursors.decode(params.get("cursor"), scope))
        return {"jobs": [{**job_view(j, self.preview_url), "batch_id": j["batch_id"]} for j in page.items],
                "next_cursor": self.cursors.encode(scope, page.last_key)}
