"""BatchService on the in-memory adapters: create (names, counters, presigned uploads), upload
pages, read, list with signed cursors, stats, jobs across batches."""
from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from chalicelib.domain.batches import Limits
from chalicelib.errors import BadRequest, NotFound, TooLarge
from chalicelib.services import batches as batches_module
from chalicelib.services.clock import iso
from tests import images
from tests.services.conftest import START

TODAY = START.strftime("%Y-%m-%d")
FRONT_BACK_SIDE = ("PL_DXB191_Front.png", "PL_DXB191_Back.png", "PL_DXB191_Side.png")


def named(*names, size=1000) -> dict[str, bytes]:
    return {n: b"x" * size for n in names}


def test_a_batch_is_named_counted_and_handed_its_uploads(system):
    created = system.create(named(*FRONT_BACK_SIDE))
    b = created["batch"]
    assert (b["customer_prefix"], b["batch_date"], b["batch_counter"]) == ("PL_DXB", TODAY, 1)
    assert b["base_directory_name"] == f"PL_DXB_{TODAY}_batch-1" and b["description"] == "3-view Render"
    assert (b["status"], b["owner"], b["total_files"], b["total_size"], b["total_pipelines"]) == (
        "queued", "alice", 3, 3000, 1)
    assert b["progress"] == {"uploaded": 0, "succeeded": 0, "failed": 0, "cancelled": 0, "percent": 0}
    assert b["created_at"] == iso(START) and b["upload_expires_at"] == iso(START + timedelta(hours=1))
    assert b["sample_file_names"] == list(FRONT_BACK_SIDE) and b["pipelines"][0]["name"] == "web"
    assert [u["file_name"] for u in created["uploads"]] == list(FRONT_BACK_SIDE)
    assert created["uploads_next_cursor"] is None
    upload = created["uploads"][0]
    assert upload["fields"]["key"] == f"uploads/{b['id']}/{upload['job_id']}/PL_DXB191_Front.png"
    policy = json.loads(base64.b64decode(upload["fields"]["policy"]))
    assert ["content-length-range", 1000, 1000] in policy["conditions"]
    assert system.batch(b["id"]) == {**b, "jobs": system.batch(b["id"])["jobs"], "jobs_next_cursor": None}
    assert system.create(named(*FRONT_BACK_SIDE))["batch"]["base_directory_name"] == f"PL_DXB_{TODAY}_batch-2"
    other = system.create(named("AB_CD1.png"))["batch"]
    assert other["base_directory_name"] == f"AB_CD_{TODAY}_batch-1" and other["description"] == "1 file"
    assert system.create(named("PL_DXB1_a.png"), owner="bob")["batch"]["batch_counter"] == 1


def test_an_explicit_prefix_and_description_win(system):
    b = system.create(named("PL_DXB1.png"), customer_prefix="Acme", description="Spring lookbook")["batch"]
    assert (b["customer_prefix"], b["description"]) == ("Acme", "Spring lookbook")
    assert b["base_directory_name"] == f"Acme_{TODAY}_batch-1"
    assert system.create(named("photo.jpg"))["batch"]["customer_prefix"] == "MISC"


def test_bad_requests_write_nothing(system):
    with pytest.raises(BadRequest, match="unknown pipeline"):
        system.batches.create("alice", {"pipeline_ids": ["not-a-uuid"], "files": [
            {"name": "a.png", "size": 1, "content_type": "image/png"}]})
    web = system.pipeline()
    with pytest.raises(BadRequest, match="unknown pipeline"):   # bob cannot use alice's pipeline
        system.batches.create("bob", {"pipeline_id": web["id"], "files": [
            {"name": "a.png", "size": 1, "content_type": "image/png"}]})
    with pytest.raises(BadRequest, match=r"files\[1\]: duplicate file name"):
        system.create({"a.png": b"x", "A.PNG": b"y"})
    system.with_settings(limits=Limits(max_files=2))
    with pytest.raises(TooLarge, match="at most 2 files"):
        system.create(named("a.png", "b.png", "c.png"))
    assert system.stats()["total_batches"] == 0


def test_large_batches_hand_out_uploads_in_pages_and_resume_hands_out_only_the_missing(system, monkeypatch):
    monkeypatch.setattr(batches_module, "UPLOADS_PER_RESPONSE", 2)
    names = [f"PL_DXB{i}_x.png" for i in range(5)]
    created = system.create({n: images.png() for n in names})
    bid = created["batch"]["id"]
    assert len(created["uploads"]) == 2 and created["uploads_next_cursor"]
    seen, cursor = [u["file_name"] for u in created["uploads"]], created["uploads_next_cursor"]
    while cursor:
        page = system.batches.uploads("alice", bid, {"cursor": cursor})
        seen += [u["file_name"] for u in page["uploads"]]
        cursor = page["next_cursor"]
    assert seen == names
    system.deliver(created, {names[0]: images.png(), names[3]: images.png()})
    first = system.batches.uploads("alice", bid, {})
    assert [u["file_name"] for u in first["uploads"]] == [names[1]]   # a page of two jobs, one still missing
    rest = system.batches.uploads("alice", bid, {"cursor": first["next_cursor"]})
    assert [u["file_name"] for u in rest["uploads"]] == [names[2]]
    with pytest.raises(BadRequest, match="cursor is not valid"):   # a cursor belongs to its batch
        other = system.create(named("a.png"))
        system.batches.uploads("alice", other["batch"]["id"], {"cursor": first["next_cursor"]})
    system.clock.advance(hours=2)
    assert system.batches.uploads("alice", bid, {})["uploads"] == []   # past the deadline: nothing to sign


def test_a_batch_reads_with_its_jobs_in_file_order_page_by_page(system):
    names = [f"PL_DXB1_{i:02d}.png" for i in range(7)]
    bid = system.create(named(*names))["batch"]["id"]
    seen, cursor = [], None
    while True:
        got = system.batches.get("alice", bid, {"jobs_limit": "3", **({"jobs_cursor": cursor} if cursor else {})})
        seen += [j["file_name"] for j in got["batch"]["jobs"]]
        assert all(j["status"] == "awaiting_upload" and j["error"] is None for j in got["batch"]["jobs"])
        cursor = got["batch"]["jobs_next_cursor"]
        if not cursor:
            break
    assert seen == names
    with pytest.raises(BadRequest):
        system.batches.get("alice", bid, {"jobs_cursor": "garbage"})
    with pytest.raises(BadRequest):
        system.batches.get("alice", bid, {"jobs_limit": "0"})
    for who, which in (("bob", bid), ("alice", "not-a-uuid"), ("alice", "6f1c7a0e-6f3e-4d5e-9a51-0d2f4a3b2c1d")):
        with pytest.raises(NotFound):
            system.batches.get(who, which, {})


def test_lists_filter_sort_search_and_page_with_signed_cursors(system):
    a = system.create(named("AA_XX1_a.png"), description="Summer shoot")["batch"]
    system.clock.advance(seconds=1)
    b = system.create(named("BB_YY1_a.png", "BB_YY1_b.png", "BB_YY1_c.png"))["batch"]
    system.clock.advance(seconds=1)
    c = system.create(named("AA_XX2_a.png", "AA_XX2_b.png"))["batch"]

    def ids(**params):
        return [x["id"] for x in system.batches.list("alice", params)["batches"]]

    assert ids() == [c["id"], b["id"], a["id"]]
    assert ids(sort_order="asc") == [a["id"], b["id"], c["id"]]
    assert ids(sort_by="total_files") == [b["id"], c["id"], a["id"]]
    assert ids(sort_by="total_files", sort_order="asc") == [a["id"], c["id"], b["id"]]
    assert ids(customer_prefix="aa_xx") == [c["id"], a["id"]]
    assert ids(status="queued", customer_prefix="BB_YY") == [b["id"]]
    assert ids(status="completed") == []
    assert ids(search="SUMMER") == [a["id"]] and ids(search="bb_yy") == [b["id"]]
    first = system.batches.list("alice", {"limit": "2"})
    assert [x["id"] for x in first["batches"]] == [c["id"], b["id"]] and first["next_cursor"]
    assert ids(limit="2", cursor=first["next_cursor"]) == [a["id"]]
    with pytest.raises(BadRequest, match="cursor is not valid"):   # a cursor belongs to its query
        ids(limit="2", sort_by="total_files", cursor=first["next_cursor"])
    with pytest.raises(BadRequest, match="cursor is not valid"):   # and to its owner
        system.batches.list("bob", {"limit": "2", "cursor": first["next_cursor"]})
    assert system.batches.list("bob", {})["batches"] == []
    for params, fragment in (({"status": "done"}, "status must be one of"), ({"limit": "201"}, "between 1 and 200"),
                             ({"search": "x" * 101}, "at most 100"), ({"customer_prefix": "x" * 65}, "at most 64")):
        with pytest.raises(BadRequest, match=fragment):
            system.batches.list("alice", params)


def test_stats_come_from_the_maintained_figures_and_follow_a_delete(system):
    system.create(named("a.png"))
    second = system.create(named("b.png", "c.png", "d.png"))
    assert system.stats() == {"total_batches": 2, "queued": 2, "processing": 0, "completed": 0,
                              "completed_with_errors": 0, "failed": 0, "cancelled": 0, "total_files_all_time": 4,
                              "avg_files_per_batch": 2.0, "max_files_in_batch": 3}
    system.deleter.delete("alice", second["batch"]["id"])
    stats = system.stats()
    assert (stats["total_batches"], stats["queued"], stats["total_files_all_time"], stats["avg_files_per_batch"],
            stats["max_files_in_batch"]) == (1, 1, 1, 1.0, 1)
    assert system.stats("bob")["total_batches"] == 0 and system.stats("bob")["avg_files_per_batch"] == 0


def test_jobs_across_batches_and_one_job_with_its_batch(system):
    created = system.create(named("a.png", "b.png"))
    bid = created["batch"]["id"]
    assert system.batches.jobs("alice", {"grouped": "true"}) == system.batches.list("alice", {})
    flat = system.batches.jobs("alice", {"status": "awaiting_upload"})
    assert sorted(j["file_name"] for j in flat["jobs"]) == ["a.png", "b.png"]
    assert all(j["batch_id"] == bid for j in flat["jobs"]) and flat["next_cursor"] is None
    assert system.batches.jobs("alice", {"status": "failed"})["jobs"] == []
    assert system.batches.jobs("bob", {"status": "awaiting_upload"})["jobs"] == []
    for params in ({}, {"status": "weird"}, {"grouped": "maybe"}):
        with pytest.raises(BadRequest):
            system.batches.jobs("alice", params)
    job_id = created["uploads"][0]["job_id"]
    job = system.batches.get_job("alice", job_id)["job"]
    assert (job["id"], job["batch_id"], job["base_directory_name"]) == (
        job_id, bid, created["batch"]["base_directory_name"])
    for who, which in (("bob", job_id), ("alice", "not-a-uuid")):
        with pytest.raises(NotFound):
            system.batches.get_job(who, which)


def test_jobs_by_status_page_most_recent_first(system):
    data = {f"f{i}.png": images.png() for i in range(5)}
    created = system.create(data)
    for name in data:   # one a minute
        system.clock.advance(minutes=1)
        system.deliver(created, {name: data[name]})
    pages, cursor = [], None
    while True:
        got = system.batches.jobs("alice", {"status": "completed", "limit": "2", **({"cursor": cursor} if cursor else {})})
        pages.append([j["file_name"] for j in got["jobs"]])
        cursor = got["next_cursor"]
        if not cursor:
            break
    assert pages == [["f4.png", "f3.png"], ["f2.png", "f1.png"], ["f0.png"]]
