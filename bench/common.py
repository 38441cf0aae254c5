"""Shared helpers for the benchmarks: a moto server in its own process, a service Container
built on it, a DynamoDB request recorder (botocore event hooks) and a machine description.

Nothing here is imported by the service; nothing here is collected by pytest.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import platform
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OWNER = "bench"

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


# --------------------------------------------------------------------------- moto server


def _serve(conn, patches: bool) -> None:
    """Child process: moto server (with devstack's DynamoDB concurrency patches) until told to stop."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    if patches:
        from devstack.moto_patches import install
        install()
    run_server(conn)


def run_server(conn) -> None:
    """Serve moto on a free port, send the port through `conn`, stop when `conn` says so."""
    from moto.server import ThreadedMotoServer
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    conn.send(server.get_host_and_port()[1])
    conn.recv()
    server.stop()


@contextlib.contextmanager
def moto_server(patches: bool = True):
    """A moto server in a spawned process (its own GIL, its own memory): yields the endpoint URL
    and the server's pid (for CPU accounting)."""
    ctx = multiprocessing.get_context("spawn")
    parent_end, child_end = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child_end, patches), daemon=True)
    proc.start()
    try:
        port = parent_end.recv()
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        try:
            parent_end.send("stop")
        except OSError:
            pass
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=5)


def build_container(endpoint: str):
    """The service's own composition root on a moto endpoint, with every table, bucket and queue."""
    from chalicelib import wiring
    from chalicelib.settings import Settings
    settings = Settings(endpoint_url=endpoint, local_api_tokens={"bench-token": OWNER})
    return wiring.Container(wiring.Container(settings).provision())


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


# --------------------------------------------------------------------------- DynamoDB recorder


@dataclass
class DynamoCounts:
    calls: Counter = field(default_factory=Counter)      # logical API calls by operation
    attempts: int = 0                                    # HTTP requests sent (calls + retries)
    errors: Counter = field(default_factory=Counter)     # final error codes by code
    reasons: Counter = field(default_factory=Counter)    # transaction cancellation reason codes
    seconds: Counter = field(default_factory=Counter)    # client-side wall time by operation

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    @property
    def retries(self) -> int:
        return self.attempts - self.total

    def minus(self, other: "DynamoCounts") -> "DynamoCounts":
        return DynamoCounts(self.calls - other.calls, self.attempts - other.attempts,
                            self.errors - other.errors, self.reasons - other.reasons,
                            Counter({k: v - other.seconds.get(k, 0) for k, v in self.seconds.items()}))

    def latency_ms(self) -> dict[str, float]:
        """Mean client-side latency per operation (whole call, retries included)."""
        return {op: 1000 * self.seconds[op] / n for op, n in self.calls.items() if n}

    def describe(self) -> str:
        ops = ", ".join(f"{op} {n}" for op, n in sorted(self.calls.items()))
        return f"{self.total} requests ({ops})" + (f", {self.retries} retries" if self.retries else "")


class DynamoRecorder:
    """Counts every DynamoDB request made in this process, by PynamoDB or boto3 alike.

    botocore event hooks on every dynamodb client created after install(): `before-call`
    (one per API call), `before-send` (one per HTTP attempt, so retries show) and
    `after-call` (error codes and transaction cancellation reasons)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = DynamoCounts()
        self._installed = False

    def install(self) -> "DynamoRecorder":
        if self._installed:
            return self
        import botocore.session
        original = botocore.session.Session.create_client
        recorder = self

        def create_client(session, service_name, *args, **kwargs):
            client = original(session, service_name, *args, **kwargs)
            if service_name == "dynamodb":
                events = client.meta.events
                events.register("before-call.dynamodb", recorder._on_call)
                events.register("before-send.dynamodb", recorder._on_send)
                events.register("after-call.dynamodb", recorder._on_after)
            return client

        botocore.session.Session.create_client = create_client
        self._installed = True
        return self

    def _on_call(self, model=None, context=None, **_):
        if context is not None:
            context["bench_started"] = time.perf_counter()
        with self._lock:
            self._counts.calls[model.name] += 1

    def _on_send(self, **_):
        with self._lock:
            self._counts.attempts += 1
        return None  # a non-None value would replace the HTTP response

    def _on_after(self, http_response=None, parsed=None, model=None, context=None, **_):
        started = (context or {}).get("bench_started")
        if started is not None and model is not None:
            with self._lock:
                self._counts.seconds[model.name] += time.perf_counter() - started
        if http_response is None or http_response.status_code < 300 or not isinstance(parsed, dict):
            return
        with self._lock:
            self._counts.errors[(parsed.get("Error") or {}).get("Code", "?")] += 1
            for reason in parsed.get("CancellationReasons") or []:
                code = reason.get("Code")
                if code and code != "None":
                    self._counts.reasons[code] += 1

    def snapshot(self) -> DynamoCounts:
        with self._lock:
            c = self._counts
            return DynamoCounts(Counter(c.calls), c.attempts, Counter(c.errors), Counter(c.reasons),
                                Counter(c.seconds))

    @contextlib.contextmanager
    def window(self):
        """with recorder.window() as w: ...  -> w.counts holds what happened inside."""
        holder = _Window()
        before = self.snapshot()
        try:
            yield holder
        finally:
            holder.counts = self.snapshot().minus(before)


class _Window:
    counts: DynamoCounts = DynamoCounts()


RECORDER = DynamoRecorder()


# --------------------------------------------------------------------------- machine


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine() -> dict[str, str]:
    info = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "nproc": _run(["nproc"])}
    try:
        with open("/proc/cpuinfo") as fh:
            info["cpu"] = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "?")
    except OSError:
        info["cpu"] = platform.processor() or "?"
    free = _run(["free", "-h"]).splitlines()
    info["memory"] = " ".join(free[1].split()[1:2]) + " total" if len(free) > 1 else "?"
    info["kernel"] = platform.release()
    info["python"] = platform.python_version()
    versions = {}
    for dist in ("pillow", "pyvips", "moto", "pynamodb", "botocore", "chalice"):
        try:
            from importlib.metadata import version
            versions[dist] = version(dist)
        except Exception:
            versions[dist] = "-"
    try:
        import pyvips
        versions["libvips"] = ".".join(str(pyvips.version(i)) for i in range(3))
    except Exception:
        versions["libvips"] = "-"
    try:
        from PIL import features
        versions["libjpeg-turbo"] = features.version("libjpeg_turbo") or "-"
    except Exception:
        pass
    info["versions"] = ", ".join(f"{k} {v}" for k, v in versions.items())
    return info


def _burn(n: int) -> float:
    t0 = time.perf_counter()
    x = 0
    for i in range(n):
        x += i * i
    return time.perf_counter() - t0


def effective_cores(n: int = 5_000_000) -> float:
    """How many cores' worth of CPU this machine gives right now: the same pure-Python loop in
    1 process, then in nproc processes at once. A shared or busy machine shows less than nproc."""
    procs = os.cpu_count() or 1
    one = _burn(n)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(procs) as pool:
        t0 = time.perf_counter()
        pool.map(_burn, [n] * procs)
        many = time.perf_counter() - t0
    return procs * one / many


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def percentile(values, q: float) -> float:
    data = sorted(values)
    if not data:
        return float("nan")
    k = (len(data) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
