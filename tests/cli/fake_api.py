"""An in-memory stand-in for the image-batch API and for S3, served through httpx.MockTransport.

It follows docs API.md closely enough for the CLI to be driven end to end: pipelines, batches with
presigned-POST uploads (checked the way S3 would check them), processing that advances one
file per poll, archives that are "being prepared" for a while, cancel/retry/delete and stats.
Anything the client does wrong is recorded in `violations` instead of raising, so a test
fails with a readable list rather than a traceback from inside a worker thread.
"""

from __future__ import annotations

import io
import json
import re
import uuid
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import httpx

TOKEN = "local-dev-token"
S3 = "https://s3.fake.test"
BUCKET_URL = f"{S3}/uploads-bucket"
FINAL = ("completed", "completed_with_errors", "failed", "cancelled")


@dataclass
class ReceivedUpload:
    key: str
    part_names: list[str]  # in the order they were sent
    fields: dict[str, str]
    file_name: str | None
    file_content_type: str | None
    file_bytes: bytes
    headers: httpx.Headers


def error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"Code": code, "Message": message})


def s3_error(status: int, code: str, message: str) -> httpx.Response:
    xml = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    return httpx.Response(status, content=xml.encode(), headers={"Content-Type": "application/xml"})


def parse_multipart(request: httpx.Request) -> list[tuple[dict[str, str], bytes]]:
    """Exact multipart parsing (the email module would mangle binary bodies)."""
    boundary = request.headers["content-type"].split("boundary=", 1)[1].encode()
    body = request.read()
    sections = body.split(b"--" + boundary)
    if sections[-1].strip() != b"--":
        raise ValueError("multipart body is not terminated")
    parts = []
    for section in sections[1:-1]:
        head, _, data = section[2:].partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode().split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        parts.append((headers, data[:-2]))
    return parts


def disposition_param(value: str, param: str) -> str | None:
    match = re.search(rf'{param}="([^"]*)"', value)
    return match.group(1) if match else None


@dataclass
class FakeService:
    pipelines: dict[str, dict] = field(default_factory=dict)
    batches: dict[str, dict] = field(default_factory=dict)
    jobs: dict[str, list[dict]] = field(default_factory=dict)
    uploads: dict[str, dict] = field(default_factory=dict)  # S3 key -> what was promised
    received: list[ReceivedUpload] = field(default_factory=list)
    api_requests: list[httpx.Request] = field(default_factory=list)
    s3_requests: list[httpx.Request] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    # Knobs for tests.
    s3_faults: dict[str, list] = field(default_factory=dict)  # file name -> statuses/exceptions
    failing_files: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (code, msg)
    archive_plan: list[int] = field(default_factory=list)  # e.g. [202, 202]: then the redirect
    retry_after: str = "3"
    archive_disposition: str | None = "default"  # None: no Content-Disposition header
    jobs_page_size: int = 1000
    steps_per_poll: int = 1
    api_down: bool = False
    max_files: int = 10_000
    uploads_per_response: int = 1000  # POST /batches returns this many links, the rest by page
    uploads_route: bool = True  # False: a server without GET /batches/{id}/uploads
    links: dict[str, dict] = field(default_factory=dict)  # job id -> its presigned POST
    # True: `progress.uploaded` counts a file only once processing has finished it, as a
    # service whose storage events are still queued behind a processing backlog would.
    uploaded_lags: bool = False
    last_batch_body: dict | None = None
    last_pipeline_body: dict | None = None
    staged: dict[str, tuple] = field(default_factory=dict)  # S3 key -> (bytes, content type, file name)
    sheet_part_files: int = 300
    # Uploads in parts: files above the threshold get a MULTIPART U; parts held per job id
    multipart_threshold: int | None = None
    part_size: int = 5
    parts_held: dict[str, dict[int, bytes]] = field(default_factory=dict)
    part_faults: dict[tuple[str, int], list] = field(default_factory=dict)  # (file name, part) -> faults
    parts_received: list[tuple[str, int]] = field(default_factory=list)    # (file name, part) per PUT that landed
    multipart_calls: list[tuple[str, str]] = field(default_factory=list)   # (route, file name)
    _clock: int = 0
    _counters: Counter = field(default_factory=Counter)

    # -- transports --------------------------------------------------------------------

    @property
    def api_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle_api)

    @property
    def s3_transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle_s3)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    # -- helpers for tests ---------------------------------------------------------------

    def add_pipeline(self, name: str, **fields) -> dict:
        pipeline = {
            "id": str(uuid.uuid4()), "name": name, "format": "jpeg", "width": None, "height": None,
            "fit": "contain", "quality": 85, "compression": 70, "background": "#ffffff",
            "keep_metadata": False, "upscale": False, "created_at": self._now(),
            "updated_at": self._now(), **fields,
        }
        self.pipelines[pipeline["id"]] = pipeline
        return pipeline

    def add_batch(self, names: list[str], *, processed: bool = True, prefix: str | None = None,
                  description: str | None = None) -> dict:
        """A batch created as if submitted earlier (every file uploaded)."""
        if not self.pipelines:
            self.add_pipeline("web")
        body = {"pipeline_ids": [next(iter(self.pipelines))],
                "files": [{"name": n, "size": 10, "content_type": "image/png"} for n in names]}
        if prefix:
            body["customer_prefix"] = prefix
        if description:
            body["description"] = description
        batch = self.batches[self._create_batch(body)["batch"]["id"]]
        for job in self.jobs[batch["id"]]:
            self._mark_uploaded(batch, job)
        if processed:
            self.advance(batch["id"], len(names))
        return self._public(batch)

    def advance(self, batch_id: str, steps: int) -> None:
        batch = self.batches[batch_id]
        for job in [j for j in self.jobs[batch_id] if j["status"] == "processing"][:steps]:
            failure = self.failing_files.get(job["file_name"])
            job["completed_at"] = self._now()
            if self.uploaded_lags:
                batch["progress"]["uploaded"] += 1
            if failure:
                job["status"], job["error"] = "failed", {"code": failure[0], "message": failure[1]}
                batch["progress"]["failed"] += 1
            else:
                job["status"] = "completed"
                job["outputs"] = [{"pipeline_id": pid, "key": f"outputs/{job['id']}/{pid}",
                                   "format": "jpeg", "width": 800, "height": 600, "size": 1234}
                                  for pid in batch["pipeline_ids"]]
                job["preview"] = {"url": f"{S3}/outputs/{job['id']}/preview.webp?X-Amz-Signature=abc",
                                  "width": 320, "height": 240, "format": "webp"}
                batch["progress"]["succeeded"] += 1
        self._derive_status(batch)

    def uploads_for(self, name: str) -> list[ReceivedUpload]:
        return [r for r in self.received if r.file_name == name]

    # -- API -------------------------------------------------------------------------------

    ROUTES = [
        ("GET", r"/pipelines", "list_pipelines"),
        ("POST", r"/pipelines", "create_pipeline"),
        ("GET", r"/pipelines/(?P<pid>[^/]+)", "get_pipeline"),
        ("DELETE", r"/pipelines/(?P<pid>[^/]+)", "delete_pipeline"),
        ("PUT", r"/pipelines/(?P<pid>[^/]+)", "replace_pipeline"),
        ("GET", r"/batches/(?P<bid>[^/]+)/results", "results"),
        ("GET", r"/batches/(?P<bid>[^/]+)/contact-sheet", "contact_sheet"),
        ("POST", r"/batches", "post_batches"),
        ("GET", r"/batches", "list_batches"),
        ("GET", r"/batches/stats", "stats"),
        ("GET", r"/batches/(?P<bid>[^/]+)", "get_batch"),
        ("DELETE", r"/batches/(?P<bid>[^/]+)", "delete_batch"),
        ("POST", r"/batches/(?P<bid>[^/]+)/cancel", "cancel_batch"),
        ("POST", r"/batches/(?P<bid>[^/]+)/retry", "retry_batch"),
        ("GET", r"/batches/(?P<bid>[^/]+)/download", "download_batch"),
        ("GET", r"/batches/(?P<bid>[^/]+)/uploads", "pending_uploads"),
        ("POST", r"/batches/(?P<bid>[^/]+)/jobs/(?P<jid>[^/]+)/multipart", "start_multipart"),
        ("POST", r"/batches/(?P<bid>[^/]+)/jobs/(?P<jid>[^/]+)/multipart/complete", "complete_multipart"),
    ]

    def handle_api(self, request: httpx.Request) -> httpx.Response:
        self.api_requests.append(request)
        if self.api_down:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return error(401, "UnauthorizedError", "Missing or invalid bearer token")
        for method, pattern, name in self.ROUTES:
            match = re.fullmatch(pattern, request.url.path)
            if match and method == request.method:
                query = {k: v[-1] for k, v in parse_qs(request.url.query.decode()).items()}
                return getattr(self, f"_{name}")(request, query, **match.groupdict())
        return error(404, "NotFoundError", f"No route for {request.method} {request.url.path}")

    def _list_pipelines(self, request, query):
        return httpx.Response(200, json={"pipelines": list(self.pipelines.values())})

    def _validated(self, body: dict):
        """The service's own pipeline rules, so the CLI meets its exact messages and Errors list."""
        from chalicelib.domain.pipelines import validate_pipeline
        from chalicelib.domain.validation import Invalid
        try:
            return validate_pipeline(body), None
        except Invalid as exc:
            return None, httpx.Response(400, json={"Code": "BadRequestError", "Message": exc.message,
                                                   **({"Errors": exc.errors} if exc.errors else {})})

    def _create_pipeline(self, request, query):
        body = json.loads(request.content)
        self.last_pipeline_body = body
        spec, problem = self._validated(body)
        if problem:
            return problem
        if any(p["name"].casefold() == spec["name"].casefold() for p in self.pipelines.values()):
            return error(409, "ConflictError", f"a pipeline named {spec['name']!r} already exists")
        return httpx.Response(201, json={"pipeline": self.add_pipeline(**spec)})

    def _replace_pipeline(self, request, query, pid):
        if pid not in self.pipelines:
            return error(404, "NotFoundError", f"pipeline {pid} not found")
        body = json.loads(request.content)
        self.last_pipeline_body = body
        spec, problem = self._validated(body)
        if problem:
            return problem
        current = self.pipelines[pid]
        self.pipelines[pid] = {"id": pid, "created_at": current["created_at"], **spec, "updated_at": self._now()}
        return httpx.Response(200, json={"pipeline": self.pipelines[pid]})

    def _staged(self, bid: str, query: dict, name: str, content: bytes, content_type: str, **extra):
        key = f"staged/{bid}/{name}"
        self.staged[key] = (content, content_type, name)
        url = f"{S3}/{key}?X-Amz-Signature=abc"
        if query.get("redirect") == "false":
            return httpx.Response(200, json={"url": url, "file_name": name, "expires_at": "2025-11-05T15:00:00Z",
                                             "size": len(content), **extra})
        return httpx.Response(302, headers={"Location": url})

    def _results(self, request, query, bid):
        if bid not in self.batches:
            return error(404, "NotFoundError", f"batch {bid} not found")
        fmt = query.get("format", "csv")
        if fmt not in ("csv", "xlsx", "json"):
            return error(400, "BadRequestError", f"format must be one of: csv, xlsx, json; got {fmt!r}")
        rows = [f"{j['file_name']},{j['status']}" for j in self.jobs[bid]]
        body = ("file,status\r\n" + "\r\n".join(rows)).encode() if fmt != "json" else json.dumps(rows).encode()
        return self._staged(bid, query, f"{self.batches[bid]['base_directory_name']}-results.{fmt}", body,
                            "text/csv")

    def _contact_sheet(self, request, query, bid):
        if bid not in self.batches:
            return error(404, "NotFoundError", f"batch {bid} not found")
        parts = max(1, -(-len(self.jobs[bid]) // self.sheet_part_files))
        part = int(query.get("part", 1))
        if not 1 <= part <= parts:
            return error(400, "BadRequestError", f"part must be between 1 and {parts}, got {part}")
        base = self.batches[bid]["base_directory_name"]
        name = f"{base}-contact-sheet.pdf" if parts == 1 else f"{base}-contact-sheet-part-{part}-of-{parts}.pdf"
        return self._staged(bid, query, name, f"%PDF-1.4 part {part}".encode(), "application/pdf",
                            part=part, parts=parts)

    def _get_pipeline(self, request, query, pid):
        if pid not in self.pipelines:
            return error(404, "NotFoundError", f"Pipeline {pid} not found")
        return httpx.Response(200, json={"pipeline": self.pipelines[pid]})

    def _delete_pipeline(self, request, query, pid):
        if self.pipelines.pop(pid, None) is None:
            return error(404, "NotFoundError", f"Pipeline {pid} not found")
        return httpx.Response(204)

    def _create_batch(self, body: dict) -> dict:
        batch_id = str(uuid.uuid4())
        names = [f["name"] for f in body["files"]]
        prefixes = [m.group(1) for n in names if (m := re.match(r"([A-Za-z]+_[A-Za-z]+)", n))]
        prefix = body.get("customer_prefix") or (Counter(prefixes).most_common(1)[0][0]
                                                if prefixes else "MISC")
        date = "2025-11-05"
        self._counters[(prefix, date)] += 1
        counter = self._counters[(prefix, date)]
        batch = {
            "id": batch_id, "owner": "local", "customer_prefix": prefix, "batch_date": date,
            "batch_counter": counter, "base_directory_name": f"{prefix}_{date}_batch-{counter}",
            "description": body.get("description") or f"{len(names)} files",
            "pipeline_ids": body["pipeline_ids"], "total_pipelines": len(body["pipeline_ids"]),
            "total_files": len(names), "total_size": sum(f["size"] for f in body["files"]),
            "status": "queued",
            "progress": {"uploaded": 0, "succeeded": 0, "failed": 0, "cancelled": 0, "percent": 0},
            "created_at": self._now(), "updated_at": self._now(), "started_at": None,
            "completed_at": None, "upload_expires_at": "2025-11-05T15:03:11Z",
            "sample_file_names": names[:5],
        }
        self.batches[batch_id] = batch
        self.jobs[batch_id] = []
        uploads = []
        for spec in body["files"]:
            job = {"id": str(uuid.uuid4()), "file_name": spec["name"], "size": spec["size"],
                   "status": "awaiting_upload", "error": None, "outputs": [], "preview": None,
                   "created_at": self._now(), "started_at": None, "completed_at": None}
            self.jobs[batch_id].append(job)
            key = f"uploads/{batch_id}/{job['id']}/{spec['name']}"
            fields = {"key": key, "Content-Type": spec["content_type"],
                      "x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": "fake/cred",
                      "x-amz-date": "20251105T140311Z", "policy": "eyJmYWtlIjp0cnVlfQ==",
                      "x-amz-signature": "0" * 64}
            self.uploads[key] = {"batch_id": batch_id, "job": job, "size": spec["size"]}
            self.links[job["id"]] = {"job_id": job["id"], "file_name": spec["name"], "method": "POST",
                                     "url": BUCKET_URL, "fields": fields,
                                     "expires_at": batch["upload_expires_at"]}
            if self.multipart_threshold is not None and spec["size"] > self.multipart_threshold:
                self.links[job["id"]] = {"job_id": job["id"], "file_name": spec["name"], "method": "MULTIPART",
                                         "url": None, "fields": {}, "expires_at": batch["upload_expires_at"],
                                         "size": spec["size"], "part_size": self.part_size,
                                         "parts_total": -(-spec["size"] // self.part_size)}
            uploads.append(self.links[job["id"]])
        more = len(uploads) > self.uploads_per_response
        return {"batch": self._public(batch), "uploads": uploads[:self.uploads_per_response],
                "uploads_next_cursor": str(self.uploads_per_response) if more else None}

    def _post_batches(self, request, query):
        body = json.loads(request.content)
        self.last_batch_body = body
        ids = body.get("pipeline_ids") or ([body["pipeline_id"]] if body.get("pipeline_id") else [])
        if not ids:
            return error(400, "BadRequestError", "pipeline_ids: at least one pipeline is required")
        for pid in ids:
            if pid not in self.pipelines:
                return error(400, "BadRequestError", f"pipeline_ids: unknown pipeline {pid}")
        files = body.get("files") or []
        if not files:
            return error(400, "BadRequestError", "files: at least one file is required")
        if len(files) > self.max_files:
            return error(413, "RequestEntityTooLarge",
                         f"files: {len(files)} files is over the limit of {self.max_files}")
        dupes = [n for n, c in Counter(f["name"] for f in files).items() if c > 1]
        if dupes:
            return error(400, "BadRequestError", f"files: duplicate file name {dupes[0]}")
        body["pipeline_ids"] = ids
        return httpx.Response(201, json=self._create_batch(body))

    def _list_batches(self, request, query):
        try:
            limit = int(query.get("limit", 50))
            offset = int(query.get("cursor", 0))
        except ValueError:
            return error(400, "BadRequestError", "limit/cursor: invalid")
        if not 1 <= limit <= 200:
            return error(400, "BadRequestError", "limit: must be between 1 and 200")
        rows = [self._public(b) for b in self.batches.values()]
        if "status" in query:
            rows = [b for b in rows if b["status"] == query["status"]]
        if "customer_prefix" in query:
            rows = [b for b in rows if b["customer_prefix"] == query["customer_prefix"]]
        if "search" in query:
            needle = query["search"].casefold()
            rows = [b for b in rows if any(needle in (b[k] or "").casefold()
                                           for k in ("customer_prefix", "base_directory_name", "description"))]
        key = query.get("sort_by", "created_at")
        rows.sort(key=lambda b: b[key], reverse=query.get("sort_order", "desc") == "desc")
        page = rows[offset:offset + limit]
        more = offset + limit < len(rows)
        return httpx.Response(200, json={"batches": page, "next_cursor": str(offset + limit) if more else None})

    def _stats(self, request, query):
        batches = list(self.batches.values())
        counts = Counter(b["status"] for b in batches)
        files = [b["total_files"] for b in batches]
        stats = {"total_batches": len(batches),
                 **{s: counts.get(s, 0) for s in ("queued", "processing", *FINAL)},
                 "total_files_all_time": sum(files),
                 "avg_files_per_batch": (sum(files) / len(files)) if files else 0,
                 "max_files_in_batch": max(files, default=0)}
        return httpx.Response(200, json=stats)

    def _get_batch(self, request, query, bid):
        if bid not in self.batches:
            return error(404, "NotFoundError", f"Batch {bid} not found")
        batch = self.batches[bid]
        if batch["status"] not in FINAL:
            self.advance(bid, self.steps_per_poll)
        limit = int(query.get("jobs_limit", self.jobs_page_size))
        limit = min(limit, self.jobs_page_size)
        offset = int(query.get("jobs_cursor", 0))
        jobs = self.jobs[bid][offset:offset + limit]
        more = offset + limit < len(self.jobs[bid])
        return httpx.Response(200, json={"batch": {**self._public(batch), "jobs": jobs,
                                                   "jobs_next_cursor": str(offset + limit) if more else None}})

    def _delete_batch(self, request, query, bid):
        if self.batches.pop(bid, None) is None:
            return error(404, "NotFoundError", f"Batch {bid} not found")
        self.jobs.pop(bid)
        return httpx.Response(204)

    def _cancel_batch(self, request, query, bid):
        if bid not in self.batches:
            return error(404, "NotFoundError", f"Batch {bid} not found")
        batch = self.batches[bid]
        if batch["status"] in FINAL:
            return error(409, "ConflictError", f"Batch is already {batch['status']}; nothing to cancel")
        for job in self.jobs[bid]:
            if job["status"] in ("awaiting_upload", "processing"):
                job["status"] = "cancelled"
                batch["progress"]["cancelled"] += 1
        batch["status"] = "cancelled"
        batch["completed_at"] = self._now()
        self._derive_status(batch)
        return httpx.Response(200, json={"batch": self._public(batch)})

    def _retry_batch(self, request, query, bid):
        if bid not in self.batches:
            return error(404, "NotFoundError", f"Batch {bid} not found")
        batch = self.batches[bid]
        failed = [j for j in self.jobs[bid] if j["status"] == "failed"]
        if not failed:
            return error(409, "ConflictError", "No failed files to retry")
        for job in failed:
            job.update(status="processing", error=None)
            self.failing_files.pop(job["file_name"], None)
            batch["progress"]["failed"] -= 1
        batch["status"], batch["completed_at"] = "processing", None
        self._derive_status(batch)
        return httpx.Response(200, json={"batch": self._public(batch)})

    def _download_batch(self, request, query, bid):
        if bid not in self.batches:
            return error(404, "NotFoundError", f"Batch {bid} not found")
        batch = self.batches[bid]
        partial = query.get("partial") == "true"
        # Like the service: a failed or cancelled batch still downloads, as a ZIP of its manifest.
        finished = [j for j in self.jobs[bid] if j["status"] in ("completed", "failed", "cancelled")]
        if not finished or (batch["status"] not in FINAL and not partial):
            return error(409, "ConflictError", f"Nothing in batch {batch['base_directory_name']} has finished yet")
        if self.archive_plan:
            status = self.archive_plan.pop(0)
            if status == 202:
                return httpx.Response(202, headers={"Retry-After": self.retry_after},
                                      json={"status": "preparing"})
        return httpx.Response(302, headers={
            "Location": f"{S3}/archives/{bid}.zip?X-Amz-Signature=abc&partial={partial}"})

    def _pending_uploads(self, request, query, bid):
        if not self.uploads_route:
            return error(404, "NotFoundError", f"No route for GET {request.url.path}")
        if bid not in self.batches:
            return error(404, "NotFoundError", f"Batch {bid} not found")
        # Like the service: a page of jobs, of which only those still awaiting upload.
        offset, size = int(query.get("cursor", 0)), self.uploads_per_response
        page = self.jobs[bid][offset:offset + size]
        more = offset + size < len(self.jobs[bid])
        return httpx.Response(200, json={
            "uploads": [self.links[j["id"]] for j in page if j["status"] == "awaiting_upload"],
            "next_cursor": str(offset + size) if more else None})

    # -- uploads in parts --------------------------------------------------------------------

    def _multipart_job(self, bid: str, jid: str):
        job = next((j for j in self.jobs.get(bid, []) if j["id"] == jid), None)
        if job is None:
            return None, error(404, "NotFoundError", f"job {jid} not found in batch {bid}")
        if job["status"] != "awaiting_upload":
            return job, error(409, "ConflictError", f"{job['file_name']} is not awaiting upload")
        return job, None

    def _start_multipart(self, request, query, bid, jid):
        job, refused = self._multipart_job(bid, jid)
        if job is not None:
            self.multipart_calls.append(("start", job["file_name"]))
        if refused:
            return refused
        held = self.parts_held.setdefault(jid, {})
        size, part = job["size"], self.part_size
        total = -(-size // part)
        length = lambda n: part if n < total else size - part * (total - 1)
        uploaded = [n for n in range(1, total + 1) if n in held and len(held[n]) == length(n)]
        todo = [n for n in range(1, total + 1) if n not in uploaded and n > int(query.get("after", 0))]
        limit = int(query.get("limit", 100))
        page = todo[:limit]
        key = f"uploads/{bid}/{jid}/{job['file_name']}"
        return httpx.Response(200, json={"upload": {
            "job_id": jid, "file_name": job["file_name"], "size": size, "method": "MULTIPART", "upload_id": "u-" + jid,
            "part_size": part, "parts_total": total, "parts_uploaded": uploaded,
            "bytes_uploaded": sum(length(n) for n in uploaded), "parts_wrong": [],
            "parts": [{"part_number": n, "size": length(n),
                       "url": f"{S3}/parts/{key}?uploadId=u-{jid}&partNumber={n}&size={length(n)}"} for n in page],
            "next_after": page[-1] if len(todo) > len(page) else None,
            "expires_at": self.batches[bid]["upload_expires_at"]}})

    def _complete_multipart(self, request, query, bid, jid):
        job, refused = self._multipart_job(bid, jid)
        if job is not None:
            self.multipart_calls.append(("complete", job["file_name"]))
        if refused:
            return refused
        held = self.parts_held.get(jid, {})
        total = -(-job["size"] // self.part_size)
        missing = [n for n in range(1, total + 1) if n not in held]
        if missing:
            return error(400, "BadRequestError", f"{job['file_name']}: part {missing[0]} is missing")
        self._mark_uploaded(self.batches[bid], job)
        return httpx.Response(200, json={"job": job})

    def _s3_part(self, request: httpx.Request) -> httpx.Response:
        query = {k: v[-1] for k, v in parse_qs(request.url.query.decode()).items()}
        jid, number, signed = query["uploadId"][2:], int(query["partNumber"]), int(query["size"])
        job = next((j for jobs in self.jobs.values() for j in jobs if j["id"] == jid), None)
        if job is None:
            return s3_error(404, "NoSuchUpload", "The specified upload does not exist.")
        if request.headers.get("transfer-encoding") == "chunked" or "content-length" not in request.headers:
            self.violations.append("part sent without Content-Length (S3 signs the length)")
        data = request.read()
        faults = self.part_faults.get((job["file_name"], number))
        if faults:
            fault = faults.pop(0)
            if isinstance(fault, BaseException):
                raise fault
            return s3_error(fault, "SlowDown", "Please reduce your request rate.")
        if len(data) != signed:
            return s3_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match")
        self.parts_held.setdefault(jid, {})[number] = data
        self.parts_received.append((job["file_name"], number))
        return httpx.Response(200, headers={"ETag": f'"etag-{number}"'})

    def assembled(self, file_name: str) -> bytes:
        job = next(j for jobs in self.jobs.values() for j in jobs if j["file_name"] == file_name)
        held = self.parts_held.get(job["id"], {})
        return b"".join(held[n] for n in sorted(held))

    # -- S3 --------------------------------------------------------------------------------

    def handle_s3(self, request: httpx.Request) -> httpx.Response:
        self.s3_requests.append(request)
        if "authorization" in request.headers:
            self.violations.append(f"Authorization header sent to S3: {request.url}")
        if request.method == "POST" and str(request.url) == BUCKET_URL:
            return self._s3_post(request)
        if request.method == "PUT" and request.url.path.startswith("/parts/"):
            return self._s3_part(request)
        if request.method == "GET" and request.url.path.startswith("/archives/"):
            return self._s3_archive(request)
        if request.method == "GET" and request.url.path.lstrip("/") in self.staged:
            content, content_type, name = self.staged[request.url.path.lstrip("/")]
            return httpx.Response(200, content=content, headers={
                "Content-Type": content_type, "Content-Disposition": f'attachment; filename="{name}"'})
        return s3_error(404, "NoSuchKey", "The specified key does not exist.")

    def _s3_post(self, request: httpx.Request) -> httpx.Response:
        if "content-length" not in request.headers:
            self.violations.append("upload without Content-Length (S3 refuses chunked POSTs)")
        parts = parse_multipart(request)
        names = [disposition_param(h.get("content-disposition", ""), "name") for h, _ in parts]
        if "file" not in names or names[-1] != "file":
            self.violations.append(f"'file' must be the last form part, got {names}")
            return s3_error(400, "InvalidArgument", "POST requires exactly one file upload per request.")
        fields = {n: d.decode() for n, (h, d) in zip(names[:-1], parts[:-1])}
        file_headers, data = parts[-1]
        key = fields.get("key")
        promised = self.uploads.get(key)
        if promised is None:
            self.violations.append(f"upload for unknown key {key}")
            return s3_error(403, "AccessDenied", "Invalid according to Policy: key")
        expected = {k for k in ("policy", "x-amz-signature", "x-amz-credential", "Content-Type")}
        if not expected <= fields.keys():
            self.violations.append(f"missing presigned fields: {expected - fields.keys()}")
        file_name = disposition_param(file_headers.get("content-disposition", ""), "filename")
        self.received.append(ReceivedUpload(
            key=key, part_names=names, fields=fields, file_name=file_name,
            file_content_type=file_headers.get("content-type"), file_bytes=data,
            headers=request.headers))
        faults = self.s3_faults.get(promised["job"]["file_name"])
        if faults:
            fault = faults.pop(0)
            if isinstance(fault, BaseException):
                raise fault
            if fault == 403:
                return s3_error(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
            return s3_error(fault, "SlowDown", "Please reduce your request rate.")
        if len(data) != promised["size"]:
            return s3_error(400, "EntityTooLarge" if len(data) > promised["size"] else "EntityTooSmall",
                            "Your proposed upload does not match the policy's content-length-range")
        batch = self.batches.get(promised["batch_id"])
        if batch is not None and promised["job"]["status"] == "awaiting_upload":
            self._mark_uploaded(batch, promised["job"])
        return httpx.Response(204)

    def _s3_archive(self, request: httpx.Request) -> httpx.Response:
        bid = request.url.path.removeprefix("/archives/").removesuffix(".zip")
        batch = self.batches.get(bid)
        if batch is None:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        headers = {"Content-Type": "application/zip"}
        if self.archive_disposition == "default":
            headers["Content-Disposition"] = f'attachment; filename="{batch["base_directory_name"]}.zip"'
        elif self.archive_disposition:
            headers["Content-Disposition"] = self.archive_disposition
        return httpx.Response(200, content=self.archive_bytes(bid), headers=headers)

    def archive_bytes(self, bid: str) -> bytes:
        batch = self.batches[bid]
        buffer = io.BytesIO()
        # A fixed timestamp: zipfile would otherwise stamp the current second and two builds of
        # the same archive could differ.
        def entry(name: str) -> zipfile.ZipInfo:
            return zipfile.ZipInfo(name, date_time=(2025, 11, 5, 14, 3, 11))

        with zipfile.ZipFile(buffer, "w") as archive:
            for job in self.jobs[bid]:
                if job["status"] == "completed":
                    archive.writestr(entry(f"{batch['base_directory_name']}/{job['file_name']}"), b"output")
            archive.writestr(entry(f"{batch['base_directory_name']}/manifest.csv"), "file,pipeline,status\n")
        return buffer.getvalue()

    # -- internals -------------------------------------------------------------------------

    def _mark_uploaded(self, batch: dict, job: dict) -> None:
        job["status"], job["started_at"] = "processing", self._now()
        if not self.uploaded_lags:
            batch["progress"]["uploaded"] += 1
        batch["started_at"] = batch["started_at"] or self._now()
        if batch["status"] == "queued":
            batch["status"] = "processing"

    def _derive_status(self, batch: dict) -> None:
        p = batch["progress"]
        done = p["succeeded"] + p["failed"] + p["cancelled"]
        p["percent"] = round(100 * done / batch["total_files"])
        if batch["status"] in FINAL:
            return
        if done == batch["total_files"]:
            batch["status"] = ("completed" if p["failed"] == 0 else
                               "completed_with_errors" if p["succeeded"] else "failed")
            batch["completed_at"] = self._now()

    def _public(self, batch: dict) -> dict:
        return json.loads(json.dumps(batch))

    def _now(self) -> str:
        self._clock += 1
        return f"2025-11-05T14:{self._clock // 60 % 60:02d}:{self._clock % 60:02d}Z"

