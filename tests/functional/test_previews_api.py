"""`preview` on jobs (API.md "Previews and results"): a short-lived URL of the stored rendition on
completed jobs, null on every other job, in GET /batches/{id}, GET /jobs/{id} and GET /jobs?status=."""
from __future__ import annotations

import io
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests
from PIL import Image

from tests import images
from tests.functional.test_processing import Flow


@pytest.fixture
def flow(api, aws):
    web = api.post("/pipelines", {"name": "web", "format": "jpeg", "width": 1200}).data["pipeline"]
    return Flow(api, aws, [web])


def test_completed_jobs_carry_a_preview_url_failed_and_waiting_ones_null(flow, api, aws):
    data = {"PL_PRV1_Front.png": images.png((900, 600)), "PL_PRV1_Bad.png": b"not an image at all"}
    created = flow.create({**data, "PL_PRV1_Late.png": images.png((10, 10))})
    flow.upload(created, data)
    jobs = {j["file_name"]: j for j in flow.batch(created["batch"]["id"])["jobs"]}

    good = jobs["PL_PRV1_Front.png"]
    assert good["status"] == "completed"
    preview = good["preview"]
    assert set(preview) == {"url", "width", "height", "format"}
    assert (preview["width"], preview["height"], preview["format"]) == (320, 213, "webp")
    query = parse_qs(urlsplit(preview["url"]).query)
    assert query["X-Amz-Expires"] == [str(aws.settings.download_ttl_seconds)]
    fetched = requests.get(preview["url"], timeout=10)   # moto answers the presigned GET
    assert fetched.status_code == 200
    with Image.open(io.BytesIO(fetched.content)) as im:
        assert (im.format, im.size) == ("WEBP", (320, 213))
    assert unquote(urlsplit(preview["url"]).path).endswith(f"/{good['id']}/preview.webp")

    assert jobs["PL_PRV1_Bad.png"]["status"] == "failed" and jobs["PL_PRV1_Bad.png"]["preview"] is None
    assert jobs["PL_PRV1_Late.png"]["status"] == "awaiting_upload" and jobs["PL_PRV1_Late.png"]["preview"] is None

    one = api.get(f"/jobs/{good['id']}").data["job"]
    assert one["preview"]["format"] == "webp" and one["preview"]["width"] == 320
    listed = api.get("/jobs?status=completed").data["jobs"]
    assert [j["preview"]["height"] for j in listed] == [213]
    assert all(j["preview"] is None for j in api.get("/jobs?status=failed").data["jobs"])


def test_a_preview_is_shown_only_while_its_job_is_completed(flow, api, aws):
    """A job that holds a preview record but is no longer completed (its batch was cancelled
    before it committed, say) never hands out the URL."""
    data = {"PL_PRV2_Front.png": images.png((50, 40))}
    created = flow.create(data)
    flow.upload(created, data)
    job = flow.batch(created["batch"]["id"])["jobs"][0]
    assert job["preview"] is not None
    from chalicelib.services.views import job_view
    stored = aws.repository.get_job(created["batch"]["id"], job["id"])
    assert job_view({**stored, "status": "failed"}, lambda key: "url")["preview"] is None
    assert job_view(stored)["preview"] is None   # no presigner: no URL
    assert job_view(stored, lambda key: f"signed:{key}")["preview"]["url"] == f"signed:{stored['preview']['key']}"
