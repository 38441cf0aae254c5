"""The delivery state machine (services/deliveries.py) on in-memory fakes: claims, retries,
backoff past SQS's 15-minute delay cap, a crashed attempt taken over, duplicates sent once."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.domain.events import Event
from chalicelib.event_ports import Response
from chalicelib.ports import Page
from chalicelib.services.deliveries import Deliveries


class FakeStore:
    """The conditions of adapters/webhooks.py, in memory."""

    def __init__(self):
        self.deliveries, self.webhooks = {}, {}

    def add_delivery(self, d):
        if (d["webhook_id"], d["id"]) in self.deliveries:
            return None
        self.deliveries[(d["webhook_id"], d["id"])] = dict(d)
        return dict(d)

    def get_delivery(self, wid, did):
        d = self.deliveries.get((wid, did))
        return dict(d) if d else None

    def list_deliveries(self, wid, limit, start):
        return Page([d for (w, _), d in self.deliveries.items() if w == wid][:limit], None)

    def claim_attempt(self, d, attempt, now, lease_until):
        cur = self.deliveries[(d["webhook_id"], d["id"])]
        if cur["status"] != "pending":
            return False
        if cur["attempts"] == attempt - 1 or (cur["attempts"] == attempt and (cur.get("lease_until") or "") < now):
            cur.update(attempts=attempt, lease_until=lease_until)
            return True
        return False

    def finish_attempt(self, d, attempt, fields):
        cur = self.deliveries[(d["webhook_id"], d["id"])]
        if cur["status"] != "pending" or cur["attempts"] != attempt:
            return False
        cur.update(fields, lease_until=None)
        return True

    def get_webhook(self, owner, wid):
        return self.webhooks.get((owner, wid))


class FakeQueue:
    def __init__(self):
        self.sent = []

    def enqueue(self, message, delay_seconds=0):
        self.sent.append((dict(message), delay_seconds))


class Sender:
    def __init__(self, *answers):
        self.answers, self.posts = list(answers), []

    def post(self, url, body, headers):
        self.posts.append((url, body, headers))
        code = self.answers.pop(0) if self.answers else 200
        return Response(code) if code and 200 <= code < 300 else Response(code, f"receiver answered {code}")


class Clock:
    def __init__(self):
        self.now = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc)

    def __call__(self):
        return self.now


@dataclass
class Settings:
    webhook_timeout_seconds: float = 10.0
    webhook_retry_base_seconds: float = 60.0
    webhook_max_attempts: int = 8


class Box:
    def open(self, sealed, context):
        return sealed.removeprefix("sealed:")


WEBHOOK = {"owner": "o", "id": "w1", "url": "https://hooks.example/x", "secret_ciphertext": "sealed:whsec_1"}
EVENT = Event("e1", "batch.completed", "2026-12-01T10:00:00Z", {"batch": {"id": "b1"}}, "o")


@pytest.fixture
def world():
    store, queue, clock = FakeStore(), FakeQueue(), Clock()
    store.webhooks[("o", "w1")] = WEBHOOK

    def make(*answers, **settings):
        sender = Sender(*answers)
        return Deliveries(store, queue, Box(), sender, Settings(**settings), clock=clock, jitter=lambda: 1.0), sender
    return store, queue, clock, make


def run_queue(deliveries, queue, clock):
    """Deliver every queued message, moving the clock by each message's delay first."""
    outcomes = []
    while queue.sent:
        message, delay = queue.sent.pop(0)
        clock.now += timedelta(seconds=delay)
        outcomes.append(deliveries.attempt(message))
    return outcomes


def test_an_event_has_one_delivery_per_webhook_however_often_it_is_started(world):
    store, queue, clock, make = world
    deliveries, sender = make()
    first = deliveries.start(WEBHOOK, EVENT)
    again = deliveries.start(WEBHOOK, EVENT)
    assert first["id"] == again["id"] and len(store.deliveries) == 1
    assert len(queue.sent) == 2   # still unsent: queued again, which the claim makes harmless
    assert run_queue(deliveries, queue, clock) == ["delivered", "done"]
    assert len(sender.posts) == 1
    deliveries.start(WEBHOOK, EVENT)   # delivered already: nothing queued
    assert queue.sent == []


def test_retries_back_off_then_deliver(world):
    store, queue, clock, make = world
    deliveries, sender = make(500, 503, 200)
    d = deliveries.start(WEBHOOK, EVENT)
    assert run_queue(deliveries, queue, clock) == ["retrying", "retrying", "delivered"]
    got = store.get_delivery("w1", d["id"])
    assert (got["status"], got["attempts"], got["last_status_code"], got["last_error"]) == ("delivered", 3, 200, None)
    assert [p[2]["Imgbatch-Event-Id"] for p in sender.posts] == ["e1"] * 3
    assert clock.now == datetime(2026, 12, 1, 10, 3, tzinfo=timezone.utc)   # waited 60 s, then 120 s


def test_a_duplicate_message_sends_once(world):
    store, queue, clock, make = world
    deliveries, sender = make()
    deliveries.start(WEBHOOK, EVENT)
    message, _ = queue.sent[0]
    assert deliveries.attempt(message) == "delivered"
    assert deliveries.attempt(message) == "done"
    assert len(sender.posts) == 1


def test_an_attempt_that_died_is_taken_over_after_its_lease(world):
    store, queue, clock, make = world
    deliveries, sender = make()
    d = deliveries.start(WEBHOOK, EVENT)
    message, _ = queue.sent.pop()
    assert store.claim_attempt(d, 1, "2026-12-01T10:00:00.000000Z", "2026-12-01T10:00:30.000000Z")  # then it died
    assert deliveries.attempt(message) == "taken"          # SQS gave the message again too soon
    clock.now += timedelta(seconds=31)
    assert deliveries.attempt(message) == "delivered"      # the lease ran out: taken over, same attempt
    assert store.get_delivery("w1", d["id"])["attempts"] == 1 and len(sender.posts) == 1


def test_waits_beyond_sqs_delay_cap_are_requeued_until_due(world):
    store, queue, clock, make = world
    deliveries, sender = make(500, 500, 500, 500, 500, 200, webhook_retry_base_seconds=300)
    d = deliveries.start(WEBHOOK, EVENT)
    outcomes = run_queue(deliveries, queue, clock)
    # 300, 600, 1200 (900 + 300), 2400 (900 + 900 + 600), 4800 s: the long waits are re-queued
    assert outcomes.count("waiting") == 1 + 2 + 5
    assert outcomes[-1] == "delivered" and len(sender.posts) == 6
    assert store.get_delivery("w1", d["id"])["attempts"] == 6


def test_a_delivery_fails_after_the_last_attempt(world):
    store, queue, clock, make = world
    deliveries, sender = make(*([None] * 10), webhook_max_attempts=3)
    d = deliveries.start(WEBHOOK, EVENT)
    assert run_queue(deliveries, queue, clock) == ["retrying", "retrying", "failed"]
    got = store.get_delivery("w1", d["id"])
    assert (got["status"], got["attempts"], got["next_attempt_at"]) == ("failed", 3, None)


def test_a_deleted_webhook_fails_its_deliveries(world):
    store, queue, clock, make = world
    deliveries, sender = make()
    d = deliveries.start(WEBHOOK, EVENT)
    del store.webhooks[("o", "w1")]
    assert run_queue(deliveries, queue, clock) == ["failed"]
    assert store.get_delivery("w1", d["id"])["last_error"] == "the webhook was deleted" and sender.posts == []
