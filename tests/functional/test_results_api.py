"""GET /batches/{id}/results?format=csv|xlsx|json: staged in S3, read back with csv, openpyxl and
json, and checked row by row against the batch, hostile names included."""
from __future__ import annotations

import csv
import io
from urllib.parse import unquote, urlsplit

import openpyxl
import pytest
import requests

from tests import images
from tests.functional.test_processing import Flow

# Names a spreadsheet would run as formulas if they were written as they are.
HOSTILE = ['=HYPERLINK("https:evil.test","open").png', "+SUM(1,2).png", "-2+3.png", "@cmd.png"]
PLAIN = ["PL_RES1_Front.png", "Ünïcødé 名前, \"quoted\".png"]
COLUMNS = ["file", "size", "status", "error_code", "error_message", "pipeline", "output_name", "format", "width",
           "height", "bytes", "started_at", "completed_at"]


@pytest.fixture
def batch(api, aws):
    """Eight files through two pipelines: six good (four hostile names), one not an image, one never sent."""
    web = api.post("/pipelines", {"name": "web", "format": "jpeg", "width": 40}).data["pipeline"]
    square = api.post("/pipelines", {"name": "=square", "format": "png", "width": 16, "height": 16, "fit": "pad",
                                     "filename": "{stem}_{width}x{height}.{ext}"}).data["pipeline"]
    flow = Flow(api, aws, [web, square])
    data = {name: images.png((80, 60)) for name in HOSTILE + PLAIN}
    data["broken.png"] = b"not an image"
    created = flow.create({**data, "never.png": images.png((8, 8))})
    flow.upload(created, data)
    b = flow.batch(created["batch"]["id"])
    assert b["status"] == "processing" and b["progress"]["succeeded"] == 6 and b["progress"]["failed"] == 1
    return b


def expected_rows(batch) -> list[dict]:
    """What the batch itself says, one row per file and pipeline, in file order."""
    rows = []
    for job in batch["jobs"]:
        outputs = {o["pipeline_id"]: o for o in job["outputs"]}
        for p in batch["pipelines"]:
            out = outputs.get(p["id"])
            rows.append({"file": job["file_name"], "size": job["size"], "status": job["status"],
                         "error_code": job["error"]["code"] if job["error"] else None,
                         "error_message": job["error"]["message"] if job["error"] else None,
                         "pipeline": p["name"], "format": out["format"] if out else None,
                         "width": out["width"] if out else None, "height": out["height"] if out else None,
                         "bytes": out["size"] if out else None, "started_at": job["started_at"],
                         "completed_at": job["completed_at"]})
    return rows


def fetch(api, bid, fmt):
    r = api.get(f"/batches/{bid}/results?format={fmt}")
    assert r.status_code == 302, r.data
    url = r.headers["location"]
    got = requests.get(url, timeout=10)
    assert got.status_code == 200
    return got, unquote(urlsplit(url).path)


def zip_names(api, bid) -> dict:
    """The output names the ZIP's manifest gives, by (file, pipeline)."""
    import zipfile
    r = api.get(f"/batches/{bid}/download?partial=true&redirect=false")
    archive = zipfile.ZipFile(io.BytesIO(requests.get(r.data["url"], timeout=10).content))
    manifest = [n for n in archive.namelist() if n.endswith("/manifest.csv")][0]
    rows = csv.DictReader(io.StringIO(archive.read(manifest).decode("utf-8-sig")))
    unquote_cell = lambda v: v[1:] if v.startswith("'") else v  # noqa: E731  (the manifest's own guard)
    return {(unquote_cell(r["file"]), unquote_cell(r["pipeline"])): unquote_cell(r["output name"])
            for r in rows if r["output name"]}


def guard(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def test_csv_row_by_row_with_formula_guards(api, batch):
    got, path = fetch(api, batch["id"], "csv")
    assert path.endswith(f"/{batch['base_directory_name']}-results.csv")
    assert "attachment" in got.headers["content-disposition"]
    assert got.content.startswith(b"\xef\xbb\xbf") and b"\r\n" in got.content
    reader = csv.reader(io.StringIO(got.content.decode("utf-8-sig")))
    header, *rows = list(reader)
    assert header == COLUMNS
    expected = expected_rows(batch)
    assert len(rows) == len(expected) == 16
    names = zip_names(api, batch["id"])
    for row, want in zip(rows, expected):
        cells = dict(zip(COLUMNS, row))
        for column in ("file", "pipeline", "error_message"):
            assert cells[column] == guard(want[column] or ""), (column, cells)
        for column in ("size", "width", "height", "bytes"):
            assert cells[column] == ("" if want[column] is None else str(want[column]))
        for column in ("status", "error_code", "format", "started_at", "completed_at"):
            assert cells[column] == (want[column] or "")
        assert cells["output_name"] == guard(names.get((want["file"], want["pipeline"]), ""))
    assert not [r for r in rows if r[0].startswith(("=", "+", "-", "@"))]
    # the template pipeline's names, as in the ZIP (and guarded: they start with its "=square" folder)
    assert dict(zip(COLUMNS, rows[1]))["output_name"] == "'=square/=HYPERLINK(_https_evil.test_,_open_)_16x16.png"


def test_xlsx_opens_in_openpyxl_with_typed_cells_and_no_formula(api, batch):
    got, path = fetch(api, batch["id"], "xlsx")
    assert path.endswith("-results.xlsx")
    assert got.headers["content-type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    book = openpyxl.load_workbook(io.BytesIO(got.content))
    sheet = book.active
    values = list(sheet.iter_rows(values_only=True))
    assert list(values[0]) == COLUMNS
    expected = expected_rows(batch)
    assert len(values) - 1 == len(expected)
    names = zip_names(api, batch["id"])
    for row, want in zip(values[1:], expected):
        cells = dict(zip(COLUMNS, row))
        want = {**want, "output_name": names.get((want["file"], want["pipeline"]))}
        assert cells == want   # exact values, numbers as numbers, empty cells for nothing
    types = {cell.data_type for r in sheet.iter_rows(min_row=2) for cell in r if cell.value is not None}
    assert types == {"s", "n"}   # text and numbers, never a formula ("f")
    assert sheet["A2"].value == HOSTILE[0] and sheet["A2"].data_type == "s"
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == f"A1:M{len(values)}"


def test_json_carries_exact_values_and_nulls(api, batch):
    got, path = fetch(api, batch["id"], "json")
    assert path.endswith("-results.json")
    body = got.json()
    assert body["batch"] == {"id": batch["id"], "base_directory_name": batch["base_directory_name"],
                             "status": batch["status"], "total_files": 8}
    assert body["columns"] == COLUMNS
    names = zip_names(api, batch["id"])
    assert body["results"] == [{**w, "output_name": names.get((w["file"], w["pipeline"]))}
                               for w in expected_rows(batch)]
    assert body["results"][0]["file"] == HOSTILE[0]


def test_redirect_false_answers_the_url_and_unchanged_batches_reuse_the_file(api, aws, batch):
    first = api.get(f"/batches/{batch['id']}/results?format=csv&redirect=false")
    assert first.status_code == 200
    assert set(first.data) == {"url", "file_name", "expires_at", "size"}
    assert first.data["file_name"] == f"{batch['base_directory_name']}-results.csv"
    second = api.get(f"/batches/{batch['id']}/results?redirect=false")   # csv is the default
    assert second.data["size"] == first.data["size"]
    stored = aws.s3.list_objects_v2(Bucket=aws.settings.bucket, Prefix=f"archives/{batch['id']}/")["Contents"]
    assert [o["Key"].rsplit("/", 1)[1] for o in stored] == [first.data["file_name"]]
    api.delete(f"/batches/{batch['id']}")
    assert "Contents" not in aws.s3.list_objects_v2(Bucket=aws.settings.bucket, Prefix=f"archives/{batch['id']}/")


def test_bad_format_and_other_owners(api, batch):
    r = api.get(f"/batches/{batch['id']}/results?format=xls")
    assert r.status_code == 400 and r.data["Message"] == "format must be one of: csv, xlsx, json; got 'xls'"
    assert api.get(f"/batches/{batch['id']}/results", token="token-bob").status_code == 404
    assert api.get(f"/batches/{batch['id']}/results", token=None).status_code == 401
    assert api.get("/batches/not-a-uuid/results").status_code == 404


def test_results_are_available_while_nothing_is_finished(api, aws):
    web = api.post("/pipelines", {"name": "web", "format": "jpeg"}).data["pipeline"]
    created = api.post("/batches", {"pipeline_id": web["id"], "files": [
        {"name": "a.png", "size": 10, "content_type": "image/png"}]}).data
    r = api.get(f"/batches/{created['batch']['id']}/results?format=json&redirect=false")
    body = requests.get(r.data["url"], timeout=10).json()
    assert [(row["file"], row["status"], row["output_name"]) for row in body["results"]] == [
        ("a.png", "awaiting_upload", None)]
