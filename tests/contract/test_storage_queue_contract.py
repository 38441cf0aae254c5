"""ports.ObjectStore, ports.ProcessingQueue and ports.ArchiveQueue on both backends."""
from __future__ import annotations

import base64
import json
from collections import Counter
from urllib.parse import urlsplit

import pytest


@pytest.fixture
def storage(backend):
    return backend.container.storage


def test_objects_are_written_read_and_described(storage):
    storage.put("outputs/b/j/p.jpg", b"jpeg bytes", "image/jpeg")
    head = storage.head("outputs/b/j/p.jpg")
    assert head["ContentLength"] == 10 and head["ContentType"] == "image/jpeg"
    size, body = storage.fetch("outputs/b/j/p.jpg")
    with body:
        assert size == 10 and b"".join(body.iter_chunks(4)) == b"jpeg bytes"
    assert list(storage.read_chunks("outputs/b/j/p.jpg", 4)) == [b"jpeg", b" byt", b"es"]
    storage.put("outputs/b/j/p.jpg", b"again", "image/jpeg")   # a fixed key: the last write wins
    assert storage.head("outputs/b/j/p.jpg")["ContentLength"] == 5


def test_a_missing_object_is_none_or_an_error_when_streamed(storage):
    assert storage.head("uploads/none") is None and storage.fetch("uploads/none") is None
    with pytest.raises(Exception):
        list(storage.read_chunks("uploads/none"))
    storage.delete("uploads/none")   # deleting what is not there is fine


def test_prefix_deletes_count_what_they_removed(storage):
    for key in ("uploads/b1/j1/a.png", "uploads/b1/j2/b.png", "uploads/b10/j/c.png", "outputs/b1/j1/x.jpg"):
        storage.put(key, b"x", "image/png")
    assert storage.delete_prefix("uploads/b1/") == 2
    assert storage.delete_prefix("uploads/b1/") == 0
    assert storage.head("uploads/b10/j/c.png") is not None and storage.head("outputs/b1/j1/x.jpg") is not None
    storage.delete("outputs/b1/j1/x.jpg")
    assert storage.head("outputs/b1/j1/x.jpg") is None


def test_a_stream_is_stored_whole_with_its_download_name(storage):
    result = storage.write_stream("archives/b/f/Shoot.zip", iter([b"PK", b"\x03\x04", b"rest"]), "application/zip",
                                  "Shoot ü.zip")
    assert result["size"] == 8 and result["parts"] == 0   # under one part: a single PUT
    head = storage.head("archives/b/f/Shoot.zip")
    assert head["ContentLength"] == 8 and head["ContentType"] == "application/zip"
    assert "filename*=UTF-8''Shoot%20%C3%BC.zip" in head["ContentDisposition"]
    assert b"".join(storage.read_chunks("archives/b/f/Shoot.zip")) == b"PK\x03\x04rest"


def test_a_stream_that_fails_leaves_nothing(storage):
    def broken():
        yield b"PK"
        raise ConnectionError("an output could not be read")

    with pytest.raises(ConnectionError):
        storage.write_stream("archives/b/f/x.zip", broken(), "application/zip")
    assert storage.head("archives/b/f/x.zip") is None


def test_presigned_uploads_pin_the_key_the_size_and_the_type(storage):
    post = storage.presign_upload("uploads/b/j/a b.png", 1234, "image/png", 600)
    assert urlsplit(post["url"]).scheme in ("http", "https")
    assert post["fields"]["key"] == "uploads/b/j/a b.png" and post["fields"]["Content-Type"] == "image/png"
    policy = json.loads(base64.b64decode(post["fields"]["policy"]))
    assert ["content-length-range", 1234, 1234] in policy["conditions"]
    assert {"Content-Type": "image/png"} in policy["conditions"]


def test_presigned_downloads_and_the_origins_browsers_talk_to(storage):
    url = storage.presign_download("archives/b/f/Shoot.zip", 900, "Shoot.zip")
    assert isinstance(url, str) and "archives/b/f/Shoot.zip" in url
    origins = storage.browser_origins("uploads/probe")
    assert origins and all(urlsplit(o).path == "" and urlsplit(o).scheme in ("http", "https") for o in origins)
    assert f"{urlsplit(url).scheme}://{urlsplit(url).netloc}" in origins


def test_every_key_enqueued_comes_back_once(backend):
    keys = [f"uploads/b/j{i}/file {i}+ü.png" for i in range(23)]   # more than one SQS batch of 10
    backend.container.queue.enqueue_keys(keys[:3])
    backend.container.queue.enqueue_keys(keys[3:])
    assert Counter(backend.processing_messages()) == Counter(keys)
    assert backend.processing_messages() == []


def test_archive_builds_requested_come_back_once(backend):
    backend.container.archive_queue.request_build("b1", True)
    backend.container.archive_queue.request_build("b2", False)
    got = backend.archive_messages()
    assert sorted(got, key=lambda m: m["batch_id"]) == [{"batch_id": "b1", "partial": True},
                                                         {"batch_id": "b2", "partial": False}]
    assert backend.archive_messages() == []


def test_a_prebuild_is_a_build_request_that_says_so(backend):
    backend.container.archive_queue.request_prebuild("b1")
    assert backend.archive_messages() == [{"batch_id": "b1", "partial": False, "prebuild": True}]


def test_every_task_of_a_parallel_build_comes_back_once_on_the_parts_queue(backend):
    tasks = [{"batch_id": "b", "fingerprint": "f", "key": "archives/b/f/x.zip", "upload_id": "u", "task": n}
             for n in range(1, 24)]   # more than one SQS batch of 10
    backend.container.archive_queue.request_tasks(tasks[:1])
    backend.container.archive_queue.request_tasks(tasks[1:])
    assert sorted(backend.archive_task_messages(), key=lambda t: t["task"]) == tasks
    assert backend.archive_task_messages() == [] and backend.archive_messages() == []


def test_maintenance_steps_come_back_once_as_sent(backend):
    queue = backend.container.maintenance_queue
    queue.send({"kind": "purge", "batch_id": "b1"})
    steps = [{"kind": "materialize", "batch_id": "b2", "chunk": c} for c in range(1, 14)]
    queue.send_many(steps)
    got = backend.maintenance_messages()
    assert sorted(got, key=lambda m: (m["kind"], m.get("chunk", 0))) == steps + [{"kind": "purge", "batch_id": "b1"}]
    assert backend.maintenance_messages() == []
