"""Archives built in parallel parts (services/archives.py) under mock_aws: the coordinator, the
part workers, the exactly-once count and completion, and what happens when builds repeat, die,
go stale or lose their batch.

S3's 5 MiB minimum part is lowered to 4 KiB here (moto reads it from a module global, the app
from ARCHIVE_MIN_PART_SIZE) so that a few real images make dozens of parts; tests/e2e runs the
same build with real 5 MiB parts.
"""
from __future__ import annotations

import io
import json
import random
import shutil
import subprocess
import threading
import zipfile
import zlib
from collections import Counter
from datetime import timedelta

import pytest
import requests
from PIL import Image

from chalicelib.domain.keys import archive_plan_key
from chalicelib.services.clock import utcnow
from chalicelib.settings import Settings
from tests import moto_s3
from tests.functional.conftest import TOKENS
from tests.functional.test_processing import Flow

MIN_PART = 4096


@pytest.fixture
def settings():
    return Settings(local_api_tokens=TOKENS, archive_sync_max_bytes=0, archive_min_part_size=MIN_PART,
                    archive_part_size=2 * MIN_PART, archive_task_bytes=4 * MIN_PART)


@pytest.fixture(autouse=True)
def small_parts(monkeypatch):
    import moto.s3.models
    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", MIN_PART)


@pytest.fixture(autouse=True)
def no_such_upload_as_in_s3(monkeypatch):
    """S3's NoSuchUpload for parts of a finished upload, and one completion (tests/moto_s3.py)."""
    moto_s3.no_such_upload_as_in_s3(monkeypatch)


def noise_png(side: int) -> bytes:
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), random.Random(side).randbytes(side * side * 3)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def batch(api, aws):
    """A finished batch whose PNG outputs (stored uncompressed) range from 1 to 40 KiB."""
    big = api.post("/pipelines", {"name": "big", "format": "png", "compression": 0}).data["pipeline"]
    flow = Flow(api, aws, [big])
    data = {f"IMG_{side:03d}.png": noise_png(side) for side in (8, 20, 33, 60, 64, 70, 100, 110, 120)}
    created = flow.create(data)
    flow.upload(created, data)
    assert flow.batch(created["batch"]["id"])["status"] == "completed"
    return created["batch"]


class Builder:
    """What the two event source mappings do: archives queue -> build_archive (the coordinator),
    parts queue -> build_archive_part; here the tests choose the order and the repeats."""

    def __init__(self, api, aws):
        self.api, self.aws = api, aws

    def receive(self, key: str) -> list[dict]:
        url = self.aws.settings.queue_url(key)
        out = []
        while got := self.aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for m in got:
                out.append(json.loads(m["Body"]))
                self.aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return out

    def coordinate(self) -> list[dict]:
        """Run the coordinator for every queued build request (through the Lambda handler);
        return the task messages it queued."""
        for body in self.receive("archives"):
            event = self.api.client.events.generate_sqs_event(message_bodies=[json.dumps(body)],
                                                              queue_name="imgbatch-archives")
            self.api.client.lambda_.invoke("build_archive", event)
        return self.receive("archive_parts")

    def run(self, task: dict) -> str:
        return self.aws.archives.build_task(task["batch_id"], task["fingerprint"], task["key"], task["upload_id"],
                                            task["task"])

    def handler(self, task: dict) -> None:
        event = self.api.client.events.generate_sqs_event(message_bodies=[json.dumps(task)],
                                                          queue_name="imgbatch-archive-parts")
        self.api.client.lambda_.invoke("build_archive_part", event)


@pytest.fixture
def builder(api, aws):
    return Builder(api, aws)


def download(api, batch_id: str) -> bytes:
    r = api.get(f"/batches/{batch_id}/download")
    assert r.status_code == 302, (r.status_code, r.data)
    response = requests.get(r.headers["location"])
    assert response.status_code == 200
    return response.content


def check_archive(data: bytes, aws, batch: dict, tmp_path) -> None:
    """zipfile, unzip -t and bsdtar agree, and every output is in it byte for byte."""
    base = batch["base_directory_name"]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert names[0] == f"{base}/manifest.csv"
        for job in aws.repository.all_jobs(batch["id"]):
            for out in job["outputs"]:
                stored = aws.s3.get_object(Bucket=aws.settings.bucket, Key=out["key"])["Body"].read()
                assert zf.read(f"{base}/{job['file_name']}") == stored
    path = tmp_path / "parts.zip"
    path.write_bytes(data)
    for command in (["unzip", "-t", str(path)], ["bsdtar", "-tf", str(path)]):
        if shutil.which(command[0]) is None:
            pytest.fail(f"{command[0]} is not installed (CI installs unzip and libarchive-tools)")
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, (command, result.stderr)
    assert subprocess.run(["bsdtar", "-tf", str(path)], capture_output=True, text=True).stdout.splitlines() == names


def nothing_left(aws, batch_id: str, fingerprint: str) -> bool:
    assert "Uploads" not in aws.s3.list_multipart_uploads(Bucket=aws.settings.bucket)
    assert aws.storage.head(archive_plan_key(batch_id, fingerprint)) is None
    assert aws.repository.claim_archive_build(batch_id, fingerprint, "2000-01-01T00:00:00Z", "1999-01-01T00:00:00Z")
    return True


def test_a_large_archive_is_built_from_parallel_parts_some_copied_inside_s3(api, aws, batch, builder, tmp_path,
                                                                           monkeypatch):
    copies, uploads = [], []
    real_copy, real_upload = aws.storage.copy_part, aws.storage.upload_part
    monkeypatch.setattr(aws.storage, "copy_part", lambda *a: copies.append(a[2]) or real_copy(*a))
    monkeypatch.setattr(aws.storage, "upload_part", lambda *a: uploads.append(a[2]) or real_upload(*a))
    r = api.get(f"/batches/{batch['id']}/download")
    assert r.status_code == 202
    tasks = builder.coordinate()
    assert len(tasks) > 3
    random.Random(7).shuffle(tasks)
    # in any order, some twice before the last one comes, and one again after
    results = [builder.run(t) for t in tasks[:3] + tasks[:3] + tasks[3:] + tasks[:1]]
    assert results[-2:] == ["completed", "stale"]
    assert Counter(results) == {"uploaded": len(tasks) + 2, "completed": 1, "stale": 1}
    parts = set(copies) | set(uploads)
    assert copies and uploads and not set(copies) & set(uploads)   # both kinds, each part one kind
    assert parts == set(range(1, len(parts) + 1)) and len(parts) > len(tasks)
    check_archive(download(api, batch["id"]), aws, batch, tmp_path)
    fingerprint = tasks[0]["fingerprint"]
    assert nothing_left(aws, batch["id"], fingerprint)


def test_concurrent_workers_count_every_task_once_and_complete_once(api, aws, batch, builder, tmp_path,
                                                                     monkeypatch):
    api.get(f"/batches/{batch['id']}/download")
    tasks = builder.coordinate()
    deliveries = tasks * 3
    random.Random(3).shuffle(deliveries)
    results, lock = [], threading.Lock()

    ready = []
    monkeypatch.setattr(aws.archives, "archive_ready", lambda batch_id, key, partial=False: ready.append(key))

    moto_races = []

    def worker(mine):
        for task in mine:
            for _ in range(3):   # a delivery that raised comes back, as SQS redelivers it
                try:
                    outcome = builder.run(task)
                    break
                except ValueError as exc:
                    # moto's own race, not ours: the same part sent twice at once, moto closes
                    # the first one's buffer while UploadPartCopy reads its ETag (S3 has no such race)
                    if "closed file" not in str(exc):
                        raise
                    moto_races.append(exc)
                    outcome = repr(exc)
                except Exception as exc:   # fails the test below
                    outcome = repr(exc)
                    break
            with lock:
                results.append(outcome)
    threads = [threading.Thread(target=worker, args=(deliveries[i::6],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # After completion a redelivered task finds the upload gone and the plan removed: "stale".
    assert Counter(results)["completed"] == 1 and len(ready) == 1
    assert set(results) <= {"uploaded", "completed", "stale"} and len(results) == len(deliveries)
    check_archive(download(api, batch["id"]), aws, batch, tmp_path)


def test_the_parts_function_runs_a_task_from_its_sqs_message(api, aws, batch, builder, tmp_path):
    api.get(f"/batches/{batch['id']}/download")
    for task in builder.coordinate():
        builder.handler(task)
    check_archive(download(api, batch["id"]), aws, batch, tmp_path)


def test_a_worker_that_dies_before_completing_is_finished_by_the_redelivery(api, aws, batch, builder, tmp_path,
                                                                             monkeypatch):
    api.get(f"/batches/{batch['id']}/download")
    tasks = builder.coordinate()
    for task in tasks[:-1]:
        assert builder.run(task) == "uploaded"
    real = aws.storage.complete_upload

    def dies(*a):
        raise TimeoutError("Lambda timed out")
    monkeypatch.setattr(aws.storage, "complete_upload", dies)
    with pytest.raises(TimeoutError):
        builder.run(tasks[-1])                 # counted, then died: SQS delivers it again
    monkeypatch.setattr(aws.storage, "complete_upload", real)
    assert builder.run(tasks[-1]) == "completed"
    check_archive(download(api, batch["id"]), aws, batch, tmp_path)


def test_a_worker_that_dies_after_completing_tidies_up_on_redelivery(api, aws, batch, builder, monkeypatch):
    api.get(f"/batches/{batch['id']}/download")
    tasks = builder.coordinate()
    for task in tasks[:-1]:
        builder.run(task)
    ready = []
    monkeypatch.setattr(aws.archives, "archive_ready", lambda batch_id, key, partial=False: ready.append(key))
    real = aws.repository.finish_archive_build

    def dies(*a):
        raise TimeoutError("Lambda timed out")
    monkeypatch.setattr(aws.repository, "finish_archive_build", dies)
    with pytest.raises(TimeoutError):
        builder.run(tasks[-1])                      # the archive is stored, the build not released
    assert ready == []
    monkeypatch.setattr(aws.repository, "finish_archive_build", real)
    assert builder.run(tasks[-1]) == "completed"    # the upload is gone, the archive is there: finish
    assert builder.run(tasks[-1]) == "stale"        # and then there is nothing left to do
    assert len(ready) == 1
    assert nothing_left(aws, batch["id"], tasks[0]["fingerprint"])


def test_a_repeated_build_request_leaves_the_running_build_alone(api, aws, batch, builder, tmp_path):
    api.get(f"/batches/{batch['id']}/download")
    (request,) = builder.receive("archives")
    for _ in range(2):   # SQS delivers the build request twice
        aws.archives.build_requested(request["batch_id"], request["partial"])
    tasks = builder.receive("archive_parts")
    assert len({t["upload_id"] for t in tasks}) == 1
    assert len(aws.s3.list_multipart_uploads(Bucket=aws.settings.bucket)["Uploads"]) == 1
    for task in tasks:
        builder.run(task)
    check_archive(download(api, batch["id"]), aws, batch, tmp_path)


def test_a_build_gone_silent_is_taken_over_and_its_upload_aborted(api, aws, batch, builder, tmp_path,
                                                                  monkeypatch):
    api.get(f"/batches/{batch['id']}/download")
    old = builder.coordinate()
    for task in old[:2]:
        assert builder.run(task) == "uploaded"
    # 17 minutes without a task counted: the next poll claims the build again
    later = utcnow() + timedelta(minutes=17)
    monkeypatch.setattr(aws.archives, "clock", lambda: later)
    assert api.get(f"/batches/{batch['id']}/download").status_code == 202
    new = builder.coordinate()
    assert {t["upload_id"] for t in new}.isdisjoint({t["upload_id"] for t in old})
    uploads = aws.s3.list_multipart_uploads(Bucket=aws.settings.bucket)["Uploads"]
    assert [u["UploadId"] for u in uploads] == [new[0]["upload_id"]]   # the silent one is aborted
    assert {builder.run(t) for t in old} == {"stale"}
    assert Counter(builder.run(t) for t in new)["completed"] == 1
    check_archive(download(api, batch["id"]), aws, batch, tmp_path)


def test_progress_keeps_a_build_from_looking_stale(api, aws, batch, builder, monkeypatch):
    api.get(f"/batches/{batch['id']}/download")
    tasks = builder.coordinate()
    later = utcnow() + timedelta(minutes=17)
    monkeypatch.setattr(aws.archives, "clock", lambda: later)
    builder.run(tasks[0])                          # counted 17 minutes on
    assert api.get(f"/batches/{batch['id']}/download").status_code == 202
    assert builder.receive("archives") == []       # not claimed again


def test_deleting_the_batch_during_the_build_leaves_nothing_behind(api, aws, batch, builder):
    api.get(f"/batches/{batch['id']}/download")
    tasks = builder.coordinate()
    builder.run(tasks[0])
    assert api.delete(f"/batches/{batch['id']}").status_code == 204
    assert {builder.run(t) for t in tasks[1:]} == {"stale"}
    assert "Uploads" not in aws.s3.list_multipart_uploads(Bucket=aws.settings.bucket)
    assert aws.s3.list_objects_v2(Bucket=aws.settings.bucket).get("KeyCount", 0) == 0


def test_a_changed_output_fails_the_task_instead_of_writing_a_wrong_zip(api, aws, batch, builder):
    api.get(f"/batches/{batch['id']}/download")
    tasks = builder.coordinate()
    job = next(iter(aws.repository.all_jobs(batch["id"])))
    aws.s3.put_object(Bucket=aws.settings.bucket, Key=job["outputs"][0]["key"], Body=b"shorter now")
    from chalicelib.ports import SourceChanged
    with pytest.raises(SourceChanged):
        for task in tasks:
            builder.run(task)


def test_outputs_stored_before_crcs_were_recorded_are_read_for_theirs(api, aws, batch, tmp_path):
    Job = aws.models.Job
    for job in aws.repository.all_jobs(batch["id"]):
        item = Job.get(job["bucket_key"], job["job_id"])   # the job lives in its bucket's partition
        item.update(actions=[Job.outputs.set([{k: v for k, v in o.items() if k != "crc32"} for o in item.outputs])])
    restore = replace_settings(aws, archive_sync_max_bytes=256 * 1024 * 1024)
    data = download(api, batch["id"])
    restore()
    check_archive(data, aws, batch, tmp_path)


def replace_settings(aws, **changes):
    from dataclasses import replace
    original = aws.archives.settings
    aws.archives.settings = replace(original, **changes)

    def restore():
        aws.archives.settings = original
    return restore


def test_small_archives_are_written_by_the_same_writer_in_the_request(api, aws, batch, tmp_path):
    restore = replace_settings(aws, archive_sync_max_bytes=256 * 1024 * 1024)
    data = download(api, batch["id"])
    restore()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        # headers hold the CRC and sizes: no data descriptors (the streaming writer needed them)
        assert all(not info.flag_bits & 0x8 for info in zf.infolist())
    check_archive(data, aws, batch, tmp_path)


def test_outputs_record_their_crc_but_the_api_shows_the_documented_fields(api, aws, batch):
    for job in aws.repository.all_jobs(batch["id"]):
        for out in job["outputs"]:
            stored = aws.s3.get_object(Bucket=aws.settings.bucket, Key=out["key"])["Body"].read()
            assert out["crc32"] == zlib.crc32(stored) and out["size"] == len(stored)
    jobs = api.get(f"/batches/{batch['id']}").data["batch"]["jobs"]
    assert {k for j in jobs for o in j["outputs"] for k in o} == {"pipeline_id", "key", "format", "width",
                                                                 "height", "size"}


def test_a_build_of_one_task_is_written_by_the_coordinator(api, aws, batch, builder, tmp_path):
    restore = replace_settings(aws, archive_task_bytes=1 << 30)
    api.get(f"/batches/{batch['id']}/download")
    assert builder.coordinate() == []
    restore()
    check_archive(download(api, batch["id"]), aws, batch, tmp_path)


def test_the_build_marker_records_one_upload_counts_tasks_once_and_is_released_once(aws):
    repo, t0, never = aws.repository, "2026-01-01T00:00:00Z", "2000-01-01T00:00:00Z"
    assert not repo.start_archive_upload("b", "f", "u1", t0)           # no claim, no upload
    assert repo.claim_archive_build("b", "f", t0, never)
    assert repo.count_archive_task("b", "f", "u1", 1, t0) is None      # not recorded yet
    assert repo.start_archive_upload("b", "f", "u1", t0)
    assert not repo.start_archive_upload("b", "f", "u2", t0)           # a repeated request
    assert [repo.count_archive_task("b", "f", "u1", n, t0) for n in (1, 2, 1, 3, 2)] == [1, 2, 2, 3, 3]
    assert repo.count_archive_task("b", "f", "u2", 4, t0) is None      # another upload's worker
    # A claim taken over as stale starts a fresh marker: the old upload's workers count nothing.
    assert repo.claim_archive_build("b", "f", "2026-01-01T00:20:00Z", "2026-01-01T00:04:00Z")
    assert repo.count_archive_task("b", "f", "u1", 4, t0) is None
    assert repo.start_archive_upload("b", "f", "u3", t0)
    assert not repo.finish_archive_build("b", "f", "u1")
    assert repo.finish_archive_build("b", "f", "u3")
    assert not repo.finish_archive_build("b", "f", "u3")


def test_counting_a_task_keeps_the_build_alive(aws):
    repo = aws.repository
    assert repo.claim_archive_build("b", "f", "2026-01-01T00:00:00Z", "2000-01-01T00:00:00Z")
    assert repo.start_archive_upload("b", "f", "u1", "2026-01-01T00:00:00Z")
    repo.count_archive_task("b", "f", "u1", 1, "2026-01-01T00:15:00Z")
    assert not repo.claim_archive_build("b", "f", "2026-01-01T00:20:00Z", "2026-01-01T00:04:00Z")
