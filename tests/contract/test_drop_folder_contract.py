"""ports.DropFolderStore on both backends: one batch per folder, a lease while it is made."""
from __future__ import annotations

T0, T1, T2 = "2026-03-01T09:00:00Z", "2026-03-01T09:10:00Z", "2026-03-01T09:30:00Z"


def test_a_folder_is_claimed_once_and_becomes_its_batch(repo):
    assert repo.drop_folder("alice", "shoot") is None
    assert repo.claim_drop_folder("alice", "shoot", "b1", T0, "2026-03-01T08:45:00Z")
    assert repo.drop_folder("alice", "shoot") == {"batch_id": "b1", "state": "creating", "updated_at": T0}
    # another marker (another batch id), or the same one while its lease runs: refused
    assert not repo.claim_drop_folder("alice", "shoot", "b2", T1, T0)
    assert not repo.claim_drop_folder("alice", "shoot", "b1", T1, "2026-03-01T08:55:00Z")
    repo.drop_folder_created("alice", "shoot", "b1", T1)
    assert repo.drop_folder("alice", "shoot") == {"batch_id": "b1", "state": "created", "updated_at": T1}
    assert not repo.claim_drop_folder("alice", "shoot", "b1", T2, T2)   # made: never taken over
    # other folders and owners are separate
    assert repo.claim_drop_folder("alice", "shoot-2", "b3", T0, T0)
    assert repo.claim_drop_folder("bob", "shoot", "b4", T0, T0)


def test_a_stale_lease_is_taken_over_by_the_same_batch_only(repo):
    assert repo.claim_drop_folder("alice", "f", "b1", T0, T0)
    assert not repo.claim_drop_folder("alice", "f", "b2", T2, T1)      # stale, but another batch
    assert repo.claim_drop_folder("alice", "f", "b1", T2, T1)          # stale: the marker delivered again
    assert repo.drop_folder("alice", "f")["updated_at"] == T2


def test_a_folder_is_freed_only_by_its_own_batch(repo):
    assert repo.claim_drop_folder("alice", "f", "b1", T0, T0)
    repo.release_drop_folder("alice", "f", "b2")
    repo.drop_folder_created("alice", "f", "b2", T1)
    assert repo.drop_folder("alice", "f") == {"batch_id": "b1", "state": "creating", "updated_at": T0}
    repo.release_drop_folder("alice", "f", "b1")
    assert repo.drop_folder("alice", "f") is None
    repo.release_drop_folder("alice", "f", "b1")   # again: nothing to free
    repo.drop_folder_created("alice", "f", "b1", T1)   # the batch is gone: nothing to mark
    assert repo.drop_folder("alice", "f") is None
    assert repo.claim_drop_folder("alice", "f", "b2", T1, T0)


def test_owner_and_folder_never_run_into_each_other(repo):
    assert repo.claim_drop_folder("a#b", "c", "b1", T0, T0)
    assert repo.claim_drop_folder("a", "b#c", "b2", T0, T0)
    assert repo.drop_folder("a#b", "c")["batch_id"] == "b1" and repo.drop_folder("a", "b#c")["batch_id"] == "b2"
