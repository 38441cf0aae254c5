"""Benchmark: the local stack's persistence (devstack/persistence.py): time to save and restore,
and how long moto is held still per snapshot, for a realistic store.

    .venv/bin/python -m bench.bench_persistence                 # 1,000 batches / 5,000 objects
    .venv/bin/python -m bench.bench_persistence --quick         # 200 batches / 1,000 objects

The store is built in-process under mock_aws with the service's own composition root: N batches of
5 files each through BatchService.create (the real items: batches, jobs, stats, counters), one
upload per job put into S3 under uploads/ (so S3 queues an SQS message per object, as in the
stack), with bodies of --object-kb random bytes. Then:
- first snapshot: every body is new and written (the cost after a burst of uploads);
- steady snapshot: one pipeline created, no new body (the cost the stack pays every interval while busy);
- snapshot after 100 new uploads;
- the same snapshot pickled in-process, as the final one at shutdown is: the baseline for how
  long moto holds still;
- restore into an empty moto (what a restart pays before serving), and the size on disk.
"moto held still" (paused) is the time requests wait; the rest (writes, fsync) runs beside them.
"""
from __future__ import annotations

import argparse
import gc
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import OWNER

FILES_PER_BATCH = 5


def _build(batches: int, object_kb: int, log=print):
    from dataclasses import replace

    from chalicelib import resources, wiring
    from chalicelib.settings import Settings
    settings = Settings(local_api_tokens={"bench-token": OWNER})
    container = wiring.Container(settings)
    created = resources.create_all(models=container.models, dynamodb=container.dynamodb, s3=container.s3,
                                   sqs=container.sqs, bucket=settings.bucket, region=settings.region)
    container = wiring.Container(replace(settings, upload_queue_url=created["queue_url"],
                                         archive_queue_url=created["archive_queue_url"]))
    pipeline = container.pipelines.create(OWNER, {"name": "bench-web", "format": "jpeg", "width": 800})
    body = os.urandom(object_kb * 1024)
    t0 = time.perf_counter()
    for b in range(batches):
        result = container.batches.create(OWNER, {
            "pipeline_id": pipeline["id"],
            "files": [{"name": f"PL_BEN{b:05d}_{i}.jpg", "size": len(body)} for i in range(FILES_PER_BATCH)]})
        for upload in result["uploads"]:
            container.s3.put_object(Bucket=settings.bucket, Key=upload["fields"]["key"], Body=body)
    log(f"  built {batches:,} batches, {batches * FILES_PER_BATCH:,} objects of {object_kb} KB "
        f"in {time.perf_counter() - t0:.1f} s")
    return container, settings, body


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run(batches: int = 1000, object_kb: int = 50, log=print) -> dict:
    from moto import mock_aws
    from moto.core.base_backend import BackendDict

    from devstack.persistence import Persistence
    data_dir = Path(tempfile.mkdtemp(prefix="bench-persistence-"))
    out: dict = {"batches": batches, "objects": batches * FILES_PER_BATCH, "object_kb": object_kb}
    try:
        with mock_aws():
            container, settings, body = _build(batches, object_kb, log)
            store = Persistence(data_dir)
            store.open()
            first = store.snapshot()
            out["contents"] = first.contents
            out["first"] = first
            log(f"  first snapshot: {first.seconds:.2f} s ({first.new_bodies:,} bodies, "
                f"{first.new_body_bytes / 1e6:.0f} MB written), moto held still {first.paused_seconds * 1000:.0f} ms, "
                f"state {first.state_bytes / 1e6:.1f} MB")
            steady = []
            for n in range(5):
                container.pipelines.create(OWNER, {"name": f"steady-{n}", "format": "png"})
                gc.collect()
                steady.append(store.snapshot())
            steady.sort(key=lambda s: s.seconds)
            out["steady"] = steady[len(steady) // 2]
            s = out["steady"]
            log(f"  steady snapshot (median of 5): {s.seconds * 1000:.0f} ms, moto held still "
                f"{s.paused_seconds * 1000:.0f} ms")
            for i in range(100):
                container.s3.put_object(Bucket=settings.bucket, Key=f"uploads/extra/{i}/x.jpg", Body=body)
            out["after_100"] = after = store.snapshot()
            log(f"  snapshot after 100 new uploads: {after.seconds * 1000:.0f} ms, moto held still "
                f"{after.paused_seconds * 1000:.0f} ms")
            # the baseline: the same snapshot pickled in this process (how the final one at shutdown
            # runs), so moto holds still for the whole pickling instead of for the fork
            out["in_process"] = in_process = store.snapshot(final=True)
            log(f"  the same snapshot pickled in-process: moto held still {in_process.paused_seconds * 1000:.0f} ms")
            store.close()
            out["state_bytes"] = (data_dir / "state.bin").stat().st_size
            out["disk_bytes"] = _du(data_dir)
            out["object_bytes"] = after.contents.object_bytes
            log(f"  on disk: {out['disk_bytes'] / 1e6:.0f} MB (state {out['state_bytes'] / 1e6:.1f} MB; "
                f"object bodies {out['object_bytes'] / 1e6:.0f} MB)")
            BackendDict.reset()
            del container
            gc.collect()
            t0 = time.perf_counter()
            restored = Persistence(data_dir)
            contents = restored.open()
            out["restore_seconds"] = time.perf_counter() - t0
            restored.close()
            log(f"  restore: {out['restore_seconds']:.2f} s ({contents.describe()})")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return out


def rows(outcome: dict) -> list:
    from bench.report import Row
    b, o = outcome["batches"], outcome["objects"]
    scale = f"{b:,} batches, {o:,} objects of {outcome['object_kb']} KB"
    s = outcome["steady"]
    return [
        Row("persistence", f"moto paused per snapshot (forked child), {scale}",
            f"{s.paused_seconds * 1000:.0f} ms ({s.seconds * 1000:.0f} ms in all)",
            f"pickled in-process {outcome['in_process'].paused_seconds * 1000:.0f} ms",
            outcome["in_process"].paused_seconds / s.paused_seconds, "in-process/forked"),
        Row("persistence", f"first snapshot, {scale}", f"{outcome['first'].seconds:.1f} s",
            f"{outcome['first'].new_body_bytes / 1e6:.0f} MB bodies", None),
        Row("persistence", f"restore, {scale}", f"{outcome['restore_seconds']:.1f} s",
            f"{outcome['disk_bytes'] / 1e6:.0f} MB on disk", None),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 batches / 1,000 objects")
    parser.add_argument("--batches", type=int, help="batches of 5 files (default 1,000)")
    parser.add_argument("--object-kb", type=int, default=50, help="size of every object body")
    args = parser.parse_args(argv)
    batches = args.batches or (200 if args.quick else 1000)
    run(batches=batches, object_kb=args.object_kb)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
