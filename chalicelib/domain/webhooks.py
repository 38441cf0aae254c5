"""Webhook rules (API.md "Webhooks"): what a webhook may be, which addresses may receive, how a
delivery is signed, and when a failed one is tried again. Pure: resolving names and sending
happen in chalicelib/adapters/webhook_http.py."""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from .events import ALL, SUBSCRIBABLE
from .validation import Invalid, reject_unknown, require_object, string, type_name

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
DELIVERY_STATUSES = (PENDING, DELIVERED, FAILED)
MAX_URL_LENGTH = 2048
MAX_DESCRIPTION = 500
SIGNATURE_HEADER, EVENT_ID_HEADER, EVENT_TYPE_HEADER = "Imgbatch-Signature", "Imgbatch-Event-Id", "Imgbatch-Event-Type"
FIELDS = ("url", "events", "description", "active")


@dataclass(frozen=True)
class WebhookSpec:
    url: str
    host: str
    events: tuple[str, ...]
    description: str
    active: bool


def parse_webhook(payload) -> WebhookSpec:
    """POST and PUT bodies alike: PUT replaces the whole webhook, so what is left out takes its
    default (events ["*"], description "", active true)."""
    payload = require_object(payload)
    reject_unknown(payload, FIELDS)
    url = string(payload, "url", MAX_URL_LENGTH, required=True)
    host = url_host(url)
    events = parse_events(payload.get("events", [ALL]))
    description = (string(payload, "description", MAX_DESCRIPTION) or "").strip()
    active = payload.get("active", True)
    if not isinstance(active, bool):
        raise Invalid(f"active must be true or false, got {type_name(active)}")
    return WebhookSpec(url.strip(), host, events, description, active)


def url_host(url: str) -> str:
    """The host to resolve, once the URL is one we may POST to."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port   # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise Invalid(f"url is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise Invalid(f"url must start with http:// or https://, got {url[:40]!r}")
    if not parts.hostname:
        raise Invalid("url has no host name")
    if parts.username is not None or parts.password is not None:
        raise Invalid("url must not carry a user name or password: deliveries are signed instead")
    if port == 0:
        raise Invalid("url port must be between 1 and 65535")
    if any(ch.isspace() or ord(ch) < 32 for ch in url.strip()):
        raise Invalid("url must not contain spaces or control characters")
    return parts.hostname


def parse_events(raw) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise Invalid(f'events must be a non-empty array of event types or ["*"], got {type_name(raw)}')
    for kind in raw:
        if not isinstance(kind, str) or (kind != ALL and kind not in SUBSCRIBABLE):
            raise Invalid(f"events: {kind!r} is not an event type; use \"*\" or any of: {', '.join(SUBSCRIBABLE)}")
    if ALL in raw and len(raw) > 1:
        raise Invalid('events: "*" already means every event; give it alone')
    twice = sorted({kind for kind in raw if raw.count(kind) > 1})
    if twice:
        raise Invalid(f"events lists {', '.join(twice)} more than once")
    return tuple(raw)


def refused_address(address: str) -> str | None:
    """Why a receiver at this IP address is refused (private, loopback, link-local, reserved...),
    or None when it is a public address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    for test, why in ((ip.is_loopback, "loopback"), (ip.is_link_local, "link-local"), (ip.is_private, "private"),
                      (ip.is_multicast, "multicast"), (ip.is_unspecified, "unspecified"),
                      (ip.is_reserved, "reserved")):
        if test:
            return f"{ip} is a {why} address"
    if not ip.is_global:
        return f"{ip} is not a public address"
    return None


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The Imgbatch-Signature header: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, now: int, tolerance: int = 300) -> bool:
    """A receiver's check: a v1 signature of this body with this secret, made within `tolerance` s."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, v) for k, v in
               (p.split("=", 1) for p in header.split(",") if "=" in p) if k == "v1")


def backoff_seconds(attempt: int, base: float, jitter: float) -> float:
    """Wait before the attempt after `attempt` (1-based): base x 2^(attempt-1), of which the upper
    half is random (`jitter` in [0, 1)), so receivers coming back are not hit all at once."""
    step = base * 2 ** (attempt - 1)
    return step / 2 + jitter * step / 2
