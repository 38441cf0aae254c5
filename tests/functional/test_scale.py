"""Issue 15 under mock_aws: a batch spread over several buckets and manifest chunks behaves exactly as
a small one. Chunks are made small here (CHUNK_SIZE patched) so a few hundred files cover what a
100,000-file batch does: jobs materialised in the background and on demand, every view listing
files in order before that, exactly one final status from the last bucket, big cancels and deletes
finished by the maintenance queue."""
from __future__ import annotations

import json

import pytest

from tests.functional.test_processing import Flow

FILES = 250   # 3 buckets of about 100 files; 5 chunks of 50 positions


@pytest.fixture
def flow(api, aws):
    web = api.post("/pipelines", {"name": "web", "format": "png", "width": 16}).data["pipeline"]
    return Flow(api, aws, [web])


def maintenance_messages(aws) -> list[dict]:
    sqs, url = aws.sqs, aws.settings.queue_url("maintenance")
    out = []
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for m in got:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


def all_uploads(flow, created) -> list[dict]:
    uploads, cursor = list(created["uploads"]), created["uploads_next_cursor"]
    while cursor:
        page = flow.api.get(f"/batches/{created['batch']['id']}/uploads?cursor={cursor}").data
        uploads += page["uploads"]
        cursor = page["next_cursor"]
    return uploads


def all_jobs(flow, bid) -> list[dict]:
    jobs, cursor = [], None
    while True:
        b = flow.api.get(f"/batches/{bid}" + (f"?jobs_cursor={cursor}" if cursor else "")).data["batch"]
        jobs += b["jobs"]
        cursor = b["jobs_next_cursor"]
        if not cursor:
            return jobs


def test_a_batch_over_many_buckets_and_chunks_completes_exactly_once(flow, api, aws, small_chunks, monkeypatch):
    body = b"\x89PNG\r\n\x1a\n" + b"\0" * 24
    names = {f"PL_BIG{i:04d}_x.png": body for i in range(FILES)}
    created = flow.create(names)
    bid = created["batch"]["id"]
    assert len(created["uploads"]) == 50 and created["uploads_next_cursor"]
    # the other chunks' jobs are materialised in the background...
    assert sorted(m["chunk"] for m in maintenance_messages(aws) if m["kind"] == "materialize") == [1, 2, 3, 4]
    # ...but every view lists every file, in order, already
    listed = all_jobs(flow, bid)
    assert [j["file_name"] for j in listed] == list(names) and {j["status"] for j in listed} == {"awaiting_upload"}
    # uploads are handed out page by page, each page's jobs materialised on demand
    uploads = all_uploads(flow, created)
    assert [u["file_name"] for u in uploads] == list(names)
    batch = aws.repository.get_batch(bid)
    assert int(batch["buckets"]) == 3
    finals = []
    real_finalize = aws.repository.finalize
    monkeypatch.setattr(aws.repository, "finalize",
                        lambda b, s, now: finals.append(s) or real_finalize(b, s, now))
    from tests.functional.test_integrity import arrive
    for u in uploads:
        flow.put(u, body)
    for start in range(0, FILES, 25):
        arrive(flow, *[u["fields"]["key"] for u in uploads[start:start + 25]])
    b = flow.batch(bid)
    assert b["progress"]["uploaded"] == FILES and b["status"] == "processing"
    flow.drain_queue()   # processing, with each job's state carried by its message
    b = flow.batch(bid)
    assert b["status"] == "failed"   # not real images: every file fails on its own...
    assert b["progress"] == {"uploaded": FILES, "succeeded": 0, "failed": FILES, "cancelled": 0, "percent": 100}
    assert finals == ["failed"]      # ...and the final status was written exactly once
    stats = api.get("/batches/stats").data
    assert stats["failed"] == 1 and stats["processing"] == 0


def test_big_deletes_and_cancels_finish_in_the_background(flow, api, aws, small_chunks, monkeypatch):
    from chalicelib.services import deletion, processor
    monkeypatch.setattr(deletion, "INLINE_FILES", 100)
    monkeypatch.setattr(processor, "INLINE_JOBS", 100)
    body = b"x" * 10
    gone = flow.create({f"PL_GONE{i:04d}_x.png": body for i in range(FILES)})
    kept = flow.create({f"PL_KEEP{i:04d}_x.png": body for i in range(FILES)})
    maintenance_messages(aws)
    # cancel: the batch is cancelled at once, its jobs in the background
    r = api.post(f"/batches/{kept['batch']['id']}/cancel")
    assert r.status_code == 200 and r.data["batch"]["status"] == "cancelled"
    # delete: gone from every list and figure at once, records and objects in the background
    flow.put(gone["uploads"][0], body)
    assert api.delete(f"/batches/{gone['batch']['id']}").status_code == 204
    assert api.get(f"/batches/{gone['batch']['id']}").status_code == 404
    assert [b["id"] for b in api.get("/batches").data["batches"]] == [kept["batch"]["id"]]
    messages = maintenance_messages(aws)
    assert {m["kind"] for m in messages} == {"cancel_jobs", "purge"}
    for m in messages:
        aws.maintenance.run(m)
    after = flow.batch(kept["batch"]["id"])
    assert after["progress"]["cancelled"] == FILES
    assert {j["status"] for j in all_jobs(flow, kept["batch"]["id"])} == {"cancelled"}
    assert aws.repository.get_batch(gone["batch"]["id"]) is None
    assert aws.s3.list_objects_v2(Bucket=aws.settings.bucket, Prefix=f"uploads/{gone['batch']['id']}/").get(
        "KeyCount") == 0
    assert not [c for c in aws.models.Counter.scan() if c.bucket_key.startswith(gone["batch"]["id"])]
    assert not [m for m in aws.models.Manifest.scan() if m.chunk_key.startswith(gone["batch"]["id"])]


def _counter_states(aws, bid) -> set[str]:
    return {c.state for c in aws.models.Counter.scan() if c.bucket_key.startswith(f"{bid}#")}


def test_a_big_delete_answers_without_its_counters_and_the_purge_closes_them_first(flow, api, aws, small_chunks,
                                                                                   monkeypatch):
    """The DELETE of a batch over INLINE_COUNTERS buckets writes none of its counters (1,000 of them
    for 100,000 files). Until the purge, a worker still commits (its outputs go with the purge);
    the purge closes the counters before any object goes, and a commit after that fails."""
    from chalicelib.adapters import repository as repository_module
    from chalicelib.services import deletion
    from tests.functional.test_integrity import arrive
    monkeypatch.setattr(deletion, "INLINE_FILES", 100)
    monkeypatch.setattr(repository_module, "INLINE_COUNTERS", 1)
    body = b"x" * 10
    created = flow.create({f"PL_DEL{i:04d}_x.png": body for i in range(FILES)})
    bid = created["batch"]["id"]
    for u in created["uploads"][:2]:
        flow.put(u, body)
    arrive(flow, *[u["fields"]["key"] for u in created["uploads"][:2]])
    early, late = [aws.repository.get_job(bid, u["job_id"]) for u in created["uploads"][:2]]
    assert {early["status"], late["status"]} == {"processing"}
    maintenance_messages(aws)
    writes = []
    real_set = aws.repository._set_counters
    monkeypatch.setattr(aws.repository, "_set_counters", lambda b, s: writes.append(s) or real_set(b, s))
    assert api.delete(f"/batches/{bid}").status_code == 204
    assert writes == [] and _counter_states(aws, bid) == {"counting"}
    assert api.get(f"/batches/{bid}").status_code == 404 and api.get("/batches").data["batches"] == []
    assert aws.repository.finish_job(early, 1, "2026-12-01T00:00:01Z", outputs=[])   # before the purge: counted
    states_when_objects_go = []
    real_delete_prefix = aws.storage.delete_prefix
    monkeypatch.setattr(aws.storage, "delete_prefix",
                        lambda prefix: states_when_objects_go.append(_counter_states(aws, bid))
                        or real_delete_prefix(prefix))
    messages = maintenance_messages(aws)
    assert messages == [{"kind": "purge", "batch_id": bid}]
    real_purge = aws.repository.purge_batch
    monkeypatch.setattr(aws.repository, "purge_batch", lambda b: None)   # stop after the objects
    aws.maintenance.run(messages[0])
    assert states_when_objects_go and all(s == {"closed"} for s in states_when_objects_go)
    assert not aws.repository.finish_job(late, 1, "2026-12-01T00:00:02Z", outputs=[])   # after it: refused
    monkeypatch.setattr(aws.repository, "purge_batch", real_purge)
    aws.maintenance.run(messages[0])   # SQS delivers again: the purge finishes
    assert aws.repository.get_batch(bid) is None and _counter_states(aws, bid) == set()
    assert aws.s3.list_objects_v2(Bucket=aws.settings.bucket).get("KeyCount", 0) == 0


def test_a_big_cancel_answers_without_its_counters_and_its_counts_end_exact(flow, api, aws, small_chunks,
                                                                            monkeypatch):
    """A file that finishes between the cancel and its background step is counted as finished;
    the step sets the counters to count cancels only, and the batch's counts end exact."""
    from chalicelib.adapters import repository as repository_module
    from chalicelib.services import processor
    from tests.functional.test_integrity import arrive
    monkeypatch.setattr(processor, "INLINE_JOBS", 100)
    monkeypatch.setattr(repository_module, "INLINE_COUNTERS", 1)
    body = b"x" * 10
    created = flow.create({f"PL_CAN{i:04d}_x.png": body for i in range(FILES)})
    bid = created["batch"]["id"]
    flow.put(created["uploads"][0], body)
    arrive(flow, created["uploads"][0]["fields"]["key"])
    job = aws.repository.get_job(bid, created["uploads"][0]["job_id"])
    maintenance_messages(aws)
    r = api.post(f"/batches/{bid}/cancel")
    assert r.status_code == 200 and r.data["batch"]["status"] == "cancelled"
    assert _counter_states(aws, bid) == {"counting"}
    assert aws.repository.finish_job(job, 1, "2026-12-01T00:00:01Z", outputs=[])   # it finished in between
    messages = maintenance_messages(aws)
    assert messages == [{"kind": "cancel_jobs", "batch_id": bid}]
    aws.maintenance.run(messages[0])
    aws.maintenance.run(messages[0])   # again, as SQS may: nothing changes
    assert _counter_states(aws, bid) == {"cancelling"}
    b = flow.batch(bid)
    assert b["status"] == "cancelled"
    assert b["progress"] == {"uploaded": 1, "succeeded": 1, "failed": 0, "cancelled": FILES - 1, "percent": 100}
    assert api.get("/batches/stats").data["cancelled"] == 1


def test_a_big_retry_answers_without_its_files_and_the_background_reopens_them(flow, api, aws, small_chunks,
                                                                              monkeypatch):
    """A retry of a batch over INLINE_JOBS files looks at a few failed files in the request, marks
    the batch and hands the rest to the maintenance queue: counters opened there, every failed
    file with a stored upload reopened, the batch final again once they are done."""
    from chalicelib.adapters import repository as repository_module
    from chalicelib.services import processor
    from tests.functional.test_integrity import arrive
    monkeypatch.setattr(processor, "INLINE_JOBS", 100)
    monkeypatch.setattr(repository_module, "INLINE_COUNTERS", 1)
    files = 120   # two buckets, three chunks
    body = b"\x89PNG\r\n\x1a\n" + b"\0" * 24   # not a real image: every file fails
    created = flow.create({f"PL_RTY{i:04d}_x.png": body for i in range(files)})
    bid = created["batch"]["id"]
    uploads = all_uploads(flow, created)
    for u in uploads:
        flow.put(u, body)
    for start in range(0, files, 30):
        arrive(flow, *[u["fields"]["key"] for u in uploads[start:start + 30]])
    flow.drain_queue()
    assert flow.batch(bid)["status"] == "failed"
    maintenance_messages(aws)
    reopens = []
    real_reopen = aws.repository.reopen_job
    monkeypatch.setattr(aws.repository, "reopen_job", lambda *a, **k: reopens.append(a) or real_reopen(*a, **k))
    r = api.post(f"/batches/{bid}/retry")
    assert r.status_code == 200, r.data
    assert (r.data["batch"]["status"], r.data["batch"]["progress"]["failed"]) == ("processing", files)
    assert reopens == [] and api.get("/batches/stats").data["processing"] == 1
    messages = maintenance_messages(aws)
    assert messages == [{"kind": "retry_jobs", "batch_id": bid}]
    aws.maintenance.run(messages[0])
    assert len(reopens) == files and flow.batch(bid)["progress"]["failed"] == 0
    flow.drain_queue()
    b = flow.batch(bid)
    assert b["status"] == "failed"
    assert b["progress"] == {"uploaded": files, "succeeded": 0, "failed": files, "cancelled": 0, "percent": 100}
    assert {j["attempt"] for j in aws.repository.all_jobs(bid)} == {2}
    stats = api.get("/batches/stats").data
    assert (stats["failed"], stats["processing"]) == (1, 0)


def test_an_uploaded_batchs_chunk_steps_and_upload_pages_read_no_job_pages_and_no_counters(
        flow, api, aws, small_chunks, monkeypatch):
    """The chunk step used to list each chunk's 1,000 jobs to announce drop-folder files an
    uploaded batch does not have, and every step and upload page summed the batch's 1,000
    counters to read its status: 1,100 requests and 100,000 job reads per 100,000-file batch."""
    import botocore.client
    created = flow.create({f"PL_STEP{i:04d}_x.png": b"x" * 10 for i in range(FILES)})
    bid = created["batch"]["id"]
    steps = [m for m in maintenance_messages(aws) if m["kind"] == "materialize"]
    assert steps and not any(m["announce"] for m in steps)
    tables: list[str] = []
    real = botocore.client.BaseClient._make_api_call

    def recording(client, operation, params):
        if operation == "BatchGetItem":
            tables.extend(params["RequestItems"])
        return real(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    for m in steps:
        aws.maintenance.run(m)
    assert tables == []
    assert len(all_uploads(flow, created)) == FILES
    assert aws.settings.table("counters") not in tables   # the jobs of each page, not the counters
    assert aws.repository.get_batch(bid, counts=False)["status"] == "queued"
    assert "uploaded" not in aws.repository.get_batch(bid, counts=False)


def test_a_finishers_look_at_a_big_batch_stops_at_the_first_bucket_with_a_file_left(aws, monkeypatch):
    """Each bucket's last file asks whether the batch is done. That read every counter: at the end
    of a 100,000-file batch, 1,000 finishers x 1,000 counters. Now the reading starts after the
    finisher's own bucket, ten counters first, and stops at the first bucket with a file left."""
    import botocore.client
    from tests.contract.conftest import new_batch
    repo, counters = aws.repository, aws.settings.table("counters")
    new = new_batch(files=90, buckets=30)
    repo.create_batch(new)
    batch = repo.get_batch(new.id)
    jobs = sorted(repo.all_jobs(new.id), key=lambda j: j["position"])
    for job in jobs:
        assert repo.claim_upload(job, "2026-01-01T00:01:00Z")
    left = jobs[0]["bucket"]
    for job in jobs:
        if job["bucket"] != left:
            repo.finish_job({**job, "status": "processing"}, 1, "2026-01-01T00:02:00Z", outputs=[])
    reads: list[int] = []
    real = botocore.client.BaseClient._make_api_call

    def recording(client, operation, params):
        if operation == "BatchGetItem" and counters in params["RequestItems"]:
            reads.append(len(params["RequestItems"][counters]["Keys"]))
        return real(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    assert repo.settled_batch(new.id, after=(left - 1) % 30) is None
    assert reads == [10]          # the first counter read has a file left: one request of ten
    reads.clear()
    assert repo.settled_batch(new.id, after=left) is None
    assert reads == [10, 20]      # read last: every other bucket is settled
    for job in jobs:
        if job["bucket"] == left:
            repo.finish_job({**job, "status": "processing"}, 1, "2026-01-01T00:02:00Z", outputs=[])
    reads.clear()
    settled = repo.settled_batch(new.id, after=left)
    assert reads == [10, 20]
    assert (settled["uploaded"], settled["succeeded"], settled["status"]) == (90, 90, batch["status"])
