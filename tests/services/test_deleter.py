"""Deleter on the in-memory adapters: out of every list and figure at once, then every record and
object; a delete racing a cancel or another delete counts once."""
from __future__ import annotations

import pytest

from chalicelib.errors import NotFound
from tests import images
from tests.services.conftest import assert_books_balance


def test_a_delete_removes_records_objects_and_figures(system):
    data = {"a.png": images.png(), "b.png": images.png()}
    created = system.create(data)
    keep = system.create({"c.png": images.png()})
    bid = created["batch"]["id"]
    system.deliver(created, data)
    system.archives.request("alice", bid, partial=False)   # an archive to remove too
    kept_upload = system.upload(keep, {"c.png": images.png()})
    assert {k.split("/")[0] for k in system.storage.keys() if bid in k} == {"uploads", "outputs", "archives"}
    with pytest.raises(NotFound):
        system.deleter.delete("bob", bid)
    system.deleter.delete("alice", bid)
    with pytest.raises(NotFound):
        system.batch(bid)
    with pytest.raises(NotFound):   # a second delete finds nothing
        system.deleter.delete("alice", bid)
    with pytest.raises(NotFound):
        system.batches.get_job("alice", created["uploads"][0]["job_id"])
    assert system.storage.keys() == kept_upload
    assert [b["id"] for b in system.batches.list("alice", {})["batches"]] == [keep["batch"]["id"]]
    stats = assert_books_balance(system, 1)
    assert stats["queued"] == 1 and stats["max_files_in_batch"] == 1


def test_a_delete_that_loses_to_a_cancel_subtracts_the_new_status(system, monkeypatch):
    created = system.create({"a.png": images.png(), "b.png": images.png()})
    bid = created["batch"]["id"]
    real_mark = system.repo.mark_deleting
    cancelled = []

    def cancel_first(batch, now):
        if not cancelled:   # the user's cancel commits between the delete's read and its write
            cancelled.append(system.processor.cancel("alice", bid)["status"])
        return real_mark(batch, now)

    monkeypatch.setattr(system.repo, "mark_deleting", cancel_first)
    system.deleter.delete("alice", bid)
    assert cancelled == ["cancelled"]
    assert_books_balance(system, 0)
    assert system.stats()["cancelled"] == 0


def test_a_cancel_during_a_long_delete_finds_the_batch_gone(system, monkeypatch):
    keep = system.create({"keep.png": images.png()})
    created = system.create({f"f{i}.png": images.png() for i in range(3)})
    bid = created["batch"]["id"]
    real_purge = system.repo.purge_batch
    answers = []

    def purge_while_the_user_cancels(batch_id):
        try:
            system.processor.cancel("alice", batch_id)
        except NotFound as exc:
            answers.append(exc)
        real_purge(batch_id)

    monkeypatch.setattr(system.repo, "purge_batch", purge_while_the_user_cancels)
    system.deleter.delete("alice", bid)
    assert len(answers) == 1
    stats = assert_books_balance(system, 1)
    assert stats["queued"] == 1 and stats["cancelled"] == 0
    assert system.batch(keep["batch"]["id"])["status"] == "queued"


def test_two_deletes_at_once_count_once(system, monkeypatch):
    created = system.create({"a.png": images.png()})
    bid = created["batch"]["id"]
    real_mark = system.repo.mark_deleting
    inner = []

    def another_delete_first(batch, now):
        if not inner:
            inner.append("running")
            system.deleter.delete("alice", bid)
        return real_mark(batch, now)

    monkeypatch.setattr(system.repo, "mark_deleting", another_delete_first)
    with pytest.raises(NotFound):   # the outer delete reads again and finds it gone
        system.deleter.delete("alice", bid)
    assert_books_balance(system, 0)
    assert system.repo.get_batch(bid) is None


def test_resume_finishes_only_interrupted_deletes(system, monkeypatch):
    first = system.create({"a.png": images.png()})
    second = system.create({"b.png": images.png()})
    system.upload(first, {"a.png": images.png()})
    monkeypatch.setattr(system.deleter, "purge", lambda batch_id: None)   # crashed before purging
    system.deleter.delete("alice", first["batch"]["id"])
    monkeypatch.undo()
    assert system.deleter.resume() == 1 and system.deleter.resume() == 0
    assert system.storage.keys() == [] and system.repo.get_batch(first["batch"]["id"]) is None
    assert system.batch(second["batch"]["id"])["status"] == "queued"
