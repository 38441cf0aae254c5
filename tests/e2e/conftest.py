"""End-to-end tier: the real local stack (`python -m devstack`) in a child process,
reached over HTTP exactly as a user, the CLI or a browser reaches it."""
from __future__ import annotations

import time

import pytest
import requests

from devstack.process import ROOT, StackProcess, free_port  # noqa: F401  (free_port: used by tests)

TOKEN = "e2e-token"
OTHER_TOKEN = "e2e-other"


class LocalStack(StackProcess):
    def __init__(self, **env):
        super().__init__(**{"LOCAL_API_TOKENS": f"{TOKEN}:studio,{OTHER_TOKEN}:other", "SWEEP_SECONDS": 2, **env})

    def session(self, token: str = TOKEN):
        return super().session(token)

    def boto(self, service: str):
        import boto3
        return boto3.client(service, endpoint_url=self.s3_url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="session")
def stack():
    s = LocalStack().start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    """One chromium per UI test module (Debian's, tests/e2e/ui_helpers.py)."""
    from playwright.sync_api import sync_playwright

    from tests.e2e.ui_helpers import launch
    playwright = sync_playwright().start()
    b = launch(playwright)
    yield b
    b.close()
    playwright.stop()


@pytest.fixture
def http(stack):
    return stack.session()


def wait_for(predicate, timeout: float = 60, interval: float = 0.25, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def upload(u: dict, data: bytes, file_name: str | None = None) -> requests.Response:
    """A browser-style presigned POST: every field, then the file as `file`."""
    return requests.post(u["url"], data=u["fields"], files={"file": (file_name or u["file_name"], data)}, timeout=30)
