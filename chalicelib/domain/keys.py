"""Where things live in the bucket: the one place that spells S3 key formats. Pure.

Two layouts hold a job's input. `uploads/{batch_id}/{job_id}/{name}`: uploads through the API
(presigned POST or multipart), ours to remove. `drop/{owner}/{folder}/{name}`: objects a studio
wrote straight into the bucket (API.md "Drop folders"), processed in place and removed only with
their batch; the marker `drop/{owner}/{folder}/_READY` turns a folder into a batch.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

UPLOAD_PREFIX = "uploads/"
OUTPUT_PREFIX = "outputs/"
ARCHIVE_PREFIX = "archives/"
DROP_PREFIX = "drop/"
DROP_MARKER = "_READY"


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
def upload_prefix(batch_id: str) -> str:
    """Every upload of one batch (and its multipart uploads in progress)."""
    return f"{UPLOAD_PREFIX}{batch_id}/"


def batch_prefixes(batch_id: str) -> tuple[str, ...]:
    """Every prefix holding objects of one batch."""
    return tuple(f"{prefix}{batch_id}/" for prefix in (UPLOAD_PREFIX, OUTPUT_PREFIX, ARCHIVE_PREFIX))


_UPLOAD_KEY = re.compile(rf"^{UPLOAD_PREFIX}(?P<batch>[0-9a-f-]{{36}})/(?P<job>[0-9a-f-]{{36}})/[^/]+$")


def parse_upload_key(key: str) -> tuple[str, str] | None:
    """(batch_id, job_id) of an object in the upload layout, else None."""
    match = _UPLOAD_KEY.match(key)
    return (match.group("batch"), match.group("job")) if match else None


@dataclass(frozen=True)
class DropKey:
    """An object directly in a drop folder: `drop/{owner}/{folder}/{name}`."""
    owner: str
    folder: str
    name: str

    @property
    def folder_prefix(self) -> str:
        return drop_folder_prefix(self.owner, self.folder)

    @property
    def is_marker(self) -> bool:
        return self.name == DROP_MARKER


def drop_folder_prefix(owner: str, folder: str) -> str:
    return f"{DROP_PREFIX}{owner}/{folder}/"


def drop_marker_key(owner: str, folder: str) -> str:
    return drop_folder_prefix(owner, folder) + DROP_MARKER


def parse_drop_key(key: str) -> DropKey | None:
    """The parts of an object directly in a drop folder, else None (deeper objects, the folder
    itself, anything outside drop/)."""
    if not key.startswith(DROP_PREFIX):
        return None
    parts = key[len(DROP_PREFIX):].split("/")
    if len(parts) != 3 or not all(parts):
        return None
    return DropKey(*parts)
