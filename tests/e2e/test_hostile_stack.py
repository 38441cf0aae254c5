"""Hostile input over real HTTP against the local stack (chalice's local server, not the test
client): the answers a browser, curl or an attacker actually gets."""
from __future__ import annotations

import base64
import hashlib
import json

import pytest
import requests

pytestmark = pytest.mark.e2e


def test_a_ui_name_too_long_for_the_file_system_is_404_without_a_token(stack):
    r = requests.get(f"{stack.url}/ui/{'a' * 300}.js", timeout=10)
    assert r.status_code == 404 and r.json()["Code"] == "NotFoundError"


def test_ui_documents_carry_the_security_headers(stack):
    for path in ("/", "/ui/app.js"):
        r = requests.get(f"{stack.url}{path}", timeout=10)
        assert r.status_code == 200
        assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]


def test_no_cors_for_other_origins(stack, http):
    origin = {"Origin": "https://elsewhere.example"}
    r = http.get(f"{stack.url}/batches", headers=origin, timeout=10)
    assert r.status_code == 200 and not any(h.lower().startswith("access-control-") for h in r.headers)
    preflight = requests.options(f"{stack.url}/batches", timeout=10, headers={
        **origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"})
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_a_forged_cursor_and_a_deep_body_are_400(stack, http):
    data = {"s": hashlib.sha256(b"batches|owner|studio|created_sk|desc|").hexdigest()[:16],
            "k": {"owner": {"S": "studio"}, "created_sk": {"N": "NaN"}, "id": {"S": "x"}}}
    cursor = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    r = http.get(f"{stack.url}/batches", params={"cursor": cursor}, timeout=10)
    assert r.status_code == 400 and "start again without it" in r.json()["Message"]
    r = http.post(f"{stack.url}/pipelines", data=b"[" * 5000 + b"]" * 5000, timeout=10,
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "levels deep" in r.json()["Message"]
    r = http.post(f"{stack.url}/pipelines", data=b'{"name": "a\\ud800", "format": "png"}', timeout=10,
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "surrogate" in r.json()["Message"]
