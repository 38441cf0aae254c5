"""Integration fields of a batch (API.md "Added in version 2"): the studio's own metadata and the
fields a Dropbox uploader or a Monday.com sync reads. Checked on create and on PATCH."""
from __future__ import annotations

import re

from .validation import Invalid, reject_unknown, require_object, type_name, unicode_problem

MAX_METADATA_ENTRIES = 20
MAX_METADATA_VALUE = 512
MAX_ID_LENGTH = 255
MAX_DESCRIPTION = 500
METADATA_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")
ID_FIELDS = ("dropbox_directory_id", "monday_item_id")
FLAG_FIELDS = ("auto_upload_enabled", "monday_sync_enabled")
INTEGRATION_FIELDS = ("metadata",) + ID_FIELDS + FLAG_FIELDS
# What a batch carries when the client gave none (and what batches stored before version 2 show).
DEFAULTS = {"metadata": {}, "dropbox_directory_id": None, "monday_item_id": None,
            "auto_upload_enabled": False, "monday_sync_enabled": False}
PATCHABLE = ("description",) + INTEGRATION_FIELDS


def parse_integrations(payload: dict) -> dict:
    """The integration fields present in `payload`, checked; absent ones are left out."""
    out = {}
    if "metadata" in payload:
        out["metadata"] = metadata(payload["metadata"])
    for name in ID_FIELDS:
        if name in payload:
            out[name] = external_id(name, payload[name])
    for name in FLAG_FIELDS:
        if name in payload:
            value = payload[name]
            if not isinstance(value, bool):
                raise Invalid(f"{name} must be true or false, got {type_name(value)}")
            out[name] = value
    return out


def parse_patch(payload) -> dict:
    """A PATCH /batches/{id} body -> the changes it asks for (at least one)."""
    payload = require_object(payload)
    reject_unknown(payload, PATCHABLE)
    if not payload:
        raise Invalid(f"give at least one field to change: {', '.join(PATCHABLE)}")
    changes = parse_integrations(payload)
    if "description" in payload:
        changes["description"] = description(payload["description"])
    return changes


def description(value) -> str:
    if not isinstance(value, str):
        raise Invalid(f"description must be a string, got {type_name(value)}")
    problem = unicode_problem(value)
    if problem:
        raise Invalid(f"description {problem}")
    value = value.strip()
    if not value:
        raise Invalid("description must not be empty")
    if len(value) > MAX_DESCRIPTION:
        raise Invalid(f"description must be at most {MAX_DESCRIPTION} characters, got {len(value)}")
    if any(ord(ch) < 32 and ch != "\t" for ch in value):
        raise Invalid("description must not contain control characters")
    return value


def metadata(value) -> dict:
    if not isinstance(value, dict):
        raise Invalid(f"metadata must be an object of string values, got {type_name(value)}")
    if len(value) > MAX_METADATA_ENTRIES:
        raise Invalid(f"metadata holds at most {MAX_METADATA_ENTRIES} entries, got {len(value)}")
    for key, item in value.items():
        if not METADATA_KEY.fullmatch(key):
            raise Invalid(f"metadata key {ascii(key)[:80]} must be 1-64 characters of A-Z, a-z, 0-9, '_', '.', '-'")
        if not isinstance(item, str):
            raise Invalid(f"metadata.{key} must be a string, got {type_name(item)}")
        problem = unicode_problem(item)
        if problem:
            raise Invalid(f"metadata.{key} {problem}")
        if len(item) > MAX_METADATA_VALUE:
            raise Invalid(f"metadata.{key} must be at most {MAX_METADATA_VALUE} characters, got {len(item)}")
    return dict(value)


def external_id(name: str, value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid(f"{name} must be a string or null, got {type_name(value)}")
    problem = unicode_problem(value)
    if problem:
        raise Invalid(f"{name} {problem}")
    if len(value) > MAX_ID_LENGTH:
        raise Invalid(f"{name} must be at most {MAX_ID_LENGTH} characters, got {len(value)}")
    if any(ord(ch) < 32 for ch in value):
        raise Invalid(f"{name} must not contain control characters")
    return value


def with_defaults(fields: dict) -> dict:
    """Every integration field, the stored ones over the defaults (None stored means the default)."""
    out = {}
    for name, default in DEFAULTS.items():
        value = fields.get(name)
        out[name] = (dict(default) if isinstance(default, dict) else default) if value is None else value
    return out
