"""Processing on real servers: the local stack end to end, and exactly-once delivery
under duplicated, shuffled, concurrent events against moto in server mode."""
from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests import images
from tests.e2e.conftest import LocalStack, free_port, upload, wait_for

pytestmark = pytest.mark.e2e


def make_pipeline(http, url, **spec):
    r = http.post(f"{url}/pipelines", json=spec)
    assert r.status_code in (201, 409), r.text
    if r.status_code == 409:
        return next(p for p in http.get(f"{url}/pipelines").json()["pipelines"] if p["name"] == spec["name"])
    return r.json()["pipeline"]


def test_presigned_uploads_are_processed_to_completion(stack, http):
    jpeg = make_pipeline(http, stack.url, name="e2e-jpeg-200", format="jpeg", width=200)
    data = {"PL_DXB191_Front.png": images.png((640, 480)), "PL_DXB191_Back.jpg": images.jpeg((800, 600)),
            "PL_DXB191_Side.png": images.png((300, 300), mode="RGBA")}
    r = http.post(f"{stack.url}/batches", json={"pipeline_ids": [jpeg["id"]], "files": [
        {"name": n, "size": len(b)} for n, b in data.items()]})
    assert r.status_code == 201, r.text
    created = r.json()
    for u in created["uploads"]:
        assert upload(u, data[u["file_name"]]).status_code == 204
    bid = created["batch"]["id"]

    def done():
        b = http.get(f"{stack.url}/batches/{bid}").json()["batch"]
        return b if b["status"] not in ("queued", "processing") else None

    batch = wait_for(done, timeout=60, what="the batch to finish")
    assert batch["status"] == "completed", batch
    assert batch["progress"]["percent"] == 100 and batch["progress"]["succeeded"] == 3
    s3 = stack.boto("s3")
    for job in batch["jobs"]:
        (out,) = job["outputs"]
        im = images.decode(s3.get_object(Bucket="imgbatch-local", Key=out["key"])["Body"].read())
        assert im.format == "JPEG" and im.width == 200 == out["width"]


def test_uploads_expire_on_the_stack():
    stack = LocalStack(UPLOAD_TTL_SECONDS=2, EXPIRY_GRACE_SECONDS=0, SWEEP_SECONDS=1).start()
    try:
        http = stack.session()
        p = make_pipeline(http, stack.url, name="exp", format="png")
        r = http.post(f"{stack.url}/batches", json={"pipeline_ids": [p["id"]], "files": [
            {"name": "never.png", "size": 10}]})
        bid = r.json()["batch"]["id"]
        batch = wait_for(lambda: (lambda b: b if b["status"] == "failed" else None)(
            http.get(f"{stack.url}/batches/{bid}").json()["batch"]), timeout=30, what="expiry")
        assert batch["jobs"][0]["error"]["code"] == "upload_expired" and batch["completed_at"]
    finally:
        stack.stop()


@pytest.fixture
def moto_server(monkeypatch):
    from moto.server import ThreadedMotoServer
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    # moto's backends are process-global: start every test from empty accounts
    requests.post(f"{url}/moto-api/reset", timeout=10).raise_for_status()
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    yield url
    requests.post(f"{url}/moto-api/reset", timeout=10)
    server.stop()


def test_each_event_three_times_shuffled_by_eight_workers_counts_once(moto_server):
    from chalicelib import wiring
    from chalicelib.settings import Settings
    settings = Settings(endpoint_url=moto_server, local_api_tokens={"t": "studio"})
    container = wiring.Container(wiring.Container(settings).provision())
    pipeline = container.pipelines.create("studio", {"name": "t", "format": "jpeg", "width": 8})
    n = 300
    body = images.png((16, 16))
    result = container.batches.create("studio", {"pipeline_id": pipeline["id"], "files": [
        {"name": f"PL_STR{i}_x.png", "size": len(body)} for i in range(n)]})
    bid = result["batch"]["id"]
    keys = [u["fields"]["key"] for u in result["uploads"]]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: container.s3.put_object(Bucket=settings.bucket, Key=k, Body=body), keys))

    final_writes, lock = [], threading.Lock()
    real_finalize = container.repository.finalize

    def counting_finalize(batch, status, now):
        won = real_finalize(batch, status, now)
        if won:
            with lock:
                final_writes.append((status, now))
        return won

    container.repository.finalize = counting_finalize
    deliveries = keys * 3
    random.Random(7).shuffle(deliveries)
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(container.processor.process_key, deliveries))
    assert outcomes.count("completed") == n
    assert set(outcomes) <= {"completed", "duplicate"}
    batch = container.repository.get_batch(bid)
    assert (batch["uploaded"], batch["succeeded"], batch["failed"], batch["cancelled"]) == (n, n, 0, 0)
    assert batch["status"] == "completed"
    assert len(final_writes) == 1 and final_writes[0][0] == "completed"
    assert batch["completed_at"] == final_writes[0][1]
    stats = container.batches.stats("studio")
    assert stats["completed"] == 1 and stats["processing"] == 0 and stats["queued"] == 0
    jobs = list(container.repository.jobs_with_status(bid, ("completed",)))
    assert len(jobs) == n and all(int(j["attempt"]) == 1 for j in jobs)


KILLED_WORKER = """
import os, sys
from chalicelib import wiring
from chalicelib.settings import Settings
container = wiring.Container(Settings(endpoint_url=sys.argv[1]))
repo = container.repository
# die like a Lambda that hits its timeout: outputs are written, the commit never happens
repo.finish_job = lambda *a, **k: os._exit(137)
container.processor.process_key(sys.argv[2])
"""


def test_a_worker_killed_between_outputs_and_commit_is_repaired_by_redelivery(moto_server):
    import subprocess
    import sys
    from chalicelib import wiring
    from chalicelib.settings import Settings
    from tests.e2e.conftest import ROOT
    container = wiring.Container(wiring.Container(Settings(endpoint_url=moto_server)).provision())
    pipeline = container.pipelines.create("studio", {"name": "t", "format": "jpeg", "width": 8})
    body = images.png((16, 16))
    created = container.batches.create("studio", {"pipeline_id": pipeline["id"], "files": [
        {"name": "a.png", "size": len(body)}]})
    key = created["uploads"][0]["fields"]["key"]
    container.s3.put_object(Bucket=container.settings.bucket, Key=key, Body=body)
    proc = subprocess.run([sys.executable, "-c", KILLED_WORKER, moto_server, key], cwd=ROOT, timeout=60)
    assert proc.returncode == 137
    bid = created["batch"]["id"]
    outputs = container.s3.list_objects_v2(Bucket=container.settings.bucket, Prefix=f"outputs/{bid}/")
    assert outputs.get("KeyCount") == 2  # the output and its preview, written before the crash
    batch = container.repository.get_batch(bid)
    assert batch["status"] == "processing" and batch["succeeded"] == 0 and batch["uploaded"] == 1
    # SQS redelivers the message after the visibility timeout: twice, to be sure
    assert container.processor.process_key(key) == "completed"
    assert container.processor.process_key(key) == "duplicate"
    batch = container.repository.get_batch(bid)
    assert (batch["status"], batch["uploaded"], batch["succeeded"], batch["failed"]) == ("completed", 1, 1, 0)
    assert container.s3.list_objects_v2(Bucket=container.settings.bucket, Prefix=f"outputs/{bid}/")["KeyCount"] == 2
