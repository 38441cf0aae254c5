"""Benchmark: the end of a big batch, where each bucket's last file asks "is the batch done?" (issue 15).

    .venv/bin/python -m bench.bench_settle                  # 100,000 files: 1,000 buckets
    .venv/bin/python -m bench.bench_settle --files 20000    # 200 buckets

A batch's buckets all settle in its last few per cent (a bucket's last file is the latest of its
100), and the last file of each asks whether the whole batch is done. This replays exactly that
on a moto server, through the repository: a batch of FILES is created, its buckets are settled
one by one in a random order (each counter set to its total: what its last file's commit does),
and after each the check is made both ways, in the same run on the same batch shape:

- before: the batch with every counter summed (`get_batch`), then `final_status`;
- now: `settled_batch(batch, after=the bucket just settled)`, which stops at the first bucket
  with a file left.

Both must answer "done" exactly once, at the last bucket. Reports counter items read,
BatchGetItem requests and the wall time of the checks. Nothing is asserted beyond that logic.
"""
from __future__ import annotations

import argparse
import random
import time

from bench.common import OWNER, RECORDER, build_container, moto_server
from bench.report import Row

DESIGNS = ("sum every counter (before)", "settled_batch (now)")


def _check(container, design: str, batch_id: str, bucket: int) -> bool:
    from chalicelib.domain.batches import final_status
    if design == DESIGNS[0]:
        b = container.repository.get_batch(batch_id)
        return final_status(int(b["total_files"]), int(b["succeeded"]), int(b["failed"]), int(b["cancelled"])) is not None
    return container.repository.settled_batch(batch_id, after=bucket) is not None


def run(files: int = 100_000, log=print) -> list[dict]:
    from chalicelib.adapters.repository import bucket_key
    RECORDER.install()
    results = []
    with moto_server() as (endpoint, _pid):
        container = build_container(endpoint)
        pipeline = container.pipelines.create(OWNER, {"name": "bench-settle", "format": "webp", "width": 32})
        C = container.models.Counter
        real = C.batch_get
        read = [0]

        def counting(keys, *args, **kwargs):
            keys = list(keys)
            read[0] += len(keys)
            return real(keys, *args, **kwargs)

        C.batch_get = counting
        try:
            for design in DESIGNS:
                body = {"pipeline_ids": [pipeline["id"]],
                        "files": [{"name": f"PL_END{i:06d}_x.png", "size": 90, "content_type": "image/png"}
                                  for i in range(files)]}
                batch_id = container.batches.create(OWNER, body)["batch"]["id"]
                buckets = int(container.repository.get_batch(batch_id, counts=False)["buckets"])
                answers, seconds, read[0] = [], 0.0, 0
                with RECORDER.window() as w:
                    for bucket in random.Random(15).sample(range(buckets), buckets):
                        counter = C.get(bucket_key(batch_id, bucket), consistent_read=True)
                        total = int(counter.total or 0)
                        counter.update(actions=[C.done.set(total), C.succeeded.set(total), C.uploaded.set(total)])
                        started = time.perf_counter()
                        answers.append(_check(container, design, batch_id, bucket))
                        seconds += time.perf_counter() - started
                r = {"design": design, "files": files, "buckets": buckets, "checks": len(answers),
                     "done_answers": answers.count(True), "done_at_last": answers[-1],
                     "counters_read": read[0], "batch_gets": w.counts.calls.get("BatchGetItem", 0),
                     "seconds": seconds}
                results.append(r)
                log(f"  {design:28} {files:,} files, {buckets:,} buckets: {r['counters_read']:,} counters read "
                    f"in {r['batch_gets']:,} BatchGetItems, checks {r['seconds']:.1f} s on moto; "
                    f"'done' answered {r['done_answers']} time(s), at the last bucket: {r['done_at_last']}")
        finally:
            C.batch_get = real
    before, now = results
    log(f"  counters read: {before['counters_read'] / max(now['counters_read'], 1):.0f}x fewer; "
        f"check time: {before['seconds'] / max(now['seconds'], 1e-9):.1f}x less")
    return results


def rows(results: list[dict]) -> list[Row]:
    before, now = results
    exact = all(r["done_answers"] == 1 and r["done_at_last"] for r in results)
    return [Row("settle", f"end of a {now['files']:,}-file batch: counters read by its finishers",
                f"{now['counters_read']:,}", f"{before['counters_read']:,} before",
                before["counters_read"] / max(now["counters_read"], 1), "before/now", "exactly one 'done'", exact),
            Row("settle", "their checks' time on moto", f"{now['seconds']:.1f} s", f"{before['seconds']:.1f} s before",
                before["seconds"] / max(now["seconds"], 1e-9), "before/now")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_settle", description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    args = parser.parse_args(argv)
    run(args.files)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
