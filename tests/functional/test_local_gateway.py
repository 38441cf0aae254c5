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
