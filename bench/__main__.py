"""All benchmarks in one command; prints one table of ratios, each measured side by side with its
baseline in this same run.

    make bench                                 # full run (about 55 minutes on 2 cores, big: 25)
    make bench BENCH_ARGS=--quick              # smoke run (about 3-4 minutes)
    .venv/bin/python -m bench --only pipeline,zip
    .venv/bin/python -m bench --quick --markdown /tmp/bench.md   # also write machine + table as Markdown

Sections (in this order): pipeline (bench_pipeline.py), zip (bench_zip.py), parts
(bench_parts.py), e2e (bench_e2e.py), api (bench_api.py), contention (bench_contention.py),
persistence (bench_persistence.py), scale (bench_scale.py: the DynamoDB limits model,
bench/dynamo_model.py), settle (bench_settle.py: the end of a 100,000-file batch's "is it done"
checks on moto, before and now; 20,000 files with --quick), events (bench_events.py), big (bench_big.py: one batch of 10,000 tiny
images end to end, 1,000 with --quick; `python -m bench.bench_big` runs the 100,000); each module also runs on
its own (`python -m bench.bench_e2e --help`). Targets are printed with a verdict, never
asserted: this is not part of `make test`.
"""
from __future__ import annotations

import argparse
import sys
import time
import traceback

SECTIONS = ("pipeline", "zip", "parts", "e2e", "api", "contention", "persistence", "scale", "settle", "events", "big")


def _log(message: str) -> None:
    print(message, flush=True)


def run_section(name: str, quick: bool) -> list:
    if name == "pipeline":
        from bench import bench_pipeline
        outcome = bench_pipeline.run(quick=quick, log=_log)
        bench_pipeline.print_table(outcome)
        return bench_pipeline.rows(outcome) + bench_pipeline.encode_rows(log=_log)
    if name == "zip":
        from bench import bench_zip
        sizes = [20, 100] if quick else [100, 1000]
        repeat = 1 if quick else {100: 3, 1000: 1}
        return bench_zip.rows(bench_zip.run(sizes, repeat=repeat, log=_log))
    if name == "parts":
        from bench import bench_parts
        return bench_parts.rows(bench_parts.run(100 if quick else 400, log=_log))
    if name == "e2e":
        from bench import bench_e2e
        modes = ("devstack",) if quick else ("devstack", "split")
        return bench_e2e.rows(bench_e2e.run(quick=quick, modes=modes, log=_log))
    if name == "api":
        from bench import bench_api
        return bench_api.rows(bench_api.run(quick=quick, log=_log))
    if name == "contention":
        from bench import bench_contention
        if quick:
            outcome = bench_contention.run(quick=True, threads=(1, 4, 16), files=150, log=_log)
        else:
            outcome = bench_contention.run(quick=False, threads=(1, 4, 8, 16), files=500, log=_log)
        return bench_contention.rows(outcome)
    if name == "scale":
        from bench import bench_scale
        results = bench_scale.run(quick=quick, log=_log)
        _log(bench_scale.table(results))
        return bench_scale.rows(results)
    if name == "persistence":
        from bench import bench_persistence
        return bench_persistence.rows(bench_persistence.run(batches=200 if quick else 1000, log=_log))
    if name == "events":
        from bench import bench_events
        return bench_events.rows(bench_events.run(quick=quick, log=_log))
    if name == "settle":
        from bench import bench_settle
        return bench_settle.rows(bench_settle.run(20_000 if quick else 100_000, log=_log))
    if name == "big":
        from bench import bench_big
        return bench_big.rows(bench_big.run(1000 if quick else 10_000, log=_log))
    raise ValueError(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run, about 2-3 minutes")
    parser.add_argument("--only", help=f"comma-separated sections out of: {','.join(SECTIONS)}")
    parser.add_argument("--markdown", metavar="PATH", help="also write the machine and the table here")
    args = parser.parse_args(argv)
    sections = SECTIONS
    if args.only:
        sections = tuple(s.strip() for s in args.only.split(",") if s.strip())
        unknown = [s for s in sections if s not in SECTIONS]
        if unknown:
            parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")

    from bench.common import effective_cores, load_average, machine
    from bench.report import Row, summary, table
    info = machine()
    info["load average at start"] = load_average()
    info["effective cores at start"] = f"{effective_cores():.2f} of {info['nproc']}"
    mode = "quick" if args.quick else "full"
    _log(f"bench ({mode}): {', '.join(sections)}")
    for key, value in info.items():
        _log(f"  {key}: {value}")

    rows: list[Row] = []
    timings = {}
    for name in sections:
        _log(f"\n=== {name} ===")
        t0 = time.perf_counter()
        try:
            rows += run_section(name, args.quick)
        except Exception as exc:  # one broken section must not hide the others
            traceback.print_exc()
            rows.append(Row(name, "section failed", f"{type(exc).__name__}: {exc}"[:120], "-", None, "", "runs", False))
        timings[name] = time.perf_counter() - t0
        _log(f"=== {name}: {timings[name]:.0f} s ===")

    info["load average at end"] = load_average()
    text = table(rows)
    _log(f"\n=== combined table ({mode} run, {info['date']}) ===")
    _log(text)
    _log("")
    _log(summary(rows))
    _log("section times: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(f"# Benchmark run ({mode}), {info['date']}\n\n")
            for key, value in info.items():
                fh.write(f"- {key}: {value}\n")
            fh.write(f"- section times: {', '.join(f'{k} {v:.0f} s' for k, v in timings.items())}\n\n")
            fh.write(text + "\n\n" + summary(rows) + "\n")
        _log(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
