"""Operable: one batch followed by its id through the local stack's logs, from creation to ZIP, with
no secret in them, and the EMF metrics the functions printed meanwhile, parsed and checked.

The stack runs as Lambda prints (LOG_FORMAT=json, METRICS=on); everything it writes goes to its
log file, which is what CloudWatch Logs would hold."""
from __future__ import annotations

import io
import re
import zipfile
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from PIL import Image

from tests.e2e.conftest import TOKEN, LocalStack, upload, wait_for
from tests.emf import emf_documents, log_records, totals

pytestmark = pytest.mark.e2e

CURSOR_KEY = "cursor-key-that-must-never-be-logged-0123456789"
AWS_SECRET = "aws-secret-key-that-must-never-be-logged"


def png(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def run():
    stack = LocalStack(LOG_FORMAT="json", METRICS="on", CURSOR_SIGNING_KEY=CURSOR_KEY,
                       AWS_SECRET_ACCESS_KEY=AWS_SECRET).start()
    http = stack.session()
    seen = {"secrets": {TOKEN, CURSOR_KEY, AWS_SECRET}}
    try:
        pipeline = http.post(f"{stack.url}/pipelines", json={"name": "ops", "format": "jpeg", "width": 32}).json()
        files = {"PL_OPS1_a.png": png((200, 0, 0)), "PL_OPS1_b.png": png((0, 200, 0)),
                 "PL_OPS1_broken.png": b"\x89PNG\r\n\x1a\n" + b"not an image" * 10}
        created = http.post(f"{stack.url}/batches", json={"pipeline_ids": [pipeline["pipeline"]["id"]], "files": [
            {"name": n, "size": len(b), "content_type": "image/png"} for n, b in files.items()]}).json()
        bid = created["batch"]["id"]
        for u in created["uploads"]:
            assert upload(u, files[u["file_name"]]).status_code in (200, 201, 204)
            seen["secrets"] |= {u["fields"][k] for k in u["fields"] if k.lower() in ("policy", "x-amz-signature")}
        wait_for(lambda: http.get(f"{stack.url}/batches/{bid}").json()["batch"]["status"] == "completed_with_errors",
                 timeout=120, what="the batch to finish")
        # the final status prebuilds the ZIP (PREBUILD_ARCHIVES); asked for before that build is
        # done, the API would build the small ZIP inline as well, and the log would hold two builds
        wait_for(lambda: '"archive.built"' in stack.log_path.read_text(), timeout=60, what="the prebuilt ZIP")
        link = http.get(f"{stack.url}/batches/{bid}/download", params={"redirect": "false"}).json()
        seen["secrets"] |= set(parse_qs(urlsplit(link["url"]).query)["X-Amz-Signature"])
        archive = requests.get(link["url"], timeout=60)
        assert archive.status_code == 200
        seen["zip_size"] = len(archive.content)
        seen["zip_names"] = zipfile.ZipFile(io.BytesIO(archive.content)).namelist()
        # a preview URL, and a signed cursor, handed out and never logged
        job = http.get(f"{stack.url}/batches/{bid}").json()["batch"]["jobs"]
        seen["secrets"] |= {parse_qs(urlsplit(j["preview"]["url"]).query)["X-Amz-Signature"][0]
                            for j in job if j.get("preview")}
        listed = http.get(f"{stack.url}/batches", params={"limit": "1"}).json()
        assert http.get(f"{stack.url}/batches/{bid}/nothing-here").status_code == 404
        seen["bid"], seen["jobs"] = bid, {j["file_name"]: j["id"] for j in job}
        seen["cursor"] = listed.get("next_cursor")
    finally:
        stack.stop()
    seen["log"] = stack.log_path.read_text()
    # `make run`'s banner shows the developer the local tokens they configured, on purpose; it is
    # the local stack's, not a function's output, and is the one place a token may appear
    banner = re.search(r"imgbatch local stack is ready\n.*?Press Ctrl-C to stop\.\n", seen["log"], re.S)
    assert banner and TOKEN in banner.group(0)
    seen["log"] = seen["log"].replace(banner.group(0), "")
    return seen


def test_the_batch_is_followed_by_its_id_from_creation_to_zip(run):
    lines = [r for r in log_records(run["log"]) if r.get("batch_id") == run["bid"]]
    messages = [r["message"] for r in lines]
    for expected in ("batch.created", "upload.registered", "batch.started", "job.processed", "batch.finished",
                     "archive.built", "http.request"):
        assert expected in messages, (expected, sorted(set(messages)))
    first = {m: messages.index(m) for m in set(messages)}
    assert first["batch.created"] < first["batch.started"] < first["batch.finished"] < first["archive.built"]
    processed = {r["job_id"]: r for r in lines if r["message"] == "job.processed" and r["outcome"] != "duplicate"}
    assert {run["jobs"][n]: processed[run["jobs"][n]]["outcome"] for n in run["jobs"]} == {
        run["jobs"]["PL_OPS1_a.png"]: "completed", run["jobs"]["PL_OPS1_b.png"]: "completed",
        run["jobs"]["PL_OPS1_broken.png"]: "failed"}
    # every line says which function and which invocation it came from
    assert all(r.get("function") and r.get("request_id") for r in lines), [r for r in lines if not r.get("function")]
    assert {r["function"] for r in lines} >= {"api_handler", "register_uploads", "process_upload"}
    events = [r for r in lines if r["function"] in ("register_uploads", "process_upload")]
    assert all(r.get("event_id") for r in events)   # the SQS message each line belongs to
    finished, = [r for r in lines if r["message"] == "batch.finished"]
    assert (finished["outcome"], finished["succeeded"], finished["failed"]) == ("completed_with_errors", 2, 1)
    built, = [r for r in lines if r["message"] == "archive.built"]
    assert built["bytes"] == run["zip_size"] and built["outcome"] == "built"
    download, = [r for r in lines if r["message"] == "http.request" and r["route"] == "/batches/{batch_id}/download"]
    assert download["status"] == 200
    creation, = [r for r in lines if r["message"] == "batch.created"]
    assert creation["owner"] == "studio"


def test_no_token_secret_or_signature_is_in_the_logs(run):
    secrets = {s for s in run["secrets"] if s}
    assert len(secrets) >= 8   # the token, keys, 3 policies and signatures, the download's, previews'
    leaked = sorted(s for s in secrets if s in run["log"])
    assert not leaked, leaked
    assert not re.search(r"X-Amz-Signature=[0-9a-f]{16}", run["log"])
    if run["cursor"]:
        assert run["cursor"] not in run["log"]


def test_the_emf_metrics_match_the_batch(run):
    sums = totals(emf_documents(run["log"]))
    assert sums[("FilesProcessed", ())] == 3
    assert sums[("FilesSucceeded", ())] == 2
    assert [k for k in sums if k[0] == "FilesFailed"] == [("FilesFailed", (("ErrorCode", "corrupt_image"),))]
    assert sums[("FilesFailed", (("ErrorCode", "corrupt_image"),))] == 1
    assert sums[("BatchesFinished", (("Status", "completed_with_errors"),))] == 1
    assert sums[("ArchiveBytes", ())] == run["zip_size"]
    assert sums[("BytesIn", ())] == sum(len(png(c)) for c in ((200, 0, 0), (0, 200, 0))) + len(
        b"\x89PNG\r\n\x1a\n" + b"not an image" * 10)
    assert sums[("BytesOut", ())] > 0 and sums[("PipelineDuration", ())] > 0
