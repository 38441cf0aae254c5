"""Events on the local stack: how soon a webhook hears of a change.

    python -m bench.bench_events [--quick]

For N one-file batches: the time from the API first showing the batch `completed` (polled every
20 ms) to a receiver on 127.0.0.1 getting its `batch.completed`; and for N pings, from the
request to the receipt. Locally the stream is polled every 0.2 s and the delivery queue long-polls
(1 s), so this is the local stack's number, not Lambda's (whose stream and SQS pollers have their
own, similar, delays). Printed, never asserted.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


def run(quick: bool = False, log=print) -> dict:
    sys.path.insert(0, str(ROOT))
    import requests

    from devstack.process import StackProcess
    from tests import images
    from tests.receiver import Receiver

    n = 5 if quick else 20
    stack = StackProcess(LOCAL_API_TOKENS="bench:bench", log_name="bench-events").start()
    try:
        http = stack.session("bench")
        pipeline = http.post(f"{stack.url}/pipelines", json={"name": "bench-events", "format": "png",
                                                               "width": 16}).json()["pipeline"]
        data = images.png((32, 24))
        with Receiver() as receiver:
            hook = http.post(f"{stack.url}/webhooks", json={"url": receiver.url, "events": ["batch.completed"]}).json()
            completed = []
            for i in range(n):
                before = len(receiver.requests)
                created = http.post(f"{stack.url}/batches", json={"pipeline_ids": [pipeline["id"]], "files": [
                    {"name": f"BE_NCH_{i}.png", "size": len(data)}]}).json()
                bid = created["batch"]["id"]
                u = created["uploads"][0]
                requests.post(u["url"], data=u["fields"], files={"file": (u["file_name"], data)}, timeout=30)
                while http.get(f"{stack.url}/batches/{bid}?jobs_limit=1").json()["batch"]["status"] != "completed":
                    time.sleep(0.02)
                seen = time.monotonic()
                # the event may come before the poll sees the status: then the latency is ~0
                arrived = receiver.wait_for(before + 1, timeout=60)[before]["at"]
                completed.append(max(0.0, arrived - seen))
            pings = []
            for _ in range(n):
                before = len(receiver.requests)
                start = time.monotonic()
                http.post(f"{stack.url}/webhooks/{hook['webhook']['id']}/ping")
                pings.append(receiver.wait_for(before + 1, timeout=60)[before]["at"] - start)
    finally:
        stack.stop()
    out = {"n": n, "completed": completed, "ping": pings}
    for name in ("completed", "ping"):
        values = out[name]
        log(f"events: {name}: median {statistics.median(values):.2f} s, p95 {_percentile(values, 0.95):.2f} s, "
            f"max {max(values):.2f} s over {n}")
    return out


def rows(outcome: dict) -> list:
    from bench.report import Row
    out = []
    for name, what in (("completed", "batch completed (API) -> webhook got batch.completed"),
                       ("ping", "POST .../ping -> webhook got the ping")):
        values = outcome[name]
        p95 = _percentile(values, 0.95)
        out.append(Row("events", f"{what}, local stack, p95 of {outcome['n']}", f"{p95:.2f} s",
                       f"median {statistics.median(values):.2f} s", None, "", "< 3 s", p95 < 3))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_events", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    from bench.report import table
    print(table(rows(run(quick=args.quick))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
