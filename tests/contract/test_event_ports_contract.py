"""chalicelib/event_ports.py on both backends: the webhook store and its delivery log (DynamoDB),
the delivery queue (SQS), the event bus (EventBridge, read through a rule to a queue) and the
secret box (KMS). The HTTP sender is not here: the fake is a recorder, the real one is tested
against real sockets (tests/functional/test_webhook_http.py)."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from chalicelib.domain import events as ev
from chalicelib.services.clock import iso, iso_precise
from tests.contract.conftest import BASE, walk

T = [BASE + timedelta(seconds=s) for s in range(60)]


@pytest.fixture
def store(backend):
    return backend.container.webhook_store


def webhook(owner: str = "alice", **fields) -> dict:
    return {"owner": owner, "id": str(uuid.uuid4()), "url": "https://hooks.example.com/in", "events": ["*"],
            "description": "", "active": True, "secret_ciphertext": "sealed", "created_at": iso(T[0]),
            "updated_at": iso(T[0]), **fields}


def delivery(hook: dict, moment: int, **fields) -> dict:
    did = str(uuid.uuid4())
    event = ev.ping(hook["id"], str(uuid.uuid4()), iso(T[moment]), hook["owner"])
    return {"webhook_id": hook["id"], "id": did, "owner": hook["owner"], "event": event.body(),
            "event_id": event.id, "event_type": event.type, "status": "pending", "attempts": 0,
            "created_at": iso(T[moment]), "next_attempt_at": iso(T[moment]),
            "created_sk": f"{iso_precise(T[moment])}#{did}", **fields}


def test_webhooks_are_stored_per_owner_and_listed_by_id(store):
    hooks = [webhook(events=["batch.completed"], description=f"n{n}") for n in range(3)]
    for h in hooks:
        store.create_webhook(h)
    store.create_webhook(webhook(owner="bob"))
    assert store.get_webhook("alice", hooks[1]["id"]) == hooks[1]
    assert store.get_webhook("bob", hooks[1]["id"]) is None   # another owner's: not found
    assert [w["id"] for w in store.list_webhooks("alice")] == sorted(h["id"] for h in hooks)
    assert store.list_webhooks("carol") == []
    with pytest.raises(Exception):   # an id is used once
        store.create_webhook(hooks[0])


def test_a_webhook_is_replaced_and_deleted_once(store):
    h = webhook()
    store.create_webhook(h)
    changed = {"url": "https://hooks.example.com/v2", "events": ["batch.failed", "archive.ready"],
               "description": "ops", "active": False, "updated_at": iso(T[5])}
    assert store.replace_webhook("alice", h["id"], changed) == {**h, **changed}
    changed["events"].append("mangled")   # the store keeps what was given, not the caller's list
    assert store.get_webhook("alice", h["id"])["events"] == ["batch.failed", "archive.ready"]
    assert store.replace_webhook("bob", h["id"], changed) is None
    assert store.delete_webhook("bob", h["id"]) is False
    assert store.delete_webhook("alice", h["id"]) is True
    assert store.delete_webhook("alice", h["id"]) is False
    assert store.replace_webhook("alice", h["id"], changed) is None and store.get_webhook("alice", h["id"]) is None


def test_a_delivery_is_added_once_by_id(store):
    h = webhook()
    d = delivery(h, 1)
    added = store.add_delivery(d)
    expected = {**d, "last_status_code": None, "last_error": None, "delivered_at": None, "lease_until": None}
    assert added == expected and store.get_delivery(h["id"], d["id"]) == expected
    assert store.add_delivery({**d, "status": "delivered"}) is None   # a replayed event adds nothing
    assert store.get_delivery(h["id"], d["id"])["status"] == "pending"
    assert store.get_delivery(h["id"], str(uuid.uuid4())) is None
    assert store.get_delivery(str(uuid.uuid4()), d["id"]) is None


def test_the_delivery_log_is_newest_first_in_pages(store):
    h, other = webhook(), webhook()
    made = [store.add_delivery(delivery(h, m)) for m in (3, 1, 4, 2, 5)]
    store.add_delivery(delivery(other, 6))
    items, sizes = walk(lambda start: store.list_deliveries(h["id"], 2, start))
    newest_first = sorted(made, key=lambda d: d["created_sk"], reverse=True)
    assert [d["id"] for d in items] == [d["id"] for d in newest_first] and sizes == [2, 2, 1]
    assert [d["id"] for d in store.list_deliveries(h["id"], 10, None).items] == [d["id"] for d in newest_first]
    assert store.list_deliveries(h["id"], 10, None).last_key is None
    assert store.list_deliveries(str(uuid.uuid4()), 10, None).items == []


def test_an_attempt_is_claimed_once_and_only_its_holder_records_it(store):
    h = webhook()
    d = store.add_delivery(delivery(h, 0))
    lease = iso_precise(T[30])
    assert store.claim_attempt(d, 2, iso_precise(T[1]), lease) is False   # not the next attempt
    assert store.claim_attempt(d, 1, iso_precise(T[1]), lease) is True
    assert store.claim_attempt(d, 1, iso_precise(T[2]), lease) is False   # a duplicate message: the lease holds
    assert store.get_delivery(h["id"], d["id"])["attempts"] == 1
    assert store.finish_attempt(d, 2, {"status": "delivered"}) is False   # not ours
    outcome = {"status": "pending", "last_status_code": 500, "last_error": "receiver answered 500",
               "next_attempt_at": iso(T[40])}
    assert store.finish_attempt(d, 1, outcome) is True
    after = store.get_delivery(h["id"], d["id"])
    assert {k: after[k] for k in outcome} == outcome and (after["attempts"], after["lease_until"]) == (1, None)
    assert store.claim_attempt(d, 1, iso_precise(T[50]), lease) is False  # finished: no lease to take over
    assert store.claim_attempt(d, 2, iso_precise(T[41]), iso_precise(T[59])) is True
    assert store.finish_attempt(d, 2, {"status": "delivered", "last_status_code": 204, "last_error": None,
                                       "delivered_at": iso(T[42]), "next_attempt_at": None}) is True
    done = store.get_delivery(h["id"], d["id"])
    assert (done["status"], done["last_status_code"], done["last_error"], done["next_attempt_at"]) == \
        ("delivered", 204, None, None) and done["delivered_at"] == iso(T[42])
    assert store.claim_attempt(done, 3, iso_precise(T[59]), lease) is False      # delivered: nothing more
    assert store.finish_attempt(done, 2, {"status": "failed"}) is False


def test_an_attempt_whose_worker_died_is_taken_over_once_its_lease_ran_out(store):
    h = webhook()
    d = store.add_delivery(delivery(h, 0))
    assert store.claim_attempt(d, 1, iso_precise(T[1]), iso_precise(T[10]))
    assert store.claim_attempt(d, 1, iso_precise(T[9]), iso_precise(T[20])) is False   # still running
    assert store.claim_attempt(d, 1, iso_precise(T[11]), iso_precise(T[20])) is True   # it died
    assert store.claim_attempt(d, 1, iso_precise(T[12]), iso_precise(T[20])) is False
    missing = {**d, "id": str(uuid.uuid4())}
    assert store.claim_attempt(missing, 1, iso_precise(T[1]), iso_precise(T[10])) is False
    assert store.finish_attempt(missing, 1, {"status": "failed"}) is False


def test_delivery_messages_come_back_once(backend):
    queue = backend.container.deliveries.queue
    sent = [{"webhook_id": "w", "delivery_id": str(n), "owner": "alice", "attempt": 1 + n % 3} for n in range(12)]
    for message in sent:
        queue.enqueue(message)
    later = {"webhook_id": "w", "delivery_id": "later", "owner": "alice", "attempt": 2, "not_before": iso(T[1])}
    queue.enqueue(later)
    got = backend.delivery_messages()
    assert sorted(got, key=lambda m: m["delivery_id"]) == sorted(sent + [later], key=lambda m: m["delivery_id"])
    assert backend.delivery_messages() == []


def test_events_put_on_the_bus_arrive_with_their_type_and_body(backend):
    backend.tap_bus()
    view = {"id": "b-1", "status": "completed"}
    events = [ev.batch_event(kind, "b-1", str(n), iso(T[n]), view, "alice")
              for n, kind in enumerate((ev.CREATED, ev.STARTED, ev.COMPLETED) * 4)]   # more than one PutEvents call
    backend.container.events.bus.put(events)
    got = backend.bus_entries()
    assert sorted((e["detail-type"], e["detail"]["id"]) for e in got) == sorted((e.type, e.id) for e in events)
    assert all(e["source"] == "imgbatch" for e in got)
    by_id = {e["detail"]["id"]: e["detail"] for e in got}
    assert all(by_id[e.id] == e.body() for e in events)   # the body a webhook gets, owner never in it
    assert backend.bus_entries() == []


def test_a_sealed_secret_opens_only_with_its_context(backend):
    box = backend.container.deliveries.secrets
    context = {"imgbatch:webhook": "w-1", "imgbatch:owner": "alice"}
    sealed = box.seal("whsec_abc123", context)
    assert isinstance(sealed, str) and "whsec_abc123" not in sealed
    assert box.open(sealed, dict(context)) == "whsec_abc123"
    with pytest.raises(Exception):   # copied onto another webhook's item
        box.open(sealed, {**context, "imgbatch:webhook": "w-2"})
    with pytest.raises(Exception):
        box.open(sealed, {"imgbatch:webhook": "w-1"})
