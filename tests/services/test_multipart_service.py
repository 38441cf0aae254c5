"""Uploads in parts (services/multipart.py) on the in-memory adapters: start, resume from what the
store lists, parts of the wrong size and missing parts, completion and its arrival like any upload,
abort, and the cancel, delete and expiry paths that abort what was left unfinished."""
from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.errors import BadRequest, Conflict, NotFound
from tests import images
from tests.large_files import layered_tiff

MIB = 1024 * 1024


@pytest.fixture
def big(tmp_path) -> bytes:
    """An 11 MiB TIFF (a small image with 11 MiB of layer data): 3 parts of 5, 5 and 1 MiB."""
    return layered_tiff(Path(tmp_path) / "big.tif", 11 * MIB - 10_000).read_bytes()


@pytest.fixture
def mp(system):
    system.with_settings(multipart_threshold=6 * MIB, multipart_part_size=5 * MIB)
    return system


def create(system, files: dict[str, bytes]):
    created = system.create(files)
    return created, {u["file_name"]: u for u in created["uploads"]}


def send(system, start: dict, data: bytes, numbers=None, size_of=None) -> list[int]:
    """PUT the parts `start` hands out (those numbered in `numbers`, or all), as a client does."""
    sent = []
    for part in start["upload"]["parts"]:
        n = part["part_number"]
        if numbers is not None and n not in numbers:
            continue
        begin = (n - 1) * start["upload"]["part_size"]
        body = data[begin:begin + (size_of(n) if size_of else part["size"])]
        system.storage.put_part(part["url"], body)
        sent.append(n)
    return sent


def test_files_above_the_threshold_are_uploaded_in_parts(mp, big):
    created, uploads = create(mp, {"big.tif": big, "small.png": images.png()})
    u = uploads["big.tif"]
    assert u["method"] == "MULTIPART" and u["url"] is None and u["fields"] == {}
    assert (u["size"], u["part_size"], u["parts_total"]) == (len(big), 5 * MIB, 3)
    assert uploads["small.png"]["method"] == "POST" and uploads["small.png"]["url"]
    again = {x["file_name"]: x for x in mp.batches.uploads("alice", created["batch"]["id"], {})["uploads"]}
    assert again["big.tif"]["method"] == "MULTIPART"


def test_a_file_resumes_with_only_its_missing_parts_then_arrives_and_is_processed(mp, big):
    created, uploads = create(mp, {"big.tif": big})
    bid, jid = created["batch"]["id"], uploads["big.tif"]["job_id"]
    first = mp.multipart.start("alice", bid, jid, {})
    up = first["upload"]
    assert up["parts_uploaded"] == [] and [p["part_number"] for p in up["parts"]] == [1, 2, 3]
    assert [p["size"] for p in up["parts"]] == [5 * MIB, 5 * MIB, len(big) - 10 * MIB]
    assert send(mp, first, big, numbers={1, 3}) == [1, 3]            # the client dies after two parts
    resumed = mp.multipart.start("alice", bid, jid, {})["upload"]
    assert resumed["upload_id"] == up["upload_id"]
    assert resumed["parts_uploaded"] == [1, 3] and resumed["bytes_uploaded"] == 5 * MIB + len(big) - 10 * MIB
    assert [p["part_number"] for p in resumed["parts"]] == [2]
    assert send(mp, {"upload": resumed}, big) == [2]
    done = mp.multipart.complete("alice", bid, jid)
    assert done["job"]["status"] == "awaiting_upload"   # until S3's announcement arrives
    key = mp.key(created, "big.tif")
    assert mp.storage.data(key) == big and mp.storage.multipart_uploads("uploads/") == []
    assert mp.arrive(key) == ["registered"] and mp.drain() == ["completed"]
    job = mp.jobs(bid)["big.tif"]
    assert job["status"] == "completed" and job["outputs"][0]["width"] == 40
    # asked again (a client that lost the answer): the same answer, nothing changes
    assert mp.multipart.complete("alice", bid, jid)["job"]["status"] == "completed"


def test_part_urls_come_in_pages(mp, tmp_path):
    data = layered_tiff(Path(tmp_path) / "b.tif", 26 * MIB).read_bytes()   # 6 parts
    created, uploads = create(mp, {"b.tif": data})
    bid, jid = created["batch"]["id"], uploads["b.tif"]["job_id"]
    page = mp.multipart.start("alice", bid, jid, {"limit": "4"})["upload"]
    assert [p["part_number"] for p in page["parts"]] == [1, 2, 3, 4] and page["next_after"] == 4
    rest = mp.multipart.start("alice", bid, jid, {"limit": "4", "after": "4"})["upload"]
    assert [p["part_number"] for p in rest["parts"]] == [5, 6] and rest["next_after"] is None
    for bad in ({"after": "-1"}, {"after": "x"}, {"limit": "0"}, {"limit": "1001"}):
        with pytest.raises(BadRequest):
            mp.multipart.start("alice", bid, jid, bad)


def test_a_part_of_the_wrong_size_and_a_missing_part_are_named(mp, big):
    created, uploads = create(mp, {"big.tif": big})
    bid, jid = created["batch"]["id"], uploads["big.tif"]["job_id"]
    start = mp.multipart.start("alice", bid, jid, {})
    send(mp, start, big, numbers={1, 2}, size_of=lambda n: 1000 if n == 2 else 5 * MIB)
    with pytest.raises(BadRequest) as refused:
        mp.multipart.complete("alice", bid, jid)
    message = refused.value.message
    assert "big.tif" in message and "part 2 is 1000 bytes, expected 5242880" in message
    assert "part 3 is missing" in message and "Upload parts 2, 3" in message
    again = mp.multipart.start("alice", bid, jid, {})["upload"]
    assert again["parts_uploaded"] == [1]
    assert again["parts_wrong"] == [{"part_number": 2, "size": 1000, "expected": 5 * MIB}]
    assert [p["part_number"] for p in again["parts"]] == [2, 3]      # the wrong part is offered again
    send(mp, {"upload": again}, big)
    mp.multipart.complete("alice", bid, jid)
    assert mp.storage.data(mp.key(created, "big.tif")) == big


def test_abort_drops_the_parts_and_a_new_start_begins_again(mp, big):
    created, uploads = create(mp, {"big.tif": big})
    bid, jid = created["batch"]["id"], uploads["big.tif"]["job_id"]
    first = mp.multipart.start("alice", bid, jid, {})
    send(mp, first, big, numbers={1})
    mp.multipart.abort("alice", bid, jid)
    assert mp.storage.multipart_uploads("uploads/") == []
    with pytest.raises(Conflict, match="no upload in parts is in progress"):
        mp.multipart.complete("alice", bid, jid)
    fresh = mp.multipart.start("alice", bid, jid, {})["upload"]
    assert fresh["upload_id"] != first["upload"]["upload_id"] and fresh["parts_uploaded"] == []


def test_two_clients_starting_at_once_converge_on_the_oldest_upload(mp, big):
    created, uploads = create(mp, {"big.tif": big})
    bid, jid = created["batch"]["id"], uploads["big.tif"]["job_id"]
    key = mp.key(created, "big.tif")
    older = mp.storage.start_multipart(key, "image/tiff")
    mp.storage.start_multipart(key, "image/tiff")   # another client's, a moment later
    assert mp.multipart.start("alice", bid, jid, {})["upload"]["upload_id"] == older
    assert [u["upload_id"] for u in mp.storage.multipart_uploads(key)] == [older]


def test_what_cannot_be_uploaded_in_parts_is_refused_clearly(mp, big):
    created, uploads = create(mp, {"big.tif": big, "small.png": images.png()})
    bid = created["batch"]["id"]
    with pytest.raises(BadRequest, match="small.png is .* not above the multipart threshold"):
        mp.multipart.start("alice", bid, uploads["small.png"]["job_id"], {})
    with pytest.raises(NotFound):
        mp.multipart.start("bob", bid, uploads["big.tif"]["job_id"], {})
    with pytest.raises(NotFound):
        mp.multipart.start("alice", bid, "not-a-job", {})
    mp.clock.advance(seconds=mp.container.settings.upload_ttl_seconds + 1)
    with pytest.raises(Conflict, match="upload window .* closed"):
        mp.multipart.start("alice", bid, uploads["big.tif"]["job_id"], {})


def test_a_file_already_uploaded_is_not_uploaded_again(mp, big):
    created, uploads = create(mp, {"big.tif": big})
    bid, jid = created["batch"]["id"], uploads["big.tif"]["job_id"]
    send(mp, mp.multipart.start("alice", bid, jid, {}), big)
    mp.multipart.complete("alice", bid, jid)
    mp.arrive(mp.key(created, "big.tif"))
    with pytest.raises(Conflict, match="not awaiting upload"):
        mp.multipart.start("alice", bid, jid, {})


def test_cancel_aborts_uploads_in_parts_and_refuses_more(mp, big):
    created, uploads = create(mp, {"big.tif": big, "small.png": images.png()})
    bid, jid = created["batch"]["id"], uploads["big.tif"]["job_id"]
    send(mp, mp.multipart.start("alice", bid, jid, {}), big, numbers={1})
    mp.processor.cancel("alice", bid)
    assert mp.storage.multipart_uploads("uploads/") == []
    with pytest.raises(Conflict, match="cancelled"):
        mp.multipart.start("alice", bid, jid, {})


def test_delete_aborts_uploads_in_parts(mp, big):
    created, uploads = create(mp, {"big.tif": big})
    bid, jid = created["batch"]["id"], uploads["big.tif"]["job_id"]
    send(mp, mp.multipart.start("alice", bid, jid, {}), big, numbers={1, 2})
    other, other_uploads = create(mp, {"big.tif": big})   # another batch's upload stays
    mp.multipart.start("alice", other["batch"]["id"], other_uploads["big.tif"]["job_id"], {})
    mp.deleter.delete("alice", bid)
    assert [u["key"] for u in mp.storage.multipart_uploads("uploads/")] == [mp.key(other, "big.tif")]


def test_expiry_fails_an_unfinished_upload_in_parts_and_aborts_it(mp, big):
    created, uploads = create(mp, {"big.tif": big, "small.png": images.png()})
    bid, jid = created["batch"]["id"], uploads["big.tif"]["job_id"]
    send(mp, mp.multipart.start("alice", bid, jid, {}), big, numbers={1, 2})
    mp.deliver(created, {"small.png": images.png()})
    mp.clock.advance(seconds=mp.container.settings.upload_ttl_seconds + 60)
    assert mp.sweep.run()["expired"] == 1
    assert mp.storage.multipart_uploads("uploads/") == []
    b = mp.batch(bid)
    assert b["status"] == "completed_with_errors" and mp.jobs(bid)["big.tif"]["error"]["code"] == "upload_expired"


def test_expiry_registers_an_upload_completed_just_before_the_deadline(mp, big):
    created, uploads = create(mp, {"big.tif": big})
    bid, jid = created["batch"]["id"], uploads["big.tif"]["job_id"]
    send(mp, mp.multipart.start("alice", bid, jid, {}), big)
    mp.clock.advance(seconds=mp.container.settings.upload_ttl_seconds - 1)
    mp.multipart.complete("alice", bid, jid)   # S3's announcement is late: the sweep finds the object
    mp.clock.advance(seconds=120)
    assert mp.sweep.run()["expired"] == 0
    assert mp.drain() == ["completed"]
    assert mp.batch(bid)["status"] == "completed"
