"""Webhook deliveries: one per (event, webhook), attempted through the delivery queue.

Starting a delivery stores it (pending) and queues its first attempt. An event's delivery id is
derived from the event id and the webhook id, so an event published twice (a stream record
delivered again) stores nothing new; if its first attempt is still unsent it is queued again,
which is harmless: an attempt is claimed with a conditional write before anything is sent, so
duplicate messages send once. Each attempt: claim, sign, POST, record. A failed attempt queues the
next one with exponential backoff and jitter; SQS delays a message at most 15 minutes, so a
longer wait travels as `not_before` and the message is re-queued until then.
"""
from __future__ import annotations

import json
import logging
import math
import random
import uuid
from datetime import timedelta

from ..domain import webhooks as rules
from ..domain.events import Event, event_id
from .clock import iso, iso_precise, parse_iso, utcnow

log = logging.getLogger("imgbatch.webhooks")
LEASE_MARGIN = timedelta(seconds=20)   # an attempt is given its timeout plus this before another may take it
SQS_MAX_DELAY = 900


def delivery_view(d: dict) -> dict:
    """D (API.md)."""
    return {"id": d["id"], "event_id": d["event_id"], "event_type": d["event_type"], "status": d["status"],
            "attempts": int(d.get("attempts") or 0),
            "last_status_code": int(d["last_status_code"]) if d.get("last_status_code") is not None else None,
            "last_error": d.get("last_error"), "next_attempt_at": d.get("next_attempt_at"),
            "created_at": d["created_at"], "delivered_at": d.get("delivered_at")}


def secret_context(webhook: dict) -> dict[str, str]:
    return {"imgbatch:webhook": webhook["id"], "imgbatch:owner": webhook["owner"]}


class Deliveries:
    def __init__(self, store, queue, secrets, sender, settings, clock=utcnow, jitter=random.random):
        self.store = store
        self.queue = queue
        self.secrets = secrets
        self.sender = sender
        self.settings = settings
        self.clock = clock
        self.jitter = jitter

    # -- starting ----------------------------------------------------------------------
    def start(self, webhook: dict, event: Event, delivery_id: str | None = None) -> dict:
        """Store a pending delivery of `event` to `webhook` and queue its first attempt. Without
        `delivery_id` the id is derived (one delivery per event and webhook)."""
        now = self.clock()
        did = delivery_id or event_id(event.id, webhook["id"], "delivery")
        record = {"webhook_id": webhook["id"], "id": did, "owner": webhook["owner"], "event": event.body(),
                  "event_id": event.id, "event_type": event.type, "status": rules.PENDING, "attempts": 0,
                  "created_at": iso(now), "next_attempt_at": iso(now), "created_sk": f"{iso_precise(now)}#{did}"}
        stored = self.store.add_delivery(record)
        if stored is None:   # this event already has its delivery
            stored = self.store.get_delivery(webhook["id"], did)
            if stored is None or stored["status"] != rules.PENDING or int(stored.get("attempts") or 0):
                return stored
        self.queue.enqueue(self._message(stored, 1))
        return stored

    @staticmethod
    def _message(delivery: dict, attempt: int, not_before: str | None = None) -> dict:
        message = {"webhook_id": delivery["webhook_id"], "delivery_id": delivery["id"], "owner": delivery["owner"],
                   "attempt": attempt}
        if not_before:
            message["not_before"] = not_before
        return message

    # -- one attempt (the deliver_webhooks function) ----------------------------------------
    def attempt(self, message: dict) -> str:
        """Run the attempt a queue message asks for; returns what happened (for logs and tests)."""
        now = self.clock()
        not_before = message.get("not_before")
        if not_before and parse_iso(not_before) > now:
            wait = (parse_iso(not_before) - now).total_seconds()
            self.queue.enqueue(message, delay_seconds=math.ceil(min(SQS_MAX_DELAY, wait)))  # never early
            return "waiting"
        attempt = int(message["attempt"])
        delivery = self.store.get_delivery(message["webhook_id"], message["delivery_id"])
        if delivery is None or delivery["status"] != rules.PENDING:
            return "done"
        lease = now + timedelta(seconds=self.settings.webhook_timeout_seconds) + LEASE_MARGIN
        if not self.store.claim_attempt(delivery, attempt, iso_precise(now), iso_precise(lease)):
            return "taken"
        webhook = self.store.get_webhook(delivery["owner"], delivery["webhook_id"])
        if webhook is None:
            self._finish(delivery, attempt, status=rules.FAILED, last_error="the webhook was deleted",
                         next_attempt_at=None)
            return "failed"
        body = json.dumps(delivery["event"], separators=(",", ":")).encode()
        secret = self.secrets.open(webhook["secret_ciphertext"], secret_context(webhook))
        headers = {rules.EVENT_ID_HEADER: delivery["event_id"], rules.EVENT_TYPE_HEADER: delivery["event_type"],
                   rules.SIGNATURE_HEADER: rules.signature(secret, int(self.clock().timestamp()), body)}
        response = self.sender.post(webhook["url"], body, headers)
        done = self.clock()
        if response.error is None:
            self._finish(delivery, attempt, status=rules.DELIVERED, last_status_code=response.status_code,
                         last_error=None, delivered_at=iso(done), next_attempt_at=None)
            return "delivered"
        if attempt >= self.settings.webhook_max_attempts:
            self._finish(delivery, attempt, status=rules.FAILED, last_status_code=response.status_code,
                         last_error=response.error, next_attempt_at=None)
            log.info("delivery %s of %s failed after %d attempts: %s", delivery["id"], delivery["event_id"],
                     attempt, response.error)
            return "failed"
        wait = rules.backoff_seconds(attempt, self.settings.webhook_retry_base_seconds, self.jitter())
        next_at = done + timedelta(seconds=wait)
        # Queue first, then record: a crash in between leaves the next attempt queued, and that
        # attempt's claim (attempts == this one) still succeeds.
        # SQS counts whole seconds: a sub-second wait (tests) is no delay, any other at most 1 s early.
        self.queue.enqueue(self._message(delivery, attempt + 1, iso(next_at) if wait > SQS_MAX_DELAY else None),
                           delay_seconds=int(min(SQS_MAX_DELAY, wait)))
        self._finish(delivery, attempt, status=rules.PENDING, last_status_code=response.status_code,
                     last_error=response.error, next_attempt_at=iso(next_at))
        return "retrying"

    def _finish(self, delivery: dict, attempt: int, **fields) -> None:
        if not self.store.finish_attempt(delivery, attempt, fields):
            log.warning("delivery %s: attempt %d was taken over before it finished", delivery["id"], attempt)


def new_delivery_id() -> str:
    return str(uuid.uuid4())

