"""API shapes of batches, jobs and uploads (API.md: B, J, U)."""
from __future__ import annotations

from typing import Callable

from ..domain.batches import JOB_COMPLETED, percent
from ..domain.integrations import with_defaults

BATCH_FIELDS = ("id", "owner", "customer_prefix", "batch_date", "batch_counter", "base_directory_name",
                "description", "pipeline_ids", "total_pipelines", "total_files", "total_size", "status",
                "created_at", "updated_at", "started_at", "completed_at", "upload_expires_at", "sample_file_names")


def batch_view(b: dict) -> dict:
    out = {f: b.get(f) for f in BATCH_FIELDS}
    for f in ("batch_counter", "total_pipelines", "total_files", "total_size"):
        out[f] = int(out[f])
    counts = {k: int(b.get(k) or 0) for k in ("uploaded", "succeeded", "failed", "cancelled")}
    done = counts["succeeded"] + counts["failed"] + counts["cancelled"]
    out["progress"] = {**counts, "percent": percent(out["total_files"], done)}
    out["pipelines"] = b.get("pipelines") or []
    out.update(with_defaults(b))   # batches stored before version 2 show the defaults
    return out


def job_view(j: dict, preview_url: Callable[[str], str] | None = None) -> dict:
    """J. `preview_url` turns a preview's key into a short-lived URL; without it (or before the
    job is completed, or for jobs finished before previews existed) `preview` is null."""
    error = {"code": j["error_code"], "message": j.get("error_message") or ""} if j.get("error_code") else None
    return {
        "id": j["job_id"], "file_name": j["file_name"], "size": int(j["size"]),
        "content_type": j.get("content_type"), "status": j["status"], "error": error,
        "outputs": [_output_view(o) for o in j.get("outputs") or []], "preview": preview_view(j, preview_url),
        "created_at": j["created_at"], "updated_at": j.get("updated_at"),
        "started_at": j.get("started_at"), "completed_at": j.get("completed_at"),
    }


def preview_view(j: dict, preview_url: Callable[[str], str] | None) -> dict | None:
    preview = j.get("preview")
    if not preview or preview_url is None or j["status"] != JOB_COMPLETED:
        return None
    return {"url": preview_url(preview["key"]), "width": int(preview["width"]), "height": int(preview["height"]),
            "format": preview["format"]}


def _output_view(output: dict) -> dict:
    # crc32 is recorded for laying out archives (services/archives.py), not part of the API's J
    return {k: v for k, v in output.items() if k != "crc32"}


def upload_view(job: dict, presigned: dict, expires_at: str) -> dict:
    return {"job_id": job["job_id"], "file_name": job["file_name"], "method": "POST",
            "url": presigned["url"], "fields": presigned["fields"], "expires_at": expires_at}


def multipart_upload_view(job: dict, part_size: int, parts_total: int, expires_at: str) -> dict:
    """U of a file uploaded in parts: no URL of its own; the client starts (or resumes) it with
    POST /batches/{id}/jobs/{job_id}/multipart, which hands out the part URLs."""
    return {"job_id": job["job_id"], "file_name": job["file_name"], "method": "MULTIPART", "url": None,
            "fields": {}, "expires_at": expires_at, "size": int(job["size"]), "part_size": part_size,
            "parts_total": parts_total}
