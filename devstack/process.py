"""The local stack in a child process on free ports: for the end-to-end tests and benchmarks."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StackProcess:
    """`python -m devstack` (or another module with the same contract, `module=`), started with
    `env` on top of this environment; `start()` returns once GET /health answers."""

    def __init__(self, module: str = "devstack", log_name: str = "stack", **env):
        self.port, self.moto_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.s3_url = f"http://127.0.0.1:{self.moto_port}"
        self.env = {**os.environ, "PORT": str(self.port), "MOTO_PORT": str(self.moto_port), "PYTHONUNBUFFERED": "1",
                    **{k: str(v) for k, v in env.items()}}
        for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL"):
            self.env.pop(name, None)
        self.cmd = [sys.executable, "-m", module]
        self.log_path = ROOT / "test-artifacts" / f"{log_name}-{self.port}.log"

    def start(self, timeout: float = 60) -> "StackProcess":
        import requests
        self.log_path.parent.mkdir(exist_ok=True)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"local stack exited early; see {self.log_path}:\n{self.log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"local stack did not become healthy within {timeout} s; see {self.log_path}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def __enter__(self) -> "StackProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def session(self, token: str):
        import requests
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        return s
