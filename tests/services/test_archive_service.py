"""ArchiveService on the in-memory adapters: planning from the jobs and the outputs storage
holds, building the ZIP inline or through the builder queue, reuse by content, job downloads."""
from __future__ import annotations

import csv
import io
import zipfile
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib.errors import BadRequest, Conflict, NotFound, NotReady
from tests import images
from tests.services.conftest import flaky_render


def archive(system, result: dict) -> zipfile.ZipFile:
    """The ZIP a ready answer's URL points at."""
    key = urlsplit(result["url"]).path.lstrip("/").replace("%20", " ")
    return zipfile.ZipFile(io.BytesIO(system.storage.data(key)))


def finished(system, data: dict, bad=(), pipelines=None) -> dict:
    created = system.create(data, pipelines=pipelines)
    system.deliver(created, {n: (b[:30] if n in bad else b) for n, b in data.items()})
    return created


def test_an_archive_holds_every_output_and_a_manifest(system):
    data = {"PL_DXB1_Front.png": images.png(), "PL_DXB1_Back.png": images.png((30, 20)),
            "PL_DXB1_Side.png": images.png()}
    created = finished(system, data, bad={"PL_DXB1_Side.png"})
    bid, base = created["batch"]["id"], created["batch"]["base_directory_name"]
    result = system.archives.request("alice", bid, partial=False)
    assert result["status"] == "ready" and result["file_name"] == f"{base}.zip"
    assert parse_qs(urlsplit(result["url"]).query)["file_name"] == [f"{base}.zip"]
    with archive(system, result) as z:
        assert z.testzip() is None
        assert sorted(z.namelist()) == sorted([f"{base}/manifest.csv", f"{base}/PL_DXB1_Front.jpg",
                                               f"{base}/PL_DXB1_Back.jpg"])
        for job in system.batch(bid)["jobs"]:
            if job["status"] == "completed":
                assert z.read(f"{base}/{job['file_name'][:-4]}.jpg") == system.storage.data(job["outputs"][0]["key"])
        rows = {r["file"]: r for r in csv.DictReader(io.StringIO(z.read(f"{base}/manifest.csv").decode("utf-8-sig")))}
    assert set(rows) == set(data) and rows["PL_DXB1_Side.png"]["error"].startswith("size_mismatch")
    assert result["size"] == system.storage.head(next(iter(system.storage.keys("archives/"))))["ContentLength"]


def test_several_pipelines_get_a_folder_each(system):
    web, thumbs = system.pipeline(), system.pipeline(name="Thumbs", format="png", width=8)
    created = finished(system, {"a.png": images.png()}, pipelines=[web, thumbs])
    base = created["batch"]["base_directory_name"]
    with archive(system, system.archives.request("alice", created["batch"]["id"], partial=False)) as z:
        assert sorted(z.namelist()) == [f"{base}/Thumbs/a.png", f"{base}/manifest.csv", f"{base}/web/a.jpg"]


def test_nothing_is_ready_until_a_file_is_finished_and_partial_takes_what_is(system):
    data = {"a.png": images.png(), "b.png": images.png()}
    created = system.create(data)
    bid = created["batch"]["id"]
    with pytest.raises(NotReady, match="partial=true"):
        system.archives.request("alice", bid, partial=False)
    with pytest.raises(NotReady, match="nothing"):
        system.archives.request("alice", bid, partial=True)
    system.deliver(created, {"a.png": data["a.png"]})
    with pytest.raises(NotReady):
        system.archives.request("alice", bid, partial=False)
    result = system.archives.request("alice", bid, partial=True)
    with archive(system, result) as z:
        assert [n.rsplit("/", 1)[-1] for n in z.namelist()] == ["manifest.csv", "a.jpg"]
        assert "awaiting_upload" in z.read(z.namelist()[0]).decode("utf-8-sig")
    with pytest.raises(NotFound):
        system.archives.request("bob", bid, partial=True)


def test_an_unchanged_batch_reuses_its_archive_and_a_change_builds_a_new_one(system, monkeypatch):
    flaky_render(monkeypatch, {1})
    created = finished(system, {"a.png": images.png(), "b.png": images.png()})
    bid = created["batch"]["id"]
    first = system.archives.request("alice", bid, partial=False)
    writes = []
    real_write = system.storage.write_stream
    monkeypatch.setattr(system.storage, "write_stream", lambda key, *a, **k: writes.append(key) or real_write(key, *a, **k))
    assert system.archives.request("alice", bid, partial=False)["url"] == first["url"] and writes == []
    system.processor.retry("alice", bid)
    system.drain()
    third = system.archives.request("alice", bid, partial=False)
    assert urlsplit(third["url"]).path != urlsplit(first["url"]).path and len(writes) == 1
    with archive(system, third) as z:
        assert len([n for n in z.namelist() if n.endswith(".jpg")]) == 2


def test_a_large_archive_is_built_once_by_the_builder_while_the_client_polls(system):
    created = finished(system, {"a.png": images.png()})
    bid = created["batch"]["id"]
    system.with_settings(archive_sync_max_bytes=0)
    first = system.archives.request("alice", bid, partial=False)
    assert first["status"] == "building" and first["retry_after"] >= 2
    assert system.archives.request("alice", bid, partial=False)["status"] == "building"
    assert system.archive_queue.take() == [{"batch_id": bid, "partial": False}]   # one build queued
    key = system.archives.build_requested(bid, False)
    assert system.storage.head(key) is not None
    ready = system.archives.request("alice", bid, partial=False)
    assert ready["status"] == "ready" and archive(system, ready).testzip() is None
    plan_fingerprint = key.split("/")[2]
    assert system.repo.claim_archive_build(bid, plan_fingerprint, "2026-05-04T10:00:00Z", "2026-05-04T09:00:00Z")


def test_the_builder_gives_up_on_a_batch_deleted_before_or_while_it_builds(system, monkeypatch):
    created = finished(system, {"a.png": images.png()})
    bid = created["batch"]["id"]
    real_write = system.storage.write_stream

    def write_then_delete(*args, **kwargs):
        result = real_write(*args, **kwargs)
        system.deleter.delete("alice", bid)   # the delete sweeps archives/ before this one is complete
        return result

    monkeypatch.setattr(system.storage, "write_stream", write_then_delete)
    assert system.archives.build_requested(bid, False) is None
    assert system.storage.keys() == []
    assert system.archives.build_requested(bid, False) is None   # and once it is gone


def test_a_jobs_output_is_handed_out_by_pipeline(system):
    web, thumbs = system.pipeline(), system.pipeline(name="thumbs", format="png", width=8)
    created = finished(system, {"PL_a.png": images.png()}, pipelines=[web, thumbs])
    job_id = created["uploads"][0]["job_id"]
    with pytest.raises(BadRequest, match="choose one with"):
        system.archives.job_output("alice", job_id, None)
    url = system.archives.job_output("alice", job_id, thumbs["id"])
    assert parse_qs(urlsplit(url).query)["file_name"] == ["PL_a.png"]
    with pytest.raises(BadRequest, match="no output for pipeline"):
        system.archives.job_output("alice", job_id, "other")
    with pytest.raises(NotFound):
        system.archives.job_output("bob", job_id, web["id"])
    waiting = system.create({"b.png": images.png()})
    with pytest.raises(Conflict, match="awaiting_upload"):
        system.archives.job_output("alice", waiting["uploads"][0]["job_id"], None)


def test_an_archive_over_s3s_largest_object_is_refused_by_name_and_never_built(system, monkeypatch):
    import chalicelib.services.archives as archives
    from chalicelib.errors import TooLarge
    created = finished(system, {"a.png": images.png(), "b.png": images.png()})
    bid = created["batch"]["id"]
    monkeypatch.setattr(archives, "MAX_ARCHIVE_BYTES", 100)   # the outputs are a few hundred bytes
    with pytest.raises(TooLarge) as refused:
        system.archives.request("alice", bid, partial=False)
    assert "over S3's limit of 100 bytes for one object" in str(refused.value)
    assert "GET /jobs/{job_id}/download" in str(refused.value)
    assert system.archives.build_requested(bid, partial=False, prebuild=True) is None
    assert list(system.storage.keys("archives/")) == []
