"""The changes of batch records that publish_batch_events reads, on both backends: on AWS the
batches table's stream (old and new images, read as Lambda's event source reads it), in memory
MemoryRepository.take_changes(). The same transitions must give the same events, in order."""
from __future__ import annotations

from datetime import timedelta

from chalicelib.domain import events as ev
from chalicelib.domain.batches import CANCELLED, COMPLETED, DELETING, FAILED
from chalicelib.services.clock import iso
from tests.contract.conftest import BASE, new_batch

T1, T2, T3, T4, T5 = (iso(BASE + timedelta(minutes=m)) for m in range(1, 6))


def events_by_batch(changes) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for change in changes:
        batch_id = (change.new or change.old)["id"]
        out.setdefault(batch_id, []).extend(ev.transitions(change.old, change.new))
    return out


def test_each_transition_of_a_batch_is_one_change_with_its_events_in_order(backend):
    repo = backend.repo
    new = new_batch(files=2)
    repo.create_batch(new)
    jobs = list(repo.all_jobs(new.id))
    for job in jobs:
        assert repo.claim_upload(job, T1)
    assert repo.start_batch(repo.get_batch(new.id), T1)
    for job in jobs:
        repo.finish_job(repo.get_job(new.id, job["job_id"]), 1, T2, outputs=[])
    assert repo.finalize(repo.get_batch(new.id), COMPLETED, T2)
    assert repo.update_batch_fields(repo.get_batch(new.id), {"metadata": {"order": "7"}}, T3)
    assert repo.reopen_batch(repo.get_batch(new.id), T3)                      # a retry...
    assert repo.finalize(repo.get_batch(new.id), FAILED, T4)                  # ...that ends again
    assert repo.mark_deleting(repo.get_batch(new.id), T5)
    repo.purge_batch(new.id)
    cancelled = new_batch(files=1)
    repo.create_batch(cancelled)
    assert repo.finalize(repo.get_batch(cancelled.id), CANCELLED, T1)
    repo.cancel_job(next(iter(repo.all_jobs(cancelled.id))), T2)
    repo.settle_cancel(cancelled.id)

    changes = backend.changes()
    assert events_by_batch(changes) == {
        new.id: [ev.CREATED, ev.STARTED, ev.COMPLETED, ev.FAILED, ev.DELETED],
        cancelled.id: [ev.CREATED, ev.CANCELLED],
    }
    sequences = [c.sequence for c in changes]
    assert len(set(sequences)) == len(sequences)   # so every event id is new
    ours = [c for c in changes if (c.new or c.old)["id"] == new.id]
    completed = next(c.new for c in ours if ev.COMPLETED in ev.transitions(c.old, c.new))
    assert (completed["status"], completed["succeeded"], completed["completed_at"]) == (COMPLETED, 2, T2)
    patched = next(c for c in ours if c.new and c.new.get("metadata") == {"order": "7"}
                   and not (c.old or {}).get("metadata"))
    assert ev.transitions(patched.old, patched.new) == [] and patched.new["updated_at"] == T3
    deleted = next(c for c in ours if ev.DELETED in ev.transitions(c.old, c.new))
    assert (deleted.old["owner"], deleted.new["owner"], deleted.new["status"]) == ("alice", None, DELETING)
    assert backend.changes() == []


def test_changes_that_lose_their_condition_are_not_changes(backend):
    repo = backend.repo
    new = new_batch(files=1)
    repo.create_batch(new)
    read = repo.get_batch(new.id)
    assert repo.finalize(read, CANCELLED, T1)
    backend.changes()
    assert repo.finalize(read, FAILED, T2) is False          # from a stale read
    assert repo.start_batch(read, T2) is False
    assert repo.reopen_batch({**read, "status": COMPLETED}, T2) is False
    assert repo.mark_deleting(read, T2) is False
    assert events_by_batch(backend.changes()) == {}
