"""ports.PresignedMultipart and the ObjectStore's listing and multipart aborts on both backends: what
services/multipart.py relies on, the same on the in-memory fake and on S3 (moto)."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

MIB = 1024 * 1024
KEY = "uploads/b1/j1/big file+ü.tif"


@pytest.fixture
def storage(backend):
    return backend.container.storage


def test_an_upload_in_parts_is_listed_resumed_and_completed(backend, storage):
    upload_id = storage.start_multipart(KEY, "image/tiff")
    assert [(u["key"], u["upload_id"]) for u in storage.multipart_uploads("uploads/b1/")] == [(KEY, upload_id)]
    assert storage.list_parts(KEY, upload_id) == {}
    part1, part2 = b"a" * (5 * MIB), b"b" * 1234
    url = storage.presign_part(KEY, upload_id, 2, len(part2), 600)
    query = parse_qs(urlsplit(url).query)
    assert query["uploadId"] == [upload_id] and query["partNumber"] == ["2"]
    etag2 = backend.put_part(url, part2)
    held = storage.list_parts(KEY, upload_id)
    assert held == {2: {"size": 1234, "etag": etag2}}
    etag1 = backend.put_part(storage.presign_part(KEY, upload_id, 1, len(part1), 600), part1)
    assert sorted(storage.list_parts(KEY, upload_id)) == [1, 2]
    storage.complete_multipart(KEY, upload_id, [(1, etag1), (2, etag2)])
    assert storage.head(KEY)["ContentLength"] == len(part1) + len(part2)
    assert b"".join(storage.read_chunks(KEY)) == part1 + part2
    assert storage.multipart_uploads("uploads/b1/") == [] and storage.list_parts(KEY, upload_id) is None


def test_a_part_sent_again_replaces_the_first(backend, storage):
    upload_id = storage.start_multipart(KEY, "image/tiff")
    backend.put_part(storage.presign_part(KEY, upload_id, 1, 10, 600), b"x" * 999)
    etag = backend.put_part(storage.presign_part(KEY, upload_id, 1, 10, 600), b"y" * 10)
    assert storage.list_parts(KEY, upload_id) == {1: {"size": 10, "etag": etag}}


def test_uploads_are_listed_oldest_first_and_aborted_by_prefix(storage):
    first = storage.start_multipart(KEY, "image/tiff")
    second = storage.start_multipart(KEY, "image/tiff")
    other = storage.start_multipart("uploads/b2/j/x.tif", "image/tiff")
    listed = storage.multipart_uploads(KEY)
    assert {u["upload_id"] for u in listed} == {first, second}
    assert listed == sorted(listed, key=lambda u: (u["initiated"], u["upload_id"]))
    storage.abort_multipart(KEY, second)
    storage.abort_multipart(KEY, second)   # gone already: fine
    assert [u["upload_id"] for u in storage.multipart_uploads(KEY)] == [first]
    assert storage.abort_multipart_uploads("uploads/b1/") == 1
    assert storage.multipart_uploads("uploads/b1/") == [] and storage.list_parts(KEY, first) is None
    assert [u["upload_id"] for u in storage.multipart_uploads("uploads/")] == [other]
    assert storage.abort_multipart_uploads("uploads/b1/") == 0


def test_objects_are_listed_with_their_sizes_in_key_order(storage):
    for key, size in (("drop/o/f/b.png", 3), ("drop/o/f/a.png", 5), ("drop/o/f/sub/c.png", 1), ("drop/o/g/x", 2)):
        storage.put(key, b"x" * size, "image/png")
    assert list(storage.list_objects("drop/o/f/")) == [("drop/o/f/a.png", 5), ("drop/o/f/b.png", 3),
                                                        ("drop/o/f/sub/c.png", 1)]
    assert list(storage.list_objects("drop/none/")) == []


def test_stored_objects_have_a_version_that_changes_when_written_again(storage):
    storage.put("drop/o/f/_READY", b"{}", "application/json")
    first = storage.head("drop/o/f/_READY")
    storage.put("drop/o/f/_READY", b'{"a": 1}', "application/json")
    second = storage.head("drop/o/f/_READY")
    assert first["ETag"] != second["ETag"] and second["LastModified"] >= first["LastModified"]


def test_drop_folder_files_are_announced_on_the_arrivals_queue(backend):
    keys = [f"drop/o/f/file {i}+ü.png" for i in range(12)]
    backend.container.arrival_queue.enqueue_keys(keys)
    assert sorted(backend.arrival_messages()) == sorted(keys)
