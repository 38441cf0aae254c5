"""The local gateway behaves like API Gateway + Lambda (devstack/gateway.py)."""
from __future__ import annotations

import threading

from app import app


def test_each_thread_sees_its_own_request():
    """chalice local serves requests in threads but Chalice keeps the request on the app;
    without per-thread state a public asset request could replace an authenticated one's."""
    seen, ready, go = {}, threading.Event(), threading.Event()

    def first():
        app.current_request = "request A"
        ready.set()
        go.wait(5)
        seen["A"] = app.current_request

    def second():
        ready.wait(5)
        app.current_request = "request B"
        seen["B"] = app.current_request
        go.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == {"A": "request A", "B": "request B"}


def test_missing_token_answers_in_the_error_shape(api):
    r = api.get("/batches", token=None)
    assert r.status_code == 401 and r.data["Code"] == "UnauthorizedError"


def test_an_unknown_route_is_a_404_in_the_error_shape_with_or_without_a_token(api):
    """API Gateway answers MISSING_AUTHENTICATION_TOKEN for a path or method no route has (with a
    bearer token: 403 "Authorization header requires 'Credential' parameter"); the template maps
    it to this 404, and the local gateway answers the same."""
    from chalicelib.errors import NO_ROUTE
    for token in ("token-alice", None, "not-a-token"):
        for method, path in (("GET", "/batches/00000000-0000-4000-8000-000000000000/nothing"),
                             ("GET", "/no/such/route"), ("DELETE", "/pipelines"), ("PATCH", "/batches"),
                             ("POST", "/health")):
            r = api.call(method, path, token=token)
            assert r.status_code == 404, (method, path, token, r.status_code, r.body)
            assert r.data == {"Code": "NotFoundError", "Message": NO_ROUTE}
            assert r.headers["Content-Type"] == "application/json"
    # a known route still answers as before
    assert api.get("/me").status_code == 200


def test_head_of_the_page_and_health_answers_200_without_a_body(api):
    page = api.client.http.request("GET", "/", headers={})
    head = api.client.http.request("HEAD", "/", headers={})
    assert page.status_code == 200 and b"<html" in page.body.lower()
    assert head.status_code == 200 and head.body == b""
    for name in ("Content-Type", "Content-Security-Policy", "X-Content-Type-Options", "Cache-Control"):
        assert head.headers[name] == page.headers[name], name
    health = api.client.http.request("HEAD", "/health", headers={})
    assert health.status_code == 200 and health.body == b""
