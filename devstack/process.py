"""The local stack in a child process on free ports: for the end-to-end tests and benchmarks."""
from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_starts = itertools.count(1)


class StackProcess:
    """`python -m devstack` (or another module with the same contract, `module=`), started with
    `env` on top of this environment; `start()` returns once GET /health answers.

    The stack keeps its state in `data_dir`; without one it gets a fresh temporary directory,
    deleted at `stop()`, so every stack starts empty. A restart is a new StackProcess with the same
    `data_dir` (and, to keep the URLs handed out before, the same ports)."""

    def __init__(self, module: str = "devstack", log_name: str = "stack", *, data_dir: str | Path | None = None,
                 port: int | None = None, moto_port: int | None = None, **env):
        self.port, self.moto_port = port or free_port(), moto_port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.s3_url = f"http://127.0.0.1:{self.moto_port}"
        self._own_data_dir = data_dir is None
        self.data_dir = Path(tempfile.mkdtemp(prefix="imgbatch-data-")) if data_dir is None else Path(data_dir)
        self.env = {**os.environ, "PORT": str(self.port), "MOTO_PORT": str(self.moto_port), "PYTHONUNBUFFERED": "1",
                    "DATA_DIR": str(self.data_dir), **{k: str(v) for k, v in env.items()}}
        for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL"):
            self.env.pop(name, None)
        self.cmd = [sys.executable, "-m", module]
        self.log_name = log_name

    def start(self, timeout: float = 60) -> "StackProcess":
        import requests
        (ROOT / "test-artifacts").mkdir(exist_ok=True)
        # numbered: a restart on the same port gets a log of its own
        self.log_path = ROOT / "test-artifacts" / f"{self.log_name}-{self.port}-{next(_starts)}.log"
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

    def stop(self) -> int:
        """SIGTERM (the stack saves its state and exits), SIGKILL after 30 s; the exit status."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self._stopped()

    def kill(self) -> int:
        """SIGKILL: a crash, no last snapshot."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        return self._stopped()

    def _stopped(self) -> int:
        self.log.close()
        if self._own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        return self.proc.returncode

    def __enter__(self) -> "StackProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def session(self, token: str):
        import requests
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        return s
