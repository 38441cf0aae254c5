"""What the event and webhook services need from the outside world (beside chalicelib/ports.py,
which the batch services use). Records cross this seam as plain dicts of domain fields:
webhook: W's fields plus owner and secret_ciphertext; delivery: D's fields plus webhook_id, owner
and the event as delivered."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol

from .ports import Page


class WebhookStore(Protocol):
    def create_webhook(self, webhook: dict) -> None: ...
    def get_webhook(self, owner: str, webhook_id: str) -> dict | None: ...
    def list_webhooks(self, owner: str) -> list[dict]: ...
    def replace_webhook(self, owner: str, webhook_id: str, fields: dict) -> dict | None:
        """None when the webhook is gone."""
    def delete_webhook(self, owner: str, webhook_id: str) -> bool: ...

    def add_delivery(self, delivery: dict) -> dict | None:
        """Store a new delivery; None (storing nothing) when one with its id exists: that one is returned
        by get_delivery. Ids of event deliveries are derived, so a replayed event adds nothing."""
    def get_delivery(self, webhook_id: str, delivery_id: str) -> dict | None: ...
    def list_deliveries(self, webhook_id: str, limit: int, start: dict | None) -> Page: ...
    def claim_attempt(self, delivery: dict, attempt: int, now: str, lease_until: str) -> bool:
        """Take attempt number `attempt` of a pending delivery: the previous one is finished, or this
        one was taken by a worker that died (its lease ran out). False: someone else has it."""
    def finish_attempt(self, delivery: dict, attempt: int, fields: dict) -> bool:
        """Record the outcome of our attempt (status, last_status_code, ...), if still ours."""


class SecretBox(Protocol):
    def seal(self, plaintext: str, context: dict[str, str]) -> str: ...
    def open(self, sealed: str, context: dict[str, str]) -> str: ...


class EventBus(Protocol):
    def put(self, events: Iterable) -> None:
        """Publish every event (domain.events.Event) or raise."""


class DeliveryQueue(Protocol):
    def enqueue(self, message: dict, delay_seconds: int = 0) -> None: ...


@dataclass
class Response:
    status_code: int | None    # None: no HTTP answer (refused, unreachable, timed out)
    error: str | None = None


class WebhookSender(Protocol):
    def check(self, url: str) -> None:
        """Raise domain.validation.Invalid when the URL's host must not receive (private address, no DNS)."""
    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Response: ...


class ArchiveRequests(Protocol):
    def request_prebuild(self, batch_id: str) -> None: ...
