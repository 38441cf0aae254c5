"""Hostile input at the HTTP edge (issue 11, items 4-8, 11, 14): every case answers a clear 4xx,
never a 500, and leaves nothing half-written behind."""
from __future__ import annotations

import base64
import hashlib
import json
import re
from urllib.parse import quote, urlsplit

import pytest

from chalicelib.domain.validation import MAX_JSON_DEPTH
from tests.functional.conftest import files

SURROGATE = "\ud800"


def raw_json(value) -> bytes:
    """JSON as a client may send it: a lone surrogate travels as the escape \\ud800."""
    return json.dumps(value).encode()


def create(api, pipeline, names=("a.png",), **extra):
    r = api.post("/batches", {"pipeline_id": pipeline["id"], "files": files(*names), **extra})
    assert r.status_code == 201, r.data
    return r.data


# -- 4. lone UTF-16 surrogates -------------------------------------------------------------
@pytest.mark.parametrize("field, value, named", [
    ("files", [{"name": f"a{SURROGATE}.png", "size": 10, "content_type": "image/png"}], "files[0].name"),
    ("description", f"x{SURROGATE}", "description"),
    ("customer_prefix", f"PL{SURROGATE}", "customer_prefix"),
])
def test_batch_strings_with_lone_surrogates_are_400_naming_the_field(api, pipeline, field, value, named):
    body = {"pipeline_id": pipeline["id"], "files": files("a.png"), field: value}
    r = api.post("/batches", raw=raw_json(body))
    assert r.status_code == 400, r.data
    assert r.data["Message"].startswith(named) and "surrogate (U+D800)" in r.data["Message"], r.data
    assert api.get("/batches").data["batches"] == []


@pytest.mark.parametrize("body, named", [
    ({"name": f"a{SURROGATE}", "format": "png"}, "name"),
    ({"name": "ok", "format": "png", "background": f"#ff{SURROGATE}"}, "background"),
])
def test_pipeline_strings_with_lone_surrogates_are_400_and_nothing_is_stored(api, body, named):
    r = api.post("/pipelines", raw=raw_json(body))
    assert r.status_code == 400, r.data
    assert r.data["Message"].startswith(f"{named} is not valid Unicode text"), r.data
    assert api.get("/pipelines").data["pipelines"] == []
    # the name stays free: nothing half-created holds it
    assert api.post("/pipelines", {"name": "a", "format": "png"}).status_code == 201


def test_renaming_to_a_lone_surrogate_is_400_and_the_pipeline_stays_usable(api, pipeline):
    r = api.put(f"/pipelines/{pipeline['id']}", raw=raw_json({**pipeline, "name": f"web{SURROGATE}"}))
    assert r.status_code == 400 and "surrogate" in r.data["Message"]
    assert api.get(f"/pipelines/{pipeline['id']}").data["pipeline"]["name"] == "web"
    assert api.delete(f"/pipelines/{pipeline['id']}").status_code == 204


@pytest.mark.parametrize("query", [f"search=a{SURROGATE}", f"customer_prefix=PL{SURROGATE}",
                                   f"cursor={SURROGATE}", f"x{SURROGATE}=1"])
def test_query_parameters_with_lone_surrogates_are_400(api, query):
    r = api.get(f"/batches?{query}")
    assert r.status_code == 400, r.data
    assert r.data["Message"].startswith("query parameter") and "surrogate" in r.data["Message"]


def test_a_token_with_a_lone_surrogate_is_just_unknown(api):
    r = api.get("/batches", token=f"token-alice{SURROGATE}")
    assert r.status_code == 401 and r.data["Code"] == "UnauthorizedError"


# -- 5. cursors are opaque and tamper-proof ------------------------------------------------
def forged(scope: str, key: dict) -> str:
    """A cursor in the unsigned format used before (base64 of the key and a scope hash)."""
    data = {"s": hashlib.sha256(scope.encode()).hexdigest()[:16], "k": key}
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_forged_cursors_are_400_on_every_list(api, pipeline):
    bid = create(api, pipeline)["batch"]["id"]
    nan = {"N": "NaN"}
    cases = [
        ("/batches?cursor=", forged("batches|owner|alice|created_sk|desc|",
                                    {"owner": {"S": "alice"}, "created_sk": nan, "id": {"S": bid}})),
        (f"/batches/{bid}/uploads?cursor=", forged(f"uploads|{bid}", {
            "batch_id": {"S": bid}, "job_id": {"S": "x"}, "position": nan})),
        (f"/batches/{bid}?jobs_cursor=", forged(f"jobs|{bid}", {
            "batch_id": {"S": bid}, "job_id": {"S": "x"}, "position": nan})),
        ("/jobs?status=failed&cursor=", forged("jobs-by-status|alice|failed", {
            "owner_status": {"S": "alice#failed"}, "updated_sk": nan, "batch_id": {"S": bid}, "job_id": {"S": "x"}})),
    ]
    for path, cursor in cases:
        r = api.get(path + quote(cursor))
        assert r.status_code == 400, (path, r.status_code, r.data)
        assert r.data["Message"].endswith("is not valid for this query; start again without it"), r.data


def test_a_cursor_with_a_changed_key_or_from_another_query_is_400(api, pipeline):
    for n in range(3):
        create(api, pipeline, names=(f"AA_BB{n}.png",))
    cursor = api.get("/batches?limit=1").data["next_cursor"]
    assert api.get(f"/batches?limit=1&cursor={cursor}").status_code == 200
    body, signature = cursor.split(".")
    key = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    key["created_sk"]["S"] = "9999"  # one character of the start key changed
    changed = base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":"), sort_keys=True).encode())
    assert api.get(f"/batches?limit=1&cursor={changed.decode().rstrip('=')}.{signature}").status_code == 400
    assert api.get(f"/batches?limit=1&cursor={body}").status_code == 400  # signature dropped
    assert api.get(f"/batches?limit=1&sort_order=asc&cursor={cursor}").status_code == 400
    assert api.get(f"/batches?limit=1&cursor={cursor}", token="token-bob").status_code == 400


# -- 6. deeply nested JSON -----------------------------------------------------------------
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
def test_deeply_nested_bodies_are_400(api, depth):
    for path in ("/pipelines", "/batches"):
        r = api.post(path, raw=b"[" * depth + b"]" * depth)
        assert r.status_code == 400, (path, r.data)
        assert f"more than {MAX_JSON_DEPTH} levels deep" in r.data["Message"]


def test_brackets_inside_strings_do_not_count_as_nesting(api, pipeline):
    name = "[{" * 60 + ".png"
    r = api.post("/batches", {"pipeline_id": pipeline["id"], "files": files(name)})
    assert r.status_code == 201 and r.data["batch"]["sample_file_names"] == [name]


# -- 7. static UI names --------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a" * 300 + ".js", f"a{SURROGATE}.js", "..%2Fapp.py", "nul\x00.js", "x.py"])
def test_unknown_ui_names_are_404_without_a_token(api, name):
    r = api.get(f"/ui/{name}", token=None)
    assert r.status_code == 404 and r.data["Code"] == "NotFoundError", r.data


# -- 8. security headers and CORS ----------------------------------------------------------
def test_ui_pages_carry_security_headers(api):
    for path in ("/", "/ui/app.js", "/ui/styles.css", "/ui/icon.svg"):
        r = api.client.http.get(path)
        assert r.status_code == 200, path
        headers = {k.lower(): v for k, v in r.headers.items()}
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        policy = dict(d.strip().split(" ", 1) for d in headers["content-security-policy"].split(";"))
        assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
        assert policy["frame-ancestors"] == "'none'" and policy["default-src"] == "'none'"


def test_the_policy_lets_the_browser_reach_the_presigned_urls(api, pipeline):
    r = api.client.http.get("/")
    policy = {k.lower(): v for k, v in r.headers.items()}["content-security-policy"]
    connect = dict(d.strip().split(" ", 1) for d in policy.split(";"))["connect-src"]
    upload = create(api, pipeline)["uploads"][0]["url"]
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(upload))
    assert connect.split() == ["'self'", origin]


def test_the_ui_has_no_inline_script_or_style_attribute():
    from pathlib import Path
    web = Path(__file__).resolve().parents[2] / "web"
    html = (web / "index.html").read_text()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.DOTALL)
    assert scripts and all(" src=" in attrs and not body.strip() for attrs, body in scripts), scripts
    assert "<style" not in html and " style=" not in html


def test_the_index_without_its_trailing_slash_redirects():
    """Behind API Gateway the page is /api/; /api must redirect there (no inline script does it)."""
    from app import app
    event = {"resource": "/", "path": "/", "httpMethod": "GET", "headers": {}, "multiValueHeaders": {},
             "queryStringParameters": {"x": "1"}, "multiValueQueryStringParameters": {"x": ["1"]},
             "pathParameters": None, "stageVariables": None, "body": None, "isBase64Encoded": False,
             "requestContext": {"resourcePath": "/", "httpMethod": "GET", "path": "/api", "stage": "api"}}
    response = app(event, None)
    assert response["statusCode"] == 302 and response["headers"]["Location"] == "/api/?x=1"


def test_the_api_answers_no_cors(api, pipeline):
    r = api.get("/batches", headers={"origin": "https://evil.example"})
    assert r.status_code == 200
    assert not any(h.lower().startswith("access-control-") for h in r.headers), dict(r.headers)
    from app import app
    assert not any(route.cors for methods in app.routes.values() for route in methods.values())


# -- 11. the customer-prefix filter ignores case --------------------------------------------
def test_customer_prefix_filter_ignores_case_and_keeps_the_prefix_as_given(api, pipeline):
    parsed = create(api, pipeline, names=("PL_DXB1_Front.png",))["batch"]
    given = create(api, pipeline, names=("x.png",), customer_prefix="Pl_Dxb")["batch"]
    assert given["customer_prefix"] == "Pl_Dxb" and given["base_directory_name"].startswith("Pl_Dxb_")
    ids = lambda r: [b["id"] for b in r.data["batches"]]
    for query in ("PL_DXB", "pl_dxb", "Pl_dXb"):
        assert ids(api.get(f"/batches?customer_prefix={query}")) == [given["id"], parsed["id"]], query
        assert ids(api.get(f"/batches?status=queued&customer_prefix={query}")) == [given["id"], parsed["id"]]
    listed = api.get("/batches?customer_prefix=pl_dxb").data["batches"]
    assert {b["customer_prefix"] for b in listed} == {"PL_DXB", "Pl_Dxb"}
    # status changes rewrite the status+prefix key: it stays normalised
    assert api.post(f"/batches/{given['id']}/cancel").status_code == 200
    assert ids(api.get("/batches?status=cancelled&customer_prefix=pL_dXB")) == [given["id"]]


# -- 14. the authorizer's cache ---------------------------------------------------------------
def test_a_revoked_token_stops_working_within_a_minute():
    from app import AUTHORIZER_TTL_SECONDS, app
    (authorizer,) = app.builtin_auth_handlers
    assert authorizer.ttl_seconds == AUTHORIZER_TTL_SECONDS <= 60
