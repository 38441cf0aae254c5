"""One retry policy for the API client and the uploader, so both back off the same way."""

from __future__ import annotations

import random
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone

import httpx

BASE_DELAY = 0.5
MAX_DELAY = 20.0


def is_transient_status(status: int) -> bool:
    # 429 and 5xx say "not now", everything else in 4xx says "never": retrying a 403 policy
    # failure only burns the upload window.
    return status == 429 or 500 <= status <= 599


def is_transient_error(exc: Exception) -> bool:
    # TransportError covers connect/read/write timeouts, refused connections and dropped
    # connections; other exceptions are bugs or local I/O problems.
    return isinstance(exc, httpx.TransportError)


def backoff_delay(attempt: int, rand: float | None = None) -> float:
    """Delay before retry number `attempt` (1-based): exponential with "equal jitter".

    Half the delay is fixed so retries really do spread out; the other half is random so
    eight parallel uploaders hitting the same 503 do not come back in lockstep.
    """
    ceiling = min(MAX_DELAY, BASE_DELAY * 2 ** (attempt - 1))
    r = random.random() if rand is None else rand
    return ceiling / 2 + r * ceiling / 2


def retry_after_seconds(value: str | None, default: float | None = None) -> float | None:
    """Parse a Retry-After header: either delta-seconds or an HTTP date."""
    if not value:
        return default
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
