"""Opaque cursors and list parameters shared by the list endpoints."""
from __future__ import annotations

import base64
import binascii
import hashlib
import json

from ..errors import BadRequest

DEFAULT_LIMIT, MAX_LIMIT = 50, 200


def limit_param(params: dict, name: str = "limit", default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be an integer between 1 and {maximum}, got {raw!r}") from None
    if not 1 <= value <= maximum:
        raise BadRequest(f"{name} must be between 1 and {maximum}, got {value}")
    return value


def choice_param(params: dict, name: str, options, default=None):
    raw = params.get(name)
    if raw in (None, ""):
        return default
    if raw not in options:
        raise BadRequest(f"{name} must be one of: {', '.join(options)}; got {raw!r}")
    return raw


def _fingerprint(scope: str) -> str:
    return hashlib.sha256(scope.encode()).hexdigest()[:16]


def encode_cursor(scope: str, key: dict | None) -> str | None:
    if key is None:
        return None
    scope = _fingerprint(scope)
    raw = json.dumps({"s": scope, "k": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, scope: str, name: str = "cursor") -> dict | None:
    """The cursor must come from the same query (scope) it is used with."""
    if not cursor:
        return None
    scope = _fingerprint(scope)
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(data, dict) or data.get("s") != scope or not isinstance(data.get("k"), dict):
            raise ValueError
        key = data["k"]
        for value in key.values():
            if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in ("S", "N"):
                raise ValueError
        return key
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise BadRequest(f"{name} is not valid for this query; start again without it") from None
