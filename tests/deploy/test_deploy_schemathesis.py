"""Property-based API testing with schemathesis against the running local stack, driven by the
spec the stack itself serves at GET /openapi.json.

Every operation of the spec gets a bounded number of generated requests, from valid inputs
(positive) and from inputs that break the schema (negative), authenticated through the spec's
bearerAuth scheme with the e2e token.
Each response passes schemathesis' default checks: no 5xx, only documented status codes,
bodies matching their schemas, documented content types and headers, invalid input rejected,
and 401 when the same request goes without the token.

(schemathesis' own pytest plugin, `schema.parametrize()`, needs `Node._nodeid`, which pytest 9
removed; the same cases run here through schemathesis' Python API, one test per operation.)
"""
from __future__ import annotations

import json
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from deploy_support import ROOT
from e2e.conftest import TOKEN

pytestmark = pytest.mark.e2e
# per operation and mode; raise it for a deeper run: IMGBATCH_SCHEMATHESIS_EXAMPLES=200 make test
MAX_EXAMPLES = int(os.environ.get("IMGBATCH_SCHEMATHESIS_EXAMPLES", "12"))
# Excluded: positive_data_acceptance ("every schema-valid request gets 2xx"). This API rightly
# answers 400 to schema-valid requests whose problem no schema can state: a pipeline id that does
# not exist, an opaque cursor that was not issued for this query, GET /jobs with neither
# grouped=true nor a status, a file whose type cannot be told from its name. Such 400s still
# have to be documented and well-formed (status_code_conformance, response_schema_conformance),
# and a 5xx still fails (not_a_server_error).
EXCLUDED = [positive_data_acceptance]
SPEC = json.loads((ROOT / "chalicelib" / "openapi.json").read_text())
OPERATIONS = [(method.upper(), path) for path, item in SPEC["paths"].items() for method in item
              if method in ("get", "put", "post", "delete", "patch")]
# A schema-valid webhook URL may name a public host, and the stack would then deliver events to
# it: the suite never sends traffic off this machine. Invalid webhook bodies are still generated,
# and test_a_real_batch_conforms_along_its_whole_life covers the webhook routes with a receiver on
# 127.0.0.1.
NO_VALID_CASES = {("POST", "/webhooks"), ("PUT", "/webhooks/{webhook_id}")}


@pytest.fixture(scope="module")
def api_schema(stack):
    config = schemathesis.Config.from_dict({
        # the token goes through the spec's bearerAuth scheme, so negative cases can also drop it
        "auth": {"openapi": {"bearerAuth": {"bearer": TOKEN}}},
        # Undeclared query parameters are not a schema violation in OpenAPI; like API Gateway,
        # the API ignores them, so "extra parameter accepted" is not a failure here.
        "generation": {"allow-extra-parameters": False},
    })
    return schemathesis.openapi.from_url(f"{stack.url}/openapi.json", config=config)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_api_conforms_to_its_spec(api_schema, stack, method, path, mode):
    if mode is GenerationMode.POSITIVE and (method, path) in NO_VALID_CASES:
        pytest.skip("valid webhook URLs may be public hosts; see NO_VALID_CASES")
    operation = api_schema[path][method]

    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case):
        case.call_and_validate(base_url=stack.url, timeout=30, excluded_checks=EXCLUDED)

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.NEGATIVE:
            pytest.skip("the schema leaves nothing to violate for this operation")
        raise


def test_a_real_batch_conforms_along_its_whole_life(api_schema, stack):
    """Random ids mostly meet 404s; here real data goes through every operation, and each response
    is checked against the spec the same way (batch, job, upload, archive and redirect shapes)."""
    import io
    import time
    import uuid

    from PIL import Image

    from e2e.conftest import upload

    def call(method, path, path_parameters=None, query=None, body=None, expect=None):
        operation = api_schema[path][method]
        kwargs = {"path_parameters": path_parameters or {}, "query": query or {}}
        if body is not None:
            kwargs.update(body=body, media_type="application/json")
        response = operation.Case(**kwargs).call_and_validate(
            base_url=stack.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30, excluded_checks=EXCLUDED,
            allow_redirects=False)
        assert expect is None or response.status_code == expect, (method, path, response.status_code, response.text)
        return response

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (9, 99, 199)).save(buf, "PNG")
    png = buf.getvalue()
    pipeline = call("POST", "/pipelines", body={"name": f"spec-{uuid.uuid4()}", "format": "jpeg", "width": 20},
                    expect=201).json()["pipeline"]
    call("PUT", "/pipelines/{pipeline_id}", {"pipeline_id": pipeline["id"]}, body=pipeline, expect=200)
    created = call("POST", "/batches", body={"pipeline_ids": [pipeline["id"]], "files": [
        {"name": "SP_EC_Front.png", "size": len(png), "content_type": "image/png"},
        {"name": "SP_EC_Back.png", "size": len(png), "content_type": "image/png"}]}, expect=201).json()
    batch_id = created["batch"]["id"]
    ids = {"batch_id": batch_id}
    assert upload(created["uploads"][0], png).status_code in (200, 204)
    deadline = time.monotonic() + 60
    while True:
        batch = call("GET", "/batches/{batch_id}", ids, expect=200).json()["batch"]
        done = [j for j in batch["jobs"] if j["status"] == "completed"]
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert done, batch
    job = {"job_id": done[0]["id"]}
    call("GET", "/batches/{batch_id}/uploads", ids, expect=200)
    call("GET", "/jobs/{job_id}", job, expect=200)
    call("GET", "/jobs/{job_id}/download", job, expect=302)
    call("GET", "/jobs/{job_id}/download", job, query={"redirect": "false"}, expect=200)
    call("GET", "/batches/{batch_id}/download", ids, expect=409)
    call("GET", "/batches/{batch_id}/download", ids, query={"partial": "true", "redirect": "false"}, expect=200)
    call("GET", "/batches/{batch_id}/download", ids, query={"partial": "true"}, expect=302)
    for query in ({}, {"status": "processing"}, {"customer_prefix": "SP_EC", "sort_by": "status"}, {"search": "sp_ec"}):
        call("GET", "/batches", query=query, expect=200)
    call("GET", "/batches/stats", expect=200)
    call("GET", "/jobs", query={"status": "completed"}, expect=200)
    call("GET", "/jobs", query={"grouped": "true"}, expect=200)
    call("PATCH", "/batches/{batch_id}", ids, body={"metadata": {"order": "A-1"}, "monday_item_id": "7"}, expect=200)
    from tests.receiver import Receiver
    with Receiver() as receiver:
        created_hook = call("POST", "/webhooks", body={"url": receiver.url, "events": ["*"]}, expect=201).json()
        hook = {"webhook_id": created_hook["webhook"]["id"]}
        call("GET", "/webhooks", expect=200)
        call("GET", "/webhooks/{webhook_id}", hook, expect=200)
        call("PUT", "/webhooks/{webhook_id}", hook, body={"url": receiver.url, "active": True}, expect=200)
        delivery = call("POST", "/webhooks/{webhook_id}/ping", hook, expect=202).json()["delivery"]
        call("POST", "/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
             {**hook, "delivery_id": delivery["id"]}, expect=202)
        receiver.wait_for(2)
        call("GET", "/webhooks/{webhook_id}/deliveries", hook, query={"limit": "1"}, expect=200)
        call("DELETE", "/webhooks/{webhook_id}", hook, expect=204)
    call("POST", "/batches/{batch_id}/cancel", ids, expect=200)
    call("POST", "/batches/{batch_id}/cancel", ids, expect=409)
    call("POST", "/batches/{batch_id}/retry", ids, expect=409)
    call("DELETE", "/batches/{batch_id}", ids, expect=204)
    call("GET", "/batches/{batch_id}", ids, expect=404)
    call("DELETE", "/pipelines/{pipeline_id}", {"pipeline_id": pipeline["id"]}, expect=204)
