"""The running local stack: presigned uploads over HTTP reach the handler via S3 -> SQS."""
from __future__ import annotations

import concurrent.futures
import io

import pytest
from PIL import Image

from tests.e2e.conftest import OTHER_TOKEN, upload, wait_for

pytestmark = pytest.mark.e2e


def png_bytes(size=(64, 48), colour=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def pipeline_id(stack):
    http = stack.session()
    r = http.post(f"{stack.url}/pipelines", json={"name": "e2e-web", "format": "jpeg", "width": 32})
    if r.status_code == 409:
        return next(p["id"] for p in http.get(f"{stack.url}/pipelines").json()["pipelines"] if p["name"] == "e2e-web")
    assert r.status_code == 201, r.text
    return r.json()["pipeline"]["id"]


def test_health_and_auth(stack, http):
    import requests
    assert requests.get(f"{stack.url}/health").json() == {"status": "ok"}
    assert requests.get(f"{stack.url}/batches").status_code == 401
    assert requests.get(f"{stack.url}/batches", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert http.get(f"{stack.url}/batches").status_code == 200


def test_presigned_upload_reaches_the_handler_through_s3_and_sqs(stack, http, pipeline_id):
    data = png_bytes()
    r = http.post(f"{stack.url}/batches", json={"pipeline_ids": [pipeline_id], "files": [
        {"name": "PL_E2E1_Front.png", "size": len(data), "content_type": "image/png"}]})
    assert r.status_code == 201, r.text
    created = r.json()
    (u,) = created["uploads"]
    assert upload(u, data).status_code in (200, 201, 204)
    bid = created["batch"]["id"]

    def uploaded():
        b = http.get(f"{stack.url}/batches/{bid}").json()["batch"]
        return b if b["progress"]["uploaded"] == 1 else None

    batch = wait_for(uploaded, what="the upload event to reach the handler")
    assert batch["status"] != "queued" and batch["started_at"]
    assert batch["jobs"][0]["status"] != "awaiting_upload"
    # the bytes are where the policy said
    s3 = stack.boto("s3")
    assert s3.get_object(Bucket="imgbatch-local", Key=u["fields"]["key"])["Body"].read() == data
    # another owner cannot see it
    assert stack.session(OTHER_TOKEN).get(f"{stack.url}/batches/{bid}").status_code == 404


def test_concurrent_creation_counts_one_to_twenty(stack, pipeline_id):
    def create(_):
        r = stack.session().post(f"{stack.url}/batches", json={
            "pipeline_ids": [pipeline_id], "files": [{"name": "RACE_ONE1_a.png", "size": 10, "content_type": "image/png"}]})
        assert r.status_code == 201, r.text
        return r.json()["batch"]

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        batches = list(pool.map(create, range(20)))
    assert sorted(b["batch_counter"] for b in batches) == list(range(1, 21))
    assert len({b["base_directory_name"] for b in batches}) == 20
    assert all(b["base_directory_name"].startswith("RACE_ONE_") for b in batches)

