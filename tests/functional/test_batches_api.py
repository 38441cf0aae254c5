import base64
import json
import unicodedata
from datetime import datetime, timezone

import pytest

from tests.functional.conftest import files


def create(api, pipeline, names=("PL_DXB191_Front.png", "PL_DXB191_Back.png", "PL_DXB191_Side.png"), **extra):
    body = {"pipeline_ids": [pipeline["id"]], "files": files(*names), **extra}
    r = api.post("/batches", body)
    assert r.status_code == 201, r.data
    return r.data


def test_create_batch_names_counts_and_uploads(api, pipeline):
    data = create(api, pipeline)
    b = data["batch"]
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert b["customer_prefix"] == "PL_DXB"
    assert b["batch_date"] == today and b["batch_counter"] == 1
    assert b["base_directory_name"] == f"PL_DXB_{today}_batch-1"
    assert b["description"] == "3-view Render"
    assert b["status"] == "queued" and b["owner"] == "alice"
    assert b["total_files"] == 3 and b["total_size"] == 3000 and b["total_pipelines"] == 1
    assert b["progress"] == {"uploaded": 0, "succeeded": 0, "failed": 0, "cancelled": 0, "percent": 0}
    assert b["started_at"] is None and b["completed_at"] is None
    assert b["sample_file_names"] == ["PL_DXB191_Front.png", "PL_DXB191_Back.png", "PL_DXB191_Side.png"]
    assert b["pipelines"][0]["name"] == "web"
    assert [u["file_name"] for u in data["uploads"]] == b["sample_file_names"]
    assert data["uploads_next_cursor"] is None
    second = create(api, pipeline)["batch"]
    assert second["base_directory_name"] == f"PL_DXB_{today}_batch-2"
    other = create(api, pipeline, names=("AB_CD1.png",))["batch"]
    assert other["base_directory_name"] == f"AB_CD_{today}_batch-1"
    assert other["description"] == "1 file"


def test_explicit_prefix_and_description_win(api, pipeline):
    b = create(api, pipeline, customer_prefix="Acme", description="Spring lookbook")["batch"]
    assert b["customer_prefix"] == "Acme" and b["description"] == "Spring lookbook"
    assert b["base_directory_name"].startswith("Acme_")
    assert create(api, pipeline, names=("photo.jpg",))["batch"]["customer_prefix"] == "MISC"


def test_counter_is_per_owner(api, pipeline):
    create(api, pipeline)
    bob_pipeline = api.post("/pipelines", {"name": "p", "format": "png"}, token="token-bob").data["pipeline"]
    r = api.post("/batches", {"pipeline_id": bob_pipeline["id"], "files": files("PL_DXB1_a.png")}, token="token-bob")
    assert r.status_code == 201 and r.data["batch"]["batch_counter"] == 1


def _policy(upload):
    return json.loads(base64.b64decode(upload["fields"]["policy"]))


def test_presigned_post_policy_pins_key_size_type_and_expiry(api, pipeline):
    data = api.post("/batches", {"pipeline_id": pipeline["id"], "files": [
        {"name": "PL_DXB1_A.png", "size": 1234567, "content_type": "image/png"}]}).data
    upload, batch = data["uploads"][0], data["batch"]
    fields = upload["fields"]
    assert upload["method"] == "POST"
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"  # SigV4, not SigV2
    assert fields["key"] == f"uploads/{batch['id']}/{upload['job_id']}/PL_DXB1_A.png"
    policy = _policy(upload)
    conditions = policy["conditions"]
    assert {"key": fields["key"]} in conditions
    assert ["content-length-range", 1234567, 1234567] in conditions
    assert {"Content-Type": "image/png"} in conditions
    assert {"bucket": "imgbatch-local"} in conditions
    expiry = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    created = datetime.strptime(batch["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert 3590 <= (expiry - created).total_seconds() <= 3610
    assert upload["expires_at"] == batch["upload_expires_at"]
    # no starts-with wildcard that would let a client write elsewhere
    assert not any(isinstance(c, list) and c[0] == "starts-with" for c in conditions)


def test_a_batch_over_50_gb_gets_an_hour_per_50_gb_begun_to_upload_in(api, pipeline):
    def window(data) -> float:
        batch = data["batch"]
        created, ends = (datetime.strptime(batch[k], "%Y-%m-%dT%H:%M:%SZ") for k in ("created_at", "upload_expires_at"))
        assert {u["expires_at"] for u in data["uploads"]} == {batch["upload_expires_at"]}
        return (ends - created).total_seconds()
    small = api.post("/batches", {"pipeline_id": pipeline["id"], "files": files("PL_W1_a.png")}).data
    assert window(small) == 3600
    big = api.post("/batches", {"pipeline_id": pipeline["id"],
                                "files": files(*[f"PL_W2_{i}.tif" for i in range(11)], size=5 * 1000 ** 3)}).data
    assert window(big) == 2 * 3600   # 55 GB: 11 uploads in parts, all with the longer deadline


def test_pipeline_snapshot_survives_edit_and_delete(api, pipeline):
    b = create(api, pipeline)["batch"]
    api.put(f"/pipelines/{pipeline['id']}", {"name": "renamed", "format": "png", "width": 10})
    api.delete(f"/pipelines/{pipeline['id']}")
    got = api.get(f"/batches/{b['id']}").data["batch"]
    assert got["pipelines"][0]["name"] == "web" and got["pipelines"][0]["width"] == 800


NFC = unicodedata.normalize("NFC", "Caf\u00e9.png")
NFD = unicodedata.normalize("NFD", "Caf\u00e9.png")


@pytest.mark.parametrize("body, status, fragment", [
    ({"files": files("a.png")}, 400, "pipeline_ids is required"),
    ({"pipeline_ids": "x", "files": files("a.png")}, 400, "pipeline_ids must be an array"),
    ({"pipeline_ids": [], "files": files("a.png")}, 400, "at least one pipeline"),
    ({"pipeline_ids": ["PIPE"]}, 400, "files is required"),
    ({"pipeline_ids": ["PIPE"], "files": []}, 400, "at least one file"),
    ({"pipeline_ids": ["PIPE"], "files": {"a": 1}}, 400, "files must be an array"),
    ({"pipeline_ids": ["PIPE"], "files": ["a.png"]}, 400, "files[0] must be an object"),
    ({"pipeline_ids": ["PIPE"], "files": [{"name": "a.png", "size": "10"}]}, 400, "size must be an integer"),
    ({"pipeline_ids": ["PIPE"], "files": [{"name": "a.png", "size": 0}]}, 400, "at least 1 byte"),
    ({"pipeline_ids": ["PIPE"], "files": [{"name": 5, "size": 1}]}, 400, "files[0].name must be a string"),
    ({"pipeline_ids": ["PIPE"], "files": files("../etc/passwd.png")}, 400, "without path parts"),
    ({"pipeline_ids": ["PIPE"], "files": files("dir\\a.png")}, 400, "without path parts"),
    ({"pipeline_ids": ["PIPE"], "files": files("a\x00b.png")}, 400, "control character (U+0000)"),
    ({"pipeline_ids": ["PIPE"], "files": files("evil\u202egnp.exe")}, 400, "control character (U+202E)"),
    ({"pipeline_ids": ["PIPE"], "files": files("a" * 296 + ".png")}, 400, "longer than 255 bytes"),
    ({"pipeline_ids": ["PIPE"], "files": files(".hidden.png")}, 400, "must not start with '.'"),
    ({"pipeline_ids": ["PIPE"], "files": files("  ")}, 400, "is empty"),
    ({"pipeline_ids": ["PIPE"], "files": files("a.png", "b.png", "a.png")}, 400, "duplicate file name 'a.png'"),
    ({"pipeline_ids": ["PIPE"], "files": files(NFC, NFD)}, 400, "duplicate file name"),
    ({"pipeline_ids": ["PIPE"], "files": files("A.png", "a.PNG")}, 400, "duplicate file name"),
    ({"pipeline_ids": ["PIPE"], "files": files("a.png", content_type="application/pdf")}, 400,
     "'application/pdf' is not a supported image type"),
    ({"pipeline_ids": ["PIPE"], "files": files("a.psd", content_type="")}, 400, "cannot tell the image type"),
    ({"pipeline_ids": ["PIPE"], "files": files("a.png"), "extra": 1}, 400, "unknown field(s): extra"),
    ({"pipeline_ids": ["PIPE"], "files": files("a.png"), "customer_prefix": "A B"}, 400, "customer_prefix must be"),
    ({"pipeline_ids": ["PIPE"], "files": files("a.png"), "description": 7}, 400, "description must be a string"),
    ({"pipeline_ids": ["nope"], "files": files("a.png")}, 400, "unknown pipeline id(s): nope"),
    ({"pipeline_ids": ["PIPE"], "files": [{"name": "a.png", "size": 5 * 1024 ** 3 + 1}]}, 413, "per-file limit"),
    ({"pipeline_ids": ["PIPE"], "files": files(*[f"f{i}.png" for i in range(100_001)])}, 413,
     "at most 100000 files"),
])
def test_bad_input_is_rejected_and_nothing_is_written(api, pipeline, body, status, fragment):
    body = json.loads(json.dumps(body).replace("PIPE", pipeline["id"]))
    r = api.post("/batches", body)
    assert r.status_code == status, r.data
    assert fragment in r.data["Message"], r.data["Message"]
    assert api.get("/batches").data["batches"] == []
    assert api.get("/batches/stats").data["total_batches"] == 0
    # and no counter was consumed by the failed attempt
    assert create(api, pipeline)["batch"]["batch_counter"] == 1


def test_batch_size_limit_is_413(api, pipeline, aws, monkeypatch):
    from dataclasses import replace
    from chalicelib.domain.batches import Limits
    monkeypatch.setattr(aws.batches, "settings", replace(aws.settings, limits=Limits(max_batch_size=1500)))
    r = api.post("/batches", {"pipeline_id": pipeline["id"], "files": files("a.png", "b.png")})
    assert r.status_code == 413 and "over the batch limit of 1500 bytes" in r.data["Message"]


@pytest.mark.parametrize("raw, fragment", [
    (b"{", "not valid JSON"), (b"", "request body is empty"), (b"[1]", "must be a JSON object"),
    (b"\xff\xfe", "not valid JSON"),
])
def test_malformed_bodies(api, raw, fragment):
    r = api.post("/batches", raw=raw)
    assert r.status_code == 400 and fragment in r.data["Message"]


def test_get_batch_pages_jobs_in_file_order(api, pipeline):
    names = [f"PL_DXB1_{i:02d}.png" for i in range(7)]
    b = create(api, pipeline, names=names)["batch"]
    seen, cursor = [], None
    while True:
        path = f"/batches/{b['id']}?jobs_limit=3" + (f"&jobs_cursor={cursor}" if cursor else "")
        got = api.get(path).data["batch"]
        seen += [j["file_name"] for j in got["jobs"]]
        assert all(j["status"] == "awaiting_upload" and j["error"] is None for j in got["jobs"])
        cursor = got["jobs_next_cursor"]
        if not cursor:
            break
    assert seen == names
    assert api.get(f"/batches/{b['id']}?jobs_cursor=garbage").status_code == 400
    assert api.get(f"/batches/{b['id']}?jobs_limit=0").status_code == 400


def test_list_filters_sorts_searches_and_pages(api, pipeline):
    a = create(api, pipeline, names=("AA_XX1_a.png",), description="Summer shoot")["batch"]
    b = create(api, pipeline, names=("BB_YY1_a.png", "BB_YY1_b.png", "BB_YY1_c.png"))["batch"]
    c = create(api, pipeline, names=("AA_XX2_a.png", "AA_XX2_b.png"))["batch"]
    ids = lambda r: [x["id"] for x in r.data["batches"]]
    assert ids(api.get("/batches")) == [c["id"], b["id"], a["id"]]
    assert ids(api.get("/batches?sort_order=asc")) == [a["id"], b["id"], c["id"]]
    assert ids(api.get("/batches?sort_by=total_files")) == [b["id"], c["id"], a["id"]]
    assert ids(api.get("/batches?sort_by=total_files&sort_order=asc")) == [a["id"], c["id"], b["id"]]
    assert ids(api.get("/batches?customer_prefix=AA_XX")) == [c["id"], a["id"]]
    assert ids(api.get("/batches?status=queued&customer_prefix=BB_YY")) == [b["id"]]
    assert ids(api.get("/batches?status=completed")) == []
    assert ids(api.get("/batches?search=summer")) == [a["id"]]
    assert ids(api.get("/batches?search=bb_yy")) == [b["id"]]
    assert set(ids(api.get("/batches?sort_by=status"))) == {a["id"], b["id"], c["id"]}
    first = api.get("/batches?limit=2")
    assert ids(first) == [c["id"], b["id"]] and first.data["next_cursor"]
    rest = api.get(f"/batches?limit=2&cursor={first.data['next_cursor']}")
    assert ids(rest) == [a["id"]] and rest.data["next_cursor"] is None
    # a cursor belongs to its query
    assert api.get(f"/batches?limit=2&sort_by=total_files&cursor={first.data['next_cursor']}").status_code == 400
    assert api.get("/batches", token="token-bob").data["batches"] == []


@pytest.mark.parametrize("query, fragment", [
    ("status=done", "status must be one of"), ("sort_by=name", "sort_by must be one of"),
    ("sort_order=up", "sort_order must be one of"), ("limit=201", "between 1 and 200"),
    ("limit=abc", "limit must be an integer"), ("cursor=%%%", "cursor is not valid"),
])
def test_list_rejects_bad_parameters(api, query, fragment):
    r = api.get(f"/batches?{query}")
    assert r.status_code == 400 and fragment in r.data["Message"]


def test_stats_from_aggregates(api, pipeline):
    create(api, pipeline, names=("a.png",))
    create(api, pipeline, names=("b.png", "c.png", "d.png"))
    s = api.get("/batches/stats").data
    assert s == {"total_batches": 2, "queued": 2, "processing": 0, "completed": 0, "completed_with_errors": 0,
                 "failed": 0, "cancelled": 0, "total_files_all_time": 4, "avg_files_per_batch": 2.0,
                 "max_files_in_batch": 3}
    assert api.get("/batches/stats", token="token-bob").data["total_batches"] == 0


def test_jobs_grouped_and_by_status(api, pipeline):
    b = create(api, pipeline, names=("a.png", "b.png"))["batch"]
    assert api.get("/jobs?grouped=true").data == api.get("/batches").data
    flat = api.get("/jobs?status=awaiting_upload").data
    assert sorted(j["file_name"] for j in flat["jobs"]) == ["a.png", "b.png"]
    assert all(j["batch_id"] == b["id"] for j in flat["jobs"])
    assert api.get("/jobs?status=failed").data["jobs"] == []
    assert api.get("/jobs").status_code == 400
    assert api.get("/jobs?status=weird").status_code == 400
    assert api.get("/jobs?status=awaiting_upload", token="token-bob").data["jobs"] == []


def test_get_job_with_batch_context(api, pipeline):
    data = create(api, pipeline, names=("a.png",))
    job_id = data["uploads"][0]["job_id"]
    job = api.get(f"/jobs/{job_id}").data["job"]
    assert job["id"] == job_id and job["batch_id"] == data["batch"]["id"]
    assert job["base_directory_name"] == data["batch"]["base_directory_name"]
    assert api.get(f"/jobs/{job_id}", token="token-bob").status_code == 404
    assert api.get("/jobs/not-a-uuid").status_code == 404


def test_delete_removes_records_objects_and_aggregates(api, pipeline, aws):
    data = create(api, pipeline, names=("a.png", "b.png"))
    keep = create(api, pipeline, names=("c.png",))["batch"]
    bid = data["batch"]["id"]
    for prefix in ("uploads", "outputs", "archives"):
        aws.s3.put_object(Bucket=aws.settings.bucket, Key=f"{prefix}/{bid}/x", Body=b"1")
    aws.s3.put_object(Bucket=aws.settings.bucket, Key=f"uploads/{keep['id']}/x", Body=b"1")
    assert api.delete(f"/batches/{bid}", token="token-bob").status_code == 404
    r = api.delete(f"/batches/{bid}")
    assert r.status_code == 204
    assert api.get(f"/batches/{bid}").status_code == 404
    assert api.delete(f"/batches/{bid}").status_code == 404
    assert api.get(f"/jobs/{data['uploads'][0]['job_id']}").status_code == 404
    listed = aws.s3.list_objects_v2(Bucket=aws.settings.bucket).get("Contents", [])
    assert [o["Key"] for o in listed] == [f"uploads/{keep['id']}/x"]
    s = api.get("/batches/stats").data
    assert s["total_batches"] == 1 and s["queued"] == 1 and s["max_files_in_batch"] == 1
    assert [b["id"] for b in api.get("/batches").data["batches"]] == [keep["id"]]


def test_other_owner_gets_404_on_every_batch_route(api, pipeline):
    data = create(api, pipeline, names=("a.png",))
    bid = data["batch"]["id"]
    for method, path in (("GET", f"/batches/{bid}"), ("DELETE", f"/batches/{bid}"),
                         ("GET", f"/batches/{bid}/uploads"), ("GET", f"/jobs/{data['uploads'][0]['job_id']}")):
        r = api.call(method, path, token="token-bob")
        assert r.status_code == 404 and r.data["Code"] == "NotFoundError", (method, path)
    # bob cannot use alice's pipeline either
    r = api.post("/batches", {"pipeline_id": pipeline["id"], "files": files("a.png")}, token="token-bob")
    assert r.status_code == 400 and "unknown pipeline" in r.data["Message"]
    assert api.get(f"/batches/{bid}").status_code == 200


@pytest.mark.parametrize("token", [None, "not-a-token"])
def test_every_protected_route_needs_a_token(api, token):
    routes = [("GET", "/batches"), ("POST", "/batches"), ("GET", "/batches/stats"), ("GET", "/batches/x"),
              ("DELETE", "/batches/x"), ("GET", "/batches/x/uploads"), ("GET", "/jobs"), ("GET", "/jobs/x")]
    for method, path in routes:
        r = api.call(method, path, {}, token=token)
        assert r.status_code == 401, (method, path)
        assert r.data["Code"] == "UnauthorizedError" and "Bearer" in r.data["Message"], r.data
    assert api.get("/health", token=token).status_code == 200


def test_large_batch_uploads_come_in_pages(api, pipeline):
    n = 1100
    r = api.post("/batches", {"pipeline_id": pipeline["id"], "files": files(*[f"PL_DXB{i}_x.png" for i in range(n)])})
    assert r.status_code == 201
    data = r.data
    assert len(data["uploads"]) == 1000 and data["uploads_next_cursor"]
    bid, keys = data["batch"]["id"], {u["fields"]["key"] for u in data["uploads"]}
    cursor = data["uploads_next_cursor"]
    while cursor:
        page = api.get(f"/batches/{bid}/uploads?cursor={cursor}").data
        keys |= {u["fields"]["key"] for u in page["uploads"]}
        cursor = page["next_cursor"]
    assert len(keys) == n
    assert api.get(f"/batches/{bid}").data["batch"]["total_files"] == n
