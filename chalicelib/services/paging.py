"""Opaque cursors and list parameters shared by the list endpoints."""
from __future__ import annotations

import base64
import hashlib
import hmac
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


class Cursors:
    """Opaque, tamper-proof list cursors. A cursor carries the key where the next page starts
    and an HMAC-SHA256 over that key and the query (scope) that issued it, so a client can
    neither forge a start key (DynamoDB would answer a bad one with a 500) nor reuse a cursor
    for another query, owner or batch. Rotating the key invalidates outstanding cursors only."""

    def __init__(self, key: str):
        self._key = key.encode("utf-8")

    def _mac(self, scope: str, payload: bytes) -> bytes:
        message = scope.encode("utf-8", "surrogatepass") + b"\0" + payload
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def encode(self, scope: str, key: dict | None) -> str | None:
        if key is None:
            return None
        payload = json.dumps(key, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(payload)}.{_b64(self._mac(scope, payload))}"

    def decode(self, cursor: str | None, scope: str, name: str = "cursor") -> dict | None:
        """The start key of a cursor this service issued for this very query, else 400."""
        if not cursor:
            return None
        try:
            body, dot, signature = cursor.partition(".")
            payload = _unb64(body)
            if not dot or not hmac.compare_digest(_unb64(signature), self._mac(scope, payload)):
                raise ValueError("bad signature")
            key = json.loads(payload)
        except ValueError:  # also bad base64, JSON or UTF-8
            raise BadRequest(f"{name} is not valid for this query; start again without it") from None
        return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))  # non-ASCII text: ValueError
