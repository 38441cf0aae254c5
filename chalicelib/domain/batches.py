"""Batch rules: the create request, limits, status words and their derivation."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from . import naming
from .integrations import INTEGRATION_FIELDS, parse_integrations, with_defaults
from .validation import Invalid, reject_unknown, require_object, string, type_name

QUEUED, PROCESSING = "queued", "processing"
COMPLETED, COMPLETED_WITH_ERRORS, FAILED, CANCELLED = "completed", "completed_with_errors", "failed", "cancelled"
BATCH_STATUSES = (QUEUED, PROCESSING, COMPLETED, COMPLETED_WITH_ERRORS, FAILED, CANCELLED)
FINAL_STATUSES = frozenset((COMPLETED, COMPLETED_WITH_ERRORS, FAILED, CANCELLED))
# Internal, never shown: a delete has begun. The batch is out of every list and every figure,
# and no transition applies to it any more; its records and objects are being removed.
DELETING = "deleting"

JOB_AWAITING, JOB_PROCESSING, JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED = (
    "awaiting_upload", "processing", "completed", "failed", "cancelled")
JOB_STATUSES = (JOB_AWAITING, JOB_PROCESSING, JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED)
JOB_FINAL_STATUSES = frozenset((JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED))

MAX_PIPELINES_PER_BATCH = 10
SAMPLE_NAMES = 5

# A batch's upload window: UPLOAD_TTL_SECONDS (an hour) per 10,000 files or 50 GB begun, so a big
# batch is not cut off after the hour a small one gets (50 GB an hour is about 14 MB/s from the
# client); at most the 7 days a SigV4-presigned request can live.
UPLOAD_WINDOW_FILES = 10_000
UPLOAD_WINDOW_BYTES = 50 * 1000 ** 3
MAX_UPLOAD_WINDOW_SECONDS = 7 * 24 * 3600


def upload_window(ttl_seconds: int, files: int, total_bytes: int) -> int:
    """Seconds a new batch accepts uploads for."""
    windows = max(1, -(-files // UPLOAD_WINDOW_FILES), -(-total_bytes // UPLOAD_WINDOW_BYTES))
    return min(ttl_seconds * windows, max(ttl_seconds, MAX_UPLOAD_WINDOW_SECONDS))

# What browsers and clients send for the image types we can decode; the
# processor still decides by the bytes, this only catches obvious mistakes early.
CONTENT_TYPES = {
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "jpe": "image/jpeg", "jfif": "image/jpeg", "mpo": "image/jpeg",
    "png": "image/png", "apng": "image/png", "webp": "image/webp", "gif": "image/gif",
    "tif": "image/tiff", "tiff": "image/tiff", "bmp": "image/bmp", "ico": "image/x-icon",
    "avif": "image/avif", "avifs": "image/avif", "heic": "image/heic", "heif": "image/heif", "hif": "image/heif",
    "tga": "image/x-tga",
}
ALLOWED_CONTENT_TYPES = frozenset(CONTENT_TYPES.values()) | {
    "image/pjpeg", "image/apng", "image/x-bmp", "image/x-ms-bmp", "image/vnd.microsoft.icon",
    "image/heic-sequence", "image/heif-sequence", "image/x-targa", "image/tga",
}
_UNSPECIFIC = ("", "application/octet-stream", "binary/octet-stream")


@dataclass(frozen=True)
class Limits:
    max_files: int = 100_000
    # 5 GiB: what process_upload honours: its /tmp holds one spooled upload (6 GiB of ephemeral
    # storage in the deploy template) and decoding is bounded by pixels, not bytes (README "Limits").
    max_file_size: int = 5 * 1024 * 1024 * 1024
    # 1 TiB: a batch's ZIP is built in at most 10,000 S3 parts; at this size the largest part a
    # worker holds in memory is about 105 MiB whatever the files (domain/zip_layout.split_parts).
    max_batch_size: int = 1024 ** 4


@dataclass(frozen=True)
class FileSpec:
    name: str          # safe (NFC, validated) name
    size: int
    content_type: str


@dataclass(frozen=True)
class CreateBatch:
    pipeline_ids: tuple[str, ...]
    files: tuple[FileSpec, ...]
    description: str | None
    customer_prefix: str | None
    integrations: dict = field(default_factory=dict)   # metadata and the integration fields given

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)


def parse_create(payload, limits: Limits) -> CreateBatch:
    payload = require_object(payload)
    reject_unknown(payload, ("pipeline_ids", "pipeline_id", "description", "customer_prefix", "files")
                   + INTEGRATION_FIELDS)
    pipeline_ids = _pipeline_ids(payload)
    description = string(payload, "description", 500)
    description = description.strip() or None if description is not None else None
    prefix = string(payload, "customer_prefix", 64)
    if prefix is not None:
        try:
            prefix = naming.validate_explicit_prefix(prefix)
        except naming.NameError_ as exc:
            raise Invalid(str(exc)) from None
    integrations = parse_integrations(payload)
    files = _files(payload.get("files"), limits)
    return CreateBatch(pipeline_ids, files, description, prefix, integrations)


def _pipeline_ids(payload: dict) -> tuple[str, ...]:
    if "pipeline_ids" in payload and "pipeline_id" in payload:
        raise Invalid("give either pipeline_ids or pipeline_id, not both")
    if "pipeline_id" in payload:
        raw = [payload["pipeline_id"]]
        field = "pipeline_id"
    else:
        raw = payload.get("pipeline_ids")
        field = "pipeline_ids"
        if raw is None:
            raise Invalid("pipeline_ids is required: a list of at least one pipeline id")
        if not isinstance(raw, list):
            raise Invalid(f"pipeline_ids must be an array of pipeline ids, got {type_name(raw)}")
    if not raw:
        raise Invalid("pipeline_ids must list at least one pipeline id")
    if len(raw) > MAX_PIPELINES_PER_BATCH:
        raise Invalid(f"at most {MAX_PIPELINES_PER_BATCH} pipelines per batch, got {len(raw)}", too_large=True)
    for value in raw:
        if not isinstance(value, str) or not value:
            raise Invalid(f"{field} must hold non-empty strings, got {type_name(value)}")
    if len(set(raw)) != len(raw):
        raise Invalid(f"{field} lists a pipeline twice")
    return tuple(raw)


def _files(raw, limits: Limits) -> tuple[FileSpec, ...]:
    if raw is None:
        raise Invalid("files is required: a list of {name, size, content_type}")
    if not isinstance(raw, list):
        raise Invalid(f"files must be an array, got {type_name(raw)}")
    if not raw:
        raise Invalid("files must list at least one file")
    if len(raw) > limits.max_files:
        raise Invalid(f"a batch holds at most {limits.max_files} files, got {len(raw)}", too_large=True)
    files, seen, total = [], {}, 0
    for index, item in enumerate(raw):
        spec = _file(item, index, limits)
        key = naming.duplicate_key(spec.name)
        if key in seen:
            raise Invalid(f"files[{index}]: duplicate file name {spec.name!r} (same as files[{seen[key]}] "
                          "ignoring case and Unicode normalisation)")
        seen[key] = index
        total += spec.size
        files.append(spec)
    if total > limits.max_batch_size:
        raise Invalid(f"files total {total} bytes, over the batch limit of {limits.max_batch_size} bytes",
                      too_large=True)
    return tuple(files)


def _file(item, index: int, limits: Limits) -> FileSpec:
    where = f"files[{index}]"
    if not isinstance(item, dict):
        raise Invalid(f"{where} must be an object with name, size and content_type, got {type_name(item)}")
    reject_unknown(item, ("name", "size", "content_type"), what=where)
    raw_name = item.get("name")
    if not isinstance(raw_name, str):
        raise Invalid(f"{where}.name must be a string, got {type_name(raw_name)}")
    try:
        name = naming.safe_file_name(raw_name)
    except naming.NameError_ as exc:
        raise Invalid(f"{where}.name {_show(raw_name)} {exc}") from None
    size = item.get("size")
    if isinstance(size, bool) or not isinstance(size, int):
        raise Invalid(f"{where} ({name}): size must be an integer number of bytes, got {type_name(size)}")
    if size <= 0:
        raise Invalid(f"{where} ({name}): size must be at least 1 byte (empty files cannot be images), got {size}")
    if size > limits.max_file_size:
        raise Invalid(f"{where} ({name}): {size} bytes is over the per-file limit of {limits.max_file_size} bytes",
                      too_large=True)
    return FileSpec(name, size, _content_type(item.get("content_type"), name, where))


def _content_type(declared, name: str, where: str) -> str:
    if declared is not None and not isinstance(declared, str):
        raise Invalid(f"{where} ({name}): content_type must be a string, got {type_name(declared)}")
    declared = (declared or "").split(";")[0].strip().lower()
    if declared in _UNSPECIFIC:
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if ext not in CONTENT_TYPES:
            raise Invalid(f"{where} ({name}): cannot tell the image type; give content_type or use one of the "
                          f"extensions {', '.join(sorted(CONTENT_TYPES))}")
        return CONTENT_TYPES[ext]
    if declared not in ALLOWED_CONTENT_TYPES:
        raise Invalid(f"{where} ({name}): content_type {declared!r} is not a supported image type; supported: "
                      f"{', '.join(sorted(ALLOWED_CONTENT_TYPES))}")
    return declared


def _show(name: str) -> str:
    shown = name if len(name) <= 60 else name[:57] + "..."
    return ascii(shown) if any(ord(c) < 32 for c in shown) else repr(shown)


@dataclass(frozen=True)
class NewJob:
    """One file of a batch being created (its upload key comes from domain/keys.py)."""
    job_id: str
    position: int
    file_name: str
    size: int
    content_type: str
    key: str
    bucket: int = 0                  # domain/buckets.py: which counter and job partition it uses


@dataclass(frozen=True)
class NewBatch:
    """A batch to store, in domain terms; the repository decides its item layout and indexes."""
    id: str
    owner: str
    customer_prefix: str
    batch_date: str
    batch_counter: int
    base_directory_name: str
    description: str
    pipelines: tuple[dict, ...]      # snapshots, so later edits never change a submitted batch
    created: datetime                # to the microsecond: batches created in one second keep their order
    created_at: str
    upload_expires_at: str
    jobs: tuple[NewJob, ...]
    integrations: dict = field(default_factory=dict)
    buckets: int = 1

    @property
    def total_files(self) -> int:
        return len(self.jobs)

    @property
    def total_size(self) -> int:
        return sum(j.size for j in self.jobs)

    def record(self) -> dict:
        """The batch as the services and views see it (domain fields only)."""
        return {
            "id": self.id, "owner": self.owner, "customer_prefix": self.customer_prefix,
            "batch_date": self.batch_date, "batch_counter": self.batch_counter,
            "base_directory_name": self.base_directory_name, "description": self.description,
            "pipeline_ids": [p["id"] for p in self.pipelines], "pipelines": list(self.pipelines),
            "total_pipelines": len(self.pipelines), "total_files": self.total_files, "total_size": self.total_size,
            "status": QUEUED, "uploaded": 0, "succeeded": 0, "failed": 0, "cancelled": 0,
            "created_at": self.created_at, "updated_at": self.created_at, "started_at": None, "completed_at": None,
            "upload_expires_at": self.upload_expires_at,
            "sample_file_names": [j.file_name for j in self.jobs[:SAMPLE_NAMES]],
            **with_defaults(self.integrations),
            "buckets": self.buckets,
        }

    def job_records(self) -> list[dict]:
        return [{"batch_id": self.id, "job_id": j.job_id, "position": j.position, "owner": self.owner,
                 "file_name": j.file_name, "size": j.size, "content_type": j.content_type, "key": j.key,
                 "status": JOB_AWAITING, "created_at": self.created_at, "updated_at": self.created_at,
                 "attempt": 0, "bucket": j.bucket} for j in self.jobs]


SORT_FIELDS = ("created_at", "total_files", "status")


@dataclass(frozen=True)
class BatchQuery:
    """One page of an owner's batches, as the list view asks for it."""
    owner: str
    status: str | None = None
    customer_prefix: str | None = None
    search: str | None = None
    sort_by: str = "created_at"
    ascending: bool = False
    limit: int = 50

    def scope(self) -> str:
        """What a cursor of this query is bound to (services sign it with this)."""
        return "|".join(("batches", self.owner, self.status or "", naming.prefix_key(self.customer_prefix or ""),
                         self.search or "", self.sort_by, "asc" if self.ascending else "desc"))


def final_status(total: int, succeeded: int, failed: int, cancelled: int = 0) -> str | None:
    """The final status once every file is accounted for, else None."""
    if succeeded + failed + cancelled < total:
        return None
    if cancelled:
        return CANCELLED
    if succeeded == total:
        return COMPLETED
    if succeeded == 0:
        return FAILED
    return COMPLETED_WITH_ERRORS


def percent(total: int, done: int) -> int:
    return 100 if total == 0 else min(100, done * 100 // total)


def sample_names(files) -> list[str]:
    return [f.name for f in files[:SAMPLE_NAMES]]
