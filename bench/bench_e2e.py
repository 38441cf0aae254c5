"""Benchmark: one batch end to end on the local stack vs the pure pipeline time of the same files.

    .venv/bin/python -m bench.bench_e2e                 # 200 files of 2400x1600 (3.8 MP) JPEG, WORKERS=2
    .venv/bin/python -m bench.bench_e2e --quick         # 100 files
    .venv/bin/python -m bench.bench_e2e --workers 4 --files 300

Steps, all in this one run:
1. generate the files once (distinct 3.8 MP photo-like JPEGs, about 0.8 MB each);
2. pure pipeline: imaging.render() of every file with the batch's two pipelines (JPEG 1600 px
   wide + WebP 400 px wide), sequentially in this process, before the stack starts (so nothing
   competes for the CPU): sum_pipeline_s;
3. the local stack (`python -m devstack`, started like tests/e2e/conftest.LocalStack) with WORKERS
   poller threads: POST /pipelines, POST /batches, then the presigned POSTs, 6 at a time like a
   browser; wall clock from the first upload's start until GET /batches/{id} reports
   `completed` (polled every second, every 0.2 s from 95% on; `completed_at` is stored to the
   second, so it is shown too).

Overhead ratio = wall_clock / (sum_pipeline_s / workers): 1.0 would mean the workers did
nothing but render, back to back, from the first upload on. Everything the stack adds (API, S3,
DynamoDB, SQS, event delivery, uploads) shows up above 1.0. Caveat, stated in the output: the
stack is ONE Python process (one GIL) holding the API, moto (S3, SQS, DynamoDB) and the workers,
on this machine's cores; in AWS these are separate services and each Lambda has its own CPU.
The stack's CPU time is read from /proc before and after, to split the overhead into CPU spent
by the stack beyond rendering and time spent waiting.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from bench.common import cpu_seconds
from devstack.process import StackProcess

TOKEN = "bench-token"

PIPELINES = [
    {"name": "bench-web-1600", "format": "jpeg", "width": 1600, "quality": 85},
    {"name": "bench-thumb-400", "format": "webp", "width": 400},
]
SIZE = (2400, 1600)
TARGET_OVERHEAD = 1.3
UPLOAD_CONCURRENCY = 6


def make_files(n: int, size=SIZE) -> list[tuple[str, bytes]]:
    from PIL import Image, ImageDraw

    from bench.bench_pipeline import _photo_like
    base = _photo_like(size)
    variants = [base, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                base.transpose(Image.Transpose.FLIP_TOP_BOTTOM), base.transpose(Image.Transpose.ROTATE_180)]
    files = []
    for i in range(n):
        im = variants[i % len(variants)].copy()
        draw = ImageDraw.Draw(im)
        x, y = (i * 211) % (size[0] - 300), (i * 137) % (size[1] - 200)
        draw.rectangle((x, y, x + 300, y + 200), fill=((i * 37) % 256, (i * 91) % 256, (i * 53) % 256))
        draw.text((x + 20, y + 20), f"file {i}", fill=(255, 255, 255))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=90)
        files.append((f"PL_E2E{i:04d}_front.jpg", buf.getvalue()))
    return files


def _render_all(files, specs, limits, threads: int) -> float:
    from chalicelib.domain import imaging
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda f: imaging.render(io.BytesIO(f[1]), specs, limits), files))
    return time.perf_counter() - t0


def pipeline_seconds(files: list[tuple[str, bytes]], workers: int = 1) -> tuple[list[float], float]:
    """The pure pipeline, as the processor calls it (one decode, every spec): per-file times
    sequentially, and the wall time of all files on `workers` threads (as the stack's pollers)."""
    from chalicelib.domain import imaging
    from chalicelib.domain.pipelines import validate_pipeline
    from chalicelib.services.processor import render_specs
    from chalicelib.settings import Settings
    specs = render_specs([validate_pipeline(p) for p in PIPELINES])
    limits = imaging.Limits(max_pixels=Settings().max_pixels)
    imaging.render(io.BytesIO(files[0][1]), specs, limits)  # warm-up: plugins, codecs
    times = []
    for _, data in files:
        t0 = time.perf_counter()
        imaging.render(io.BytesIO(data), specs, limits)
        times.append(time.perf_counter() - t0)
    return times, _render_all(files, specs, limits, workers)


def _parse(ts: str | None) -> float | None:
    if not ts:
        return None
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


class BenchStack(StackProcess):
    """`python -m devstack` (moto inside, as `make run` has it), or bench.split_stack with moto
    in a separate process."""

    def __init__(self, workers: int, split: bool, moto_endpoint: str | None = None):
        env = {"WORKERS": workers, "SWEEP_SECONDS": 15, "LOCAL_API_TOKENS": f"{TOKEN}:bench", "LOG_LEVEL": "WARNING"}
        self.trace_path = None
        if split:
            import tempfile
            fd, self.trace_path = tempfile.mkstemp(prefix="bench-e2e-trace-", suffix=".jsonl")
            os.close(fd)
            env.update(BENCH_TRACE=self.trace_path, MOTO_ENDPOINT=moto_endpoint)
        super().__init__(module="bench.split_stack" if split else "devstack", log_name="bench-stack", **env)

    def session(self):
        return super().session(TOKEN)


def upload(u: dict, data: bytes):
    """A browser-style presigned POST: every field, then the file as `file`."""
    import requests
    return requests.post(u["url"], data=u["fields"], files={"file": (u["file_name"], data)}, timeout=60)


def one_batch(data: list[tuple[str, bytes]], workers: int, split: bool) -> dict:
    """One batch through a freshly started stack; returns timings and CPU per process."""
    with contextlib.ExitStack() as stack:
        moto_pid = None
        endpoint = None
        if split:
            from bench.common import moto_server
            endpoint, moto_pid = stack.enter_context(moto_server())
        sp = stack.enter_context(BenchStack(workers, split, endpoint))
        http = sp.session()
        ids = []
        for spec in PIPELINES:
            r = http.post(f"{sp.url}/pipelines", json=spec)
            r.raise_for_status()
            ids.append(r.json()["pipeline"]["id"])
        r = http.post(f"{sp.url}/batches", json={"pipeline_ids": ids, "files": [
            {"name": name, "size": len(body)} for name, body in data]})
        r.raise_for_status()
        created = r.json()
        bid = created["batch"]["id"]
        bodies = dict(data)
        cpu0 = cpu_seconds(sp.proc.pid), cpu_seconds(moto_pid) if moto_pid else 0.0
        t0_wall, t0 = time.time(), time.perf_counter()

        def send(u):
            resp = upload(u, bodies[u["file_name"]])
            if resp.status_code != 204:
                raise RuntimeError(f"upload of {u['file_name']} failed: {resp.status_code} {resp.text[:200]}")

        with ThreadPoolExecutor(UPLOAD_CONCURRENCY) as pool:
            list(pool.map(send, created["uploads"]))
        t_uploaded = time.perf_counter() - t0
        while True:
            batch = http.get(f"{sp.url}/batches/{bid}", params={"jobs_limit": 1}).json()["batch"]
            if batch["status"] not in ("queued", "processing"):
                break
            if time.perf_counter() - t0 > 900:
                raise RuntimeError(f"batch not done after 900 s: {batch['progress']}")
            # Each GET costs the stack CPU (it shares the cores): poll once a second until the
            # end is near, then every 0.2 s so the completion is seen within 0.2 s.
            time.sleep(0.2 if batch["progress"]["percent"] >= 95 else 1.0)
        wall = time.perf_counter() - t0
        stack_cpu = cpu_seconds(sp.proc.pid) - cpu0[0]
        moto_cpu = (cpu_seconds(moto_pid) - cpu0[1]) if moto_pid else None
    completed_at = _parse(batch.get("completed_at"))
    workers_trace = _worker_trace(sp.trace_path, t0_wall, t0_wall + wall) if sp.trace_path else None
    return {"workers_trace": workers_trace,"status": batch["status"], "succeeded": batch["progress"]["succeeded"], "uploads_done_s": t_uploaded,
            "wall_s": wall, "wall_completed_at_s": (completed_at - t0_wall) if completed_at else None,
            "stack_cpu_s": stack_cpu, "moto_cpu_s": moto_cpu}


def _worker_trace(path: str, start: float, end: float) -> dict | None:
    """How the upload pollers spent the run: busy share, invocations, records per invocation."""
    import json
    try:
        with open(path) as fh:
            calls = [json.loads(line) for line in fh if line.strip()]
        os.unlink(path)
    except (OSError, ValueError):
        return None
    calls = [c for c in calls if c["handler"] == "process_upload" and c["end"] >= start and c["start"] <= end]
    if not calls:
        return None
    span = end - start
    threads = sorted({c["thread"] for c in calls})
    busy = {t: sum(min(c["end"], end) - max(c["start"], start) for c in calls if c["thread"] == t) for t in threads}
    last_end = {t: max(c["end"] for c in calls if c["thread"] == t) for t in threads}
    return {"invocations": len(calls), "records": sum(c["records"] for c in calls),
            "busy_share": {t: busy[t] / span for t in threads},
            "first_busy_s": min(c["start"] for c in calls) - start,
            "idle_tail_s": max(last_end.values()) - min(last_end.values())}


def run(quick: bool = False, files: int | None = None, workers: int = 2, modes=("devstack", "split"),
        log=print) -> dict:
    n = files or (100 if quick else 200)
    t = time.perf_counter()
    data = make_files(n)
    total_mb = sum(len(b) for _, b in data) / 2**20
    log(f"generated {n} JPEGs {SIZE[0]}x{SIZE[1]} ({total_mb:.0f} MB, {total_mb / n:.2f} MB each) "
        f"in {time.perf_counter() - t:.1f} s")
    per_file, parallel = pipeline_seconds(data, workers)
    sum_pipeline = sum(per_file)
    log(f"pure pipeline ({' + '.join(p['name'] for p in PIPELINES)}), this process: sequential sum "
        f"{sum_pipeline:.2f} s ({1000 * sum_pipeline / n:.0f} ms/file); all files on {workers} threads: "
        f"{parallel:.2f} s wall ({sum_pipeline / parallel:.2f}x parallel speed-up on {os.cpu_count()} cores)")
    ideal = sum_pipeline / workers
    out = {"files": n, "workers": workers, "mb": total_mb, "sum_pipeline_s": sum_pipeline,
           "pipeline_ms_per_file": 1000 * sum_pipeline / n, "ideal_s": ideal, "parallel_pipeline_s": parallel,
           "cores": os.cpu_count(), "modes": {}}
    for mode in modes:
        r = one_batch(data, workers, split=(mode == "split"))
        r["overhead"] = r["wall_s"] / ideal
        r["serial_ratio"] = r["wall_s"] / sum_pipeline
        r["vs_parallel"] = r["wall_s"] / parallel
        r["cores_busy"] = (r["stack_cpu_s"] + (r["moto_cpu_s"] or 0)) / r["wall_s"]
        service_cpu = r["stack_cpu_s"] - sum_pipeline   # stack process beyond rendering
        r["stack_extra_ms_per_file"] = 1000 * service_cpu / n
        r["moto_ms_per_file"] = 1000 * r["moto_cpu_s"] / n if r["moto_cpu_s"] is not None else None
        out["modes"][mode] = r
        where = ("moto inside the stack process (python -m devstack)" if mode == "devstack"
                 else "moto in its own process (bench.split_stack)")
        log(f"[{mode}] {where}: batch {r['status']} ({r['succeeded']}/{n}); uploads done after "
            f"{r['uploads_done_s']:.2f} s; completed after {r['wall_s']:.2f} s (completed_at, 1 s resolution: "
            f"{r['wall_completed_at_s'] if r['wall_completed_at_s'] is not None else '-'} s)")
        log(f"[{mode}] overhead = wall / (sum_pipeline / workers) = {r['wall_s']:.2f} / ({sum_pipeline:.2f} / "
            f"{workers}) = {r['overhead']:.2f}x (target < {TARGET_OVERHEAD}x); wall / sum_pipeline = "
            f"{r['serial_ratio']:.2f}x; wall / pipeline on {workers} threads = {r['vs_parallel']:.2f}x")
        cpu = f"stack process CPU {r['stack_cpu_s']:.1f} s = pipeline {sum_pipeline:.1f} s + {service_cpu:.1f} s " \
              f"({r['stack_extra_ms_per_file']:.0f} ms/file)"
        if r["moto_cpu_s"] is not None:
            cpu += f"; moto process CPU {r['moto_cpu_s']:.1f} s ({r['moto_ms_per_file']:.0f} ms/file)"
        tr = r.get("workers_trace")
        if tr:
            log(f"[{mode}] pollers: {tr['invocations']} invocations for {tr['records']} messages "
                f"({tr['records'] / tr['invocations']:.1f} per invocation); busy share of the wall clock: "
                + ", ".join(f"{t} {v:.0%}" for t, v in tr["busy_share"].items())
                + f"; first message handled {tr['first_busy_s']:.2f} s after the first upload started; "
                f"one poller finished {tr['idle_tail_s']:.2f} s before the other")
        log(f"[{mode}] {cpu}; on average {r['cores_busy']:.2f} of {out['cores']} cores busy with the stack"
            f"{' and moto' if r['moto_cpu_s'] is not None else ''} during the run")
    return out


def rows(out: dict) -> list:
    from bench.report import Row
    result = []
    for mode, r in out["modes"].items():
        where = "devstack, moto in-process" if mode == "devstack" else "moto in its own process"
        result.append(Row(
            "e2e", f"{out['files']} x 3.8 MP JPEG, first upload -> completed, WORKERS={out['workers']} ({where})",
            f"{r['wall_s']:.1f} s wall", f"{out['ideal_s']:.1f} s = {out['sum_pipeline_s']:.1f} s pipeline / "
            f"{out['workers']}", r["overhead"], "wall/(sum/workers)", f"< {TARGET_OVERHEAD}x",
            r["overhead"] < TARGET_OVERHEAD and r["status"] == "completed"))
        result.append(Row("e2e", f"same batch ({where}) vs the bare pipeline on {out['workers']} threads",
                          f"{r['wall_s']:.1f} s wall", f"{out['parallel_pipeline_s']:.1f} s", r["vs_parallel"],
                          "wall/parallel pipeline", "-", None))
        extra = f"{r['stack_extra_ms_per_file']:.0f} ms/file service"
        if r["moto_ms_per_file"] is not None:
            extra += f" + {r['moto_ms_per_file']:.0f} ms/file moto"
        else:
            extra += " (incl. moto)"
        result.append(Row("e2e", f"same batch ({where}): CPU per file beyond the pipeline", extra,
                          f"{out['pipeline_ms_per_file']:.0f} ms/file pipeline",
                          (r["stack_cpu_s"] + (r["moto_cpu_s"] or 0)) / out["sum_pipeline_s"],
                          "all CPU/pipeline", "-", None))
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 files instead of 200")
    parser.add_argument("--files", type=int)
    parser.add_argument("--workers", type=int, default=2, help="poller threads in the stack (WORKERS)")
    parser.add_argument("--moto", choices=("devstack", "split", "both"), default="both",
                        help="devstack: moto inside the stack process (python -m devstack); split: moto in its "
                             "own process (bench.split_stack); both (default)")
    args = parser.parse_args(argv)
    modes = ("devstack", "split") if args.moto == "both" else (args.moto,)
    out = run(args.quick, args.files, args.workers, modes, log=lambda m: print(m, flush=True))
    from bench.report import table
    print()
    print(table(rows(out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
