"""chalicelib/openapi.json (served at GET /openapi.json) is a valid OpenAPI 3 document that
describes exactly the routes app.py registers: every route, no route that does not exist."""
from __future__ import annotations

import json

import pytest
from openapi_spec_validator import validate

from deploy_support import ROOT

SPEC_FILE = ROOT / "chalicelib" / "openapi.json"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture(scope="module")
def spec() -> dict:
    return json.loads(SPEC_FILE.read_text())


def test_the_spec_is_valid_openapi_3(spec):
    assert spec["openapi"].startswith("3.")
    validate(spec)


def test_the_validator_rejects_a_broken_spec(spec):
    broken = json.loads(json.dumps(spec))
    broken["paths"]["/pipelines"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] = {
        "$ref": "#/components/schemas/NoSuchSchema"}
    with pytest.raises(Exception):
        validate(broken)


def test_every_route_is_described_and_nothing_else(spec):
    from app import app
    registered = {(path, method.lower()) for path, entries in app.routes.items() for method in entries}
    described = {(path, method) for path, item in spec["paths"].items() for method in item if method in HTTP_METHODS}
    assert described == registered, {"undocumented": sorted(registered - described),
                                      "not in the app": sorted(described - registered)}


def test_security_matches_the_authorizer(spec):
    from app import app
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        **spec["components"]["securitySchemes"]["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert spec["security"] == [{"bearerAuth": []}]
    for path, entries in app.routes.items():
        for method, entry in entries.items():
            operation = spec["paths"][path][method.lower()]
            public = operation.get("security") == []
            assert public == (entry.authorizer is None), (path, method)
            if not public:
                assert operation["responses"]["401"] == {"$ref": "#/components/responses/Unauthorized"}


def test_errors_use_the_chalice_shape_and_the_documented_codes(spec):
    assert spec["components"]["schemas"]["Error"]["required"] == ["Code", "Message"]
    for name, response in spec["components"]["responses"].items():
        schema = response["content"]["application/json"]["schema"]
        if name == "Unauthorized":   # or API Gateway's default body, from chalice local only (see its description)
            assert schema["oneOf"][0] == {"$ref": "#/components/schemas/Error"}
        else:
            assert schema == {"$ref": "#/components/schemas/Error"}, name
    codes = {code for item in spec["paths"].values() for method, op in item.items() if method in HTTP_METHODS
             for code in op["responses"]}
    assert {"200", "201", "202", "204", "302", "400", "401", "404", "409", "413"} <= codes


def test_the_extras_beyond_api_md_are_described(spec):
    schemas = spec["components"]["schemas"]
    assert "uploads_next_cursor" in schemas["CreatedBatch"]["properties"]
    assert "/batches/{batch_id}/uploads" in spec["paths"]
    download = spec["paths"]["/batches/{batch_id}/download"]["get"]
    assert {p["name"] for p in download["parameters"]} == {"partial", "redirect"}
    assert "pipelines" in schemas["Batch"]["properties"]
    assert {"content_type", "updated_at"} <= set(schemas["Job"]["properties"])
    assert "preview" in schemas["Job"]["required"] and schemas["Preview"]["required"] == ["url", "width", "height",
                                                                                          "format"]
    results = spec["paths"]["/batches/{batch_id}/results"]["get"]
    assert {p["name"] for p in results["parameters"]} == {"format", "redirect"}
    assert {p["name"] for p in spec["paths"]["/batches/{batch_id}/contact-sheet"]["get"]["parameters"]} == {
        "part", "redirect"}


def test_the_api_serves_this_file():
    from chalice.test import Client

    from app import app
    with Client(app) as client:
        response = client.http.get("/openapi.json")
    assert response.status_code == 200
    assert json.loads(response.body) == json.loads(SPEC_FILE.read_text())


def test_both_batch_shapes_carry_the_integration_fields(spec):
    """B and B-with-jobs are separate schemas (both closed): a field added to one only would make
    every GET /batches/{id} answer violate the spec."""
    schemas = spec["components"]["schemas"]
    batch, with_jobs = schemas["Batch"], schemas["BatchWithJobs"]
    assert set(batch["properties"]) <= set(with_jobs["properties"])
    assert set(batch["required"]) <= set(with_jobs["required"])
    for name in ("metadata", "dropbox_directory_id", "monday_item_id", "auto_upload_enabled", "monday_sync_enabled"):
        assert name in batch["required"]
