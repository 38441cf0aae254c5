"""Drop folders: the marker, the folder's objects as a batch's files, and their stable ids. Pure.

API.md fixes the layout (`drop/{owner}/{folder}/`, the marker `_READY` holding a POST /batches body
without `files`). Decided here:
- The marker's fields are checked by the very code that checks POST /batches (`parse_create`),
  so whatever a batch accepts, a marker accepts; only `files` is refused, because the folder is
  the file list.
- Every object directly in the folder is a file, named by the last part of its key, in key
  order. Unlike the API, a folder's file is never refused for its type: a non-image becomes a
  job that fails on its own (`not_an_image`), as the issue asks, so the content type comes from
  the extension when it names an image type and is `application/octet-stream` otherwise.
  Objects the API could not take at all are left out, each with its reason (for the log line):
  objects in subfolders, names that are not valid file names, and a second name equal to an
  earlier one ignoring case and Unicode normalisation (they would overwrite each other in the ZIP).
- Ids are derived, not drawn: the batch's from the folder and the marker's version, each job's
  from its batch and key. A marker delivered twice (S3 and SQS deliver at least once) names the
  same batch and the same jobs, and the processor finds a job from its object's key alone.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from typing import Iterable

from . import naming
from .batches import CONTENT_TYPES, CreateBatch, FileSpec, Limits, parse_create
from .keys import DROP_MARKER, parse_drop_key
from .validation import Invalid, parse_json, type_name

MAX_MARKER_BYTES = 64 * 1024
UNKNOWN_TYPE = "application/octet-stream"
# A file that passes parse_create's file rules, standing in for the folder's files while the
# marker's own fields are checked (the real files replace it; see the module docstring).
_STAND_IN = {"name": "stand-in.png", "size": 1, "content_type": "image/png"}
_NAMESPACE = uuid.UUID("6f1d3c52-0f6e-4a34-9d55-1c0a3f6b7e21")


@dataclass(frozen=True)
class DropFile:
    key: str
    spec: FileSpec


@dataclass(frozen=True)
class Listing:
    files: tuple[DropFile, ...]
    skipped: tuple[tuple[str, str], ...]   # (key, reason)


def parse_marker(raw: bytes, limits: Limits) -> CreateBatch:
    """The batch a marker asks for, with no files yet; Invalid says what is wrong with it."""
    if not raw.strip():
        raise Invalid("the marker is empty: write a JSON object with at least pipeline_ids")
    if len(raw) > MAX_MARKER_BYTES:
        raise Invalid(f"the marker is {len(raw)} bytes, over the limit of {MAX_MARKER_BYTES} bytes")
    payload = parse_json(raw, "the marker")
    if not isinstance(payload, dict):
        raise Invalid(f"the marker must be a JSON object like a POST /batches body, got {type_name(payload)}")
    if "files" in payload:
        raise Invalid("the marker must not list files: every object in the folder is a file of the batch")
    request = parse_create({**payload, "files": [_STAND_IN]}, limits)
    return replace(request, files=())


def list_folder(objects: Iterable[tuple[str, int]], folder_prefix: str, limits: Limits) -> Listing:
    """The folder's files from (key, size) pairs of everything under `folder_prefix`, in key order.
    Invalid (too_large) when the folder holds more files or bytes than a batch may."""
    files, skipped, seen = [], [], {}
    for key, size in sorted(objects):
        drop = parse_drop_key(key)
        if drop is None or not key.startswith(folder_prefix):
            if key != folder_prefix:   # the "folder" object some tools create: not a file, not news
                skipped.append((key, "in a subfolder: only objects directly in the folder are files"))
            continue
        if drop.name == DROP_MARKER:
            continue
        try:
            name = naming.safe_file_name(drop.name)
        except naming.NameError_ as exc:
            skipped.append((key, f"not a valid file name: {exc}"))
            continue
        same = naming.duplicate_key(name)
        if same in seen:
            skipped.append((key, f"same name as {seen[same]!r} ignoring case and Unicode normalisation"))
            continue
        seen[same] = drop.name
        files.append(DropFile(key, FileSpec(name, int(size), content_type(name))))
    if len(files) > limits.max_files:
        raise Invalid(f"the folder holds {len(files)} files, over the limit of {limits.max_files} per batch",
                      too_large=True)
    total = sum(f.spec.size for f in files)
    if total > limits.max_batch_size:
        raise Invalid(f"the folder's files total {total} bytes, over the batch limit of {limits.max_batch_size} bytes",
                      too_large=True)
    return Listing(tuple(files), tuple(skipped))


def content_type(name: str) -> str:
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return CONTENT_TYPES.get(ext, UNKNOWN_TYPE)


def drop_batch_id(owner: str, folder: str, marker_version: str) -> str:
    """The batch a marker makes: the same for every delivery of one marker, another for a
    marker written again."""
    return str(uuid.uuid5(_NAMESPACE, json.dumps([owner, folder, marker_version])))


def drop_job_id(batch_id: str, key: str) -> str:
    return str(uuid.uuid5(uuid.UUID(batch_id), key))
