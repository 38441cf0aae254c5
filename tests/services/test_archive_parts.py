"""ArchiveService building one ZIP in parallel S3 parts, on the in-memory adapters: the coordinator
(build_requested), the part workers (build_task) run in the order and as often as a test says,
and what a delete, a dead worker, a repeated request, a stale build or a changed output do.
The in-memory store enforces S3's part rules with its minimum lowered to 4 KiB, as
tests/functional/test_archive_parts.py lowers moto's, so a few small images make dozens of parts."""
from __future__ import annotations

import io
import random
import zipfile
from collections import Counter

import pytest
from PIL import Image

from chalicelib.domain import events as ev
from chalicelib.domain.keys import archive_plan_key
from chalicelib.ports import SourceChanged

MIN_PART = 4096


def noise_png(side: int) -> bytes:
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), random.Random(side).randbytes(side * side * 3)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def parts(system, monkeypatch):
    """Archives built in parts of 8 KiB (members of 4 KiB and up copied inside the store), four
    parts' worth a task; the store's smallest part lowered to match."""
    system.with_settings(archive_sync_max_bytes=0, archive_min_part_size=MIN_PART, archive_part_size=2 * MIN_PART,
                         archive_task_bytes=4 * MIN_PART)
    monkeypatch.setattr(system.storage, "min_part_size", MIN_PART)
    return system


@pytest.fixture
def batch(parts) -> dict:
    """A finished batch whose PNG outputs (stored uncompressed) range from 0.2 to 43 KiB."""
    big = parts.pipelines.create("alice", {"name": "big", "format": "png", "compression": 0})
    data = {f"IMG_{side:03d}.png": noise_png(side) for side in (8, 20, 33, 60, 64, 70, 100, 110, 120)}
    created = parts.create(data, pipelines=[big])
    assert set(parts.deliver(created, data)) == {"completed"}
    return created["batch"]


def coordinate(system) -> list[dict]:
    """The builder function for every build request queued; the tasks it queued."""
    for m in system.archive_queue.take():
        system.archives.build_requested(m["batch_id"], m["partial"], prebuild=bool(m.get("prebuild")))
    return system.archive_queue.take_tasks()


def run(system, task: dict) -> str:
    """The part worker for one delivery of a task."""
    return system.archives.build_task(task["batch_id"], task["fingerprint"], task["key"], task["upload_id"],
                                      task["task"])


def download(system, batch_id: str) -> bytes:
    ready = system.archives.request("alice", batch_id, partial=False)
    assert ready["status"] == "ready"
    return system.storage.data(next(k for k in system.storage.keys(f"archives/{batch_id}/") if k.endswith(".zip")))


def check_archive(system, data: bytes, batch: dict) -> None:
    base = batch["base_directory_name"]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        assert zf.namelist()[0] == f"{base}/manifest.csv"
        jobs = list(system.repo.all_jobs(batch["id"]))
        assert len(zf.namelist()) == len(jobs) + 1
        for job in jobs:
            assert zf.read(f"{base}/{job['file_name']}") == system.storage.data(job["outputs"][0]["key"])


def nothing_left(system, batch_id: str, fingerprint: str) -> None:
    assert system.storage.uploads() == []
    assert system.storage.head(archive_plan_key(batch_id, fingerprint)) is None
    assert system.repo.claim_archive_build(batch_id, fingerprint, "2000-01-01T00:00:00Z", "1999-01-01T00:00:00Z")


def announced(system) -> list[dict]:
    return [e for e in system.event_bus.take() if e["detail-type"] == ev.ARCHIVE_READY]


def test_tasks_in_any_order_and_twice_complete_the_archive_once(parts, batch, monkeypatch):
    copies, uploads = [], []
    real_copy, real_upload = parts.storage.copy_part, parts.storage.upload_part
    monkeypatch.setattr(parts.storage, "copy_part", lambda *a: copies.append(a[2]) or real_copy(*a))
    monkeypatch.setattr(parts.storage, "upload_part", lambda *a: uploads.append(a[2]) or real_upload(*a))
    parts.event_bus.take()
    assert parts.archives.request("alice", batch["id"], partial=False)["status"] == "building"
    tasks = coordinate(parts)
    assert len(tasks) > 3 and len({t["upload_id"] for t in tasks}) == 1
    random.Random(7).shuffle(tasks)
    results = [run(parts, t) for t in tasks[:3] + tasks[:3] + tasks[3:] + tasks[:1]]
    assert results[-2:] == ["completed", "stale"]
    assert Counter(results) == {"uploaded": len(tasks) + 2, "completed": 1, "stale": 1}
    numbers = set(copies) | set(uploads)
    assert copies and uploads and not set(copies) & set(uploads)   # both kinds, each part one kind
    assert numbers == set(range(1, len(numbers) + 1)) and len(numbers) > len(tasks)
    check_archive(parts, download(parts, batch["id"]), batch)
    ready, = announced(parts)
    assert ready["detail"]["data"]["batch"]["id"] == batch["id"]
    nothing_left(parts, batch["id"], tasks[0]["fingerprint"])


def test_parts_and_the_inline_writer_make_the_very_same_archive(parts, batch):
    parts.with_settings(archive_sync_max_bytes=1 << 30)   # in the request, one stream
    inline = download(parts, batch["id"])
    key, = [k for k in parts.storage.keys("archives/") if k.endswith(".zip")]
    parts.storage.delete(key)
    parts.with_settings(archive_sync_max_bytes=0)
    assert parts.archives.request("alice", batch["id"], partial=False)["status"] == "building"
    tasks = coordinate(parts)
    assert len(tasks) > 1
    assert Counter(run(parts, t) for t in tasks)["completed"] == 1
    assert parts.storage.keys("archives/") == [key]   # the same content: the same key
    assert download(parts, batch["id"]) == inline      # same clock, same layout, byte for byte


def test_a_build_of_one_task_is_written_by_the_coordinator(parts, batch):
    parts.with_settings(archive_task_bytes=1 << 30)
    assert parts.archives.request("alice", batch["id"], partial=False)["status"] == "building"
    assert coordinate(parts) == []
    assert parts.storage.uploads() == []
    check_archive(parts, download(parts, batch["id"]), batch)


def test_a_delete_mid_build_leaves_nothing_behind(parts, batch):
    parts.archives.request("alice", batch["id"], partial=False)
    tasks = coordinate(parts)
    parts.event_bus.take()
    assert run(parts, tasks[0]) == "uploaded"
    parts.deleter.delete("alice", batch["id"])
    assert {run(parts, t) for t in tasks[1:]} == {"stale"}
    assert parts.storage.keys() == [] and parts.storage.uploads() == []
    assert announced(parts) == []


def test_a_delete_between_the_last_upload_and_completion_removes_the_archive(parts, batch, monkeypatch):
    parts.archives.request("alice", batch["id"], partial=False)
    tasks = coordinate(parts)
    parts.event_bus.take()
    for task in tasks[:-1]:
        run(parts, task)
    real = parts.storage.complete_upload

    def delete_then_complete(*args):
        parts.deleter.delete("alice", batch["id"])   # its sweep of archives/ comes before the object
        real(*args)
        assert parts.storage.head(tasks[0]["key"]) is not None
    monkeypatch.setattr(parts.storage, "complete_upload", delete_then_complete)
    assert run(parts, tasks[-1]) == "stale"
    assert parts.storage.keys() == [] and parts.storage.uploads() == [] and announced(parts) == []


def test_a_worker_that_dies_before_completing_is_finished_by_the_redelivery(parts, batch, monkeypatch):
    parts.archives.request("alice", batch["id"], partial=False)
    tasks = coordinate(parts)
    for task in tasks[:-1]:
        assert run(parts, task) == "uploaded"
    real = parts.storage.complete_upload

    def dies(*args):
        raise TimeoutError("Lambda timed out")
    monkeypatch.setattr(parts.storage, "complete_upload", dies)
    with pytest.raises(TimeoutError):
        run(parts, tasks[-1])                 # counted, then died: SQS delivers it again
    monkeypatch.setattr(parts.storage, "complete_upload", real)
    assert run(parts, tasks[-1]) == "completed"
    check_archive(parts, download(parts, batch["id"]), batch)


def test_a_worker_that_dies_after_completing_tidies_up_on_redelivery(parts, batch, monkeypatch):
    parts.archives.request("alice", batch["id"], partial=False)
    tasks = coordinate(parts)
    parts.event_bus.take()
    for task in tasks[:-1]:
        run(parts, task)
    real = parts.repo.finish_archive_build

    def dies(*args):
        raise TimeoutError("Lambda timed out")
    monkeypatch.setattr(parts.repo, "finish_archive_build", dies)
    with pytest.raises(TimeoutError):
        run(parts, tasks[-1])                     # the archive is stored, the build not released
    assert announced(parts) == []
    monkeypatch.setattr(parts.repo, "finish_archive_build", real)
    assert run(parts, tasks[-1]) == "completed"   # the upload is gone, the archive is there: finish
    assert run(parts, tasks[-1]) == "stale"
    assert len(announced(parts)) == 1
    nothing_left(parts, batch["id"], tasks[0]["fingerprint"])


def test_a_repeated_build_request_leaves_the_running_build_alone(parts, batch):
    parts.archives.request("alice", batch["id"], partial=False)
    request, = parts.archive_queue.take()
    for _ in range(2):   # SQS delivers the build request twice
        parts.archives.build_requested(request["batch_id"], request["partial"])
    tasks = parts.archive_queue.take_tasks()
    assert len({t["upload_id"] for t in tasks}) == 1 and len(parts.storage.uploads()) == 1
    assert Counter(run(parts, t) for t in tasks)["completed"] == 1
    check_archive(parts, download(parts, batch["id"]), batch)


def test_a_build_gone_silent_is_taken_over_and_its_upload_aborted(parts, batch):
    parts.archives.request("alice", batch["id"], partial=False)
    old = coordinate(parts)
    for task in old[:2]:
        assert run(parts, task) == "uploaded"
    parts.clock.advance(minutes=17)   # no task counted for longer than a builder can run
    assert parts.archives.request("alice", batch["id"], partial=False)["status"] == "building"
    new = coordinate(parts)
    assert {t["upload_id"] for t in new}.isdisjoint({t["upload_id"] for t in old})
    assert parts.storage.uploads() == [new[0]["upload_id"]]   # the silent one is aborted
    assert {run(parts, t) for t in old} == {"stale"}
    assert Counter(run(parts, t) for t in new)["completed"] == 1
    check_archive(parts, download(parts, batch["id"]), batch)


def test_progress_keeps_a_build_from_looking_stale(parts, batch):
    parts.archives.request("alice", batch["id"], partial=False)
    tasks = coordinate(parts)
    parts.clock.advance(minutes=17)
    run(parts, tasks[0])                      # counted 17 minutes on
    assert parts.archives.request("alice", batch["id"], partial=False)["status"] == "building"
    assert parts.archive_queue.take() == []   # not claimed again


def test_a_changed_output_fails_the_task_instead_of_writing_a_wrong_zip(parts, batch):
    parts.archives.request("alice", batch["id"], partial=False)
    tasks = coordinate(parts)
    for job in parts.repo.all_jobs(batch["id"]):
        parts.storage.put(job["outputs"][0]["key"], b"shorter now", "image/png")
    with pytest.raises(SourceChanged):
        for task in tasks:
            run(parts, task)
    assert parts.storage.head(tasks[0]["key"]) is None
