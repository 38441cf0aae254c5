"""Issue 17 through the API under mock_aws: every problem in one 400, the new options stored and
rendered by the real handler, template names in the ZIP, and the preview beside the outputs."""
from __future__ import annotations

import io
import zipfile

import requests
from PIL import Image

from tests.functional.test_processing import Flow


def test_every_problem_in_one_400_with_a_machine_readable_list(api):
    r = api.post("/pipelines", {"name": "x", "format": "gif", "width": -5, "quality": 200})
    assert r.status_code == 400 and r.data["Code"] == "BadRequestError"
    assert r.data["Message"].startswith("3 problems: ")
    assert [e["field"] for e in r.data["Errors"]] == ["format", "width", "quality"]
    assert all(e["message"] in r.data["Message"] for e in r.data["Errors"])
    # other errors keep the plain shape
    missing = api.get("/pipelines/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and "Errors" not in missing.data


def test_put_reports_every_problem_too(api):
    p = api.post("/pipelines", {"name": "p", "format": "png"}).data["pipeline"]
    r = api.put(f"/pipelines/{p['id']}", {**p, "format": "png", "max_bytes": 5000, "filename": "{x}.{ext}"})
    assert r.status_code == 400 and [e["field"] for e in r.data["Errors"]] == ["max_bytes", "filename"]


def test_new_options_are_stored_and_returned_whole(api):
    body = {"name": "Print", "format": "tiff", "width": 64, "height": 64, "fit": "pad", "tiff_compression": "lzw",
            "embed_icc": True, "trim": 5, "dpi": 300, "sharpen": 50, "filename": "{stem}_{width}x{height}.{ext}"}
    p = api.post("/pipelines", body).data["pipeline"]
    assert {k: p[k] for k in body} == body and p["max_bytes"] is None
    assert api.get(f"/pipelines/{p['id']}").data["pipeline"] == p
    assert api.put(f"/pipelines/{p['id']}", p).status_code == 200  # what GET returns can be PUT back


def test_avif_and_tiff_outputs_template_names_and_preview(api, aws):
    shop = api.post("/pipelines", {"name": "Shop", "format": "avif", "width": 60, "height": 60, "fit": "pad",
                                   "max_bytes": 20000, "filename": "{prefix}_{counter:03}.{ext}"}).data["pipeline"]
    archive = api.post("/pipelines", {"name": "Archive", "format": "tiff", "dpi": 300, "trim": 2,
                                      "filename": "{stem}_{width}x{height}.{ext}"}).data["pipeline"]
    flow = Flow(api, aws, [shop, archive])
    src = Image.new("RGB", (120, 80), "white")
    src.paste((200, 30, 30), (20, 10, 100, 70))
    buf = io.BytesIO()
    src.save(buf, "PNG")
    data = {"PL_DXB1_Front.png": buf.getvalue(), "PL_DXB1_Back.png": buf.getvalue()}
    created = flow.create(data)
    flow.upload(created, data)
    batch = flow.batch(created["batch"]["id"])
    assert batch["status"] == "completed", batch["jobs"]
    job = batch["jobs"][0]
    assert [(o["format"], o["width"], o["height"]) for o in job["outputs"]] == [("avif", 60, 60), ("tiff", 80, 60)]
    for out in job["outputs"]:
        body = aws.s3.get_object(Bucket=aws.settings.bucket, Key=out["key"])["Body"].read()
        im = Image.open(io.BytesIO(body))
        assert (im.format, im.size) == ({"avif": "AVIF", "tiff": "TIFF"}[out["format"]], (out["width"], out["height"]))
        if out["format"] == "tiff":
            assert im.info["dpi"] == (300, 300)
        else:
            assert len(body) <= 20000
    stored = next(aws.repository.all_jobs(batch["id"]))
    preview = stored["preview"]
    assert preview["key"].endswith(f"/{stored['job_id']}/preview.webp") and preview["format"] == "webp"
    body = aws.s3.get_object(Bucket=aws.settings.bucket, Key=preview["key"])["Body"].read()
    assert Image.open(io.BytesIO(body)).size == (preview["width"], preview["height"]) == (120, 80)

    r = api.get(f"/batches/{batch['id']}/download")
    assert r.status_code == 302
    base = batch["base_directory_name"]
    names = set(zipfile.ZipFile(io.BytesIO(requests.get(r.headers["location"]).content)).namelist())
    assert names == {f"{base}/manifest.csv", f"{base}/Shop/PL_DXB_001.avif", f"{base}/Shop/PL_DXB_002.avif",
                     f"{base}/Archive/PL_DXB1_Front_80x60.tif", f"{base}/Archive/PL_DXB1_Back_80x60.tif"}
    assert not any("preview" in n for n in names)  # previews are never in the ZIP


def test_a_file_over_max_bytes_fails_alone_with_its_code(api, aws):
    tiny = api.post("/pipelines", {"name": "tiny", "format": "jpeg", "max_bytes": 1024}).data["pipeline"]
    flow = Flow(api, aws, [tiny])
    noise = Image.effect_noise((400, 400), 80).convert("RGB")
    buf = io.BytesIO()
    noise.save(buf, "PNG")
    small = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(small, "PNG")
    data = {"big.png": buf.getvalue(), "small.png": small.getvalue()}
    created = flow.create(data)
    flow.upload(created, data)
    jobs = {j["file_name"]: j for j in flow.batch(created["batch"]["id"])["jobs"]}
    assert jobs["big.png"]["status"] == "failed" and jobs["big.png"]["error"]["code"] == "exceeds_max_bytes"
    assert "max_bytes 1,024" in jobs["big.png"]["error"]["message"]
    assert jobs["small.png"]["status"] == "completed"
