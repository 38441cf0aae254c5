"""The local stack without its in-process moto: API, upload pollers and sweeper of
devstack.Stack, pointed at a moto server running in another process (MOTO_ENDPOINT).

Used by bench/bench_e2e.py (`--moto split`) to tell the CPU the service's own code spends per
file from the CPU the AWS emulation spends, which `python -m devstack` runs in one process.
Not a replacement for devstack: it is devstack's Stack minus the moto server.

    MOTO_ENDPOINT=http://127.0.0.1:PORT PORT=8000 WORKERS=2 python -m bench.split_stack

With BENCH_PROFILE=path, every thread runs under cProfile with a per-thread CPU clock
(time.thread_time) and the merged statistics are written to `path` at exit
(read with `python -m pstats path`): where the stack's own CPU goes, per function.
With BENCH_TRACE=path, every handler invocation of the pollers is written there as JSON lines
{"thread", "handler", "start", "end", "cpu", "records"} (time.time(); cpu: the invoking thread's CPU
seconds), to see how busy each worker was and what the handlers themselves cost, apart from the
local emulation of Lambda's event sources (receive, delete) and the API.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
from urllib.parse import urlparse

import devstack.stack
from devstack.stack import Stack


def _trace_invocations(path: str) -> None:
    import json
    import time
    lock = threading.Lock()
    out = open(path, "a", buffering=1)
    original = devstack.stack._invoke

    def invoke(app, name, event):
        start, cpu = time.time(), time.thread_time()
        try:
            return original(app, name, event)
        finally:
            line = json.dumps({"thread": threading.current_thread().name, "handler": name, "start": start,
                               "end": time.time(), "cpu": time.thread_time() - cpu,
                               "records": len(event.get("Records", []))})
            with lock:
                out.write(line + "\n")

    devstack.stack._invoke = invoke


class SplitStack(Stack):
    def _start_moto(self) -> None:
        """moto runs in its own process (MOTO_ENDPOINT); everything else is devstack's."""


class ThreadProfiles:
    """cProfile in every thread, CPU time per thread (a profile hook that installs a profiler
    on its first call in each new thread; cProfile's C hook then replaces it)."""

    def __init__(self):
        import cProfile
        import time
        self._profiles, self._lock = [], threading.Lock()

        def hook(*_):
            prof = cProfile.Profile(time.thread_time)
            with self._lock:
                self._profiles.append(prof)
            prof.enable()

        self._hook = hook
        threading.setprofile(hook)
        self.main = cProfile.Profile(time.thread_time)
        self.main.enable()

    def dump(self, path: str) -> None:
        import pstats
        self.main.disable()
        threading.setprofile(None)
        with self._lock:
            profiles = list(self._profiles)
        stats = pstats.Stats(self.main)
        for prof in profiles:
            try:
                prof.disable()  # only stops it when called from its own thread; stats are readable anyway
                stats.add(prof)
            except (TypeError, ValueError):
                pass
        stats.dump_stats(path)


def main() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "WARNING"))
    profile_path = os.environ.get("BENCH_PROFILE")
    profiles = ThreadProfiles() if profile_path else None
    if os.environ.get("BENCH_TRACE"):
        _trace_invocations(os.environ["BENCH_TRACE"])
    moto = urlparse(os.environ["MOTO_ENDPOINT"])
    stack = SplitStack(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), moto_port=moto.port,
                       workers=int(os.environ.get("WORKERS", "2")),
                       sweep_seconds=float(os.environ.get("SWEEP_SECONDS", "15")))
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        stack.start()
        print(f"split stack ready on {stack.api_url} (moto at {stack.s3_url})", flush=True)
        while not stopping.wait(0.5):
            pass
    finally:
        stack.stop()
        if profiles:
            profiles.dump(profile_path)


if __name__ == "__main__":
    main()
