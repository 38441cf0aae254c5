"""The whole hostile corpus as one batch through the real handler: every file ends as
MANIFEST.csv says, bad files fail only themselves, and the batch still completes."""
from __future__ import annotations

from pathlib import Path

from tests.corpus import CORPUS, ROWS
from tests.functional.test_processing import Flow, s3_body

CODES = {"not_an_image", "unsupported_format", "too_many_pixels", "corrupt_image", "output_too_large"}


def test_corpus_batch(api, aws):
    rows = ROWS
    web = api.post("/pipelines", {"name": "web", "format": "jpeg", "width": 800}).data["pipeline"]
    flow = Flow(api, aws, [web])
    data = {Path(r["file"]).name: (CORPUS / r["file"]).read_bytes() for r in rows}
    # declared as PNG whatever they are: the handler must judge by content
    created = api.post("/batches", {"pipeline_id": web["id"], "files": [
        {"name": n, "size": len(b), "content_type": "image/png"} for n, b in data.items()]}).data
    for u in created["uploads"]:
        flow.put(u, data[u["file_name"]])
    keys = [u["fields"]["key"] for u in created["uploads"]]
    for start in range(0, len(keys), 10):
        assert flow.deliver(*[s3_body(k) for k in keys[start:start + 10]]) == {"batchItemFailures": []}
    batch = flow.batch(created["batch"]["id"])
    jobs = {j["file_name"]: j for j in batch["jobs"]}
    for row in rows:
        job = jobs[Path(row["file"]).name]
        if row["what_a_robust_service_should_do"] == "process":
            assert job["status"] == "completed", (row["file"], job["error"])
            assert job["outputs"][0]["format"] == "jpeg"
        else:
            assert job["status"] == "failed", row["file"]
            assert job["error"]["code"] in CODES and job["error"]["message"], (row["file"], job["error"])
            assert "Traceback" not in job["error"]["message"]
    expected_ok = sum(r["what_a_robust_service_should_do"] == "process" for r in rows)
    assert batch["progress"]["succeeded"] == expected_ok
    assert batch["progress"]["failed"] == len(rows) - expected_ok
    assert batch["status"] == "completed_with_errors"
    listed = aws.s3.list_objects_v2(Bucket=aws.settings.bucket, Prefix="outputs/").get("Contents", [])
    previews = {o["Key"] for o in listed if o["Key"].endswith("/preview.webp")}
    assert len(listed) - len(previews) == expected_ok  # failed files leave no partial output behind
    # a preview beside every completed job's outputs, recorded on the job; none for failed ones
    assert len(previews) == expected_ok
    for job in aws.repository.all_jobs(created["batch"]["id"]):
        if job["status"] == "completed":
            assert job["preview"]["key"] in previews and job["preview"]["format"] == "webp", job["file_name"]
            assert 1 <= max(job["preview"]["width"], job["preview"]["height"]) <= 320
        else:
            assert job["preview"] is None
