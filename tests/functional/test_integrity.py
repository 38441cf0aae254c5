"""Issue 11's defects, each replayed deterministically: the interleaving that broke the books is
forced with a hook at the exact point where the other actor got in."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests import images
from tests.functional.test_processing import Flow, s3_body

STATUSES = ("queued", "processing", "completed", "completed_with_errors", "failed", "cancelled")


@pytest.fixture
def flow(api, aws):
    web = api.post("/pipelines", {"name": "web", "format": "png", "width": 16}).data["pipeline"]
    return Flow(api, aws, [web])


def arrive(flow, *keys):
    """S3's notification, as the arrivals queue hands it to register_uploads."""
    event = flow.api.client.events.generate_sqs_event(message_bodies=[s3_body(*keys)], queue_name="imgbatch-arrivals")
    return flow.api.client.lambda_.invoke("register_uploads", event).payload


def queued_keys(aws) -> list[str]:
    """What waits in the processing queue (and take it off)."""
    import json
    from urllib.parse import unquote_plus
    keys = []
    while True:
        got = aws.sqs.receive_message(QueueUrl=aws.settings.queue_url("uploads"), MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            return keys
        for m in got:
            keys += [unquote_plus(r["s3"]["object"]["key"]) for r in json.loads(m["Body"])["Records"]]
            aws.sqs.delete_message(QueueUrl=aws.settings.queue_url("uploads"), ReceiptHandle=m["ReceiptHandle"])


def assert_books_balance(api, expected_batches: int):
    stats = api.get("/batches/stats").data
    assert all(stats[s] >= 0 for s in STATUSES), stats
    assert sum(stats[s] for s in STATUSES) == stats["total_batches"] == expected_batches, stats
    listed = api.get("/batches?limit=200").data["batches"]
    assert len(listed) == expected_batches
    for s in STATUSES:
        assert stats[s] == sum(b["status"] == s for b in listed), (s, stats)
    assert stats["total_files_all_time"] == sum(b["total_files"] for b in listed)
    return stats


def objects(aws, prefix="") -> list[str]:
    return [o["Key"] for o in aws.s3.list_objects_v2(Bucket=aws.settings.bucket, Prefix=prefix).get("Contents", [])]


# -- 1. delete racing a status change --------------------------------------------------

def test_cancel_during_a_long_delete_finds_the_batch_gone_and_stats_stay_exact(flow, api, aws, monkeypatch):
    keep = flow.create({"keep.png": images.png()})
    created = flow.create({f"f{i}.png": images.png() for i in range(3)})
    bid = created["batch"]["id"]
    answers = []
    real_purge = aws.repository.purge_batch

    def purge_while_user_cancels(batch_id):
        answers.append(api.post(f"/batches/{batch_id}/cancel"))   # lands while jobs are being deleted
        real_purge(batch_id)

    monkeypatch.setattr(aws.repository, "purge_batch", purge_while_user_cancels)
    assert api.delete(f"/batches/{bid}").status_code == 204
    assert [r.status_code for r in answers] == [404]
    assert api.get(f"/batches/{bid}").status_code == 404
    stats = assert_books_balance(api, 1)
    assert stats["queued"] == 1 and stats["cancelled"] == 0
    assert api.get(f"/batches/{keep['batch']['id']}").status_code == 200


def test_delete_that_loses_to_a_cancel_subtracts_the_new_status(flow, api, aws, monkeypatch):
    created = flow.create({f"f{i}.png": images.png() for i in range(2)})
    bid = created["batch"]["id"]
    real_mark = aws.repository.mark_deleting
    cancelled = []

    def cancel_first(batch, now):
        if not cancelled:   # the user's cancel commits between the delete's read and its write
            cancelled.append(api.post(f"/batches/{bid}/cancel").status_code)
        return real_mark(batch, now)

    monkeypatch.setattr(aws.repository, "mark_deleting", cancel_first)
    assert api.delete(f"/batches/{bid}").status_code == 204
    assert cancelled == [200]
    assert_books_balance(api, 0)


def test_a_worker_finishing_during_a_delete_leaves_nothing_behind(flow, api, aws, monkeypatch):
    data = {"a.png": images.png()}
    created = flow.create(data)
    bid = created["batch"]["id"]
    flow.upload(created, data, deliver=False)
    key = created["uploads"][0]["fields"]["key"]
    real_finish = aws.repository.finish_job

    def delete_then_commit(*args, **kwargs):   # outputs are written; the user deletes; then the commit
        assert api.delete(f"/batches/{bid}").status_code == 204
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(aws.repository, "finish_job", delete_then_commit)
    flow.deliver(s3_body(key))
    assert objects(aws) == []
    assert_books_balance(api, 0)


def test_an_upload_after_delete_is_removed_on_arrival(flow, api, aws):
    data = {"a.png": images.png()}
    created = flow.create(data)
    bid = created["batch"]["id"]
    assert api.delete(f"/batches/{bid}").status_code == 204
    flow.put(created["uploads"][0], data["a.png"])   # the presigned POST is still valid
    assert arrive(flow, created["uploads"][0]["fields"]["key"]) == {"batchItemFailures": []}
    assert objects(aws) == []


def test_an_interrupted_delete_is_finished_by_the_sweep(flow, api, aws, monkeypatch):
    data = {"a.png": images.png()}
    created = flow.create(data)
    bid = created["batch"]["id"]
    flow.upload(created, data)
    monkeypatch.setattr(aws.deleter, "purge", lambda batch_id: (_ for _ in ()).throw(RuntimeError("killed")))
    assert api.delete(f"/batches/{bid}").status_code == 500
    assert api.get(f"/batches/{bid}").status_code == 404      # gone for the user at once
    assert_books_balance(api, 0)
    monkeypatch.undo()
    assert aws.sweep.run()["deletes_resumed"] == 1
    assert objects(aws) == [] and aws.repository.get_batch(bid) is None
    assert list(aws.repository.all_jobs(bid)) == []


def test_an_archive_built_while_the_batch_is_deleted_is_removed(flow, api, aws, monkeypatch):
    data = {"a.png": images.png()}
    created = flow.create(data)
    bid = created["batch"]["id"]
    flow.upload(created, data)
    real_write = aws.storage.write_stream

    def write_then_delete(*args, **kwargs):
        result = real_write(*args, **kwargs)
        aws.deleter.delete("alice", bid)   # the delete sweeps archives/ before this one is complete
        return result

    monkeypatch.setattr(aws.storage, "write_stream", write_then_delete)
    assert api.get(f"/batches/{bid}/download").status_code == 404
    assert objects(aws) == []


# -- 2. files S3 accepted in time are never expired ------------------------------------

def test_stored_uploads_whose_events_are_late_are_processed_not_expired(flow, api, aws):
    data = {"a.png": images.png(), "b.png": images.png(), "never.png": images.png()}
    created = flow.create(data)
    bid = created["batch"]["id"]
    flow.upload(created, {"a.png": data["a.png"], "b.png": data["b.png"]}, deliver=False)   # events still queued
    aws.processor.clock = lambda: datetime.now(timezone.utc) + timedelta(seconds=3600 + 60)
    assert aws.processor.expire_uploads() == 1   # only the file that never came
    b = flow.batch(bid)
    assert b["progress"]["uploaded"] == 2 and b["progress"]["failed"] == 1
    flow.drain_queue()
    b = flow.batch(bid)
    assert b["status"] == "completed_with_errors" and b["progress"]["succeeded"] == 2
    assert {j["file_name"]: (j["error"] or {}).get("code") for j in b["jobs"]} == {
        "a.png": None, "b.png": None, "never.png": "upload_expired"}


# -- 3. cancel wins against any status that is not final -----------------------------------

def test_cancel_wins_when_the_batch_starts_under_it(flow, api, aws, monkeypatch):
    data = {"a.png": images.png(), "b.png": images.png()}
    created = flow.create(data)
    bid = created["batch"]["id"]
    flow.upload(created, {"a.png": data["a.png"]}, deliver=False)
    real_finalize = aws.repository.finalize
    raced = []

    def first_file_starts_meanwhile(batch, status, now):
        if not raced:
            raced.append(flow.deliver(s3_body(created["uploads"][0]["fields"]["key"])))  # queued -> processing
        return real_finalize(batch, status, now)

    monkeypatch.setattr(aws.repository, "finalize", first_file_starts_meanwhile)
    r = api.post(f"/batches/{bid}/cancel")
    assert r.status_code == 200, r.data
    assert r.data["batch"]["status"] == "cancelled"
    p = r.data["batch"]["progress"]
    assert p["succeeded"] + p["failed"] + p["cancelled"] == 2
    assert_books_balance(api, 1)


def test_cancel_of_a_final_batch_names_its_status(flow, api):
    data = {"a.png": images.png()}
    created = flow.create(data)
    flow.upload(created, data)
    r = api.post(f"/batches/{created['batch']['id']}/cancel")
    assert r.status_code == 409 and "already completed" in r.data["Message"]


def test_an_interrupted_cancel_is_finished_by_the_sweep(flow, api, aws, monkeypatch):
    created = flow.create({"a.png": images.png(), "b.png": images.png()})
    bid = created["batch"]["id"]
    monkeypatch.setattr(aws.processor, "cancel_pending_jobs", lambda batch_id: (_ for _ in ()).throw(
        RuntimeError("killed")))
    assert api.post(f"/batches/{bid}/cancel").status_code == 500
    monkeypatch.undo()
    aws.processor.expire_uploads()
    b = flow.batch(bid)
    assert b["status"] == "cancelled" and b["progress"]["cancelled"] == 2
    assert {j["status"] for j in b["jobs"]} == {"cancelled"}


# -- retry racing cancel and delete -------------------------------------------------------------

def test_a_cancel_between_reopening_the_batch_and_its_jobs_strands_nothing(flow, api, aws, monkeypatch):
    data = {"a.png": images.png(), "b.png": images.png()}
    created = flow.create(data)
    bid = created["batch"]["id"]
    flow.upload(created, data)
    job_a = next(j for j in flow.batch(bid)["jobs"] if j["file_name"] == "a.png")
    _fail_one(aws, bid, job_a["id"])   # a failed file whose upload is stored: retriable
    assert flow.batch(bid)["status"] == "completed_with_errors"
    real_reopen_job = aws.repository.reopen_job
    cancels = []

    def cancel_in_between(job, now):
        if not cancels:
            cancels.append(api.post(f"/batches/{bid}/cancel").status_code)
        return real_reopen_job(job, now)

    monkeypatch.setattr(aws.repository, "reopen_job", cancel_in_between)
    api.post(f"/batches/{bid}/retry")
    assert cancels == [200]
    flow.drain_queue()
    b = flow.batch(bid)
    assert b["status"] == "cancelled"
    p = b["progress"]
    assert p["succeeded"] + p["failed"] + p["cancelled"] == b["total_files"]
    assert {j["status"] for j in b["jobs"]} <= {"completed", "failed", "cancelled"}
    assert_books_balance(api, 1)


def _fail_one(aws, batch_id: str, job_id: str) -> None:
    """Turn one completed job into a failed one, counters and status included (test setup)."""
    B, J, C = aws.models.Batch, aws.models.Job, aws.models.Counter
    job = aws.repository.get_job(batch_id, job_id)
    J(job["bucket_key"], job_id).update(actions=[J.status.set("failed"), J.error_code.set("corrupt_image"),
                                                 J.error_message.set("injected"), J.outputs.remove()])
    C(f"{batch_id}#{job['bucket']}").update(actions=[C.succeeded.add(-1), C.failed.add(1)])
    B(batch_id).update(actions=[B.succeeded.add(-1), B.failed.add(1)])   # the final counts, too
    batch = aws.repository.get_batch(batch_id)
    aws.repository._move_batch(batch, batch["status"], "completed_with_errors", batch["updated_at"], [])


# -- 9. uploaded means stored, within seconds, whatever the backlog ------------------------------

def test_arrival_counts_the_upload_before_any_processing(flow, api, aws):
    data = {"a.png": images.png(), "b.png": images.png()}
    created = flow.create(data)
    bid = created["batch"]["id"]
    flow.upload(created, data, deliver=False)
    keys = [u["fields"]["key"] for u in created["uploads"]]
    assert arrive(flow, *keys) == {"batchItemFailures": []}
    b = flow.batch(bid)
    assert b["status"] == "processing" and b["progress"]["uploaded"] == 2 and b["progress"]["succeeded"] == 0
    assert sorted(queued_keys(aws)) == sorted(keys)      # handed on to processing
    assert arrive(flow, keys[0]) == {"batchItemFailures": []}   # a duplicate notification counts nothing
    assert flow.batch(bid)["progress"]["uploaded"] == 2
    flow.deliver(s3_body(*keys))
    b = flow.batch(bid)
    assert b["status"] == "completed" and b["progress"] == {"uploaded": 2, "succeeded": 2, "failed": 0,
                                                             "cancelled": 0, "percent": 100}


def test_objects_nobody_asked_for_are_removed_on_arrival(flow, api, aws):
    created = flow.create({"a.png": images.png()})
    u = created["uploads"][0]
    forged = u["fields"]["key"].rsplit("/", 1)[0] + "/other-name.png"
    aws.s3.put_object(Bucket=aws.settings.bucket, Key=forged, Body=b"x")
    arrive(flow, forged)
    assert forged not in objects(aws)
    assert flow.batch(created["batch"]["id"])["progress"]["uploaded"] == 0


# -- 10. stats add up after a delete -------------------------------------------------------------

def test_stats_cover_the_batches_the_owner_has(flow, api):
    flow.create({f"a{i}.png": images.png() for i in range(4)})
    second = flow.create({"b.png": images.png()})
    assert api.delete(f"/batches/{second['batch']['id']}").status_code == 204
    stats = assert_books_balance(api, 1)
    assert stats["total_files_all_time"] == 4 and stats["avg_files_per_batch"] == 4 and stats["max_files_in_batch"] == 4


# -- 12. a late file of an expired job, retried, is counted as uploaded ------------------------------

def test_retrying_an_expired_job_whose_file_came_late_counts_its_upload(flow, api, aws):
    data = {"a.png": images.png(), "late.png": images.png()}
    created = flow.create(data)
    bid = created["batch"]["id"]
    flow.upload(created, {"a.png": data["a.png"]})
    aws.processor.clock = lambda: datetime.now(timezone.utc) + timedelta(seconds=3600 + 60)
    assert aws.processor.expire_uploads() == 1
    late = next(u for u in created["uploads"] if u["file_name"] == "late.png")
    flow.put(late, data["late.png"])
    arrive(flow, late["fields"]["key"])   # too late: the job has failed already
    assert flow.batch(bid)["progress"]["uploaded"] == 1
    assert api.post(f"/batches/{bid}/retry").status_code == 200
    flow.drain_queue()
    b = flow.batch(bid)
    assert b["status"] == "completed"
    assert b["progress"] == {"uploaded": 2, "succeeded": 2, "failed": 0, "cancelled": 0, "percent": 100}
