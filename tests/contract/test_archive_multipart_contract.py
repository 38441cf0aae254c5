"""ports.MultipartStore on both backends: ranged reads checked against the planned size, and one
object written in numbered parts (uploaded or copied inside the store) by several workers.
S3's 5 MiB minimum part is lowered to 4 KiB (`set_min_part_size`)."""
from __future__ import annotations

import random

import pytest

from chalicelib.ports import SourceChanged, UploadGone

MIN = 4096


@pytest.fixture
def storage(backend, monkeypatch):
    backend.set_min_part_size(monkeypatch, MIN)
    return backend.container.storage


def blob(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def test_ranges_are_read_from_objects_of_the_planned_size(storage):
    data = blob(10_000)
    storage.put("outputs/b/j/p.png", data, "image/png")
    assert b"".join(storage.read_range("outputs/b/j/p.png", 0, 10_000, 10_000)) == data      # the whole object
    assert b"".join(storage.read_range("outputs/b/j/p.png", 1234, 5000, 10_000)) == data[1234:6234]
    assert b"".join(storage.read_range("outputs/b/j/p.png", 9999, 1, 10_000)) == data[9999:]
    assert list(storage.read_range("outputs/b/j/p.png", 10, 0, 10_000)) == []


@pytest.mark.parametrize("start, length, planned", [
    (0, 10_000, 10_001),      # the whole object, planned larger
    (0, 9_000, 9_000),        # planned smaller
    (100, 200, 12_000),       # a range of an object planned larger
    (20_000, 10, 30_000),     # a range past its end
])
def test_an_object_of_another_size_than_planned_is_a_changed_source(storage, start, length, planned):
    storage.put("outputs/b/j/p.png", blob(10_000), "image/png")
    with pytest.raises(SourceChanged):
        list(storage.read_range("outputs/b/j/p.png", start, length, planned))


def test_a_missing_object_is_a_changed_source_when_read(storage):
    reads = storage.read_range("outputs/b/j/gone.png", 0, 10, 10)   # lazy, as a streamed GET
    with pytest.raises(SourceChanged):
        list(reads)


def test_parts_sent_in_any_order_and_again_make_one_object_on_completion(storage):
    source = blob(3 * MIN, seed=2)
    storage.put("outputs/b/j/big.png", source, "image/png")
    key = "archives/b/f/Shoot ü.zip"
    upload = storage.start_upload(key, "application/zip", "Shoot ü.zip")
    storage.check_upload(key, upload)
    first, third = blob(MIN, seed=3), blob(100, seed=4)
    storage.upload_part(key, upload, 3, b"stale bytes")
    storage.upload_part(key, upload, 3, third)                                 # sent again: replaced
    storage.copy_part(key, upload, 2, "outputs/b/j/big.png", MIN // 2, 2 * MIN)   # copied inside the store
    storage.upload_part(key, upload, 1, bytearray(first))
    assert storage.head(key) is None                                           # nothing until completed
    storage.complete_upload(key, upload, 3)
    expected = first + source[MIN // 2:MIN // 2 + 2 * MIN] + third
    assert b"".join(storage.read_chunks(key)) == expected
    head = storage.head(key)
    assert head["ContentLength"] == len(expected) and head["ContentType"] == "application/zip"
    assert "filename*=UTF-8''Shoot%20%C3%BC.zip" in head["ContentDisposition"]


def test_a_completed_or_aborted_upload_is_gone_for_every_worker(storage):
    key = "archives/b/f/x.zip"
    done = storage.start_upload(key, "application/zip")
    storage.upload_part(key, done, 1, blob(10))
    storage.complete_upload(key, done, 1)
    aborted = storage.start_upload(key, "application/zip")
    storage.abort_upload(key, aborted)
    storage.abort_upload(key, aborted)   # gone already is fine
    storage.put("outputs/b/j/p.png", blob(MIN), "image/png")
    for upload in (done, aborted):
        with pytest.raises(UploadGone):
            storage.check_upload(key, upload)
        with pytest.raises(UploadGone):
            storage.upload_part(key, upload, 2, blob(10))
        with pytest.raises(UploadGone):
            storage.copy_part(key, upload, 2, "outputs/b/j/p.png", 0, MIN)
        with pytest.raises(UploadGone):
            storage.complete_upload(key, upload, 1)
    assert b"".join(storage.read_chunks(key)) == blob(10)   # the completed object stays as it was


def test_completing_wants_every_part_and_parts_of_the_minimum_size(storage):
    key = "archives/b/f/x.zip"
    upload = storage.start_upload(key, "application/zip")
    storage.upload_part(key, upload, 1, blob(MIN))
    storage.upload_part(key, upload, 3, blob(10))
    with pytest.raises(RuntimeError, match="missing"):   # part 2 never came
        storage.complete_upload(key, upload, 3)
    storage.upload_part(key, upload, 2, blob(MIN - 1))
    with pytest.raises(Exception):                         # S3's EntityTooSmall: a small part before the last
        storage.complete_upload(key, upload, 3)
    storage.check_upload(key, upload)                      # the upload is still there to fix
    assert storage.head(key) is None
    storage.upload_part(key, upload, 2, blob(MIN))
    storage.complete_upload(key, upload, 3)
    assert storage.head(key)["ContentLength"] == 2 * MIN + 10


def test_part_numbers_are_checked_before_anything_is_sent(storage):
    key = "archives/b/f/x.zip"
    upload = storage.start_upload(key, "application/zip")
    for number in (0, 10_001):
        with pytest.raises(ValueError):
            storage.upload_part(key, upload, number, b"x")
        with pytest.raises(ValueError):
            storage.copy_part(key, upload, number, "outputs/b/j/p.png", 0, 1)


def test_a_copy_from_a_source_that_is_gone_is_a_changed_source(storage):
    key = "archives/b/f/x.zip"
    upload = storage.start_upload(key, "application/zip")
    with pytest.raises(SourceChanged):
        storage.copy_part(key, upload, 1, "outputs/b/j/gone.png", 0, MIN)
    storage.check_upload(key, upload)


def test_every_other_unfinished_upload_of_a_key_is_aborted(storage):
    key = "archives/b/f/x.zip"
    old = [storage.start_upload(key, "application/zip") for _ in range(2)]
    keep = storage.start_upload(key, "application/zip")
    other = storage.start_upload(key + ".more", "application/zip")   # another key sharing the prefix
    assert storage.abort_uploads(key, keep=keep) == 2
    assert storage.abort_uploads(key, keep=keep) == 0
    for upload in old:
        with pytest.raises(UploadGone):
            storage.check_upload(key, upload)
    storage.check_upload(key, keep)
    storage.check_upload(key + ".more", other)
    assert storage.abort_uploads(key) == 1
    with pytest.raises(UploadGone):
        storage.check_upload(key, keep)

