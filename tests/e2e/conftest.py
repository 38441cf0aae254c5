"""End-to-end tier: the real local stack (`python -m devstack`) in a child process,
reached over HTTP exactly as a user, the CLI or a browser reaches it."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "e2e-token"
OTHER_TOKEN = "e2e-other"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalStack:
    def __init__(self, **env):
        self.port, self.moto_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.s3_url = f"http://127.0.0.1:{self.moto_port}"
        self.env = {**os.environ, "PORT": str(self.port), "MOTO_PORT": str(self.moto_port),
                    "LOCAL_API_TOKENS": f"{TOKEN}:studio,{OTHER_TOKEN}:other", "SWEEP_SECONDS": "2",
                    "PYTHONUNBUFFERED": "1", **{k: str(v) for k, v in env.items()}}
        for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            self.env.pop(name, None)
        self.log_path = ROOT / "test-artifacts" / f"stack-{self.port}.log"

    def start(self) -> "LocalStack":
        self.log_path.parent.mkdir(exist_ok=True)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "devstack"], cwd=ROOT, env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"local stack exited early; see {self.log_path}:\n{self.log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"local stack did not become healthy; see {self.log_path}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()

    def session(self, token: str = TOKEN) -> requests.Session:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        return s

    def boto(self, service: str):
        import boto3
        return boto3.client(service, endpoint_url=self.s3_url, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(scope="session")
def stack():
    s = LocalStack().start()
    yield s
    s.stop()


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
