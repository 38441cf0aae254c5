"""Benchmark: one batch's throughput against DynamoDB's limits, today's design beside the bucketed one.

    .venv/bin/python -m bench.bench_scale            # 1, 16, 64, 256 and 1,000 concurrent functions
    .venv/bin/python -m bench.bench_scale --quick

Runs bench/dynamo_model.py (a discrete-event model of DynamoDB's per-partition capacity,
transaction conflicts and the clients' retries, in virtual time) with each design's per-file
request pattern. Reports files/s, conflicts, throttled requests and DynamoDB requests per file, and
checks the logical outcome of every run: counters equal to the number of files and exactly one
final-status write, with 10% of the S3 events delivered twice.
"""
from __future__ import annotations

import argparse
import time

from bench.dynamo_model import simulate
from bench.report import Row

WORKERS = (1, 16, 64, 256, 1000)
TARGET_FILES_S = 5000


def files_for(design: str, workers: int, quick: bool) -> int:
    if design == "today":   # it stalls early: a small batch shows it, and keeps the run short
        return 500 if quick else 2000
    return min(20_000 if quick else 100_000, max(2000, workers * (20 if quick else 100)))


def run(quick: bool = False, workers=WORKERS, log=print) -> list[dict]:
    results = []
    for w in workers:
        for design in ("today", "buckets"):
            started = time.monotonic()
            r = simulate(design, files_for(design, w, quick), w, limit_s=300 if design == "today" else 900)
            r["wall_s"] = time.monotonic() - started
            results.append(r)
            log(f"  {design:8} {w:5} functions {r['files']:7,} files: {r['files_per_s']:8,.0f} files/s "
                f"({'finished' if r['finished'] else 'NOT finished: ' + str(r['redeliveries']) + ' records back after the 960 s visibility timeout'}), "
                f"exact={r['exact']} final writes={r['final_writes']} conflicts={r['conflicts']:,} "
                f"throttled={r['throttled']:,} requests/file={r['requests_per_file']:.2f} "
                f"read units/file={r['read_units_per_file']:.2f} "
                f"[{r['wall_s']:.0f} s wall]")
    return results


def table(results: list[dict]) -> str:
    lines = ["| functions | today: files/s | buckets: files/s | ratio | buckets: conflicts, throttled, requests/file | exact, final writes |",
             "|---:|---:|---:|---:|---|---|"]
    by = {(r["design"], r["workers"]): r for r in results}
    for w in sorted({r["workers"] for r in results}):
        t, b = by[("today", w)], by[("buckets", w)]
        lines.append(f"| {w:,} | {t['files_per_s']:,.0f}{'' if t['finished'] else ' (stalled)'} | {b['files_per_s']:,.0f} | "
                     f"{b['files_per_s'] / max(t['files_per_s'], 1e-9):,.0f}x | {b['conflicts']:,}, {b['throttled']:,}, "
                     f"{b['requests_per_file']:.2f} | {b['exact']}, {b['final_writes']} |")
    return "\n".join(lines)


def rows(results: list[dict]) -> list[Row]:
    out = []
    by = {(r["design"], r["workers"]): r for r in results}
    for w in sorted({r["workers"] for r in results}):
        t, b = by[("today", w)], by[("buckets", w)]
        target = f">= {TARGET_FILES_S:,} files/s" if w == 1000 else "-"
        out.append(Row("scale", f"one batch, {w:,} functions (model)", f"{b['files_per_s']:,.0f} files/s",
                       f"{t['files_per_s']:,.0f} files/s today", b["files_per_s"] / max(t["files_per_s"], 1e-9),
                       "buckets/today", target,
                       (b["files_per_s"] >= TARGET_FILES_S and b["exact"] and b["final_writes"] == 1)
                       if w == 1000 else None))
    big = by[("buckets", max(r["workers"] for r in results))]
    out.append(Row("scale", "DynamoDB requests per file (model)", f"{big['requests_per_file']:.2f}",
                   f"{by[('today', 1)]['requests_per_file']:.2f} today", None, "", "<= 3",
                   big["requests_per_file"] <= 3))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    results = run(quick=args.quick)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
