"""Drop folders (services/dropfolders.py) on the in-memory adapters: a folder and its marker become
a batch processed in place, and every decision README "Drop folders" documents: non-images fail on
their own, files after the marker, a second marker, a marker delivered twice, an empty folder, an
invalid marker, an owner without drop folders, deleting and cancelling, and crashes midway."""
from __future__ import annotations

import json
import logging

import pytest

from chalicelib.domain.dropfolders import drop_batch_id
from chalicelib.errors import Conflict
from tests import images


@pytest.fixture
def drops(system):
    system.with_settings(drop_folder_owners=frozenset({"alice", "bob"}))
    system.pipeline()
    return system


def marker(system, owner="alice", **fields) -> dict:
    body = {"pipeline_ids": [p["id"] for p in system.pipelines.list(owner)][:1], **fields}
    return body


def write(system, folder: str, files: dict[str, bytes], owner: str = "alice") -> list[str]:
    keys = []
    for name, data in files.items():
        keys.append(f"drop/{owner}/{folder}/{name}")
        system.storage.put(keys[-1], data, "binary/octet-stream")
    return keys


def ready(system, folder: str, body, owner: str = "alice") -> str:
    """Write the marker and deliver S3's announcement of it to register_drop."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    key = f"drop/{owner}/{folder}/_READY"
    system.storage.put(key, raw, "application/json")
    return system.dropfolders.marker_arrived(key)


def arrivals(system) -> list[str]:
    """What register_uploads does with the arrivals queue: register each key."""
    return [system.processor.register_key(k) for k in system.arrival_queue.take()]


def noise_png() -> bytes:
    """A PNG that does not compress: about 30 kB."""
    import io
    import random
    from PIL import Image
    buf = io.BytesIO()
    Image.frombytes("RGB", (100, 100), random.Random(7).randbytes(30000)).save(buf, "PNG")
    return buf.getvalue()


def only_batch(system, owner="alice") -> dict:
    listed = system.batches.list(owner, {})["batches"]
    assert len(listed) == 1, listed
    return system.batch(listed[0]["id"], owner)


def test_a_folder_and_its_marker_become_a_batch_processed_in_place(drops):
    keys = write(drops, "shoot-1", {"PL_DXB7_Front.png": images.png(), "PL_DXB7_Back.jpg": images.jpeg(),
                                    "notes.txt": b"call the client"})
    assert ready(drops, "shoot-1", marker(drops, description="Spring shoot")) == "created"
    assert sorted(drops.arrival_queue.take()) == sorted(keys) and drops.queue.take() == []
    # until they arrive, nobody may upload over the studio's files: no links, no uploads in parts
    bid = drops.batches.list("alice", {})["batches"][0]["id"]
    assert drops.batches.uploads("alice", bid, {})["uploads"] == []
    job = next(iter(drops.repo.all_jobs(bid)))
    with pytest.raises(Conflict, match="came from a drop folder"):
        drops.multipart.start("alice", bid, job["job_id"], {})
    drops.arrival_queue._send(keys)
    assert arrivals(drops) == ["registered"] * 3
    assert sorted(drops.drain()) == ["completed", "completed", "failed"]
    b = only_batch(drops)
    assert (b["status"], b["description"], b["customer_prefix"]) == ("completed_with_errors", "Spring shoot", "PL_DXB")
    jobs = {j["file_name"]: j for j in b["jobs"]}
    assert [j["file_name"] for j in b["jobs"]] == ["PL_DXB7_Back.jpg", "PL_DXB7_Front.png", "notes.txt"]
    assert jobs["notes.txt"]["error"]["code"] == "not_an_image"
    assert jobs["PL_DXB7_Back.jpg"]["content_type"] == "image/jpeg" and jobs["notes.txt"]["content_type"] == \
        "application/octet-stream"
    stored = {j["key"] for j in drops.repo.all_jobs(b["id"])}
    assert stored == set(keys) and drops.storage.keys("uploads/") == []   # nothing copied
    assert drops.batches.uploads("alice", b["id"], {})["uploads"] == []   # nobody uploads these
    assert b["progress"]["uploaded"] == 3


def test_a_marker_delivered_twice_makes_one_batch(drops):
    write(drops, "f", {"a.png": images.png()})
    assert ready(drops, "f", marker(drops)) == "created"
    drops.arrival_queue.take()
    assert drops.dropfolders.marker_arrived("drop/alice/f/_READY") == "duplicate"
    assert drops.arrival_queue.take() == ["drop/alice/f/a.png"]   # not arrived yet: handed on again
    assert drops.processor.register_key("drop/alice/f/a.png") == "registered"
    assert drops.dropfolders.marker_arrived("drop/alice/f/_READY") == "duplicate"
    assert drops.arrival_queue.take() == []
    assert only_batch(drops)["total_files"] == 1


def test_files_after_the_marker_stay_out_and_a_second_marker_makes_no_batch(drops, caplog):
    write(drops, "f", {"a.png": images.png()})
    ready(drops, "f", marker(drops))
    write(drops, "f", {"late.png": images.png()})
    with caplog.at_level(logging.WARNING, "imgbatch.drops"):
        assert ready(drops, "f", marker(drops, description="again")) == "taken"
    assert "already became batch" in caplog.text and "a second marker makes no batch" in caplog.text
    b = only_batch(drops)
    assert [j["file_name"] for j in b["jobs"]] == ["a.png"]
    # deleting the batch deletes the folder's objects, late ones included, and frees the folder
    drops.deleter.delete("alice", b["id"])
    assert drops.storage.keys("drop/") == []
    write(drops, "f", {"b.png": images.png()})
    assert ready(drops, "f", marker(drops)) == "created"
    assert [j["file_name"] for j in only_batch(drops)["jobs"]] == ["b.png"]


@pytest.mark.parametrize("body, why", [
    (b"", "the marker is empty"),
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    ({"description": "no pipelines"}, "pipeline_ids is required"),
    ({"pipeline_ids": ["00000000-0000-4000-8000-000000000000"]}, "unknown pipeline id"),
    ({"pipeline_id": "x", "files": []}, "must not list files"),
    ({"pipeline_id": "x", "colour": "red"}, "unknown field(s): colour"),
])
def test_an_invalid_marker_makes_no_batch_and_says_why_once(drops, caplog, body, why):
    write(drops, "f", {"a.png": images.png()})
    with caplog.at_level(logging.WARNING, "imgbatch.drops"):
        assert ready(drops, "f", body) == "invalid"
    lines = [r.getMessage() for r in caplog.records if r.name == "imgbatch.drops"]
    assert len(lines) == 1 and why in lines[0] and "drop/alice/f/" in lines[0], lines
    assert drops.batches.list("alice", {})["batches"] == [] and drops.arrival_queue.take() == []
    assert ready(drops, "f", marker(drops)) == "created"   # a corrected marker works: nothing was held


def test_a_marker_in_an_empty_folder_makes_no_batch_until_written_again(drops, caplog):
    with caplog.at_level(logging.WARNING, "imgbatch.drops"):
        assert ready(drops, "early", marker(drops)) == "empty"
    assert "no files besides the marker" in caplog.text
    write(drops, "early", {"a.png": images.png()})
    assert ready(drops, "early", marker(drops)) == "created"


def test_a_folder_of_an_owner_without_drop_folders_makes_no_batch(drops, caplog):
    write(drops, "f", {"a.png": images.png()}, owner="mallory")
    with caplog.at_level(logging.WARNING, "imgbatch.drops"):
        assert ready(drops, "f", marker(drops), owner="mallory") == "refused"
    assert "'mallory' is not an owner with drop folders" in caplog.text
    assert drops.batches.list("mallory", {})["batches"] == []


def test_a_marker_in_another_owners_prefix_makes_that_owners_batch_never_the_writers(drops):
    """The owner is the folder's first segment, whoever wrote it: in AWS only the owner's own
    principal may write there (docs/drop-folder-policy.json, tests/deploy/test_drop_policy.py)."""
    bob_pipeline = drops.pipeline("bob")
    write(drops, "f", {"a.png": images.png()}, owner="bob")
    assert ready(drops, "f", {"pipeline_ids": [bob_pipeline["id"]]}, owner="bob") == "created"
    assert drops.batches.list("alice", {})["batches"] == []
    assert only_batch(drops, "bob")["owner"] == "bob"
    # a marker naming alice's pipeline in bob's folder: unknown to bob, no batch
    write(drops, "g", {"a.png": images.png()}, owner="bob")
    assert ready(drops, "g", marker(drops), owner="bob") == "invalid"


def test_what_the_api_could_not_take_is_left_out_and_logged(drops, caplog):
    write(drops, "f", {"a.png": images.png(), "A.PNG": images.png(), "sub/b.png": images.png(), ".": b"x"})
    with caplog.at_level(logging.WARNING, "imgbatch.drops"):
        assert ready(drops, "f", marker(drops)) == "created"
    assert [j["file_name"] for j in only_batch(drops)["jobs"]] == ["A.PNG"]   # key order: upper case first
    assert "same name as 'A.PNG'" in caplog.text and "in a subfolder" in caplog.text
    assert "not a valid file name" in caplog.text


def test_a_folder_over_the_batch_limits_makes_no_batch(drops, caplog):
    drops.with_settings(drop_folder_owners=frozenset({"alice"}),
                        limits=drops.container.settings.limits.__class__(max_files=2))
    write(drops, "f", {f"{i}.png": images.png() for i in range(3)})
    with caplog.at_level(logging.WARNING, "imgbatch.drops"):
        assert ready(drops, "f", marker(drops)) == "invalid"
    assert "holds 3 files, over the limit of 2" in caplog.text


def test_a_file_over_the_per_file_limit_fails_on_its_own(drops):
    drops.with_settings(drop_folder_owners=frozenset({"alice"}),
                        limits=drops.container.settings.limits.__class__(max_file_size=2000))
    write(drops, "f", {"big.png": noise_png(), "small.png": images.png((4, 4))})
    ready(drops, "f", marker(drops))
    arrivals(drops)
    drops.drain()
    jobs = {j["file_name"]: j for j in only_batch(drops)["jobs"]}
    assert jobs["big.png"]["error"]["code"] == "file_too_large" and jobs["small.png"]["status"] == "completed"


def test_cancel_keeps_the_folder_and_unknown_drop_objects_are_never_removed(drops):
    keys = write(drops, "f", {"a.png": images.png(), "b.png": images.png()})
    ready(drops, "f", marker(drops))
    arrivals(drops)
    b = only_batch(drops)
    drops.processor.cancel("alice", b["id"])
    assert drops.drain() == ["cancelled", "cancelled"]
    assert all(drops.storage.head(k) for k in keys)   # the studio's files stay until the batch is deleted
    late = write(drops, "f", {"late.png": images.png()})[0]   # after the marker: no job of the batch
    assert drops.processor.register_key(late) == "ignored" and drops.processor.process_key(late) == "ignored"
    assert drops.storage.head(late) is not None
    write(drops, "nobody", {"x.png": images.png()})
    assert drops.processor.register_key("drop/alice/nobody/x.png") == "ignored"
    assert drops.processor.process_key("drop/alice/nobody/x.png") == "ignored"
    assert drops.storage.head("drop/alice/nobody/x.png") is not None


def test_a_creation_a_crash_cut_short_is_finished_by_the_marker_delivered_again(drops, monkeypatch):
    write(drops, "f", {"a.png": images.png()})
    real = drops.batches.open
    monkeypatch.setattr(drops.batches, "open", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError):
        ready(drops, "f", marker(drops))
    monkeypatch.setattr(drops.batches, "open", real)
    # SQS redelivers after its visibility timeout; the claim left behind is stale by then
    assert drops.dropfolders.marker_arrived("drop/alice/f/_READY") == "duplicate"   # too soon: lease held
    drops.clock.advance(minutes=16)
    assert drops.dropfolders.marker_arrived("drop/alice/f/_READY") == "created"
    assert only_batch(drops)["total_files"] == 1


def test_the_batch_id_is_the_markers_and_retry_works_on_the_folders_files(drops, monkeypatch):
    write(drops, "f", {"a.png": images.png()})
    ready(drops, "f", marker(drops))
    head = drops.storage.head("drop/alice/f/_READY")
    b = only_batch(drops)
    assert b["id"] == drop_batch_id("alice", "f", f"{head['ETag']}|{head['LastModified']}")
    from tests.services.conftest import flaky_render
    flaky_render(monkeypatch, {1})
    arrivals(drops)
    assert drops.drain() == ["failed"]
    drops.processor.retry("alice", b["id"])
    assert drops.drain() == ["completed"]
    assert drops.batch(b["id"])["status"] == "completed"
    drops.clock.advance(days=1)
    assert drops.sweep.run() == {"expired": 0, "deletes_resumed": 0}
