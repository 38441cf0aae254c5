"""The local stack loses nothing on restart: stopped (SIGTERM) or killed (SIGKILL) mid-batch and
started again on the same data directory, it finishes the batch with exact counters, and the
pipeline and the earlier batches are still there."""
from __future__ import annotations

import io
import json
import zipfile

import pytest
import requests

from tests import images
from tests.e2e.conftest import LocalStack, upload, wait_for

pytestmark = pytest.mark.e2e

BUCKET = "imgbatch-local"
FILES = 6


def _photos(prefix: str) -> dict[str, bytes]:
    return {f"{prefix}{n}_view.png": images.png((320 + 16 * n, 240), colour=(40 * n, 90, 200 - 20 * n))
            for n in range(FILES)}


def _batch(http, url, bid) -> dict:
    r = http.get(f"{url}/batches/{bid}")
    assert r.status_code == 200, r.text
    return r.json()["batch"]


def _final(http, url, bid) -> dict:
    return wait_for(lambda: (lambda b: b if b["status"] not in ("queued", "processing") else None)(
        _batch(http, url, bid)), timeout=120, what=f"batch {bid} to finish")


def _create(http, url, pipeline_id, data) -> dict:
    r = http.post(f"{url}/batches", json={"pipeline_ids": [pipeline_id], "files": [
        {"name": n, "size": len(b)} for n, b in data.items()]})
    assert r.status_code == 201, r.text
    return r.json()


def _before_the_restart(stack) -> tuple[dict, dict]:
    """A pipeline and one finished batch: what must still be listed afterwards."""
    http = stack.session()
    r = http.post(f"{stack.url}/pipelines", json={"name": "restart-web", "format": "jpeg", "width": 160})
    assert r.status_code == 201, r.text
    pipeline = r.json()["pipeline"]
    earlier = _create(http, stack.url, pipeline["id"], {"PL_RSE1_front.png": images.png()})
    assert upload(earlier["uploads"][0], images.png()).status_code == 204
    assert _final(http, stack.url, earlier["batch"]["id"])["status"] == "completed"
    return pipeline, earlier["batch"]


def _finish_after_the_restart(stack, pipeline, earlier, created, data) -> None:
    http = stack.session()
    assert [p["id"] for p in http.get(f"{stack.url}/pipelines").json()["pipelines"]] == [pipeline["id"]]
    listed = {b["id"]: b for b in http.get(f"{stack.url}/batches").json()["batches"]}
    bid = created["batch"]["id"]
    assert set(listed) == {earlier["id"], bid}
    assert listed[earlier["id"]]["status"] == "completed"
    assert listed[bid]["status"] in ("queued", "processing") and listed[bid]["total_files"] == FILES
    # The client goes on with the upload URLs it was given before the restart, for every file the
    # stack has not got (after a hard kill, that can include one S3 had accepted: `imgbatch resume`).
    waiting = {j["file_name"] for j in _batch(http, stack.url, bid)["jobs"] if j["status"] == "awaiting_upload"}
    for u in created["uploads"]:
        if u["file_name"] in waiting:
            assert upload(u, data[u["file_name"]]).status_code == 204
    batch = _final(http, stack.url, bid)
    assert batch["status"] == "completed", [(j["file_name"], j["status"], j.get("error")) for j in batch["jobs"]]
    assert batch["progress"] == {"uploaded": FILES, "succeeded": FILES, "failed": 0, "cancelled": 0, "percent": 100}
    assert sorted(j["status"] for j in batch["jobs"]) == ["completed"] * FILES
    r = http.get(f"{stack.url}/batches/{bid}/download", params={"redirect": "false"})
    assert r.status_code == 200, r.text
    archive = zipfile.ZipFile(io.BytesIO(requests.get(r.json()["url"], timeout=60).content))
    base = batch["base_directory_name"]
    assert sorted(archive.namelist()) == sorted(
        [f"{base}/manifest.csv"] + [f"{base}/{name.removesuffix('.png')}.jpg" for name in data])
    for name in data:
        im = images.decode(archive.read(f"{base}/{name.removesuffix('.png')}.jpg"))
        assert im.format == "JPEG" and im.width == 160


def test_a_stack_stopped_mid_batch_finishes_it_after_a_restart(tmp_path):
    data = _photos("PL_RST")
    first = LocalStack(data_dir=tmp_path, WORKERS=1).start()
    try:
        pipeline, earlier = _before_the_restart(first)
        http = first.session()
        created = _create(http, first.url, pipeline["id"], data)
        for u in created["uploads"][:FILES // 2]:
            assert upload(u, data[u["file_name"]]).status_code == 204
    finally:
        assert first.stop() == 0   # SIGTERM: pollers stop, a last snapshot, exit 0
    second = LocalStack(data_dir=tmp_path, port=first.port, moto_port=first.moto_port).start()
    try:
        # the banner says what came back (printed just after /health first answers)
        wait_for(lambda: "(restored " in second.log_path.read_text(), timeout=15, what="the restart banner")
        _finish_after_the_restart(second, pipeline, earlier, created, data)
    finally:
        second.stop()


def _saved(data_dir) -> dict:
    """What the last snapshot holds, from its header line."""
    path = data_dir / "state.bin"
    if not path.exists():
        return {}
    with open(path, "rb") as f:
        return json.loads(f.readline())["contents"]


def test_a_stack_killed_mid_batch_finishes_it_after_a_restart(tmp_path):
    data = _photos("PL_RSK")
    first = LocalStack(data_dir=tmp_path, WORKERS=1, PERSIST_SECONDS=0.5).start()
    try:
        pipeline, earlier = _before_the_restart(first)
        http = first.session()
        created = _create(http, first.url, pipeline["id"], data)
        for u in created["uploads"][:3]:
            assert upload(u, data[u["file_name"]]).status_code == 204
        wait_for(lambda: _batch(http, first.url, created["batch"]["id"])["progress"]["succeeded"] == 3,
                 what="the first three files to be processed")
        # Once the stack is idle, its last snapshot holds every object and no message: all of the
        # above survives the kill. The fourth upload races the kill and may or may not.
        s3 = first.boto("s3")
        stored = s3.list_objects_v2(Bucket=BUCKET)["KeyCount"]
        wait_for(lambda: _saved(tmp_path).get("objects") == stored and _saved(tmp_path).get("messages") == 0,
                 what=f"a snapshot with all {stored} objects and no queued message")
        assert upload(created["uploads"][3], data[created["uploads"][3]["file_name"]]).status_code == 204
    finally:
        first.kill()
    second = LocalStack(data_dir=tmp_path, port=first.port, moto_port=first.moto_port).start()
    try:
        _finish_after_the_restart(second, pipeline, earlier, created, data)
    finally:
        second.stop()
