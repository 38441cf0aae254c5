"""Lifecycle events and webhooks on the in-memory adapters: the batch services change batches, the
repository's change feed stands in for the batches table's stream (publish_batch_events), the
delivery queue is drained as deliver_webhooks would, and a recording sender stands in for the
receivers. No HTTP, no moto: transitions -> event types, one id per transition, fan-out, retries."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from chalicelib import wiring
from chalicelib.domain import events as ev
from chalicelib.domain import webhooks as rules
from chalicelib.errors import BadRequest, NotFound
from chalicelib.event_ports import Response
from chalicelib.settings import Settings
from tests import images
from tests.services.conftest import START, FakeClock, System

BROKEN = b"\x89PNG\r\n\x1a\n but not an image"


def make_hub(**settings) -> System:
    """The services on the fakes, with webhook retries seconds apart and three attempts."""
    defaults = dict(webhook_retry_base_seconds=2.0, webhook_max_attempts=3, webhook_timeout_seconds=1.0)
    system = System(wiring.Container.in_memory(Settings(**{**defaults, **settings})), FakeClock(START))
    system._set_clocks()
    for name in ("events", "deliveries", "webhooks"):
        getattr(system.container, name).clock = system.clock
    return system


@pytest.fixture
def hub() -> System:
    return make_hub()


def publish(system: System, changes=None) -> list[str]:
    """publish_batch_events for the changes since the last call (or these); the failed sequences."""
    return system.events.on_changes(system.repo.take_changes() if changes is None else changes)


def deliver(system: System) -> list[str]:
    """deliver_webhooks until the delivery queue is empty (a retry's delay taken as passed)."""
    outcomes = []
    while messages := system.delivery_queue.take():
        outcomes += [system.deliveries.attempt(m) for m in messages]
    return outcomes


def on_bus(system: System) -> list[tuple[str, str]]:
    return [(e["detail"]["data"]["batch"]["id"], e["detail-type"]) for e in system.event_bus.take()]


def body_of(detail: dict) -> bytes:
    """The bytes a receiver gets: the event as the bus carries it, as compact JSON."""
    return json.dumps(detail, separators=(",", ":")).encode()


def hook(system: System, url: str, owner: str = "alice", **fields) -> dict:
    return system.webhooks.create(owner, {"url": url, **fields})


def test_a_batch_life_is_one_event_per_transition_each_with_its_own_id(hub):
    made = hook(hub, "https://hooks.example.com/in")
    data = {"a.png": images.png(), "b.png": images.png()}
    created = hub.create(data, metadata={"job": "7"})
    bid = created["batch"]["id"]
    hub.deliver(created, data)
    hub.arrive(hub.key(created, "a.png"))   # S3 announces one file again: nothing changes, nothing is announced
    hub.drain()
    changes = hub.repo.take_changes()
    assert publish(hub, changes) == []
    hub.clock.advance(seconds=5)
    hub.deleter.delete("alice", bid)
    assert publish(hub) == []
    entries = hub.event_bus.take()
    wanted = [ev.CREATED, ev.STARTED, ev.COMPLETED, ev.DELETED]
    assert [e["detail-type"] for e in entries] == wanted and {e["source"] for e in entries} == {"imgbatch"}
    ids = [e["detail"]["id"] for e in entries]
    assert len(set(ids)) == 4
    views = {e["detail-type"]: e["detail"]["data"]["batch"] for e in entries}
    assert all(v["id"] == bid and v["metadata"] == {"job": "7"} and "jobs" not in v for v in views.values())
    assert views[ev.COMPLETED]["status"] == "completed" and views[ev.COMPLETED]["progress"]["succeeded"] == 2
    assert views[ev.DELETED]["status"] == "completed"   # as its owner last saw it

    assert deliver(hub) == ["delivered"] * 4
    requests = hub.webhook_sender.requests
    assert [r["headers"][rules.EVENT_ID_HEADER] for r in requests] == ids
    now = int(hub.clock().timestamp())
    for r, entry in zip(requests, entries):
        assert r["url"] == "https://hooks.example.com/in" and r["body"] == body_of(entry["detail"])
        assert rules.verify(made["secret"], r["headers"][rules.SIGNATURE_HEADER], r["body"], now)
        assert not rules.verify("whsec_other", r["headers"][rules.SIGNATURE_HEADER], r["body"], now)
        assert r["headers"][rules.EVENT_TYPE_HEADER] == entry["detail-type"]

    # the same stream records delivered again: the same ids on the bus, nothing new for the webhook
    assert publish(hub, changes) == []
    assert [e["detail"]["id"] for e in hub.event_bus.take()] == ids[:3]
    assert deliver(hub) == [] and len(hub.webhook_sender.requests) == 4
    log = hub.webhooks.deliveries_page("alice", made["webhook"]["id"], {})["deliveries"]
    assert log[0]["event_type"] == ev.DELETED and sorted(d["event_type"] for d in log) == sorted(wanted)
    assert {(d["status"], d["attempts"], d["last_status_code"]) for d in log} == {("delivered", 1, 200)}


def test_cancel_expiry_and_a_retry_that_fails_again_are_events(hub):
    cancelled = hub.create({"a.png": images.png()})["batch"]["id"]
    hub.processor.cancel("alice", cancelled)
    expired = hub.create({"late.png": images.png()})["batch"]["id"]
    broken = hub.create({"bad.png": BROKEN})
    retried = broken["batch"]["id"]
    assert hub.deliver(broken, {"bad.png": BROKEN}) == ["failed"]
    hub.processor.retry("alice", retried)
    assert hub.drain() == ["failed"]
    settings = hub.container.settings
    hub.clock.advance(seconds=settings.upload_ttl_seconds + settings.expiry_grace_seconds + 60)
    assert hub.sweep.run()["expired"] == 1
    assert publish(hub) == []
    events = hub.event_bus.take()
    by_batch: dict[str, list[str]] = {}
    for e in events:
        by_batch.setdefault(e["detail"]["data"]["batch"]["id"], []).append(e["detail-type"])
    assert by_batch == {cancelled: [ev.CREATED, ev.CANCELLED], expired: [ev.CREATED, ev.FAILED],
                        retried: [ev.CREATED, ev.STARTED, ev.FAILED, ev.FAILED]}
    failures = [e["detail"]["id"] for e in events if e["detail"]["data"]["batch"]["id"] == retried
                and e["detail-type"] == ev.FAILED]
    assert failures[0] != failures[1]   # finishing again is a new change: a new event


def test_only_the_owners_matching_active_webhooks_get_an_event(hub):
    hook(hub, "https://a.example.com/done", events=["batch.completed"])
    hook(hub, "https://b.example.com/all")
    hook(hub, "https://c.example.com/off", active=False)
    hook(hub, "https://d.example.com/bob", owner="bob")
    data = {"a.png": images.png()}
    hub.deliver(hub.create(data), data)
    publish(hub)
    assert deliver(hub) == ["delivered"] * 4
    sender = hub.webhook_sender
    assert [e["type"] for e in sender.events("https://a.example.com/done")] == [ev.COMPLETED]
    assert [e["type"] for e in sender.events("https://b.example.com/all")] == [ev.CREATED, ev.STARTED, ev.COMPLETED]
    assert sender.events("https://c.example.com/off") == [] and sender.events("https://d.example.com/bob") == []


def test_a_receiver_is_tried_again_with_the_same_event_until_it_answers(hub):
    url = "https://hooks.example.com/flaky"
    made = hook(hub, url)["webhook"]
    hub.webhook_sender.answer(url, Response(500, "receiver answered 500"), Response(None, "no answer within 1 s"))
    first = hub.webhooks.ping("alice", made["id"])["delivery"]
    assert deliver(hub) == ["retrying", "retrying", "delivered"]
    assert [e["id"] for e in hub.webhook_sender.events(url)] == [first["event_id"]] * 3
    assert [delay > 0 for _, delay in hub.delivery_queue.sent] == [False, True, True]
    done, = hub.webhooks.deliveries_page("alice", made["id"], {})["deliveries"]
    assert (done["status"], done["attempts"], done["last_status_code"], done["last_error"]) == \
        ("delivered", 3, 200, None)


def test_a_receiver_that_never_answers_ends_failed_and_a_deleted_webhook_gets_nothing(hub):
    url = "https://hooks.example.com/silent"
    silent = hook(hub, url)["webhook"]
    hub.webhook_sender.answer(url, *[Response(None, "no answer within 1 s")] * 3)
    hub.webhooks.ping("alice", silent["id"])
    assert deliver(hub) == ["retrying", "retrying", "failed"]
    failed, = hub.webhooks.deliveries_page("alice", silent["id"], {})["deliveries"]
    assert (failed["status"], failed["attempts"], failed["last_error"]) == ("failed", 3, "no answer within 1 s")
    gone = hook(hub, "https://hooks.example.com/gone")["webhook"]
    hub.webhooks.ping("alice", gone["id"])
    hub.webhooks.delete("alice", gone["id"])
    assert deliver(hub) == ["failed"]
    assert hub.webhook_sender.events("https://hooks.example.com/gone") == []


def test_redeliver_sends_the_same_event_as_a_new_delivery(hub):
    made = hook(hub, "https://hooks.example.com/in")["webhook"]
    first = hub.webhooks.ping("alice", made["id"])["delivery"]
    deliver(hub)
    again = hub.webhooks.redeliver("alice", made["id"], first["id"])["delivery"]
    assert again["id"] != first["id"] and again["event_id"] == first["event_id"]
    assert deliver(hub) == ["delivered"]
    assert [e["id"] for e in hub.webhook_sender.events()] == [first["event_id"]] * 2
    with pytest.raises(NotFound):
        hub.webhooks.redeliver("bob", made["id"], first["id"])


def test_an_address_that_may_not_receive_is_refused_when_the_webhook_is_made(hub):
    hub.webhook_sender.refuse("internal.example.com", "a private address")
    with pytest.raises(BadRequest, match="private address"):
        hook(hub, "https://internal.example.com/in")
    assert hub.webhooks.list("alice") == {"webhooks": []}


def test_a_change_that_fails_to_publish_is_retried_from_there_in_order(hub, monkeypatch):
    batch_id = hub.create({"a.png": images.png()})["batch"]["id"]
    hub.processor.cancel("alice", batch_id)
    changes = hub.repo.take_changes()
    real, calls = hub.event_bus.put, []

    def bus_down_once(events):
        calls.append(events)
        if len(calls) == 2:
            raise RuntimeError("EventBridge refused 1 event(s)")
        real(events)
    monkeypatch.setattr(hub.event_bus, "put", bus_down_once)
    assert publish(hub, changes) == [changes[1].sequence]   # the event source retries from here
    assert on_bus(hub) == [(batch_id, ev.CREATED)]
    assert publish(hub, changes[1:]) == []
    assert on_bus(hub) == [(batch_id, ev.CANCELLED)]


def test_a_batch_that_ends_with_outputs_has_its_archive_prebuilt_and_announced(hub):
    made = hook(hub, "https://hooks.example.com/zips", events=["archive.ready"])
    data = {"a.png": images.png()}
    created = hub.create(data)
    bid = created["batch"]["id"]
    hub.deliver(created, data)
    nothing = hub.create({"bad.png": BROKEN})   # failed: nothing to put in a ZIP
    hub.deliver(nothing, {"bad.png": BROKEN})
    publish(hub)
    request, = hub.archive_queue.take()
    assert request == {"batch_id": bid, "partial": False, "prebuild": True}
    hub.event_bus.take()
    key = hub.archives.build_requested(bid, False, prebuild=True)
    assert hub.storage.head(key) is not None
    assert on_bus(hub) == [(bid, ev.ARCHIVE_READY)]
    assert hub.archives.build_requested(bid, False, prebuild=True) == key   # SQS delivers it again
    assert on_bus(hub) == []                                                 # announced once
    ready = hub.archives.request("alice", bid, partial=False)
    assert ready["status"] == "ready" and ready["size"] == hub.storage.head(key)["ContentLength"]
    assert deliver(hub) == ["delivered"]
    got, = hub.webhook_sender.events("https://hooks.example.com/zips")
    assert got["type"] == ev.ARCHIVE_READY and got["data"]["batch"]["id"] == bid
    assert hub.webhooks.deliveries_page("alice", made["webhook"]["id"], {})["deliveries"][0]["status"] == "delivered"


def test_prebuilding_can_be_turned_off():
    hub = make_hub(prebuild_archives=False)
    data = {"a.png": images.png()}
    hub.deliver(hub.create(data), data)
    publish(hub)
    assert hub.archive_queue.take() == []
    assert Counter(kind for _, kind in on_bus(hub)) == {ev.CREATED: 1, ev.STARTED: 1, ev.COMPLETED: 1}


def test_patch_changes_fields_in_any_status_and_announces_nothing_itself(hub):
    created = hub.create({"PL_a.png": images.png()}, metadata={"order": "A-1"}, dropbox_directory_id="id:abc")
    bid = created["batch"]["id"]
    hub.repo.take_changes()
    patched = hub.batches.update("alice", bid, {"monday_item_id": "123", "dropbox_directory_id": None,
                                                "description": "Spring lookbook"})["batch"]
    assert (patched["monday_item_id"], patched["dropbox_directory_id"], patched["metadata"]) == \
        ("123", None, {"order": "A-1"})
    assert hub.batch(bid)["description"] == "Spring lookbook"
    assert [b["id"] for b in hub.batches.list("alice", {"search": "spring"})["batches"]] == [bid]
    with pytest.raises(NotFound):
        hub.batches.update("bob", bid, {"monday_item_id": "9"})
    with pytest.raises(BadRequest, match="unknown field"):
        hub.batches.update("alice", bid, {"status": "completed"})
    hub.processor.cancel("alice", bid)
    assert hub.batches.update("alice", bid, {"auto_upload_enabled": True})["batch"]["status"] == "cancelled"
    assert publish(hub) == []
    assert on_bus(hub) == [(bid, ev.CANCELLED)]   # field changes are changes, not events
    hub.deleter.delete("alice", bid)
    with pytest.raises(NotFound):
        hub.batches.update("alice", bid, {"monday_item_id": "9"})
