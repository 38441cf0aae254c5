"""The Processor state machine on the in-memory adapters: register, process (claim, render,
finish), duplicates, crashes between writes, cancel and retry racing it, expiry and the sweep.
Real images and the real pipeline; the outside world is the System in conftest.py."""
from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from chalicelib.errors import Conflict, NotFound
from chalicelib.services.clock import iso
from tests import images
from tests.services.conftest import START, assert_books_balance, flaky_render, killed


# -- an object arrives, is registered, is processed ------------------------------------------

def test_an_arrival_is_counted_at_once_and_handed_to_processing(system):
    data = {"a.png": images.png(), "b.png": images.png()}
    created = system.create(data)
    bid = created["batch"]["id"]
    keys = system.upload(created, data)
    assert system.arrive(*keys) == ["registered", "registered"]
    b = system.batch(bid)
    assert (b["status"], b["started_at"]) == ("processing", iso(START))
    assert b["progress"] == {"uploaded": 2, "succeeded": 0, "failed": 0, "cancelled": 0, "percent": 0}
    assert sorted(system.queue.take()) == sorted(keys)
    # a repeated notification counts nothing, but is forwarded again: the first forward may be
    # what a crash lost
    assert system.arrive(keys[0]) == ["registered"]
    assert system.batch(bid)["progress"]["uploaded"] == 2 and system.queue.take() == [keys[0]]
    assert [system.processor.process_key(k) for k in keys] == ["completed", "completed"]
    b = system.batch(bid)
    assert b["status"] == "completed" and b["completed_at"] == iso(START)
    assert b["progress"] == {"uploaded": 2, "succeeded": 2, "failed": 0, "cancelled": 0, "percent": 100}


def test_a_batch_of_real_images_completes_with_outputs_and_previews(system):
    web = system.pipeline()
    thumb = system.pipeline(name="thumb", format="webp", width=16, height=16, fit="cover")
    data = {"PL_DXB1_Front.png": images.png((80, 60)), "PL_DXB1_Back.png": images.png((80, 60), mode="RGBA"),
            "PL_DXB1_Side.png": images.jpeg((60, 120), orientation=6)}
    created = system.create(data, pipelines=[web, thumb])
    assert system.deliver(created, data) == ["completed"] * 3
    b = system.batch(created["batch"]["id"])
    assert b["status"] == "completed" and b["progress"]["succeeded"] == 3
    for job in b["jobs"]:
        web_out, thumb_out = job["outputs"]
        assert web_out["pipeline_id"] == web["id"] and thumb_out["pipeline_id"] == thumb["id"]
        body = system.storage.data(web_out["key"])
        assert images.decode(body).format == "JPEG" and len(body) == web_out["size"] and web_out["width"] == 40
        assert images.decode(system.storage.data(thumb_out["key"])).size == (16, 16)
        preview = system.repo.get_job(b["id"], job["id"])["preview"]
        assert images.decode(system.storage.data(preview["key"])).format == "WEBP"
    side = system.jobs(b["id"])["PL_DXB1_Side.png"]["outputs"][0]
    assert side["height"] < side["width"]   # EXIF orientation 6 applied
    assert system.stats()["completed"] == 1 and system.stats()["processing"] == 0


def test_an_event_without_a_registration_claims_the_job_itself(system):
    data = {"a.png": images.png()}
    created = system.create(data)
    (key,) = system.upload(created, data)
    assert system.processor.process_key(key) == "completed"
    b = system.batch(created["batch"]["id"])
    assert b["status"] == "completed" and b["progress"]["uploaded"] == 1 and b["started_at"]


def test_duplicate_and_late_events_count_once(system):
    data = {"a.png": images.png(), "b.png": images.png()}
    created = system.create(data)
    system.deliver(created, data)
    bid = created["batch"]["id"]
    first = system.batch(bid)
    keys = [system.key(created, n) for n in data]
    system.clock.advance(minutes=5)
    assert [system.processor.process_key(k) for k in keys + keys] == ["duplicate"] * 4
    system.storage.put(keys[0], images.png((10, 10)), "image/png")   # uploaded again after completion
    assert system.arrive(keys[0]) == ["duplicate"] and system.drain() == []
    again = system.batch(bid)
    assert again["progress"] == first["progress"] and again["completed_at"] == first["completed_at"]
    assert system.stats()["completed"] == 1


def test_bad_files_fail_their_own_job_with_a_code(system):
    good = images.png()
    data = {"good.png": good, "corrupt.png": good[:40], "text.png": b"hello, not an image at all",
            "short.png": images.png((30, 30)), "gone.png": images.png()}
    created = system.create(data)
    stored = {**data, "short.png": data["short.png"][:-10]}
    keys = system.upload(created, stored)
    system.arrive(*keys)
    system.storage.delete(system.key(created, "gone.png"))   # removed between arrival and processing
    assert sorted(system.drain()) == ["completed"] + ["failed"] * 4
    jobs = system.jobs(created["batch"]["id"])
    assert {n: (j["error"] or {}).get("code") for n, j in jobs.items()} == {
        "good.png": None, "corrupt.png": "corrupt_image", "text.png": "not_an_image", "short.png": "size_mismatch",
        "gone.png": "missing_upload"}
    assert "declared" in jobs["short.png"]["error"]["message"]
    assert all(j["outputs"] == [] for n, j in jobs.items() if n != "good.png")
    b = system.batch(created["batch"]["id"])
    assert b["status"] == "completed_with_errors" and b["progress"]["failed"] == 4


def test_all_failed_is_failed_and_a_lying_extension_is_judged_by_content(system):
    gif = b"GIF89a-not-really" + b"\0" * 20
    created = system.create({"x.png": gif})
    system.deliver(created, {"x.png": gif})
    assert system.batch(created["batch"]["id"])["status"] == "failed"
    webp = images.webp()
    created = system.create({"photo.jpg": webp})
    system.deliver(created, {"photo.jpg": webp})
    assert system.batch(created["batch"]["id"])["status"] == "completed"


# -- crashes between writes ----------------------------------------------------------------------

def test_a_crash_between_outputs_and_commit_is_repaired_by_redelivery(system, monkeypatch):
    data = {"a.png": images.png()}
    created = system.create(data)
    (key,) = system.upload(created, data)
    monkeypatch.setattr(system.repo, "finish_job", killed)
    with pytest.raises(RuntimeError):
        system.processor.process_key(key)
    assert len(system.storage.keys("outputs/")) == 2   # the output and its preview: written, not committed
    mid = system.batch(created["batch"]["id"])
    assert mid["status"] == "processing" and mid["progress"]["succeeded"] == 0
    monkeypatch.undo()
    assert [system.processor.process_key(key) for _ in range(2)] == ["completed", "duplicate"]
    b = system.batch(created["batch"]["id"])
    assert b["status"] == "completed" and b["progress"]["succeeded"] == 1 and b["progress"]["uploaded"] == 1
    assert len(system.storage.keys("outputs/")) == 2   # fixed keys: overwritten, not doubled
    assert system.stats()["completed"] == 1


def test_a_crash_before_the_final_status_is_healed_by_redelivery(system, monkeypatch):
    data = {"a.png": images.png()}
    created = system.create(data)
    (key,) = system.upload(created, data)
    monkeypatch.setattr(system.repo, "finalize", killed)
    with pytest.raises(RuntimeError):
        system.processor.process_key(key)
    assert system.batch(created["batch"]["id"])["progress"]["succeeded"] == 1
    monkeypatch.undo()
    assert system.processor.process_key(key) == "duplicate"
    assert system.batch(created["batch"]["id"])["status"] == "completed"


def test_a_lost_forward_is_repaired_by_the_repeated_notification(system, monkeypatch):
    data = {"a.png": images.png()}
    created = system.create(data)
    (key,) = system.upload(created, data)
    monkeypatch.setattr(system.queue, "enqueue_keys", killed)
    with pytest.raises(RuntimeError):
        system.arrive(key)   # counted, not forwarded: SQS redelivers the notification
    monkeypatch.undo()
    assert system.arrive(key) == ["registered"]
    assert system.drain() == ["completed"]
    assert system.batch(created["batch"]["id"])["progress"]["uploaded"] == 1


# -- cancel ----------------------------------------------------------------------------------------

def test_cancel_then_a_late_upload_is_neither_processed_nor_kept(system):
    data = {"a.png": images.png(), "b.png": images.png(), "c.png": images.png()}
    created = system.create(data)
    bid = created["batch"]["id"]
    system.deliver(created, {"a.png": data["a.png"]})
    system.clock.advance(seconds=30)
    b = system.processor.cancel("alice", bid)
    assert b["status"] == "cancelled" and b["completed_at"] == iso(START + timedelta(seconds=30))
    assert (b["succeeded"], b["cancelled"]) == (1, 2)
    assert list(system.repo.interrupted_cancels()) == []
    late = system.upload(created, {"b.png": data["b.png"]})
    assert system.arrive(*late) == ["cancelled"] and system.storage.head(late[0]) is None
    assert system.processor.process_key(late[0]) == "cancelled"
    assert {n: j["status"] for n, j in system.jobs(bid).items()} == {
        "a.png": "completed", "b.png": "cancelled", "c.png": "cancelled"}
    with pytest.raises(Conflict, match="already cancelled"):
        system.processor.cancel("alice", bid)
    with pytest.raises(Conflict, match="was cancelled"):
        system.processor.retry("alice", bid)
    with pytest.raises(NotFound):
        system.processor.cancel("bob", bid)
    assert system.stats()["cancelled"] == 1 and system.stats()["processing"] == 0


def test_cancel_of_a_final_batch_names_its_status(system):
    data = {"a.png": images.png()}
    created = system.create(data)
    system.deliver(created, data)
    with pytest.raises(Conflict, match="already completed"):
        system.processor.cancel("alice", created["batch"]["id"])


def test_a_cancel_landing_before_a_workers_commit_discards_its_outputs(system, monkeypatch):
    data = {"a.png": images.png(), "b.png": images.png()}
    created = system.create(data)
    bid = created["batch"]["id"]
    system.arrive(*system.upload(created, {"a.png": data["a.png"]}))
    real_finish = system.repo.finish_job

    def cancel_then_commit(*args, **kwargs):   # outputs are written; the user cancels; then the commit
        system.processor.cancel("alice", bid)
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(system.repo, "finish_job", cancel_then_commit)
    assert system.drain() == ["duplicate"]
    b = system.batch(bid)
    assert b["status"] == "cancelled" and b["progress"]["cancelled"] == 2 and b["progress"]["succeeded"] == 0
    assert system.storage.keys("outputs/") == []
    assert_books_balance(system, 1)


def test_cancel_wins_when_the_batch_starts_under_it(system, monkeypatch):
    data = {"a.png": images.png(), "b.png": images.png()}
    created = system.create(data)
    bid = created["batch"]["id"]
    (key,) = system.upload(created, {"a.png": data["a.png"]})
    real_finalize = system.repo.finalize
    raced = []

    def first_file_starts_meanwhile(batch, status, now):
        if not raced:
            raced.append(system.arrive(key))   # queued -> processing between the read and the write
        return real_finalize(batch, status, now)

    monkeypatch.setattr(system.repo, "finalize", first_file_starts_meanwhile)
    b = system.processor.cancel("alice", bid)
    assert raced == [["registered"]] and b["status"] == "cancelled"
    assert b["succeeded"] + b["failed"] + b["cancelled"] == 2
    monkeypatch.undo()
    assert system.drain() == ["cancelled"] and system.storage.head(key) is None
    assert_books_balance(system, 1)


def test_an_interrupted_cancel_is_finished_by_the_sweep(system, monkeypatch):
    created = system.create({"a.png": images.png(), "b.png": images.png()})
    bid = created["batch"]["id"]
    monkeypatch.setattr(system.processor, "cancel_pending_jobs", killed)
    with pytest.raises(RuntimeError):
        system.processor.cancel("alice", bid)
    monkeypatch.undo()
    assert list(system.repo.interrupted_cancels()) == [bid]
    system.sweep.run()
    b = system.batch(bid)
    assert b["status"] == "cancelled" and b["progress"]["cancelled"] == 2
    assert {j["status"] for j in b["jobs"]} == {"cancelled"}
    assert list(system.repo.interrupted_cancels()) == []


# -- retry -----------------------------------------------------------------------------------------

def test_retry_reprocesses_failed_files_and_the_counters_move_back(system, monkeypatch):
    data = {"a.png": images.png(), "b.png": images.png()}
    created = system.create(data)
    bid = created["batch"]["id"]
    flaky_render(monkeypatch, {2})
    system.deliver(created, data)
    assert system.batch(bid)["status"] == "completed_with_errors"
    assert system.stats()["completed_with_errors"] == 1
    system.clock.advance(minutes=1)
    b = system.processor.retry("alice", bid)
    assert (b["status"], b["completed_at"], b["failed"]) == ("processing", None, 0)
    assert system.drain() == ["completed"]
    after = system.batch(bid)
    assert after["status"] == "completed" and after["progress"]["succeeded"] == 2
    assert after["completed_at"] == iso(START + timedelta(minutes=1))
    assert all(j["error"] is None for j in after["jobs"])
    stats = system.stats()
    assert (stats["completed"], stats["completed_with_errors"], stats["processing"]) == (1, 0, 0)
    with pytest.raises(Conflict, match="no failed files"):
        system.processor.retry("alice", bid)


def test_a_cancel_between_reopening_the_batch_and_its_jobs_strands_nothing(system, monkeypatch):
    good = images.png()
    data = {"a.png": good, "b.png": good[:40]}   # b fails, and its upload is stored: retriable
    created = system.create(data)
    bid = created["batch"]["id"]
    system.deliver(created, data)
    assert system.batch(bid)["status"] == "completed_with_errors"
    real_reopen_job = system.repo.reopen_job
    cancels = []

    def cancel_in_between(job, now):
        if not cancels:
            cancels.append(system.processor.cancel("alice", bid)["status"])
        return real_reopen_job(job, now)

    monkeypatch.setattr(system.repo, "reopen_job", cancel_in_between)
    b = system.processor.retry("alice", bid)
    assert cancels == ["cancelled"] and b["status"] == "cancelled"
    assert system.queue.take() == []
    assert b["succeeded"] + b["failed"] + b["cancelled"] == b["total_files"]
    assert {j["status"] for j in system.batch(bid)["jobs"]} <= {"completed", "failed", "cancelled"}
    assert_books_balance(system, 1)


def test_two_retries_from_one_read_reopen_the_job_once(system, monkeypatch):
    good = images.png()
    data = {"a.png": good, "b.png": good[:40]}
    created = system.create(data)
    bid = created["batch"]["id"]
    system.deliver(created, data)
    real_reopen_batch = system.repo.reopen_batch
    inner = []

    def another_retry_first(batch, now):
        if not inner:
            inner.append("running")
            inner[0] = system.processor.retry("alice", bid)["status"]
        return real_reopen_batch(batch, now)

    monkeypatch.setattr(system.repo, "reopen_batch", another_retry_first)
    b = system.processor.retry("alice", bid)   # its reopen fails, it reads again: open, so on
    assert inner == ["processing"] and b["status"] == "processing"
    assert system.queue.take() == [system.key(created, "b.png")]   # forwarded once
    assert system.batch(bid)["progress"]["failed"] == 0


# -- expiry and the sweep ------------------------------------------------------------------------------

def test_stored_uploads_are_registered_and_missing_ones_expire(system):
    data = {"a.png": images.png(), "b.png": images.png(), "never.png": images.png()}
    created = system.create(data)
    bid = created["batch"]["id"]
    system.upload(created, {"a.png": data["a.png"], "b.png": data["b.png"]})   # their events still queued
    assert system.processor.expire_uploads() == 0   # not due
    system.clock.advance(seconds=3600 + 15)          # the deadline plus the grace, exactly
    assert system.processor.expire_uploads() == 1    # only the file that never came
    b = system.batch(bid)
    assert b["progress"]["uploaded"] == 2 and b["progress"]["failed"] == 1 and b["status"] == "processing"
    assert system.drain() == ["completed", "completed"]
    b = system.batch(bid)
    assert b["status"] == "completed_with_errors" and b["progress"]["succeeded"] == 2
    assert {n: (j["error"] or {}).get("code") for n, j in system.jobs(bid).items()} == {
        "a.png": None, "b.png": None, "never.png": "upload_expired"}
    assert "upload deadline" in system.jobs(bid)["never.png"]["error"]["message"]
    assert system.processor.expire_uploads() == 0
    with pytest.raises(Conflict, match="never arrived"):
        system.processor.retry("alice", bid)


def test_an_upload_is_not_expired_within_the_grace(system):
    created = system.create({"a.png": images.png()})
    system.clock.advance(seconds=3600 + 14)
    assert system.processor.expire_uploads() == 0
    assert system.batch(created["batch"]["id"])["status"] == "queued"


def test_processing_that_died_for_good_is_failed_by_the_sweep_and_can_be_retried(system, monkeypatch):
    data = {"a.png": images.png(), "b.png": images.png()}
    created = system.create(data)
    bid = created["batch"]["id"]
    system.deliver(created, {"a.png": data["a.png"]})
    system.arrive(*system.upload(created, {"b.png": data["b.png"]}))
    monkeypatch.setattr(system.storage, "fetch", killed)   # every attempt crashes; the message ends in the DLQ
    with pytest.raises(RuntimeError):
        system.drain()
    monkeypatch.undo()
    system.clock.advance(seconds=3600 + 60)
    assert system.processor.expire_uploads() == 0   # processing, not stale yet
    system.clock.now = START + timedelta(minutes=90, seconds=1)
    assert system.processor.expire_uploads() == 1
    b = system.batch(bid)
    assert b["status"] == "completed_with_errors"
    assert system.jobs(bid)["b.png"]["error"]["code"] == "processing_failed"
    system.processor.retry("alice", bid)   # its upload is stored
    assert system.drain() == ["completed"] and system.batch(bid)["status"] == "completed"


def test_retrying_an_expired_job_whose_file_came_late_counts_its_upload(system):
    data = {"a.png": images.png(), "late.png": images.png()}
    created = system.create(data)
    bid = created["batch"]["id"]
    system.deliver(created, {"a.png": data["a.png"]})
    system.clock.advance(seconds=3600 + 60)
    assert system.processor.expire_uploads() == 1
    late = system.upload(created, {"late.png": data["late.png"]})
    assert system.arrive(*late) == ["duplicate"]   # too late: its job has failed already
    assert system.batch(bid)["progress"]["uploaded"] == 1
    system.processor.retry("alice", bid)
    assert system.drain() == ["completed"]
    b = system.batch(bid)
    assert b["status"] == "completed"
    assert b["progress"] == {"uploaded": 2, "succeeded": 2, "failed": 0, "cancelled": 0, "percent": 100}


def test_an_interrupted_delete_is_finished_by_the_sweep(system, monkeypatch):
    data = {"a.png": images.png()}
    created = system.create(data)
    bid = created["batch"]["id"]
    system.deliver(created, data)
    monkeypatch.setattr(system.deleter, "purge", killed)
    with pytest.raises(RuntimeError):
        system.deleter.delete("alice", bid)
    with pytest.raises(NotFound):   # gone for the user at once
        system.batch(bid)
    assert_books_balance(system, 0)
    monkeypatch.undo()
    assert system.sweep.run() == {"expired": 0, "deletes_resumed": 1}
    assert system.storage.keys() == [] and system.repo.get_batch(bid) is None
    assert list(system.repo.all_jobs(bid)) == []
    assert system.sweep.run() == {"expired": 0, "deletes_resumed": 0}


# -- objects nobody expects, and deletes racing workers ----------------------------------------------------

def test_objects_nobody_asked_for_are_removed_on_arrival(system):
    created = system.create({"a.png": images.png()})
    key = system.key(created, "a.png")
    forged = key.rsplit("/", 1)[0] + "/other-name.png"
    outside = "elsewhere/file.png"
    for k in (forged, outside):
        system.storage.put(k, b"x", "image/png")
    assert system.arrive(forged, outside, "uploads/not-a-batch/x.png") == ["ignored"] * 3
    assert system.storage.keys() == [outside]   # outside the upload layout: not ours to delete
    assert system.batch(created["batch"]["id"])["progress"]["uploaded"] == 0


def test_an_upload_after_a_delete_is_removed_on_arrival(system):
    data = {"a.png": images.png()}
    created = system.create(data)
    system.deleter.delete("alice", created["batch"]["id"])
    keys = system.upload(created, data)   # the presigned POST is still valid
    assert system.arrive(*keys) == ["ignored"] and system.storage.keys() == []


def test_a_worker_finishing_during_a_delete_leaves_nothing_behind(system, monkeypatch):
    data = {"a.png": images.png()}
    created = system.create(data)
    bid = created["batch"]["id"]
    system.arrive(*system.upload(created, data))
    real_finish = system.repo.finish_job

    def delete_then_commit(*args, **kwargs):
        system.deleter.delete("alice", bid)
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(system.repo, "finish_job", delete_then_commit)
    assert system.drain() == ["duplicate"]
    assert system.storage.keys() == []
    assert_books_balance(system, 0)


def test_a_delete_between_the_last_commit_and_the_final_status_wins(system, monkeypatch):
    """The worker counts the last file, the user's delete marks the batch, then the worker asks
    for the final status: the batch stays deleting and out of every figure. (DynamoRepository
    raises AttributeError here, and the record is retried: tests/contract,
    test_a_batch_being_deleted_is_never_finalized.)"""
    data = {"a.png": images.png()}
    created = system.create(data)
    bid = created["batch"]["id"]
    system.arrive(*system.upload(created, data))
    real_finish = system.repo.finish_job

    def commit_then_delete_begins(*args, **kwargs):
        done = real_finish(*args, **kwargs)
        system.repo.mark_deleting(system.repo.get_batch(bid), iso(system.clock()))   # its purge still to come
        return done

    monkeypatch.setattr(system.repo, "finish_job", commit_then_delete_begins)
    assert system.drain() == ["completed"]
    assert system.repo.get_batch(bid)["status"] == "deleting"
    assert_books_balance(system, 0)
    assert system.sweep.run()["deletes_resumed"] == 1 and system.storage.keys() == []


# -- many workers, every event more than once -------------------------------------------------------------

def test_shuffled_repeated_deliveries_by_parallel_workers_count_once(system):
    data = {f"f{i:02d}.png": images.png((8, 8)) for i in range(24)}
    created = system.create(data)
    bid = created["batch"]["id"]
    keys = system.upload(created, data)
    events = [("arrive", k) for k in keys] * 2 + [("process", k) for k in keys] * 3
    random.Random(12).shuffle(events)
    finals = []
    real_finalize = system.repo.finalize
    lock = threading.Lock()

    def counting_finalize(batch, status, now):
        won = real_finalize(batch, status, now)
        if won:
            with lock:
                finals.append(status)
        return won

    system.repo.finalize = counting_finalize

    def handle(event):
        kind, key = event
        return system.processor.register_key(key) if kind == "arrive" else system.processor.process_key(key)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(handle, events))
    system.drain()
    b = system.batch(bid)
    assert b["status"] == "completed" and finals == ["completed"]
    assert b["progress"] == {"uploaded": 24, "succeeded": 24, "failed": 0, "cancelled": 0, "percent": 100}
    assert_books_balance(system, 1)
