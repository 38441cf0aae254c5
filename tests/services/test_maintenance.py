"""Work done in the background (services/maintenance.py, the maintenance queue) on the in-memory
adapters, with manifest chunks of two files (domain/buckets.py CHUNK_SIZE, 1,000 in production)
so a few files cover what a 100,000-file batch does: jobs materialised in the background and on
demand, big deletes purged and big cancels finished later, every step safe to run again."""
from __future__ import annotations

import pytest

from chalicelib.domain import buckets
from chalicelib.errors import Conflict, NotFound
from chalicelib.services import batches as batches_module
from chalicelib.services import deletion, processor
from tests import images
from tests.services.conftest import assert_books_balance

CHUNK = 2


@pytest.fixture
def small(system, monkeypatch):
    monkeypatch.setattr(buckets, "CHUNK_SIZE", CHUNK)
    # one page of uploads is one chunk, so an upload is handed out only once its job has a record
    monkeypatch.setattr(batches_module, "UPLOADS_PER_RESPONSE", CHUNK)
    monkeypatch.setattr(deletion, "INLINE_FILES", CHUNK)
    monkeypatch.setattr(processor, "INLINE_JOBS", CHUNK)
    return system


def names(n: int) -> dict[str, bytes]:
    return {f"PL_BIG{i:02d}_x.png": images.png() for i in range(n)}


def run_all(system) -> list[dict]:
    messages = system.maintenance_queue.take()
    for m in messages:
        system.maintenance.run(m)
    return messages


def listed(system, batch_id: str) -> list[dict]:
    return system.batch(batch_id)["jobs"]


def test_a_big_batch_is_materialised_in_the_background_and_on_demand(small):
    data = names(7)
    created = small.create(data)
    bid = created["batch"]["id"]
    assert [(m["kind"], m["chunk"]) for m in small.maintenance_queue.take()] == [
        ("materialize", 1), ("materialize", 2), ("materialize", 3)]
    assert [u["file_name"] for u in created["uploads"]] == list(data)[:2] and created["uploads_next_cursor"]
    # every view lists every file in order already...
    assert [j["file_name"] for j in listed(small, bid)] == list(data)
    assert {j["status"] for j in listed(small, bid)} == {"awaiting_upload"}
    # ...but a job has its record only once its chunk is materialised
    later = listed(small, bid)[4]["id"]
    with pytest.raises(NotFound):
        small.batches.get_job("alice", later)
    page = small.batches.uploads("alice", bid, {"cursor": created["uploads_next_cursor"]})
    assert [u["file_name"] for u in page["uploads"]] == list(data)[2:4]   # materialised on demand
    assert small.batches.get_job("alice", page["uploads"][0]["job_id"])["job"]["status"] == "awaiting_upload"
    assert small.batches.materialize(bid, 1) == 0                          # the background step finds it done
    for chunk in (2, 3):
        small.maintenance.run({"kind": "materialize", "batch_id": bid, "chunk": chunk})
        small.maintenance.run({"kind": "materialize", "batch_id": bid, "chunk": chunk})   # delivered twice
    assert small.batches.get_job("alice", later)["job"]["file_name"] == list(data)[4]
    uploads, cursor = created["uploads"] + page["uploads"], page["next_cursor"]
    while cursor:
        more = small.batches.uploads("alice", bid, {"cursor": cursor})
        uploads, cursor = uploads + more["uploads"], more["next_cursor"]
    assert [u["file_name"] for u in uploads] == list(data)
    assert set(small.deliver(created, data)) == {"completed"}
    after = small.batch(bid)
    assert after["status"] == "completed" and after["progress"]["succeeded"] == 7


def test_an_arrival_before_its_chunk_is_materialised_is_not_a_file_of_the_batch(small):
    data = names(3)
    created = small.create(data)
    bid = created["batch"]["id"]
    small.maintenance_queue.take()
    key = small.key(created, list(data)[2])   # never handed out: its chunk has no records yet
    small.storage.put(key, data[list(data)[2]], "image/png")
    assert small.arrive(key) == ["ignored"]
    assert small.storage.head(key) is None and small.batch(bid)["progress"]["uploaded"] == 0


def test_a_big_delete_leaves_every_list_at_once_and_is_purged_in_the_background(small):
    keep = small.create({"keep.png": images.png()})
    data = names(5)
    created = small.create(data)
    bid = created["batch"]["id"]
    small.upload(created, {n: data[n] for n in list(data)[:2]})
    small.maintenance_queue.take()
    small.deleter.delete("alice", bid)
    with pytest.raises(NotFound):
        small.batch(bid)
    assert_books_balance(small, 1)
    assert len(small.storage.keys(f"uploads/{bid}/")) == 2   # not yet: the purge is queued
    messages = small.maintenance_queue.take()
    assert messages == [{"kind": "purge", "batch_id": bid}]
    small.maintenance.run({"kind": "materialize", "batch_id": bid, "chunk": 2})   # a late step: nothing
    for _ in range(2):   # delivered twice
        small.maintenance.run(messages[0])
    assert small.storage.keys() == [] and small.repo.get_batch(bid) is None
    assert list(small.repo.all_jobs(bid)) == [] and list(small.repo.interrupted_deletes()) == []
    assert small.batch(keep["batch"]["id"])["status"] == "queued"


def test_a_big_cancel_is_final_at_once_and_its_jobs_are_cancelled_in_the_background(small):
    data = names(5)
    created = small.create(data)
    bid = created["batch"]["id"]
    small.maintenance_queue.take()
    first = list(data)[0]
    small.arrive(*small.upload(created, {first: data[first]}))   # one file is processing
    assert small.processor.cancel("alice", bid)["status"] == "cancelled"
    assert small.batch(bid)["progress"]["cancelled"] == 0
    assert list(small.repo.interrupted_cancels()) == [bid]
    messages = small.maintenance_queue.take()
    assert messages == [{"kind": "cancel_jobs", "batch_id": bid}]
    small.maintenance.run(messages[0])
    small.maintenance.run(messages[0])   # delivered twice: counted once
    for chunk in (1, 2):                 # background materialising after the cancel writes nothing
        small.maintenance.run({"kind": "materialize", "batch_id": bid, "chunk": chunk})
    after = small.batch(bid)
    assert after["progress"] == {"uploaded": 1, "succeeded": 0, "failed": 0, "cancelled": 5, "percent": 100}
    assert {j["status"] for j in after["jobs"]} == {"cancelled"}
    assert list(small.repo.interrupted_cancels()) == []
    assert small.drain() == ["cancelled"]   # the processing message finds its job cancelled
    assert small.storage.keys() == []
    stats = assert_books_balance(small, 1)
    assert stats["cancelled"] == 1


def finished_with_failures(small, n: int, broken: set[int]) -> tuple[str, dict]:
    """A big batch of n files whose files `broken` fail (their uploads stored: retriable)."""
    data = names(n)
    for i, name in enumerate(data):
        if i in broken:
            data[name] = data[name][:40]
    created = small.create(data)
    bid = created["batch"]["id"]
    run_all(small)
    small.deliver(created, data)
    assert small.batch(bid)["status"] == "completed_with_errors"
    return bid, data


def test_a_big_retry_answers_at_once_and_reopens_its_files_in_the_background(small):
    bid, data = finished_with_failures(small, 5, {1, 3})
    small.clock.advance(minutes=1)
    b = small.processor.retry("alice", bid)
    assert (b["status"], b["failed"]) == ("processing", 2)   # nothing reopened yet
    assert small.queue.take() == []
    # a duplicate S3 event now finds every file final: no final status while the retry is pending
    small.arrive(small.key({"uploads": []} | {"batch": {"id": bid}}, list(data)[0]))
    assert small.batch(bid)["status"] == "processing"
    messages = small.maintenance_queue.take()
    assert messages == [{"kind": "retry_jobs", "batch_id": bid}]
    small.maintenance.run(messages[0])
    small.maintenance.run(messages[0])     # delivered twice: nothing more reopened
    assert small.batch(bid)["progress"]["failed"] == 0
    assert len(small.drain()) == 2         # the two reopened files, once each (and broken still)
    after = small.batch(bid)
    assert after["status"] == "completed_with_errors" and after["completed_at"] != b["created_at"]
    assert (after["progress"]["succeeded"], after["progress"]["failed"]) == (3, 2)
    assert {j["attempt"] for j in small.repo.all_jobs(bid) if j["status"] == "failed"} == {2}
    assert_books_balance(small, 1)


def test_a_big_retry_whose_files_all_finish_before_its_mark_goes_is_closed_by_the_background(small):
    bid, _ = finished_with_failures(small, 4, {0})
    small.processor.retry("alice", bid)
    real_end = small.repo.end_retry

    def drained_first(batch_id, token):
        small.drain()                      # the reopened file finishes (and fails again) under the mark
        assert small.batch(bid)["status"] == "processing"
        return real_end(batch_id, token)

    small.repo.end_retry = drained_first
    try:
        run_all(small)
    finally:
        small.repo.end_retry = real_end
    after = small.batch(bid)
    assert after["status"] == "completed_with_errors" and after["progress"]["failed"] == 1
    assert_books_balance(small, 1)


def test_a_big_retry_with_nothing_to_run_is_refused_in_the_request(small):
    data = names(4)
    created = small.create(data)
    bid = created["batch"]["id"]
    run_all(small)
    small.deliver(created, data)
    with pytest.raises(Conflict, match="no failed files"):
        small.processor.retry("alice", bid)
    assert small.maintenance_queue.take() == []


def test_a_big_retry_step_delivered_twice_at_once_reopens_through_one_worker(small):
    bid, _ = finished_with_failures(small, 4, {1})
    small.processor.retry("alice", bid)
    message = small.maintenance_queue.take()[0]
    real_sync = small.repo.sync_counters
    beside = []

    def the_duplicate_runs_now(batch_id):
        beside.append(small.processor.retry_jobs(batch_id))   # the same step, in another worker
        real_sync(batch_id)

    small.repo.sync_counters = the_duplicate_runs_now
    try:
        small.maintenance.run(message)
    finally:
        small.repo.sync_counters = real_sync
    assert beside == [0]
    assert len(small.drain()) == 1
    assert small.batch(bid)["status"] == "completed_with_errors"
    assert_books_balance(small, 1)


def test_a_cancel_during_a_big_retry_wins_and_the_background_reopens_nothing(small):
    bid, _ = finished_with_failures(small, 4, {2})
    small.processor.retry("alice", bid)
    assert small.processor.cancel("alice", bid)["status"] == "cancelled"
    run_all(small)                         # retry_jobs, then cancel_jobs
    after = small.batch(bid)
    assert after["status"] == "cancelled" and {j["status"] for j in after["jobs"]} <= {"completed", "failed"}
    assert small.queue.take() == []
    assert_books_balance(small, 1)


def test_a_big_retry_whose_message_was_lost_is_resumed_by_the_sweep(small):
    bid, _ = finished_with_failures(small, 4, {2})
    small.processor.retry("alice", bid)
    small.maintenance_queue.take()         # lost
    small.clock.advance(hours=3)           # past the upload deadline and the stale mark
    small.sweep.run()
    assert small.batch(bid)["progress"]["failed"] == 0
    assert len(small.drain()) == 1
    assert small.batch(bid)["status"] == "completed_with_errors"
    assert_books_balance(small, 1)


def test_an_unknown_step_is_ignored(small, caplog):
    small.maintenance.run({"kind": "reticulate", "batch_id": "b"})
    assert "unknown kind" in caplog.text
