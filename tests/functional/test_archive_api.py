"""GET /batches/{id}/download and GET /jobs/{id}/download under mock_aws."""
from __future__ import annotations

import csv
import io
import shutil
import subprocess
import zipfile
from dataclasses import replace
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from tests import images
from tests.functional.test_processing import Flow


@pytest.fixture
def flow(api, aws):
    web = api.post("/pipelines", {"name": "web", "format": "jpeg", "width": 40}).data["pipeline"]
    return Flow(api, aws, [web])


def finished_batch(flow, data, bad=()):
    created = flow.create(data)
    flow.upload(created, {n: (b[:30] if n in bad else b) for n, b in data.items()})
    return created


def fetch(url: str) -> requests.Response:
    r = requests.get(url)
    assert r.status_code == 200, r.text[:300]
    return r


def test_archive_layout_manifest_and_bytes(flow, api, aws, tmp_path):
    data = {"PL_DXB1_Front.png": images.png(), "PL_DXB1_Back.png": images.png((30, 20)),
            "PL_DXB1_Side.png": images.png()}
    created = finished_batch(flow, data, bad={"PL_DXB1_Side.png"})
    bid, base = created["batch"]["id"], created["batch"]["base_directory_name"]
    r = api.get(f"/batches/{bid}/download")
    assert r.status_code == 302
    url = r.headers["location"]
    assert "response-content-disposition" in url.lower()
    disposition = parse_qs(urlparse(url).query)["response-content-disposition"][0]
    assert f'filename="{base}.zip"' in disposition
    body = fetch(url).content
    path = tmp_path / f"{base}.zip"
    path.write_bytes(body)
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        names = sorted(z.namelist())
        assert names == sorted([f"{base}/manifest.csv", f"{base}/PL_DXB1_Front.jpg", f"{base}/PL_DXB1_Back.jpg"])
        batch = flow.batch(bid)
        for job in batch["jobs"]:
            if job["status"] == "completed":
                stored = aws.s3.get_object(Bucket=aws.settings.bucket, Key=job["outputs"][0]["key"])["Body"].read()
                assert z.read(f"{base}/{job['file_name'][:-4]}.jpg") == stored
        rows = list(csv.DictReader(io.StringIO(z.read(f"{base}/manifest.csv").decode("utf-8-sig"))))
    by_file = {row["file"]: row for row in rows}
    assert set(by_file) == set(data)
    assert by_file["PL_DXB1_Side.png"]["status"] == "failed"
    assert by_file["PL_DXB1_Side.png"]["error"].startswith("size_mismatch")
    assert by_file["PL_DXB1_Back.png"]["dimensions"] == "40x27" or by_file["PL_DXB1_Back.png"]["dimensions"]
    assert by_file["PL_DXB1_Front.png"]["output name"] == "PL_DXB1_Front.jpg"
    for tool in (["unzip", "-t", str(path)], ["bsdtar", "-tf", str(path)]):
        if shutil.which(tool[0]) is None:
            pytest.fail(f"{tool[0]} is not installed (CI installs unzip and libarchive-tools)")
        assert subprocess.run(tool, capture_output=True).returncode == 0, tool


def test_several_pipelines_get_folders(flow, api):
    flow.pipelines.append(api.post("/pipelines", {"name": "Thumbs", "format": "png", "width": 8}).data["pipeline"])
    created = finished_batch(flow, {"a.png": images.png()})
    base = created["batch"]["base_directory_name"]
    url = api.get(f"/batches/{created['batch']['id']}/download?redirect=false").data["url"]
    with zipfile.ZipFile(io.BytesIO(fetch(url).content)) as z:
        assert sorted(z.namelist()) == [f"{base}/Thumbs/a.png", f"{base}/manifest.csv", f"{base}/web/a.jpg"]


def test_409_until_something_is_finished_and_partial(flow, api):
    data = {"a.png": images.png(), "b.png": images.png()}
    created = flow.create(data)
    bid = created["batch"]["id"]
    r = api.get(f"/batches/{bid}/download")
    assert r.status_code == 409 and "partial=true" in r.data["Message"]
    r = api.get(f"/batches/{bid}/download?partial=true")
    assert r.status_code == 409 and "nothing" in r.data["Message"]
    flow.upload(created, {"a.png": data["a.png"]})
    assert api.get(f"/batches/{bid}/download").status_code == 409
    r = api.get(f"/batches/{bid}/download?partial=true&redirect=false")
    assert r.status_code == 200 and r.data["status"] == "ready"
    with zipfile.ZipFile(io.BytesIO(fetch(r.data["url"]).content)) as z:
        assert [n.rsplit("/", 1)[-1] for n in z.namelist()] == ["manifest.csv", "a.jpg"]
        manifest = z.read(z.namelist()[0]).decode("utf-8-sig")
        assert "awaiting_upload" in manifest
    assert api.get(f"/batches/{bid}/download?partial=maybe").status_code == 400


def test_unchanged_batch_reuses_its_archive_and_a_change_builds_a_new_one(flow, api, aws, monkeypatch):
    from chalicelib.domain import imaging
    real = imaging.render
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:
            raise imaging.ImageError("corrupt_image", "injected")
        return real(*a, **k)

    monkeypatch.setattr(imaging, "render", flaky)
    created = finished_batch(flow, {"a.png": images.png(), "b.png": images.png()})
    bid = created["batch"]["id"]
    first = api.get(f"/batches/{bid}/download?redirect=false").data
    uploads = []
    real_upload = aws.s3.create_multipart_upload
    monkeypatch.setattr(aws.s3, "put_object", _spy(aws.s3.put_object, uploads))
    monkeypatch.setattr(aws.s3, "create_multipart_upload", _spy(real_upload, uploads))
    second = api.get(f"/batches/{bid}/download?redirect=false").data
    assert urlparse(first["url"]).path == urlparse(second["url"]).path and uploads == []
    assert api.post(f"/batches/{bid}/retry").status_code == 200
    flow.drain_queue()
    third = api.get(f"/batches/{bid}/download?redirect=false").data
    assert urlparse(third["url"]).path != urlparse(first["url"]).path
    with zipfile.ZipFile(io.BytesIO(fetch(third["url"]).content)) as z:
        assert len([n for n in z.namelist() if n.endswith(".jpg")]) == 2


def _spy(fn, calls):
    def wrapper(*a, **k):
        calls.append(k.get("Key"))
        return fn(*a, **k)
    return wrapper


def test_large_archives_are_built_by_the_builder_while_the_client_polls(flow, api, aws, monkeypatch):
    monkeypatch.setattr(aws.archives, "settings", replace(aws.settings, archive_sync_max_bytes=0))
    created = finished_batch(flow, {"a.png": images.png()})
    bid = created["batch"]["id"]
    r = api.get(f"/batches/{bid}/download")
    assert r.status_code == 202 and int(r.headers["retry-after"]) >= 2
    assert r.data["status"] == "building"
    # polling again while building does not queue a second build
    assert api.get(f"/batches/{bid}/download").status_code == 202
    sqs, url = aws.sqs, aws.settings.queue_url("archives")
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
    event = api.client.events.generate_sqs_event(message_bodies=[messages[0]["Body"]], queue_name="imgbatch-archives")
    api.client.lambda_.invoke("build_archive", event)
    r = api.get(f"/batches/{bid}/download")
    assert r.status_code == 302
    assert zipfile.ZipFile(io.BytesIO(fetch(r.headers["location"]).content)).testzip() is None


def test_delete_removes_everything_and_old_urls_stop_working(flow, api, aws):
    created = finished_batch(flow, {"a.png": images.png()})
    bid = created["batch"]["id"]
    url = api.get(f"/batches/{bid}/download?redirect=false").data["url"]
    job_url = api.get(f"/jobs/{created['uploads'][0]['job_id']}/download?redirect=false").data["url"]
    fetch(url), fetch(job_url)
    assert api.delete(f"/batches/{bid}").status_code == 204
    assert aws.s3.list_objects_v2(Bucket=aws.settings.bucket).get("KeyCount", 0) == 0
    # S3 answers 403 or 404 for a missing key, depending on the caller's list permission
    assert requests.get(url).status_code in (403, 404)
    assert requests.get(job_url).status_code in (403, 404)
    assert api.get(f"/batches/{bid}/download").status_code == 404


def test_job_download(flow, api):
    data = {"a.png": images.png(), "b.png": images.png()}
    created = flow.create(data)
    job_a = next(u["job_id"] for u in created["uploads"] if u["file_name"] == "a.png")
    assert api.get(f"/jobs/{job_a}/download").status_code == 409
    flow.upload(created, {"a.png": data["a.png"]})
    r = api.get(f"/jobs/{job_a}/download")
    assert r.status_code == 302
    body = fetch(r.headers["location"]).content
    assert images.decode(body).format == "JPEG"
    assert 'filename="a.jpg"' in parse_qs(urlparse(r.headers["location"]).query)["response-content-disposition"][0]
    assert api.get(f"/jobs/{job_a}/download", token="token-bob").status_code == 404


def test_job_download_with_several_pipelines_needs_a_pipeline_id(flow, api):
    flow.pipelines.append(api.post("/pipelines", {"name": "t", "format": "png", "width": 8}).data["pipeline"])
    created = finished_batch(flow, {"a.png": images.png()})
    job = created["uploads"][0]["job_id"]
    r = api.get(f"/jobs/{job}/download")
    assert r.status_code == 400 and "pipeline_id" in r.data["Message"]
    r = api.get(f"/jobs/{job}/download?pipeline_id={flow.pipelines[1]['id']}")
    assert r.status_code == 302 and images.decode(fetch(r.headers["location"]).content).format == "PNG"
    assert api.get(f"/jobs/{job}/download?pipeline_id=nope").status_code == 400
