"""Benchmark: one batch ZIP built in parallel parts by 1, 2 and 4 workers vs the single-stream
build of the same archive, against one moto server, in the same run.

    .venv/bin/python -m bench.bench_parts            # 400 MB archives
    .venv/bin/python -m bench.bench_parts --quick    # 100 MB

Both builds run the service's own code (ArchiveService.build_requested, then build_task in each
worker) on a real batch record: the single-stream build is the same coordinator given a task
size that makes the whole archive one task (so it streams the layout into one multipart upload,
as the API request does); the parallel build is the coordinator plus N spawned worker processes
polling the parts queue, as N Lambda functions would. Two mixes of outputs:

- "5 MB files": every member is under S3's 5 MiB minimum part, so no member is copied inside
  S3 and every byte goes through a worker: the profile of the issue's 50 GB, 10,000-file archive,
  and the worst case for the workers.
- "mixed": 1 MB files and a few 40 MB files, which are copied with UploadPartCopy.

moto is one process on a shared 2-core machine and does the S3 work of every worker, so the
ratios here are a floor: in AWS each worker streams on its own network link. The per-worker
rate measured here feeds the paper estimate in docs/benchmarks.md.
Not collected by pytest (file name does not start with test_).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
import zlib

MB = 1000 * 1000
MIB = 1024 * 1024
# Smaller than the service's defaults (32 MiB parts, 512 MiB tasks) so that a few hundred MB make
# a couple of dozen tasks to share out; the per-worker rate does not depend on the task size.
PART_SIZE = 8 * MIB
TASK_BYTES = 16 * MIB
WORKERS = (1, 2, 4)


def _settings(endpoint: str, task_bytes: int):
    from chalicelib.settings import Settings
    return Settings(endpoint_url=endpoint, archive_sync_max_bytes=0, archive_part_size=PART_SIZE,
                    archive_task_bytes=task_bytes)


def _worker(settings, stop, ready, result) -> None:
    """A spawned process standing in for one build_archive_part Lambda: poll, build, delete."""
    from bench.bench_pipeline import peak_rss_kb
    from chalicelib import wiring
    container = wiring.Container(settings)
    service, sqs, url = container.archives, container.sqs, settings.queue_url("archive_parts")
    sqs.get_queue_attributes(QueueUrl=url)   # connections and clients warm before the clock starts
    ready.put(os.getpid())
    tasks = busy = 0.0
    cpu_start = sum(os.times()[:2])
    while not stop.is_set():
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1).get("Messages", [])
        for message in got:
            body = json.loads(message["Body"])
            started = time.perf_counter()
            service.build_task(body["batch_id"], body["fingerprint"], body["key"], body["upload_id"], body["task"])
            busy += time.perf_counter() - started
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            tasks += 1
    result.put({"tasks": int(tasks), "busy": busy, "cpu": sum(os.times()[:2]) - cpu_start,
                "peak_rss_mb": peak_rss_kb() / 1024})


def _make_batch(container, sizes: list[int]) -> tuple[str, int]:
    """Store outputs of these sizes and a finished batch whose jobs point at them (with their CRCs,
    as processing records them). Returns (batch id, bytes)."""
    import uuid
    from datetime import timedelta

    from chalicelib.domain.batches import NewBatch, NewJob
    from chalicelib.domain.keys import output_key, upload_key
    from chalicelib.services.clock import iso, utcnow
    repo, s3, bucket = container.repository, container.s3, container.settings.bucket
    now = utcnow()
    batch_id = str(uuid.uuid4())
    pipeline = {"id": "p1", "name": "web", "format": "jpeg", "filename": None}
    jobs = []
    for i, size in enumerate(sizes):
        job_id = str(uuid.uuid4())
        jobs.append(NewJob(job_id, i, f"IMG_{i:05d}.png", size, "image/png", upload_key(batch_id, job_id, "x.png")))
    repo.create_batch(NewBatch(
        id=batch_id, owner="bench", customer_prefix="BENCH", batch_date=now.strftime("%Y-%m-%d"), batch_counter=1,
        base_directory_name=f"BENCH_{batch_id[:8]}", description="bench", pipelines=(pipeline,), created=now,
        created_at=iso(now), upload_expires_at=iso(now + timedelta(hours=1)), jobs=tuple(jobs)))
    block = os.urandom(MIB)
    for job, size in zip(sorted(repo.all_jobs(batch_id), key=lambda j: j["position"]), sizes):
        data = (block * (size // MIB + 1))[:size - 8] + os.urandom(8)   # distinct, incompressible enough
        key = output_key(batch_id, job["job_id"], "p1", "jpg")
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        assert repo.claim_upload(job, iso(now))
        job = repo.get_job(batch_id, job["job_id"])
        assert repo.finish_job(job, int(job["attempt"]), iso(now), outputs=[{
            "pipeline_id": "p1", "key": key, "format": "jpeg", "width": 800, "height": 600, "size": size,
            "crc32": zlib.crc32(data)}])
    assert repo.finalize(repo.get_batch(batch_id), "completed", iso(now))
    return batch_id, sum(sizes)


def _forget_archive(container, batch_id: str) -> None:
    """Remove the archive, its plan and its marker so that the next build starts from nothing."""
    from chalicelib.domain.keys import ARCHIVE_PREFIX
    container.storage.delete_prefix(f"{ARCHIVE_PREFIX}{batch_id}/")
    meta = container.models.Meta
    for item in meta.scan(meta.id.startswith(f"archive#{batch_id}#")):
        item.delete()


def _build(container, settings, batch_id: str, workers: int, ctx, moto_pid: int) -> dict:
    """Time from the coordinator's start to the archive stored, with `workers` part workers; CPU
    seconds of the coordinator (this process), the workers and moto over that time."""
    from bench.common import cpu_seconds
    from chalicelib.services.archives import ArchiveService
    from chalicelib.services.clock import iso, utcnow
    service = ArchiveService(container.repository, container.storage, settings, container.archives.queue)
    stop, ready, result = ctx.Event(), ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(settings, stop, ready, result)) for _ in range(workers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)
    now = utcnow()
    batch = container.repository.get_batch(batch_id)
    plan = service._plan(batch, partial=False)
    assert container.repository.claim_archive_build(batch_id, plan.fingerprint, iso(now), iso(now))
    started, moto_cpu = time.perf_counter(), cpu_seconds(moto_pid)
    coordinator_cpu = sum(os.times()[:2])
    key = service.build_requested(batch_id, partial=False)
    coordinator_cpu = sum(os.times()[:2]) - coordinator_cpu
    while container.storage.head(key) is None:
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    moto_cpu = cpu_seconds(moto_pid) - moto_cpu
    stop.set()
    stats = [result.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    size = int(container.storage.head(key)["ContentLength"])
    return {"seconds": seconds, "bytes": size, "key": key, "workers": workers,
            "tasks": sum(s["tasks"] for s in stats), "busy": [round(s["busy"], 1) for s in stats],
            "client_cpu": coordinator_cpu + sum(s["cpu"] for s in stats), "moto_cpu": moto_cpu,
            "peak_rss_mb": max((s["peak_rss_mb"] for s in stats), default=0.0)}


def _check(container, key: str, expected_members: int) -> None:
    import io
    import zipfile
    data = container.s3.get_object(Bucket=container.settings.bucket, Key=key)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None and len(zf.infolist()) == expected_members + 1


MIXES = {
    "5 MB files": lambda total_mb: [5 * MB] * (total_mb // 5),
    "mixed": lambda total_mb: ([40 * MB] * max(1, total_mb // 200) +
                               [1 * MB] * (total_mb - 40 * max(1, total_mb // 200))),
}


def run(total_mb: int = 400, workers=WORKERS, mixes=tuple(MIXES), repeat: int = 1, log=print) -> dict:
    """Single-stream and parallel builds of each mix, side by side. {(mix, mode): result}, where
    mode is "single" or the number of workers."""
    import statistics

    from bench.common import moto_server
    from chalicelib import wiring
    ctx = multiprocessing.get_context("spawn")
    results = {}
    with moto_server() as (endpoint, moto_pid):
        base = wiring.Container(_settings(endpoint, TASK_BYTES)).provision()
        for mix in mixes:
            sizes = MIXES[mix](total_mb)
            container = wiring.Container(base)
            t0 = time.perf_counter()
            batch_id, total = _make_batch(container, sizes)
            log(f"{mix}: stored {len(sizes)} outputs, {total / MB:.0f} MB, in {time.perf_counter() - t0:.0f} s")
            runs: dict = {}
            _forget_archive(container, batch_id)
            _build(container, _settings_like(base, task_bytes=1 << 40), batch_id, 0, ctx, moto_pid)   # warm-up
            for _ in range(max(1, repeat)):
                for mode in ("single", *workers):
                    settings = base if mode != "single" else _settings_like(base, task_bytes=1 << 40)
                    _forget_archive(container, batch_id)
                    r = _build(container, settings, batch_id, 0 if mode == "single" else mode, ctx, moto_pid)
                    runs.setdefault(mode, []).append(r)
                    log(f"  {str(mode) + (' workers' if mode != 'single' else ' stream'):10}: "
                        f"{r['bytes'] / MB:7.1f} MB in {r['seconds']:6.2f} s = {r['bytes'] / MB / r['seconds']:6.1f} MB/s, "
                        f"CPU s per GB: ours {r['client_cpu'] / r['bytes'] * 1e9:.1f}, moto {r['moto_cpu'] / r['bytes'] * 1e9:.1f}"
                        + (f"; {r['tasks']} tasks, busy s per worker {r['busy']}, peak RSS {r['peak_rss_mb']:.0f} MB"
                           if mode != "single" else ""))
            _check(container, runs[workers[-1]][-1]["key"], len(sizes))
            for mode, rs in runs.items():
                results[mix, mode] = dict(rs[0], seconds=statistics.median(r["seconds"] for r in rs), runs=len(rs))
            _forget_archive(container, batch_id)
            container.storage.delete_prefix(f"outputs/{batch_id}/")
    return results


def _settings_like(settings, **changes):
    from dataclasses import replace
    return replace(settings, archive_task_bytes=changes["task_bytes"])


# -- the paper estimate: 50 GB in 10,000 files of 5 MB, in AWS ------------------------------------
PAPER_BYTES = 50 * 1000 ** 3
PAPER_FILES = 10_000
PAPER_TASK_BYTES = 512 * MIB       # settings.archive_task_bytes
PAPER_WORKERS = 100                # resources.ARCHIVE_PARTS.max_concurrency
# Lambda's SQS event source starts 5 concurrent invocations and adds up to 300 per minute
# (AWS Lambda docs, "Scaling behavior for standard queues").
SQS_START, SQS_RAMP_PER_S = 5, 300 / 60
PAPER_TARGET_S = 120


def paper_estimate(rate_mb_s: float, plan_s: float, complete_s: float = 10.0) -> dict:
    """Seconds to build the 50 GB archive with workers streaming at `rate_mb_s` each: planning
    (measured here for 10,000 members), then tasks on workers that arrive as the event source
    scales up (list scheduling), then completion (S3's CompleteMultipartUpload of ~1,500 parts:
    assumed, not measured). Every 5 MB file is under 5 MiB, so no byte is copied inside S3."""
    tasks = -(-PAPER_BYTES // PAPER_TASK_BYTES)
    task_s = PAPER_TASK_BYTES / (rate_mb_s * MB)
    free = [max(0.0, (k - SQS_START + 1) / SQS_RAMP_PER_S) for k in range(PAPER_WORKERS)]
    for _ in range(tasks):
        k = min(range(PAPER_WORKERS), key=free.__getitem__)
        free[k] += task_s
    parts_s = max(t for t in free if t > 0)
    return {"tasks": tasks, "task_s": task_s, "parts_s": parts_s, "plan_s": plan_s, "complete_s": complete_s,
            "total_s": plan_s + parts_s + complete_s}


def planning_seconds() -> float:
    """Lay out and cut the 10,000-member archive, as the coordinator and every worker do."""
    from datetime import datetime

    from chalicelib.domain.zip_layout import Member, group_parts, layout_zip, split_parts
    members = [Member(f"BASE/PL_DXB{i:05d}_Front.jpg", PAPER_BYTES // PAPER_FILES, 0, key=f"outputs/b/{i}/p.jpg")
               for i in range(PAPER_FILES)]
    started = time.perf_counter()
    group_parts(split_parts(layout_zip(members, datetime(2026, 1, 1)), 32 * MIB), PAPER_TASK_BYTES)
    return time.perf_counter() - started


def rows(results: dict) -> list:
    """Rows for the combined table (bench/report.py)."""
    from bench.report import Row
    out = []
    for mix in dict.fromkeys(m for m, _ in results):
        single = results[mix, "single"]
        rate = single["bytes"] / MB / single["seconds"]
        for mode in [m for (x, m) in results if x == mix and m != "single"]:
            r = results[mix, mode]
            out.append(Row("parts", f"{r['bytes'] / MB:.0f} MB archive, {mix}: {mode} worker(s) vs one stream",
                           f"{r['bytes'] / MB / r['seconds']:.0f} MB/s", f"{rate:.0f} MB/s stream",
                           single["seconds"] / r["seconds"], "stream time / parts time"))
    worst = results.get(("5 MB files", 1))
    if worst:
        measured = worst["bytes"] / MB / worst["seconds"]
        plan_s = 3 * planning_seconds() + 2.0   # 3 layouts (coordinator, worker, completer) + ~2 s of requests
        for label, rate in ((f"measured 1-worker rate here, {measured:.0f} MB/s", measured),
                            ("75 MB/s, one Lambda's S3 stream (issue 15)", 75.0)):
            e = paper_estimate(rate, plan_s)
            out.append(Row("parts", f"paper: 50 GB, 10,000 files in AWS at {label}", f"{e['total_s']:.0f} s",
                           f"{e['tasks']} tasks of {e['task_s']:.0f} s on <= {PAPER_WORKERS} workers",
                           e["total_s"] / PAPER_TARGET_S, "estimate / target", f"< {PAPER_TARGET_S} s",
                           e["total_s"] < PAPER_TARGET_S))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=400, help="archive size in MB (default 400)")
    parser.add_argument("--quick", action="store_true", help="100 MB archives")
    parser.add_argument("--repeat", type=int, default=1, help="builds of each kind (median)")
    args = parser.parse_args()
    results = run(100 if args.quick else args.mb, repeat=args.repeat, log=lambda m: print(m, flush=True))
    from bench.report import table
    print("\n" + table(rows(results)))


if __name__ == "__main__":
    main()
