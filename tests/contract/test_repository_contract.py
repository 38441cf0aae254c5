"""ports.Repository, held to one contract on both backends (see conftest.py).

Every method of PipelineStore, BatchStore and TokenStore is here, with the conditions that make
the state machine count once: a transition that does not start from the state it expects
returns False and changes nothing, counters included."""
from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from chalicelib.domain.batches import (
    BATCH_STATUSES, CANCELLED, COMPLETED, COMPLETED_WITH_ERRORS, DELETING, FAILED, PROCESSING, QUEUED, BatchQuery,
)
from chalicelib.ports import MAYBE_DONE, ConditionFailed
from chalicelib.services.clock import iso
from tests.contract.conftest import BASE, batch_fields, build_catalogue, job_fields, new_batch, walk

T1, T2, T3, T4 = (iso(BASE + timedelta(minutes=m)) for m in (1, 2, 3, 4))
FIGURES = ("total_batches", *BATCH_STATUSES, "files_current", "total_files_all_time", "max_files_in_batch")


def figures(repo, owner: str = "alice") -> dict:
    """An owner's figures as the services read them (a figure never moved reads 0)."""
    raw = repo.stats(owner)
    unknown = set(raw) - set(FIGURES) - {"id"}   # DynamoDB's item also names its own key
    assert not unknown, f"stats hands out {sorted(unknown)}"
    return {name: raw.get(name, 0) for name in FIGURES}


def expected_figures(**given) -> dict:
    return {name: given.get(name, 0) for name in FIGURES}


def stored(repo, new):
    repo.create_batch(new)
    return repo.get_batch(new.id)


def jobs_of(repo, batch_id: str) -> list[dict]:
    return sorted(repo.all_jobs(batch_id), key=lambda j: j["position"])


def claimed(repo, batch: dict) -> list[dict]:
    """Claim every job of a queued batch and start it: its files are uploaded and processing."""
    jobs = jobs_of(repo, batch["id"])
    for job in jobs:
        assert repo.claim_upload(job, T1)
    assert repo.start_batch(batch, T1)
    return [repo.get_job(batch["id"], j["job_id"]) for j in jobs]


# -- pipelines -----------------------------------------------------------------------------

SPEC = {"name": "Web", "format": "jpeg", "width": 800, "quality": 85}


def test_pipelines_are_created_read_and_listed_per_owner(repo):
    ids = sorted(str(uuid.uuid4()) for _ in range(3))
    for n, pid in enumerate(reversed(ids)):
        made = repo.create_pipeline("alice", pid, {**SPEC, "name": f"p{n}"}, T1)
        assert made == {"id": pid, **SPEC, "name": f"p{n}", "created_at": T1, "updated_at": T1}
    assert repo.get_pipeline("alice", ids[0])["id"] == ids[0]
    assert repo.get_pipeline("bob", ids[0]) is None
    assert repo.get_pipeline("alice", str(uuid.uuid4())) is None
    assert [p["id"] for p in repo.list_pipelines("alice")] == ids   # in id order
    assert repo.list_pipelines("bob") == []
    missing = str(uuid.uuid4())
    assert set(repo.get_pipelines("alice", [ids[1], missing, ids[2]])) == {ids[1], ids[2]}
    assert repo.get_pipelines("bob", ids) == {}


def test_pipeline_names_are_unique_per_owner_ignoring_case_and_spaces(repo):
    repo.create_pipeline("alice", str(uuid.uuid4()), SPEC, T1)
    with pytest.raises(ConditionFailed):
        repo.create_pipeline("alice", str(uuid.uuid4()), {**SPEC, "name": "  wEB "}, T1)
    repo.create_pipeline("bob", str(uuid.uuid4()), SPEC, T1)
    assert len(repo.list_pipelines("alice")) == 1


def test_replacing_a_pipeline_keeps_its_creation_and_moves_its_name(repo):
    pid, other = str(uuid.uuid4()), str(uuid.uuid4())
    repo.create_pipeline("alice", pid, SPEC, T1)
    repo.create_pipeline("alice", other, {**SPEC, "name": "Thumb"}, T1)
    same_name = repo.replace_pipeline("alice", pid, "Web", {**SPEC, "name": "WEB", "width": 640}, T2)
    assert same_name == {"id": pid, **SPEC, "name": "WEB", "width": 640, "created_at": T1, "updated_at": T2}
    with pytest.raises(ConditionFailed):   # taken by the other pipeline: nothing changes
        repo.replace_pipeline("alice", pid, "WEB", {**SPEC, "name": "thumb"}, T3)
    assert repo.get_pipeline("alice", pid)["name"] == "WEB"
    renamed = repo.replace_pipeline("alice", pid, "WEB", {**SPEC, "name": "Print"}, T3)
    assert renamed["name"] == "Print" and renamed["updated_at"] == T3
    repo.create_pipeline("alice", str(uuid.uuid4()), SPEC, T3)   # the old name is free again
    with pytest.raises(ConditionFailed):
        repo.create_pipeline("alice", str(uuid.uuid4()), {**SPEC, "name": "print"}, T3)
    with pytest.raises(ConditionFailed):   # gone
        repo.replace_pipeline("alice", str(uuid.uuid4()), "Nope", {**SPEC, "name": "Nope"}, T3)


def test_deleting_a_pipeline_frees_its_name_once(repo):
    pid = str(uuid.uuid4())
    repo.create_pipeline("alice", pid, SPEC, T1)
    repo.delete_pipeline("alice", pid, "Web")
    assert repo.get_pipeline("alice", pid) is None and repo.list_pipelines("alice") == []
    with pytest.raises(ConditionFailed):
        repo.delete_pipeline("alice", pid, "Web")
    repo.create_pipeline("alice", str(uuid.uuid4()), SPEC, T2)


def test_pipelines_handed_out_are_copies(repo):
    pid = str(uuid.uuid4())
    spec = {**SPEC, "sharpen": {"amount": 50}}
    made = repo.create_pipeline("alice", pid, spec, T1)
    spec["width"] = 1
    made["width"] = 2
    repo.get_pipeline("alice", pid)["sharpen"]["amount"] = 3
    assert repo.get_pipeline("alice", pid)["width"] == 800
    assert repo.get_pipeline("alice", pid)["sharpen"] == {"amount": 50}


# -- counters and tokens ---------------------------------------------------------------------

def test_counters_count_per_owner_prefix_and_day(repo):
    assert [repo.next_counter("alice", "PL_DXB", "2026-03-01") for _ in range(3)] == [1, 2, 3]
    assert repo.next_counter("alice", "PL_DXB", "2026-03-02") == 1
    assert repo.next_counter("alice", "XX_YY", "2026-03-01") == 1
    assert repo.next_counter("bob", "PL_DXB", "2026-03-01") == 1


def test_counters_are_atomic_under_concurrency(repo):
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda _: repo.next_counter("alice", "PL_DXB", "2026-03-01"), range(40)))
    assert sorted(got) == list(range(1, 41))


def test_tokens_map_digests_to_owners(repo):
    digest = "ab" * 32
    assert repo.owner_for_token(digest) is None
    repo.save_token(digest, "alice")
    assert repo.owner_for_token(digest) == "alice"
    repo.save_token(digest, "bob")
    assert repo.owner_for_token(digest) == "bob"


# -- creating and reading batches ------------------------------------------------------------

def test_a_created_batch_reads_back_with_its_jobs_in_every_view(repo):
    new = new_batch(files=3)
    created = repo.create_batch(new)
    assert created == new.record()
    assert batch_fields(repo.get_batch(new.id)) == batch_fields(new.record())
    records = {j["job_id"]: j for j in new.job_records()}
    expected = {jid: job_fields(r) for jid, r in records.items()}
    assert [j["job_id"] for j in repo.all_jobs(new.id)] == [j.job_id for j in new.jobs]   # file order
    assert {j["job_id"]: job_fields(j) for j in repo.all_jobs(new.id)} == expected
    some = new.jobs[1].job_id
    assert job_fields(repo.get_job(new.id, some)) == expected[some]
    assert job_fields(repo.find_job(some)) == expected[some]
    assert repo.get_job(new.id, str(uuid.uuid4())) is None and repo.find_job(str(uuid.uuid4())) is None
    assert repo.get_batch(str(uuid.uuid4())) is None
    assert figures(repo) == expected_figures(total_batches=1, queued=1, files_current=3, total_files_all_time=3,
                                             max_files_in_batch=3)


def test_a_batch_id_is_used_once(repo):
    new = new_batch(files=2)
    repo.create_batch(new)
    with pytest.raises(ConditionFailed):
        repo.create_batch(new)
    assert figures(repo)["total_batches"] == 1 and figures(repo)["files_current"] == 2


def test_records_handed_out_are_copies(repo):
    new = new_batch(files=1)
    created = repo.create_batch(new)
    created["status"] = "mangled"
    batch = repo.get_batch(new.id)
    batch["pipelines"][0]["name"] = "mangled"
    batch["succeeded"] = 99
    job = repo.get_job(new.id, new.jobs[0].job_id)
    job["status"] = "mangled"
    again = repo.get_batch(new.id)
    assert again["status"] == QUEUED and again["pipelines"][0]["name"] == "web" and again["succeeded"] == 0
    assert repo.get_job(new.id, new.jobs[0].job_id)["status"] == "awaiting_upload"


def test_jobs_page_in_file_order_and_resume_from_any_job(repo):
    new = new_batch(files=7)
    repo.create_batch(new)
    positions = [new.jobs[i].position for i in range(7)]
    items, sizes = walk(lambda start: repo.list_jobs(new.id, 3, start))
    assert [j["position"] for j in items] == positions and sizes == [3, 3, 1]
    whole, _ = walk(lambda start: repo.list_jobs(new.id, 7, start))
    assert len(whole) == 7
    fourth = repo.get_job(new.id, new.jobs[3].job_id)
    rest = repo.list_jobs(new.id, 10, json.loads(json.dumps(repo.jobs_after(fourth))))
    assert [j["position"] for j in rest.items] == [4, 5, 6] and rest.last_key is None   # short: the end
    # a key naming a position starts there (how a drop folder lists one manifest chunk)
    assert [j["position"] for j in repo.list_jobs(new.id, 2, {"position": 0}).items] == [0, 1]
    assert [j["position"] for j in repo.list_jobs(new.id, 10, {"position": 5}).items] == [5, 6]


def test_several_jobs_are_read_at_once_and_missing_ones_left_out(repo):
    new = new_batch(files=4)
    repo.create_batch(new)
    wanted = [new.jobs[3].job_id, str(uuid.uuid4()), new.jobs[0].job_id, new.jobs[3].job_id]   # one twice
    got = repo.get_jobs(new.id, wanted)
    assert set(got) == {new.jobs[3].job_id, new.jobs[0].job_id}
    assert {j: job_fields(v) for j, v in got.items()} == {
        j: job_fields(repo.get_job(new.id, j)) for j in (new.jobs[3].job_id, new.jobs[0].job_id)}
    assert repo.get_jobs(new.id, []) == {}
    assert repo.get_jobs(str(uuid.uuid4()), [new.jobs[0].job_id]) == {}


def test_jobs_with_status_filters_one_batch(repo):
    new = new_batch(files=4)
    batch = stored(repo, new)
    jobs = jobs_of(repo, new.id)
    repo.claim_upload(jobs[0], T1)
    repo.claim_upload(jobs[2], T1)
    repo.start_batch(batch, T1)
    other = new_batch(files=2)
    repo.create_batch(other)
    processing = list(repo.jobs_with_status(new.id, ("processing",)))
    assert sorted(j["job_id"] for j in processing) == sorted([jobs[0]["job_id"], jobs[2]["job_id"]])
    assert [j["position"] for j in processing] == sorted(j["position"] for j in processing)   # file order
    assert len(list(repo.jobs_with_status(new.id, ("processing", "awaiting_upload")))) == 4
    assert list(repo.jobs_with_status(new.id, ("failed",))) == []


def test_final_statuses_are_found_in_every_bucket_and_only_there(repo):
    new = new_batch(files=24, buckets=6)
    batch = stored(repo, new)
    jobs = claimed(repo, batch)
    failed = {j["job_id"] for j in jobs[::5]}          # in several buckets, not all
    for job in jobs[:12]:
        repo.finish_job(job, int(job["attempt"]), T2, error=("corrupt", "x") if job["job_id"] in failed else None,
                        outputs=None if job["job_id"] in failed else [])
    assert {j["job_id"] for j in repo.jobs_with_status(new.id, ("failed",))} == failed & {
        j["job_id"] for j in jobs[:12]}
    done = {j["job_id"] for j in repo.jobs_with_status(new.id, ("completed", "failed"))}
    assert done == {j["job_id"] for j in jobs[:12]}
    assert list(repo.jobs_with_status(new.id, ("cancelled",))) == []
    again = next(j for j in repo.jobs_with_status(new.id, ("failed",)))
    assert repo.reopen_job(again, T3)   # back to processing: no longer found among the failed
    assert again["job_id"] not in {j["job_id"] for j in repo.jobs_with_status(new.id, ("failed",))}
    assert again["job_id"] in {j["job_id"] for j in repo.jobs_with_status(new.id, ("processing",))}


# -- description and integration fields -------------------------------------------------------------

INTEGRATIONS = ("metadata", "dropbox_directory_id", "monday_item_id", "auto_upload_enabled", "monday_sync_enabled")


def test_fields_are_changed_and_removed_and_the_search_follows_the_description(repo):
    new = new_batch(files=2, description="Winter catalogue")
    batch = stored(repo, new)
    changes = {"description": "Spring lookbook", "metadata": {"order": "A-17"}, "monday_item_id": "123",
               "auto_upload_enabled": True}
    updated = repo.update_batch_fields(batch, changes, T1)
    assert {f: updated[f] for f in changes} == changes and updated["updated_at"] == T1
    after = repo.get_batch(new.id)
    assert {f: after[f] for f in changes} == changes and after["updated_at"] == T1
    assert batch_fields(after) == {**batch_fields(batch), "description": "Spring lookbook", "updated_at": T1}
    changes["metadata"]["order"] = "mangled"   # stored as given, not the caller's object
    assert repo.get_batch(new.id)["metadata"] == {"order": "A-17"}
    found = repo.list_batches(BatchQuery(owner="alice", search="lookbook"))
    assert [b["id"] for b in found.items] == [new.id]
    assert repo.list_batches(BatchQuery(owner="alice", search="winter")).items == []
    removed = repo.update_batch_fields(repo.get_batch(new.id), {"monday_item_id": None, "metadata": {}}, T2)
    assert (removed["monday_item_id"], removed["metadata"], removed["auto_upload_enabled"]) == (None, {}, True)
    assert repo.get_batch(new.id)["monday_item_id"] is None


def test_fields_change_in_a_final_status_but_not_while_deleting(repo):
    batch = stored(repo, new_batch(files=1))
    assert repo.finalize(batch, CANCELLED, T1)
    cancelled = repo.update_batch_fields(repo.get_batch(batch["id"]), {"dropbox_directory_id": "id:x"}, T2)
    assert cancelled["status"] == CANCELLED and cancelled["dropbox_directory_id"] == "id:x"
    assert figures(repo)["cancelled"] == 1   # a field change moves no figure
    going = stored(repo, new_batch(files=1))
    assert repo.mark_deleting(going, T2)
    assert repo.update_batch_fields(going, {"monday_item_id": "9"}, T3) is None
    assert repo.get_batch(going["id"])["status"] == DELETING and repo.get_batch(going["id"])["monday_item_id"] is None
    assert repo.update_batch_fields({**going, "id": str(uuid.uuid4())}, {"monday_item_id": "9"}, T3) is None


# -- the job's life ---------------------------------------------------------------------------

def test_a_claim_counts_the_upload_once(repo):
    batch = stored(repo, new_batch(files=2))
    job = jobs_of(repo, batch["id"])[0]
    assert repo.claim_upload(job, T1) is True
    assert repo.claim_upload(job, T2) is False   # a duplicate event
    moved = repo.get_job(batch["id"], job["job_id"])
    assert (moved["status"], moved["attempt"], moved["started_at"], moved["updated_at"]) == ("processing", 1, T1, T1)
    after = repo.get_batch(batch["id"])
    assert after["uploaded"] == 1 and after["updated_at"] == T1 and after["status"] == QUEUED


def test_a_claim_wants_the_object_the_job_expects(repo):
    batch = stored(repo, new_batch(files=1))
    job = jobs_of(repo, batch["id"])[0]
    assert repo.claim_upload({**job, "key": job["key"] + ".other"}, T1) is False
    assert repo.get_job(batch["id"], job["job_id"])["status"] == "awaiting_upload"
    assert repo.get_batch(batch["id"])["uploaded"] == 0


def test_concurrent_claims_of_one_job_count_once(repo):
    batch = stored(repo, new_batch(files=1))
    job = jobs_of(repo, batch["id"])[0]
    barrier = threading.Barrier(6)

    def claim(_):
        barrier.wait()
        return repo.claim_upload(job, T1)

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert sorted(pool.map(claim, range(6))) == [False] * 5 + [True]
    assert repo.get_batch(batch["id"])["uploaded"] == 1
    assert repo.get_job(batch["id"], job["job_id"])["attempt"] == 1


def test_finishing_wants_the_current_attempt_and_counts_once(repo):
    batch = stored(repo, new_batch(files=2))
    jobs = claimed(repo, batch)
    outputs = [{"pipeline_id": "p-1", "key": "outputs/x.jpg", "format": "jpeg", "width": 8, "height": 6, "size": 10}]
    preview = {"key": "outputs/preview.webp", "width": 8, "height": 6, "format": "webp", "size": 5}
    assert repo.finish_job(jobs[0], 2, T2, outputs=outputs, preview=preview) is False   # stale attempt
    assert repo.finish_job(jobs[0], 1, T2, outputs=outputs, preview=preview) is True
    assert repo.finish_job(jobs[0], 1, T3, outputs=outputs, preview=preview) is False  # a duplicate
    done = repo.get_job(batch["id"], jobs[0]["job_id"])
    assert (done["status"], done["outputs"], done["preview"], done["completed_at"], done["error_code"]) == (
        "completed", outputs, preview, T2, None)
    # the batch's last file: counted, and the store says the batch may be complete now
    assert repo.finish_job(jobs[1], 1, T2, error=("corrupt_image", "bad bytes")) == MAYBE_DONE
    failed = repo.get_job(batch["id"], jobs[1]["job_id"])
    assert (failed["status"], failed["error_code"], failed["error_message"], failed["outputs"], failed["preview"]) == (
        "failed", "corrupt_image", "bad bytes", None, None)
    after = repo.get_batch(batch["id"])
    assert (after["succeeded"], after["failed"], after["uploaded"], after["updated_at"]) == (1, 1, 2, T2)


def test_the_last_file_of_a_batch_over_several_buckets_says_the_batch_may_be_done(repo):
    """DynamoDB answers MAYBE_DONE for the last file of each bucket, the fake for the last of
    the batch: both at most once per bucket, and always for the file that completes the batch."""
    batch = stored(repo, new_batch(files=12, buckets=3))
    assert batch["buckets"] == 3
    jobs = claimed(repo, batch)
    answers = [repo.finish_job(job, 1, T2, outputs=[]) for job in jobs]
    assert set(answers) <= {True, MAYBE_DONE}
    assert answers[-1] == MAYBE_DONE and 1 <= answers.count(MAYBE_DONE) <= 3
    after = repo.get_batch(batch["id"])
    assert (after["uploaded"], after["succeeded"], after["status"]) == (12, 12, PROCESSING)
    assert repo.finalize(after, COMPLETED, T3) is True
    assert repo.get_batch(batch["id"])["succeeded"] == 12


def test_a_batch_is_settled_when_every_file_of_every_bucket_is_counted(repo):
    """settled_batch is what a finisher reads to decide on the final status: None while any file
    is left, whichever bucket it starts after; the batch with its exact counts once none is."""
    batch = stored(repo, new_batch(files=12, buckets=3))
    jobs = claimed(repo, batch)
    *first, last = jobs
    assert [repo.settled_batch(batch["id"], after) for after in (None, 0, 1, 2)] == [None] * 4
    for job in first:
        repo.finish_job(job, 1, T2, outputs=[])
    assert [repo.settled_batch(batch["id"], after) for after in (None, 0, 1, 2)] == [None] * 4
    repo.finish_job(last, 1, T2, error=("corrupt_image", "no"))
    for after in (None, 0, 1, 2):
        settled = repo.settled_batch(batch["id"], after)
        assert (settled["status"], settled["uploaded"], settled["succeeded"], settled["failed"],
                settled["cancelled"]) == (PROCESSING, 12, 11, 1, 0)
        assert settled == repo.get_batch(batch["id"])
    assert repo.finalize(settled, COMPLETED_WITH_ERRORS, T3)
    final = repo.settled_batch(batch["id"])
    assert (final["status"], final["succeeded"], final["failed"]) == (COMPLETED_WITH_ERRORS, 11, 1)
    repo.mark_deleting(final, T4)
    assert repo.settled_batch(batch["id"]) is None
    assert repo.settled_batch("no-such-batch") is None


def test_finishers_that_look_from_their_own_bucket_on_write_exactly_one_final_status(repo):
    """Each bucket's last finisher reads the others from its own on and stops at the first with
    a file left; the one that settles last reads after every other commit, so exactly one of
    them sees the batch settled, however their commits and reads interleave."""
    for _ in range(3):
        batch = stored(repo, new_batch(files=40, buckets=25))
        jobs = claimed(repo, batch)
        wins = []

        def finisher(job):
            if repo.finish_job(job, 1, T2, outputs=[]) == MAYBE_DONE:
                settled = repo.settled_batch(batch["id"], job.get("bucket"))
                if settled is not None and settled["status"] == PROCESSING \
                        and repo.finalize(settled, COMPLETED, T3):
                    wins.append(job["job_id"])

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(finisher, jobs))
        after = repo.get_batch(batch["id"])
        assert (len(wins), after["status"], after["succeeded"]) == (1, COMPLETED, 40)


def test_nothing_moves_in_a_final_batch(repo):
    batch = stored(repo, new_batch(files=3))
    jobs = claimed(repo, batch)
    repo.finish_job(jobs[0], 1, T2, error=("corrupt_image", "x"))
    assert repo.finalize(repo.get_batch(batch["id"]), CANCELLED, T2)
    before = repo.get_batch(batch["id"])
    assert repo.finish_job(jobs[1], 1, T3, outputs=[]) is False
    assert repo.reopen_job(repo.get_job(batch["id"], jobs[0]["job_id"]), T3) is False
    fresh = stored(repo, new_batch(files=1))
    repo.finalize(fresh, FAILED, T2)
    waiting = jobs_of(repo, fresh["id"])[0]
    assert repo.claim_upload(waiting, T3) is False and repo.expire_job(waiting, T3, "late") is False
    assert repo.get_batch(batch["id"]) == before


def test_an_upload_that_never_came_expires_once(repo):
    batch = stored(repo, new_batch(files=2))
    jobs = jobs_of(repo, batch["id"])
    assert repo.expire_job(jobs[0], T2, "not uploaded before the deadline") is True
    assert repo.expire_job(jobs[0], T3, "again") is False
    repo.claim_upload(jobs[1], T1)
    assert repo.expire_job(jobs[1], T2, "processing, not awaiting") is False
    expired = repo.get_job(batch["id"], jobs[0]["job_id"])
    assert (expired["status"], expired["error_code"], expired["error_message"], expired["completed_at"],
            expired["attempt"], expired["started_at"]) == (
        "failed", "upload_expired", "not uploaded before the deadline", T2, 0, None)
    assert repo.get_batch(batch["id"])["failed"] == 1


def test_reopening_a_failed_job_moves_its_counters_back(repo):
    batch = stored(repo, new_batch(files=2))
    jobs = claimed(repo, batch)
    repo.finish_job(jobs[0], 1, T2, error=("corrupt_image", "x"))
    failed = repo.get_job(batch["id"], jobs[0]["job_id"])
    assert repo.reopen_job({**failed, "attempt": 0}, T3) is False   # not the attempt that failed
    assert repo.reopen_job(failed, T3) is True
    assert repo.reopen_job(failed, T3) is False                       # once
    again = repo.get_job(batch["id"], jobs[0]["job_id"])
    assert (again["status"], again["attempt"], again["error_code"], again["error_message"], again["completed_at"],
            again["started_at"]) == ("processing", 2, None, None, None, T3)
    after = repo.get_batch(batch["id"])
    assert (after["failed"], after["uploaded"]) == (0, 2)
    assert repo.finish_job(again, 1, T4, outputs=[]) is False and repo.finish_job(again, 2, T4, outputs=[]) is True


def test_a_retry_between_a_finishers_read_and_its_final_write_wins(repo):
    """The last file fails; its finisher reads the counts (all done); a retry of the still
    processing batch reopens that file; the finisher's final write must then lose, or the batch
    would be final with a file processing (found by tests/e2e/test_race_invariants.py)."""
    batch = stored(repo, new_batch(files=2))
    jobs = claimed(repo, batch)
    repo.finish_job(jobs[0], 1, T2, outputs=[])
    repo.finish_job(jobs[1], 1, T2, error=("corrupt_image", "x"))
    read_by_finisher = repo.get_batch(batch["id"])
    assert (read_by_finisher["status"], read_by_finisher["failed"]) == (PROCESSING, 1)
    assert repo.reopen_job(repo.get_job(batch["id"], jobs[1]["job_id"]), T3) is True
    assert repo.finalize(read_by_finisher, COMPLETED_WITH_ERRORS, T3) is False
    now = repo.get_batch(batch["id"])
    assert (now["status"], now["failed"]) == (PROCESSING, 0)
    # read again after the reopen, a finisher closes it once the file is done; a cancel always wins
    again = repo.get_job(batch["id"], jobs[1]["job_id"])
    assert repo.finish_job(again, 2, T4, outputs=[]) == MAYBE_DONE   # the last of its bucket
    assert repo.finalize(repo.get_batch(batch["id"]), COMPLETED, T4) is True
    assert repo.get_batch(batch["id"])["status"] == COMPLETED


def test_a_cancel_wins_over_a_reopen_it_did_not_read(repo):
    batch = stored(repo, new_batch(files=2))
    jobs = claimed(repo, batch)
    repo.finish_job(jobs[0], 1, T2, error=("corrupt_image", "x"))
    read_by_cancel = repo.get_batch(batch["id"])
    assert repo.reopen_job(repo.get_job(batch["id"], jobs[0]["job_id"]), T3) is True
    assert repo.finalize(read_by_cancel, CANCELLED, T3) is True


def test_no_final_status_while_a_big_retry_is_marked_and_none_on_counts_read_before_it_ends(repo):
    """begin_retry reopens a final batch (an open one stays open) and holds every final status
    off but a cancel's; end_retry lets them through again, except one written on counts read
    while the mark held (files were being reopened then)."""
    batch = stored(repo, new_batch(files=2))
    jobs = claimed(repo, batch)
    repo.finish_job(jobs[0], 1, T2, outputs=[])
    repo.finish_job(jobs[1], 1, T2, error=("corrupt_image", "x"))
    done = repo.get_batch(batch["id"])
    assert repo.finalize(done, COMPLETED_WITH_ERRORS, T2) is True
    final = repo.get_batch(batch["id"])
    assert repo.begin_retry({**final, "status": PROCESSING}, T3) is False   # it moved: read again
    assert repo.begin_retry(final, T3) is True
    marked = repo.get_batch(batch["id"])
    assert (marked["status"], marked["completed_at"], marked["failed"]) == (PROCESSING, None, 1)
    assert repo.finalize(marked, COMPLETED_WITH_ERRORS, T3) is False
    # one worker takes the mark; a duplicate delivery of the step beside it gets nothing
    assert repo.take_retry(batch["id"], "worker-1", T3, stale_before=T1) is True
    assert repo.take_retry(batch["id"], "worker-2", T3, stale_before=T1) is False
    repo.sync_counters(batch["id"])   # the background half opens the counters first
    assert repo.reopen_job(repo.get_job(batch["id"], jobs[1]["job_id"]), T3, mark_batch=False) is True
    assert repo.end_retry(batch["id"], "worker-2") is False   # not its mark
    assert repo.finalize(repo.get_batch(batch["id"]), COMPLETED_WITH_ERRORS, T3) is False
    assert repo.end_retry(batch["id"], "worker-1") is True
    assert repo.end_retry(batch["id"], "worker-1") is False   # again (a redelivered step): nothing moves
    assert repo.take_retry(batch["id"], "worker-3", T4, stale_before=T4) is False   # no mark any more
    assert repo.finalize(marked, COMPLETED_WITH_ERRORS, T4) is False   # read while the mark held
    again = repo.get_job(batch["id"], jobs[1]["job_id"])
    assert repo.finish_job(again, 2, T4, outputs=[]) == MAYBE_DONE
    assert repo.finalize(repo.get_batch(batch["id"]), COMPLETED, T4) is True
    assert figures(repo)["completed"] == 1 and figures(repo)["processing"] == 0


def test_a_big_retrys_mark_silent_since_before_the_stale_time_is_taken_over(repo):
    batch = stored(repo, new_batch(files=1))
    claimed(repo, batch)
    assert repo.begin_retry(repo.get_batch(batch["id"]), T1) is True
    assert repo.take_retry(batch["id"], "dead", T2, stale_before=T1) is True
    assert repo.take_retry(batch["id"], "early", T3, stale_before=T2) is False   # T2 is not before T2
    assert repo.take_retry(batch["id"], "later", T4, stale_before=T3) is True
    assert repo.end_retry(batch["id"], "dead") is False and repo.end_retry(batch["id"], "later") is True


def test_a_cancel_wins_over_a_big_retry_mark(repo):
    batch = stored(repo, new_batch(files=2))
    claimed(repo, batch)
    assert repo.begin_retry(repo.get_batch(batch["id"]), T2) is True   # an open batch stays open
    marked = repo.get_batch(batch["id"])
    assert marked["status"] == PROCESSING
    assert repo.finalize(marked, CANCELLED, T3) is True
    assert repo.begin_retry(repo.get_batch(batch["id"]), T3) is False   # cancelled: never again


def test_reopening_an_expired_job_counts_its_upload(repo):
    batch = stored(repo, new_batch(files=1))
    job = jobs_of(repo, batch["id"])[0]
    repo.expire_job(job, T2, "late")
    assert repo.get_batch(batch["id"])["uploaded"] == 0
    assert repo.reopen_job(repo.get_job(batch["id"], job["job_id"]), T3) is True
    after = repo.get_batch(batch["id"])
    assert (after["uploaded"], after["failed"]) == (1, 0)
    assert repo.get_job(batch["id"], job["job_id"])["attempt"] == 1


def test_jobs_are_cancelled_only_in_a_cancelled_batch_and_once(repo):
    batch = stored(repo, new_batch(files=3))
    jobs = jobs_of(repo, batch["id"])
    assert repo.cancel_job(jobs[0], T1) is False   # the batch is not cancelled
    repo.claim_upload(jobs[0], T1)
    repo.claim_upload(jobs[1], T1)
    repo.start_batch(batch, T1)
    repo.finish_job(repo.get_job(batch["id"], jobs[1]["job_id"]), 1, T1, outputs=[])
    assert repo.finalize(repo.get_batch(batch["id"]), CANCELLED, T2)
    current = jobs_of(repo, batch["id"])
    assert [repo.cancel_job(j, T3) for j in current] == [True, False, True]   # processing, completed, awaiting
    assert [repo.cancel_job(j, T3) for j in current] == [False] * 3
    assert [j["status"] for j in jobs_of(repo, batch["id"])] == ["cancelled", "completed", "cancelled"]
    assert jobs_of(repo, batch["id"])[0]["completed_at"] == T3
    after = repo.get_batch(batch["id"])
    assert (after["cancelled"], after["succeeded"], after["updated_at"]) == (2, 1, T3)


# -- the batch's life -------------------------------------------------------------------------

def test_a_batch_starts_once_and_the_figures_follow(repo):
    batch = stored(repo, new_batch(files=2))
    assert repo.start_batch(batch, T1) is True
    assert repo.start_batch(batch, T2) is False
    after = repo.get_batch(batch["id"])
    assert (after["status"], after["started_at"], after["updated_at"]) == (PROCESSING, T1, T1)
    assert figures(repo) == expected_figures(total_batches=1, processing=1, files_current=2,
                                             total_files_all_time=2, max_files_in_batch=2)


def test_the_final_status_is_written_once(repo):
    batch = stored(repo, new_batch(files=1))
    jobs = claimed(repo, batch)
    repo.finish_job(jobs[0], 1, T2, outputs=[])
    read = repo.get_batch(batch["id"])
    assert repo.finalize(read, COMPLETED, T2) is True
    assert repo.finalize(read, COMPLETED, T3) is False   # the second finisher, from the same read
    after = repo.get_batch(batch["id"])
    assert (after["status"], after["completed_at"]) == (COMPLETED, T2)
    assert figures(repo)["completed"] == 1 and figures(repo)["processing"] == 0


def test_a_batch_cannot_move_to_the_status_it_has(repo):
    batch = stored(repo, new_batch(files=1))
    claimed(repo, batch)
    with pytest.raises(Exception):   # a caller's mistake, not a lost race: DynamoDB refuses the update
        repo.finalize(repo.get_batch(batch["id"]), PROCESSING, T2)
    assert figures(repo)["processing"] == 1 and repo.get_batch(batch["id"])["updated_at"] == T1


def test_a_cancel_from_a_stale_read_of_a_batch_that_finished_changes_nothing(repo):
    batch = stored(repo, new_batch(files=1))
    jobs = claimed(repo, batch)
    read_by_cancel = repo.get_batch(batch["id"])   # processing
    repo.finish_job(jobs[0], 1, T2, outputs=[])
    assert repo.finalize(repo.get_batch(batch["id"]), COMPLETED, T2)
    assert repo.finalize(read_by_cancel, CANCELLED, T3) is False
    assert repo.get_batch(batch["id"])["status"] == COMPLETED
    assert list(repo.interrupted_cancels()) == []


def test_reopening_a_final_batch_reopens_it_for_its_jobs_first(repo):
    batch = stored(repo, new_batch(files=2, expires_in=60))
    jobs = claimed(repo, batch)
    repo.finish_job(jobs[0], 1, T2, outputs=[])
    repo.finish_job(jobs[1], 1, T2, error=("corrupt_image", "x"))
    assert repo.finalize(repo.get_batch(batch["id"]), COMPLETED_WITH_ERRORS, T2)
    failed = repo.get_job(batch["id"], jobs[1]["job_id"])
    assert repo.reopen_job(failed, T3) is False   # the batch is final: reopen it first
    closed = repo.get_batch(batch["id"])
    assert repo.reopen_batch(closed, T3) is True
    assert repo.reopen_batch(closed, T3) is False  # a second retry from the same read
    reopened = repo.get_batch(batch["id"])
    assert (reopened["status"], reopened["completed_at"], reopened["updated_at"]) == (PROCESSING, None, T3)
    assert batch["id"] in list(repo.expired_batches(T4))   # open again: the sweep watches it
    assert repo.reopen_job(failed, T3) is True
    assert figures(repo)["processing"] == 1 and figures(repo)["completed_with_errors"] == 0


def test_a_cancel_between_reopening_the_batch_and_its_job_strands_nothing(repo):
    batch = stored(repo, new_batch(files=1))
    jobs = claimed(repo, batch)
    repo.finish_job(jobs[0], 1, T2, error=("corrupt_image", "x"))
    repo.finalize(repo.get_batch(batch["id"]), FAILED, T2)
    repo.reopen_batch(repo.get_batch(batch["id"]), T3)
    repo.finalize(repo.get_batch(batch["id"]), CANCELLED, T3)   # the user's cancel lands here
    assert repo.reopen_job(repo.get_job(batch["id"], jobs[0]["job_id"]), T3) is False
    assert repo.get_job(batch["id"], jobs[0]["job_id"])["status"] == "failed"
    assert repo.get_batch(batch["id"])["failed"] == 1


def test_a_cancelled_batch_stays_in_the_sweeps_set_until_settled(repo):
    batch = stored(repo, new_batch(files=1))
    other = stored(repo, new_batch(files=1))
    assert list(repo.interrupted_cancels()) == []
    repo.settle_cancel(other["id"])   # not cancelled: nothing happens
    assert repo.finalize(batch, CANCELLED, T1)
    assert list(repo.interrupted_cancels()) == [batch["id"]]
    assert batch["id"] not in list(repo.expired_batches(iso(BASE + timedelta(days=2))))
    repo.settle_cancel(batch["id"])
    repo.settle_cancel(batch["id"])
    assert list(repo.interrupted_cancels()) == []
    assert repo.get_batch(batch["id"])["status"] == CANCELLED


def test_expired_batches_are_the_open_ones_past_a_deadline(repo):
    early = stored(repo, new_batch(files=1, expires_in=60))
    late = stored(repo, new_batch(files=1, expires_in=7200))
    started = stored(repo, new_batch(files=1, expires_in=120))
    claimed(repo, started)
    done = stored(repo, new_batch(files=1, expires_in=60))
    repo.finalize(done, FAILED, T1)
    assert list(repo.expired_batches(iso(BASE))) == []
    assert list(repo.expired_batches(early["upload_expires_at"])) == [early["id"]]   # the deadline itself counts
    assert list(repo.expired_batches(iso(BASE + timedelta(hours=1)))) == [early["id"], started["id"]]
    assert list(repo.expired_batches(iso(BASE + timedelta(hours=3)))) == [early["id"], started["id"], late["id"]]


# -- deleting ------------------------------------------------------------------------------------

def test_marking_a_delete_subtracts_the_status_the_batch_has_now(repo):
    keep = stored(repo, new_batch(files=2))
    batch = stored(repo, new_batch(files=5))
    read_before = repo.get_batch(batch["id"])
    claimed(repo, batch)
    assert repo.mark_deleting(read_before, T2) is False   # it moved: read again
    assert figures(repo)["files_current"] == 7
    assert repo.mark_deleting(repo.get_batch(batch["id"]), T2) is True
    assert figures(repo) == expected_figures(total_batches=1, queued=1, files_current=2, total_files_all_time=7,
                                             max_files_in_batch=2)
    gone = repo.get_batch(batch["id"])
    assert (gone["status"], gone["owner"], gone["updated_at"]) == (DELETING, None, T2)   # nobody's: 404 for all
    listed = repo.list_batches(BatchQuery(owner="alice"))
    assert [b["id"] for b in listed.items] == [keep["id"]]
    assert list(repo.interrupted_deletes()) == [batch["id"]]
    assert batch["id"] not in list(repo.expired_batches(iso(BASE + timedelta(days=2))))


def test_a_batch_being_deleted_takes_no_transition(repo):
    batch = stored(repo, new_batch(files=3))
    jobs = jobs_of(repo, batch["id"])
    repo.claim_upload(jobs[0], T1)
    repo.start_batch(batch, T1)
    repo.mark_deleting(repo.get_batch(batch["id"]), T2)
    going = repo.get_batch(batch["id"])
    current = jobs_of(repo, batch["id"])
    assert repo.claim_upload(current[1], T3) is False
    assert repo.finish_job(current[0], 1, T3, outputs=[]) is False
    assert repo.expire_job(current[2], T3, "late") is False
    assert repo.cancel_job(current[1], T3) is False
    assert repo.start_batch({**going, "status": QUEUED}, T3) is False
    assert repo.finalize({**going, "status": PROCESSING}, CANCELLED, T3) is False
    assert repo.reopen_batch({**going, "status": COMPLETED}, T3) is False
    assert repo.get_batch(batch["id"]) == going


def test_a_big_batch_being_deleted_takes_no_transition_once_its_counters_are_synced(repo, monkeypatch):
    """A big batch's delete leaves its counters to the purge's first step (sync_counters): after
    that step nothing moves, whatever the store."""
    from chalicelib.adapters import repository as repository_module
    monkeypatch.setattr(repository_module, "INLINE_COUNTERS", 0)
    batch = stored(repo, new_batch(files=2))
    jobs = jobs_of(repo, batch["id"])
    repo.claim_upload(jobs[0], T1)
    repo.mark_deleting(repo.get_batch(batch["id"]), T2)
    repo.sync_counters(batch["id"])
    repo.sync_counters(batch["id"])   # idempotent
    current = jobs_of(repo, batch["id"])
    assert repo.finish_job(current[0], 1, T3, outputs=[]) is False
    assert repo.claim_upload(current[1], T3) is False
    assert repo.expire_job(current[1], T3, "late") is False
    repo.sync_counters("no-such-batch")


def test_a_batch_being_deleted_is_never_finalized(repo, request):
    """A worker's last commit, then the user's delete, then that worker's finalize_if_done reads
    the batch (deleting, every file counted) and asks for its final status."""
    batch = stored(repo, new_batch(files=1))
    jobs = claimed(repo, batch)
    repo.finish_job(jobs[0], 1, T2, outputs=[])
    repo.mark_deleting(repo.get_batch(batch["id"]), T2)
    read = repo.get_batch(batch["id"])
    assert read["status"] == DELETING
    assert repo.finalize(read, COMPLETED, T3) is False
    assert repo.reopen_batch(read, T3) is False
    assert repo.mark_deleting(read, T3) is False
    assert repo.get_batch(batch["id"])["status"] == DELETING
    assert figures(repo) == expected_figures(files_current=0, total_files_all_time=1)


def test_purging_removes_jobs_then_the_batch_and_can_run_again(repo):
    keep = stored(repo, new_batch(files=1))
    batch = stored(repo, new_batch(files=3))
    job_id = jobs_of(repo, batch["id"])[0]["job_id"]
    repo.purge_batch(keep["id"])   # not marked deleting: the batch stays
    assert repo.get_batch(keep["id"]) is not None
    repo.mark_deleting(batch, T2)
    repo.purge_batch(batch["id"])
    repo.purge_batch(batch["id"])
    assert repo.get_batch(batch["id"]) is None
    assert list(repo.all_jobs(batch["id"])) == [] and repo.get_job(batch["id"], job_id) is None
    assert repo.find_job(job_id) is None
    assert list(repo.interrupted_deletes()) == []
    assert figures(repo)["total_batches"] == 1


# -- listing (read-only listing is in test_listing_contract.py) ----------------------------------

@pytest.fixture
def catalogue(repo):
    return build_catalogue(repo)


def test_a_cursor_still_works_after_its_batch_moved(repo, catalogue):
    query = BatchQuery(owner="alice", status=PROCESSING, limit=1)
    first = repo.list_batches(query)
    assert [b["id"] for b in first.items] == [catalogue[4]["id"]]
    moved = repo.get_batch(catalogue[4]["id"])
    repo.finalize(moved, COMPLETED, T3)   # the page's last batch leaves the partition
    rest = repo.list_batches(query, json.loads(json.dumps(first.last_key)))
    assert [b["id"] for b in rest.items] == [catalogue[1]["id"]]


def test_figures_follow_every_status_change_and_delete(repo, catalogue):
    assert figures(repo) == expected_figures(
        total_batches=7, queued=1, processing=2, completed=1, completed_with_errors=1, failed=1, cancelled=1,
        files_current=23, total_files_all_time=23, max_files_in_batch=6)
    biggest = repo.get_batch(catalogue[5]["id"])
    assert repo.mark_deleting(biggest, T3)
    assert figures(repo) == expected_figures(
        total_batches=6, queued=1, processing=2, completed=1, completed_with_errors=1, failed=1,
        files_current=17, total_files_all_time=23, max_files_in_batch=5)
    assert figures(repo, "bob") == expected_figures(total_batches=1, queued=1, files_current=9,
                                                    total_files_all_time=9, max_files_in_batch=9)
    assert figures(repo, "carol") == expected_figures()


def test_jobs_by_status_lists_an_owners_jobs_most_recently_changed_first(repo):
    first = stored(repo, new_batch(files=3))
    second = stored(repo, new_batch(files=2))
    stored(repo, new_batch(owner="bob", files=2))
    moments = iter(iso(BASE + timedelta(minutes=m)) for m in range(10, 20))
    order = []
    for batch in (first, second):
        for job in jobs_of(repo, batch["id"]):
            repo.claim_upload(job, next(moments))
            order.append(job["job_id"])
    done = repo.get_job(first["id"], order[1])
    repo.finish_job(done, 1, next(moments), outputs=[])
    expected = [jid for jid in reversed(order) if jid != order[1]]
    items, sizes = walk(lambda start: repo.jobs_by_status("alice", "processing", 2, start))
    assert [j["job_id"] for j in items] == expected and sizes == [2, 2]
    assert [j["job_id"] for j in repo.jobs_by_status("alice", "completed", 5, None).items] == [order[1]]
    assert repo.jobs_by_status("alice", "failed", 5, None).items == []
    assert len(repo.jobs_by_status("bob", "awaiting_upload", 5, None).items) == 2


# -- archive builds --------------------------------------------------------------------------------

def test_one_archive_build_per_content_until_released_or_stale(repo):
    t = [iso(BASE + timedelta(minutes=m)) for m in range(40)]
    assert repo.claim_archive_build("b1", "f1", t[0], t[0]) is True
    assert repo.claim_archive_build("b1", "f1", t[1], t[0]) is False   # running, not stale
    assert repo.claim_archive_build("b1", "f2", t[1], t[0]) is True    # other content
    assert repo.claim_archive_build("b2", "f1", t[1], t[0]) is True
    assert repo.claim_archive_build("b1", "f1", t[20], t[1]) is True   # silent since before t[1]: taken over
    assert repo.claim_archive_build("b1", "f1", t[21], t[5]) is False  # the new owner's claim is fresh
    repo.release_archive_build("b1", "f1")
    repo.release_archive_build("b1", "f1")
    assert repo.claim_archive_build("b1", "f1", t[22], t[0]) is True


def test_a_parallel_build_records_one_upload_counts_tasks_once_and_is_released_once(repo):
    t0, never = iso(BASE), iso(BASE - timedelta(days=365))
    assert repo.start_archive_upload("b", "f", "u1", t0) is False           # no claim, no upload
    assert repo.claim_archive_build("b", "f", t0, never)
    assert repo.count_archive_task("b", "f", "u1", 1, t0) is None           # no upload recorded yet
    assert repo.start_archive_upload("b", "f", "u1", t0) is True
    assert repo.start_archive_upload("b", "f", "u2", t0) is False           # a repeated build request
    assert [repo.count_archive_task("b", "f", "u1", n, t0) for n in (1, 2, 1, 3, 2)] == [1, 2, 2, 3, 3]
    assert repo.count_archive_task("b", "f", "u2", 4, t0) is None           # another upload's worker
    assert repo.count_archive_task("b", "other", "u1", 4, t0) is None
    assert repo.finish_archive_build("b", "f", "u2") is False
    assert repo.finish_archive_build("b", "f", "u1") is True
    assert repo.finish_archive_build("b", "f", "u1") is False               # once
    assert repo.count_archive_task("b", "f", "u1", 4, t0) is None           # released: nothing counts
    assert repo.claim_archive_build("b", "f", t0, never)                    # free again


def test_a_build_taken_over_starts_a_fresh_marker(repo):
    t = [iso(BASE + timedelta(minutes=m)) for m in range(40)]
    assert repo.claim_archive_build("b", "f", t[0], t[0])
    assert repo.start_archive_upload("b", "f", "u1", t[0])
    assert repo.count_archive_task("b", "f", "u1", 1, t[0]) == 1
    assert repo.claim_archive_build("b", "f", t[20], t[4])                  # silent since t[0]: taken over
    assert repo.count_archive_task("b", "f", "u1", 2, t[20]) is None        # the old build counts nothing
    assert repo.finish_archive_build("b", "f", "u1") is False
    assert repo.start_archive_upload("b", "f", "u3", t[20])
    assert repo.count_archive_task("b", "f", "u3", 1, t[21]) == 1           # counted afresh
    repo.release_archive_build("b", "f")
    assert repo.finish_archive_build("b", "f", "u3") is False


def test_progress_keeps_a_build_from_looking_stale(repo):
    t = [iso(BASE + timedelta(minutes=m)) for m in range(40)]
    assert repo.claim_archive_build("b", "f", t[0], t[0])
    assert repo.start_archive_upload("b", "f", "u1", t[2])                  # starting the upload is progress
    assert repo.claim_archive_build("b", "f", t[17], t[1]) is False
    repo.count_archive_task("b", "f", "u1", 1, t[15])                       # and so is every task
    assert repo.claim_archive_build("b", "f", t[30], t[14]) is False
    assert repo.claim_archive_build("b", "f", t[31], t[16]) is True


# -- everything at once ----------------------------------------------------------------------------

def test_parallel_workers_count_every_file_once_and_one_writes_the_final_status(repo):
    batch = stored(repo, new_batch(files=12))
    jobs = jobs_of(repo, batch["id"])
    wins = []

    def worker(job):
        for _ in range(2):   # every event delivered twice
            if repo.claim_upload(job, T1):
                current = repo.get_batch(batch["id"])
                if current["status"] == QUEUED:
                    repo.start_batch(current, T1)
            fresh = repo.get_job(batch["id"], job["job_id"])
            if fresh["status"] == "processing":
                repo.finish_job(fresh, fresh["attempt"], T2, outputs=[])
            now = repo.get_batch(batch["id"])
            if now["status"] == PROCESSING and now["succeeded"] == now["total_files"] \
                    and repo.finalize(now, COMPLETED, T3):
                wins.append(job["job_id"])

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(worker, jobs))
    after = repo.get_batch(batch["id"])
    assert (after["status"], after["uploaded"], after["succeeded"]) == (COMPLETED, 12, 12)
    assert len(wins) == 1
    assert figures(repo)["completed"] == 1 and figures(repo)["processing"] == 0 and figures(repo)["queued"] == 0
