"""Webhook signatures, as the service makes them (API.md "Webhooks"): the Imgbatch-Signature header
is t=<unix seconds>,v1=<hex HMAC-SHA256 with the webhook's secret over "<t>.<raw body>">.
The same rule as chalicelib/domain/webhooks.py, kept apart because the CLI never imports the
service; tests/vectors/signatures.json checks both."""
from __future__ import annotations

import hashlib
import hmac

DEFAULT_TOLERANCE = 300   # seconds a signature stays acceptable (replayed deliveries are refused after)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, now: int, tolerance: int = DEFAULT_TOLERANCE) -> bool:
    pairs = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v for k, v in pairs if k.strip() == "t"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit():
        return False
    timestamp = int(stamps[0])
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, v.strip()) for k, v in pairs if k.strip() == "v1")
