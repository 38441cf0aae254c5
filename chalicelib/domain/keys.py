"""Where things live in the bucket: the one place that spells S3 key formats. Pure."""
from __future__ import annotations

import re

UPLOAD_PREFIX = "uploads/"
OUTPUT_PREFIX = "outputs/"
ARCHIVE_PREFIX = "archives/"


def upload_key(batch_id: str, job_id: str, file_name: str) -> str:
    return f"{UPLOAD_PREFIX}{batch_id}/{job_id}/{file_name}"


def output_key(batch_id: str, job_id: str, pipeline_id: str, extension: str) -> str:
    return f"{OUTPUT_PREFIX}{batch_id}/{job_id}/{pipeline_id}.{extension}"


def preview_key(batch_id: str, job_id: str) -> str:
    """A job's small preview rendition: beside its outputs, so it goes with them."""
    return f"{OUTPUT_PREFIX}{batch_id}/{job_id}/preview.webp"


def archive_key(batch_id: str, fingerprint: str, file_name: str) -> str:
    """Files built on request for download: ZIPs, results exports, contact sheets."""
    return f"{ARCHIVE_PREFIX}{batch_id}/{fingerprint}/{file_name}"


def archive_plan_key(batch_id: str, fingerprint: str) -> str:
    """The layout of an archive being built in parallel parts, read by every part's worker.
    Beside the archive (archive file names always end in .zip), so it goes with the batch."""
    return f"{ARCHIVE_PREFIX}{batch_id}/{fingerprint}/build-plan.json.gz"


def batch_prefixes(batch_id: str) -> tuple[str, ...]:
    """Every prefix holding objects of one batch."""
    return tuple(f"{prefix}{batch_id}/" for prefix in (UPLOAD_PREFIX, OUTPUT_PREFIX, ARCHIVE_PREFIX))


_UPLOAD_KEY = re.compile(rf"^{UPLOAD_PREFIX}(?P<batch>[0-9a-f-]{{36}})/(?P<job>[0-9a-f-]{{36}})/[^/]+$")


def parse_upload_key(key: str) -> tuple[str, str] | None:
    """(batch_id, job_id) of an object in the upload layout, else None."""
    match = _UPLOAD_KEY.match(key)
    return (match.group("batch"), match.group("job")) if match else None
