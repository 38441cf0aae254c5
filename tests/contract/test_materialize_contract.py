"""Manifest chunks and materialised jobs (BatchStore.materialize_jobs) on both backends, with
chunks of two positions (`small_chunks`): a batch of five files has three chunks, and create_batch
gives only the first one's jobs their records."""
from __future__ import annotations

from datetime import timedelta

from chalicelib.domain.batches import CANCELLED, JOB_AWAITING, BatchQuery
from chalicelib.services.clock import iso
from tests.contract.conftest import BASE, job_fields, new_batch, walk

T1, T2, T3 = (iso(BASE + timedelta(minutes=m)) for m in (1, 2, 3))


def test_jobs_are_listed_in_file_order_before_they_are_materialised(repo, small_chunks):
    new = new_batch(files=5)
    created = repo.create_batch(new)
    records = new.job_records()
    listed = list(repo.all_jobs(new.id))
    assert [job_fields(j) for j in listed] == [job_fields(r) for r in records]   # every view, as created
    items, sizes = walk(lambda start: repo.list_jobs(new.id, 2, start))
    assert [j["job_id"] for j in items] == [r["job_id"] for r in records] and sizes == [2, 2, 1]
    assert [j["position"] for j in repo.jobs_with_status(new.id, (JOB_AWAITING,))] == [0, 1, 2, 3, 4]
    # ...but only the first chunk's jobs have records to read or move
    first, later = records[1], records[2]
    assert job_fields(repo.get_job(new.id, first["job_id"])) == job_fields(first)
    assert repo.get_job(new.id, later["job_id"]) is None and repo.find_job(later["job_id"]) is None
    assert set(repo.get_jobs(new.id, [first["job_id"], later["job_id"]])) == {first["job_id"]}
    assert len(repo.jobs_by_status("alice", JOB_AWAITING, 10, None).items) == 2
    assert repo.claim_upload(later, T1) is False
    assert repo.get_batch(new.id)["uploaded"] == 0 and created["total_files"] == 5


def test_materialising_a_chunk_once_makes_its_jobs_claimable(repo, small_chunks):
    new = new_batch(files=5)
    batch = repo.create_batch(new)
    records = new.job_records()
    assert repo.materialize_jobs(batch, 0) == 0   # create_batch did the first chunk
    assert repo.materialize_jobs(batch, 1) == 2
    assert repo.materialize_jobs(batch, 1) == 0   # idempotent
    assert repo.materialize_jobs(batch, 3) == 0   # no such chunk
    assert job_fields(repo.get_job(new.id, records[3]["job_id"])) == job_fields(records[3])
    assert job_fields(repo.find_job(records[2]["job_id"])) == job_fields(records[2])
    assert repo.claim_upload(records[2], T1) is True
    assert repo.get_batch(new.id)["uploaded"] == 1
    assert repo.claim_upload(records[4], T1) is False   # chunk 2 still waits
    assert repo.materialize_jobs(batch, 2) == 1
    assert len(repo.jobs_by_status("alice", JOB_AWAITING, 10, None).items) == 4


def test_a_job_expired_or_cancelled_before_its_chunk_is_materialised_is_never_overwritten(repo, small_chunks):
    new = new_batch(files=5, expires_in=60)
    batch = repo.create_batch(new)
    records = new.job_records()
    assert repo.expire_job(records[3], T1, "not uploaded before the deadline") is True   # not materialised
    assert repo.expire_job(records[3], T1, "again") is False
    expired = repo.get_job(new.id, records[3]["job_id"])
    assert (expired["status"], expired["error_code"], expired["attempt"]) == ("failed", "upload_expired", 0)
    assert repo.get_batch(new.id)["failed"] == 1
    assert repo.materialize_jobs(batch, 1) == 1   # only the other job of the chunk
    assert repo.get_job(new.id, records[3]["job_id"])["status"] == "failed"
    assert [j["status"] for j in repo.all_jobs(new.id)] == ["awaiting_upload"] * 3 + ["failed", "awaiting_upload"]
    assert repo.finalize(repo.get_batch(new.id), CANCELLED, T2)
    pending = list(repo.jobs_with_status(new.id, (JOB_AWAITING,)))
    assert [j["position"] for j in pending] == [0, 1, 2, 4]
    assert [repo.cancel_job(j, T3) for j in pending] == [True] * 4   # chunk 2 never materialised
    assert repo.materialize_jobs(repo.get_batch(new.id), 2) == 0      # its job was written by the cancel
    assert [j["status"] for j in repo.all_jobs(new.id)] == ["cancelled"] * 3 + ["failed", "cancelled"]
    after = repo.get_batch(new.id)
    assert (after["cancelled"], after["failed"]) == (4, 1)


def test_purging_removes_every_chunk_and_job(repo, small_chunks):
    new = new_batch(files=5)
    batch = repo.create_batch(new)
    repo.materialize_jobs(batch, 1)
    assert repo.mark_deleting(repo.get_batch(new.id), T1)
    repo.purge_batch(new.id)
    assert repo.get_batch(new.id) is None and list(repo.all_jobs(new.id)) == []
    assert all(repo.find_job(r["job_id"]) is None for r in new.job_records())
    assert repo.materialize_jobs(batch, 2) == 0   # a late background step writes nothing
    assert repo.list_batches(BatchQuery(owner="alice")).items == []
