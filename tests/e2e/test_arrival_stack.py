"""Issue 16's "Must show", on the local stack: a 300 MiB file uploaded in parts by the CLI, the
CLI killed after some parts, `imgbatch resume` sending only the missing ones, the file processed;
a drop folder written with boto3 (as `aws s3 cp` would) becoming a batch, a non-image failing on
its own; markers in other owners' prefixes; and the web UI continuing an upload after a reload.

One stack for the module, in memory only (DATA_DIR empty: snapshots of 600 MB of parts would only
cost time here; persistence has its own tests), with 5 MiB parts above 8 MiB so the browser's file
stays small while the CLI's 300 MiB file has 60 parts to be killed among."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.e2e.conftest import OTHER_TOKEN, TOKEN, LocalStack, wait_for
from tests.large_files import rgba16_tiff

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024
FINAL = ("completed", "completed_with_errors", "failed", "cancelled")


@pytest.fixture(scope="module")
def stack():
    s = LocalStack(DATA_DIR="", MULTIPART_THRESHOLD=8 * MIB, MULTIPART_PART_SIZE=5 * MIB, WORKERS=2).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def http(stack):
    return stack.session()


@pytest.fixture(scope="module")
def pipeline(stack, http):
    r = http.post(f"{stack.url}/pipelines", json={"name": "arrive", "format": "jpeg", "width": 800})
    assert r.status_code == 201, r.text
    return r.json()["pipeline"]


def cli(stack, *args) -> list[str]:
    env = {**os.environ, "IMGBATCH_API_URL": stack.url, "IMGBATCH_TOKEN": TOKEN, "IMGBATCH_CONFIG": "/nonexistent"}
    return [sys.executable, "-m", "imgbatch", *args], env


def parts_held(s3, bucket: str) -> tuple[str, list[int]]:
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    if not uploads:
        return "", []
    up = uploads[0]
    parts = s3.list_parts(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"], MaxParts=1000).get("Parts", [])
    return up["Key"], sorted(p["PartNumber"] for p in parts)


def final_batch(stack, http, batch_id: str, timeout: float = 240) -> dict:
    return wait_for(lambda: (b := http.get(f"{stack.url}/batches/{batch_id}").json()["batch"])["status"] in FINAL
                    and b, timeout=timeout, what=f"batch {batch_id} to finish")


def test_a_300_mib_file_resumes_after_the_cli_is_killed_and_only_missing_parts_are_sent(stack, http, pipeline,
                                                                                         tmp_path):
    path = rgba16_tiff(tmp_path / "PL_BIG1_Front.tif", 6144, 6400)
    size = path.stat().st_size
    assert size // MIB == 300
    s3, bucket = stack.boto("s3"), "imgbatch-local"
    args, env = cli(stack, "--json", "submit", str(path), "-p", "arrive", "--concurrency", "1")
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: len(parts_held(s3, bucket)[1]) >= 5 or proc.poll() is not None, timeout=120,
                 interval=0.05, what="the first parts to land")
        proc.send_signal(signal.SIGKILL)   # the client dies mid-upload
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, "the CLI finished before it could be killed"
    # a part whose bytes were all sent before the kill may still be landing: wait until S3 settles
    settled = []
    wait_for(lambda: settled.append(parts_held(s3, bucket)) or len(settled) > 1 and settled[-1] == settled[-2],
             timeout=30, interval=0.5, what="the parts in flight at the kill to land")
    key, held = settled[-1]
    total = -(-size // (5 * MIB))
    assert total == 61 and 5 <= len(held) < total, held
    batch_id = key.split("/")[1]
    batch = http.get(f"{stack.url}/batches/{batch_id}").json()["batch"]
    assert batch["jobs"][0]["status"] == "awaiting_upload"

    args, env = cli(stack, "--json", "resume", batch_id, str(path), "--wait")
    resumed = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    out = json.loads(resumed.stdout)
    [upload] = out["uploads"]
    missing = [n for n in range(1, total + 1) if n not in held]
    print(f"\n300 MiB in {total} parts: {len(held)} held after the kill, resume sent {upload['parts_sent']}")
    assert (upload["method"], upload["parts_total"], upload["parts_already"], upload["parts_sent"]) == \
        ("MULTIPART", total, len(held), len(missing))
    assert upload["first_part_sent"] == missing[0]
    assert out["batch"]["status"] == "completed", out["batch"]
    job = http.get(f"{stack.url}/batches/{batch_id}").json()["batch"]["jobs"][0]
    assert job["status"] == "completed" and job["size"] == size
    assert (job["outputs"][0]["width"], job["outputs"][0]["height"]) == (800, 833)
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] == size
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_a_drop_folder_written_with_boto3_becomes_a_batch_that_completes(stack, http, pipeline, tmp_path):
    from PIL import Image
    s3, bucket = stack.boto("s3"), "imgbatch-local"
    for name, colour in (("PL_DROP7_Front.jpg", (200, 10, 10)), ("PL_DROP7_Back.jpg", (10, 200, 10))):
        Image.new("RGB", (640, 480), colour).save(tmp_path / name, quality=90)
        s3.upload_file(str(tmp_path / name), bucket, f"drop/studio/spring-shoot/{name}")   # as aws s3 cp does
    (tmp_path / "notes.txt").write_text("call the client about the crop")
    s3.upload_file(str(tmp_path / "notes.txt"), bucket, "drop/studio/spring-shoot/notes.txt")
    time.sleep(1)   # the files alone announce nothing: no batch yet
    assert http.get(f"{stack.url}/batches?search=spring").json()["batches"] == []
    marker = {"pipeline_ids": [pipeline["id"]], "description": "Spring shoot, dropped"}
    s3.put_object(Bucket=bucket, Key="drop/studio/spring-shoot/_READY", Body=json.dumps(marker).encode())

    listed = wait_for(lambda: http.get(f"{stack.url}/batches?search=spring").json()["batches"], timeout=60,
                      what="the drop folder's batch")
    batch = final_batch(stack, http, listed[0]["id"])
    assert batch["status"] == "completed_with_errors" and batch["customer_prefix"] == "PL_DROP"
    jobs = {j["file_name"]: j for j in batch["jobs"]}
    assert sorted(jobs) == ["PL_DROP7_Back.jpg", "PL_DROP7_Front.jpg", "notes.txt"]
    assert jobs["notes.txt"]["error"]["code"] == "not_an_image"
    assert jobs["PL_DROP7_Front.jpg"]["status"] == "completed"
    assert batch["progress"]["uploaded"] == 3
    # processed in place: nothing was copied into uploads/
    assert not s3.list_objects_v2(Bucket=bucket, Prefix=f"uploads/{batch['id']}/").get("Contents")
    r = http.get(f"{stack.url}/batches/{batch['id']}/download?redirect=false")
    assert r.status_code == 200 and r.json()["file_name"] == f"{batch['base_directory_name']}.zip"
    # a second marker makes no second batch
    s3.put_object(Bucket=bucket, Key="drop/studio/spring-shoot/_READY", Body=json.dumps(marker).encode())
    wait_for(lambda: "a second marker makes no batch" in stack.log_path.read_text(), timeout=30,
             what="the second marker's log line")
    assert len(http.get(f"{stack.url}/batches?search=spring").json()["batches"]) == 1
    # deleting the batch deletes the folder's objects
    assert http.delete(f"{stack.url}/batches/{batch['id']}").status_code == 204
    assert not s3.list_objects_v2(Bucket=bucket, Prefix="drop/studio/spring-shoot/").get("Contents")


def test_markers_in_other_owners_prefixes_never_make_the_writers_batch(stack, http, pipeline, tmp_path):
    """Locally anyone may write anywhere (AWS: each studio's principal is confined to its own
    prefix by IAM, tests/deploy/test_drop_policy.py). The folder's first segment is its owner."""
    from PIL import Image
    s3, bucket = stack.boto("s3"), "imgbatch-local"
    Image.new("RGB", (64, 48), (1, 2, 3)).save(tmp_path / "a.png")
    other = stack.session(OTHER_TOKEN)
    other_pipeline = other.post(f"{stack.url}/pipelines", json={"name": "theirs", "format": "png"}).json()["pipeline"]
    # studio's pipeline in other's folder: unknown to other, so no batch for anyone
    s3.upload_file(str(tmp_path / "a.png"), bucket, "drop/other/x/a.png")
    s3.put_object(Bucket=bucket, Key="drop/other/x/_READY", Body=json.dumps({"pipeline_ids": [pipeline["id"]]}).encode())
    # an owner the stack does not know (not in DROP_FOLDER_OWNERS): refused
    s3.upload_file(str(tmp_path / "a.png"), bucket, "drop/mallory/y/a.png")
    s3.put_object(Bucket=bucket, Key="drop/mallory/y/_READY", Body=json.dumps({"pipeline_ids": [pipeline["id"]]}).encode())
    # other's own pipeline in other's folder: other's batch, which studio cannot see
    s3.upload_file(str(tmp_path / "a.png"), bucket, "drop/other/z/a.png")
    s3.put_object(Bucket=bucket, Key="drop/other/z/_READY",
                  Body=json.dumps({"pipeline_ids": [other_pipeline["id"]], "description": "theirs z"}).encode())
    theirs = wait_for(lambda: other.get(f"{stack.url}/batches?search=theirs").json()["batches"], timeout=60,
                      what="other's batch")
    def refusals_logged():
        text = stack.log_path.read_text()
        return text if "'mallory' is not an owner" in text and "unknown pipeline id(s)" in text else None

    log = wait_for(refusals_logged, timeout=30, what="the refusals' log lines")
    assert "drop folder drop/other/x/: no batch" in log and "drop folder drop/mallory/y/: no batch" in log
    assert theirs[0]["owner"] == "other" and len(theirs) == 1
    assert http.get(f"{stack.url}/batches/{theirs[0]['id']}").status_code == 404
    assert all(b["owner"] == "studio" for b in http.get(f"{stack.url}/batches?limit=200").json()["batches"])


def test_the_web_ui_continues_an_upload_in_parts_after_a_reload(stack, http, pipeline, tmp_path):
    """Parts 1 and 2 land, the others hang; the page is reloaded mid-upload. It offers to
    continue, refuses a different file of the same name, size and date, takes the same file and
    sends only the parts S3 does not hold."""
    import re

    from tests.e2e.ui_helpers import launch, missing_browser_reason, screenshot
    reason = missing_browser_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import expect, sync_playwright

    path = rgba16_tiff(tmp_path / "PL_WEB3_Front.tif", 2048, 1664)   # 26 MiB: 6 parts of 5 MiB
    impostor_dir = tmp_path / "other"
    impostor_dir.mkdir()
    impostor = impostor_dir / path.name
    data = bytearray(path.read_bytes())
    data[300:310] = b"0123456789"   # same name, size and date; other bytes in the first MiB
    impostor.write_bytes(bytes(data))
    os.utime(impostor, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns))
    s3, bucket = stack.boto("s3"), "imgbatch-local"

    with sync_playwright() as playwright:
        browser = launch(playwright)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.add_init_script(f"localStorage.getItem('imgbatch.apiToken') || "
                                f"localStorage.setItem('imgbatch.apiToken', {TOKEN!r});")
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        hold = {"on": True, "held": []}   # parts 3+ hang (never answered) until the page is reloaded

        def parts_after_two(route):
            if hold["on"]:
                hold["held"].append(route)
            else:
                route.continue_()

        page.route(re.compile(r".*partNumber=([3-9]|\d\d+)&.*"), parts_after_two)
        page.goto(f"{stack.url}/#batches")
        page.set_input_files("#file-input", [str(path)])
        expect(page.locator("#file-list li")).to_have_count(1)
        page.get_by_role("checkbox", name="arrive").check()
        page.get_by_role("button", name="Upload batch").click()
        session = page.locator("#upload-sessions .upload-session").first
        batch_id = session.get_attribute("data-batch-id", timeout=30_000)
        wait_for(lambda: parts_held(s3, bucket)[1] == [1, 2], timeout=60, what="parts 1 and 2")
        row = session.locator(f'.upload-file[data-file="{path.name}"]')
        expect(row.locator(".upload-status")).to_contain_text("part 3 of 6")

        page.once("dialog", lambda d: d.accept())   # "leave the page?" while uploads run
        page.reload()
        hold["on"] = False
        assert parts_held(s3, bucket)[1] == [1, 2]   # the parts hanging at the reload never landed
        offer = page.locator(f'[data-resume-batch="{batch_id}"]')
        expect(offer).to_be_visible(timeout=20_000)
        expect(offer).to_contain_text("1 file")
        expect(offer).to_contain_text(path.name)
        screenshot(page, "16-continue-uploads-offer")
        puts = []
        page.on("request", lambda r: puts.append(r.url) if r.method == "PUT" else None)
        offer.locator("input[type=file]").set_input_files([str(impostor)])
        expect(offer.locator(".resume-problems")).to_contain_text("not the same file (its content differs)")
        offer.locator("input[type=file]").set_input_files([str(path)])
        expect(offer).to_have_count(0)
        resumed = page.locator(f'#upload-sessions .upload-session[data-batch-id="{batch_id}"]')
        row = resumed.locator(f'.upload-file[data-file="{path.name}"]')
        expect(row).to_have_attribute("data-status", "done", timeout=60_000)
        expect(row.locator(".upload-status")).to_have_text("Uploaded in 6 parts (2 parts already uploaded)")
        sent = sorted(int(re.search(r"partNumber=(\d+)", u).group(1)) for u in puts)
        assert sent == [3, 4, 5, 6], sent
        batch = final_batch(stack, http, batch_id, timeout=120)
        assert batch["status"] == "completed", batch
        assert page.evaluate("localStorage.getItem('imgbatch.resume.v1')") is None   # nothing left to continue
        context.close()
        browser.close()
    assert not errors, errors


def test_uploads_in_parts_conform_to_the_spec_with_real_data(stack, http, pipeline, tmp_path):
    """Every answer of the multipart routes, from a real upload, checked against the OpenAPI spec
    the stack serves (as tests/deploy/test_deploy_schemathesis.py checks the other routes)."""
    import schemathesis
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    schema = schemathesis.openapi.from_url(f"{stack.url}/openapi.json")

    def call(method, path, params, query=None, body=None, expect=None):
        kwargs = {"path_parameters": params, "query": query or {}}
        if body is not None:
            kwargs.update(body=body, media_type="application/json")
        response = schema[path][method].Case(**kwargs).call_and_validate(
            base_url=stack.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60,
            excluded_checks=[positive_data_acceptance])
        assert expect is None or response.status_code == expect, (method, path, response.status_code, response.text)
        return response.json() if response.content else None

    data = b"II*\x00" + bytes(12 * MIB)
    created = call("POST", "/batches", {}, body={"pipeline_ids": [pipeline["id"]], "files": [
        {"name": "spec.tif", "size": len(data), "content_type": "image/tiff"}]}, expect=201)
    [u] = created["uploads"]
    assert u["method"] == "MULTIPART"
    ids = {"batch_id": created["batch"]["id"], "job_id": u["job_id"]}
    path = "/batches/{batch_id}/jobs/{job_id}/multipart"
    first = call("POST", path, ids, query={"limit": 1}, expect=200)["upload"]
    assert first["next_after"] == 1
    part = first["parts"][0]
    assert requests.put(part["url"], data=data[:part["size"]], timeout=60).status_code == 200
    call("POST", path + "/complete", ids, expect=400)
    rest = call("POST", path, ids, expect=200)["upload"]
    for part in rest["parts"]:
        begin = (part["part_number"] - 1) * rest["part_size"]
        assert requests.put(part["url"], data=data[begin:begin + part["size"]], timeout=60).status_code == 200
    call("POST", path + "/complete", ids, expect=200)
    call("POST", path + "/complete", ids, expect=200)
    call("DELETE", path, ids, expect=204)
    call("GET", "/batches/{batch_id}/uploads", {"batch_id": ids["batch_id"]}, expect=200)
