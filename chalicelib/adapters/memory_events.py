"""In-memory adapters of chalicelib/event_ports.py, for service tests (beside memory.py, which holds
the batch ports). tests/contract holds the store, the queue, the bus and the secret box to the
behaviour of the DynamoDB, SQS, EventBridge and KMS adapters on moto; the sender is a recorder
with scripted answers, standing in for the network.

- MemoryWebhookStore: DynamoWebhookStore's conditions exactly (a delivery added once by id, an
  attempt claimed from the previous one or from a lease that ran out, an outcome recorded only
  by the attempt that holds it); records come back with every attribute the tables define
  (None where unset), as copies; the delivery log newest first, paged with an opaque cursor.
- MemoryDeliveryQueue: the messages and their delays, in the order sent. It does not hold a
  delayed message back (SQS does): a test takes what is queued and runs it, as if the delay
  had passed.
- MemoryEventBus: the events put, as EventBridge entries would carry them.
- MemorySecretBox: sealed secrets open only with the context they were sealed with, and only in
  the box that sealed them (KMS: the key); the sealed text does not contain the secret.
- RecordingSender: every POST recorded; answers 200 unless told otherwise; refuses the hosts
  it is told to refuse, at check() and again at post(), as the HTTP sender re-checks.
"""
from __future__ import annotations

import copy
import json
import secrets as random_secrets
import threading
from collections import deque
from urllib.parse import urlsplit

from ..domain.events import SOURCE
from ..domain.validation import Invalid
from ..event_ports import Response
from ..ports import ConditionFailed, Page

# The attributes of the tables (adapters/webhook_models.py) and their defaults: a record handed
# out has every one, as the DynamoDB store's does.
WEBHOOK_DEFAULTS = {"owner": None, "id": None, "url": None, "events": None, "description": "", "active": True,
                    "secret_ciphertext": None, "created_at": None, "updated_at": None}
DELIVERY_DEFAULTS = {"webhook_id": None, "id": None, "owner": None, "event": None, "event_id": None,
                     "event_type": None, "status": None, "attempts": 0, "last_status_code": None, "last_error": None,
                     "next_attempt_at": None, "created_at": None, "delivered_at": None, "created_sk": None,
                     "lease_until": None}


def _copy(value):
    """What a stored attribute gives back: plain JSON types, never the caller's objects."""
    return json.loads(json.dumps(value))


class MemoryWebhookStore:
    """event_ports.WebhookStore in memory."""

    def __init__(self):
        self._lock = threading.RLock()
        self._webhooks: dict[tuple[str, str], dict] = {}     # (owner, id)
        self._deliveries: dict[tuple[str, str], dict] = {}   # (webhook id, id)

    # -- webhooks ------------------------------------------------------------------
    def create_webhook(self, webhook: dict) -> None:
        with self._lock:
            key = (webhook["owner"], webhook["id"])
            if key in self._webhooks:
                raise ConditionFailed(f"webhook {webhook['id']} exists")
            self._webhooks[key] = {**WEBHOOK_DEFAULTS, **_copy(webhook)}

    def get_webhook(self, owner: str, webhook_id: str) -> dict | None:
        with self._lock:
            found = self._webhooks.get((owner, webhook_id))
            return copy.deepcopy(found) if found else None

    def list_webhooks(self, owner: str) -> list[dict]:
        """In id order (the table's sort key)."""
        with self._lock:
            return [copy.deepcopy(w) for (o, _), w in sorted(self._webhooks.items()) if o == owner]

    def replace_webhook(self, owner: str, webhook_id: str, fields: dict) -> dict | None:
        with self._lock:
            found = self._webhooks.get((owner, webhook_id))
            if found is None:
                return None
            found.update(_copy(fields))
            return copy.deepcopy(found)

    def delete_webhook(self, owner: str, webhook_id: str) -> bool:
        with self._lock:
            return self._webhooks.pop((owner, webhook_id), None) is not None

    # -- deliveries ----------------------------------------------------------------
    def add_delivery(self, delivery: dict) -> dict | None:
        with self._lock:
            key = (delivery["webhook_id"], delivery["id"])
            if key in self._deliveries:
                return None
            self._deliveries[key] = {**DELIVERY_DEFAULTS, **_copy(delivery)}
            return copy.deepcopy(self._deliveries[key])

    def get_delivery(self, webhook_id: str, delivery_id: str) -> dict | None:
        with self._lock:
            found = self._deliveries.get((webhook_id, delivery_id))
            return copy.deepcopy(found) if found else None

    def list_deliveries(self, webhook_id: str, limit: int, start: dict | None) -> Page:
        """Newest first (created_sk, descending); the cursor is the sort key the next page starts
        below, as an ExclusiveStartKey."""
        with self._lock:
            found = sorted((d for (w, _), d in self._deliveries.items() if w == webhook_id),
                           key=lambda d: d["created_sk"], reverse=True)
            if start is not None:
                found = [d for d in found if d["created_sk"] < start["before"]]
            page = found[:limit]
            last = {"before": page[-1]["created_sk"]} if len(found) > limit else None
            return Page([copy.deepcopy(d) for d in page], last, len(page), len(page))

    def claim_attempt(self, delivery: dict, attempt: int, now: str, lease_until: str) -> bool:
        with self._lock:
            stored = self._deliveries.get((delivery["webhook_id"], delivery["id"]))
            if stored is None or stored["status"] != "pending":
                return False
            lease = stored.get("lease_until")
            after_previous = stored["attempts"] == attempt - 1
            taken_over = stored["attempts"] == attempt and lease is not None and lease < now
            if not (after_previous or taken_over):
                return False
            stored.update(attempts=attempt, lease_until=lease_until)
            return True

    def finish_attempt(self, delivery: dict, attempt: int, fields: dict) -> bool:
        with self._lock:
            stored = self._deliveries.get((delivery["webhook_id"], delivery["id"]))
            if stored is None or stored["status"] != "pending" or stored["attempts"] != attempt:
                return False
            stored.update(_copy(fields), lease_until=None)
            return True


class MemoryDeliveryQueue:
    """event_ports.DeliveryQueue: messages kept with the delay they were sent with."""

    def __init__(self):
        self._lock = threading.Lock()
        self._messages: list[tuple[dict, int]] = []
        self.sent: list[tuple[dict, int]] = []   # everything ever sent, for inspection

    def enqueue(self, message: dict, delay_seconds: int = 0) -> None:
        entry = (_copy(message), int(delay_seconds))
        with self._lock:
            self._messages.append(entry)
            self.sent.append(entry)

    def take(self) -> list[dict]:
        """Every message queued since the last take, in the order sent (delays not waited for)."""
        with self._lock:
            taken, self._messages = self._messages, []
            return [m for m, _ in taken]


class MemoryEventBus:
    """event_ports.EventBus: what was put, as EventBridge entries ({"source", "detail-type",
    "detail"}), in order."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: list[dict] = []

    def put(self, events) -> None:
        entries = [{"source": SOURCE, "detail-type": e.type, "detail": _copy(e.body())} for e in events]
        with self._lock:
            self._entries.extend(entries)

    def take(self) -> list[dict]:
        with self._lock:
            taken, self._entries = self._entries, []
            return taken


class MemorySecretBox:
    """event_ports.SecretBox: an opaque handle per sealed secret, opened only in this box and only
    with the same context (KMS refuses another key or another encryption context)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._sealed: dict[str, tuple[str, dict[str, str]]] = {}

    def seal(self, plaintext: str, context: dict[str, str]) -> str:
        handle = random_secrets.token_urlsafe(24)
        with self._lock:
            self._sealed[handle] = (plaintext, dict(context))
        return handle

    def open(self, sealed: str, context: dict[str, str]) -> str:
        with self._lock:
            found = self._sealed.get(sealed)
        if found is None or found[1] != dict(context):
            raise ValueError("the secret does not open with this key and context")
        return found[0]


class RecordingSender:
    """event_ports.WebhookSender: records every POST and answers from a script."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: list[dict] = []
        self.refused: dict[str, str] = {}          # host -> why it may not receive
        self._answers: dict[str, deque] = {}       # url -> the next answers (then 200)

    def refuse(self, host: str, why: str = "a private address") -> None:
        self.refused[host] = why

    def answer(self, url: str, *responses: Response) -> None:
        """The next answers to POSTs to `url`, in order; after them every POST gets 200."""
        with self._lock:
            self._answers.setdefault(url, deque()).extend(responses)

    def check(self, url: str) -> None:
        host = urlsplit(url).hostname or ""
        if host in self.refused:
            raise Invalid(f"url host {host!r} may not receive webhooks: {self.refused[host]}")

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Response:
        try:
            self.check(url)
        except Invalid as exc:
            return Response(None, exc.message)
        with self._lock:
            self.requests.append({"url": url, "body": bytes(body), "headers": dict(headers)})
            queued = self._answers.get(url)
            return queued.popleft() if queued else Response(200)

    def events(self, url: str | None = None) -> list[dict]:
        """The event bodies received (at `url`), in order."""
        with self._lock:
            return [json.loads(r["body"]) for r in self.requests if url is None or r["url"] == url]
