"""Functional tier: the app and its adapters against moto's in-process AWS (mock_aws)."""
from __future__ import annotations

import json

import pytest
from chalice.test import Client
from requests.structures import CaseInsensitiveDict
from moto import mock_aws

from chalicelib import wiring
from chalicelib.settings import Settings

TOKENS = {"token-alice": "alice", "token-bob": "bob"}


@pytest.fixture
def settings():
    return Settings(local_api_tokens=TOKENS)


@pytest.fixture
def aws(settings):
    with mock_aws():
        container = wiring.reset(wiring.Container(settings).provision())
        yield container
        wiring.reset()


class Api:
    """chalice.test.Client with JSON helpers and a default caller."""

    def __init__(self, client: Client):
        self.client = client

    def call(self, method: str, path: str, body=None, token: str | None = "token-alice", raw: bytes | None = None,
             headers: dict | None = None):
        h = {"content-type": "application/json"}
        if token is not None:
            h["authorization"] = f"Bearer {token}"
        h.update(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        response = self.client.http.request(method, path, headers=h, body=data)
        response.data = json.loads(response.body) if response.body else None
        response.headers = CaseInsensitiveDict(response.headers)
        return response

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.call("POST", path, body, **kw)

    def put(self, path, body=None, **kw):
        return self.call("PUT", path, body, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)


@pytest.fixture
def api(aws):
    from app import app
    with Client(app, stage_name="local") as client:
        yield Api(client)


@pytest.fixture
def pipeline(api):
    response = api.post("/pipelines", {"name": "web", "format": "jpeg", "width": 800})
    assert response.status_code == 201, response.data
    return response.data["pipeline"]


def files(*names, size=1000, content_type="image/png"):
    return [{"name": n, "size": size, "content_type": content_type} for n in names]


@pytest.fixture
def small_chunks(monkeypatch):
    """Manifest chunks of 50 positions: a few hundred files cover what 100,000 do."""
    from tests.chunks import shrink_chunks
    shrink_chunks(monkeypatch, 50)
