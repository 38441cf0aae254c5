"""Benchmark: the batch counter under concurrent finishes, measured on moto and analysed for DynamoDB.

    .venv/bin/python -m bench.bench_contention            # 1,000 files per run, 1/4/8/16 threads
    .venv/bin/python -m bench.bench_contention --quick    # 300 files per run

Every uploaded file goes through Processor.process_key, the real state machine: get_job,
get_batch, claim_upload (TransactWriteItems: job + batch `uploaded`), get_job, finish_job
(TransactWriteItems: job + batch `succeeded`), finalize_if_done (get_batch, and the final
status once). Only rendering and S3 are stubbed out, so the hot batch item sees exactly the
service's DynamoDB traffic, from N threads, with 10% of the events delivered twice.

What moto can and cannot show: devstack/moto_patches.py serialises every DynamoDB request
(moto is not thread-safe), so there is no write-capacity limit and no TransactionConflict:
the measured runs prove the counters stay exact under concurrency, and give the service's
requests per file, not DynamoDB's limits. A last run adds a *model* of DynamoDB's item-level
transaction isolation in the moto process (an item touched by a transaction stays busy for
`--hold-ms` after it commits; another transaction touching it meanwhile is cancelled with
reason TransactionConflict) to show what the service does with such cancellations, followed by
immediate "redelivery" passes standing in for SQS. The numbers for real DynamoDB are computed
from the measured requests per file and the batch item's measured size (`paper()`), and written
up in docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import OWNER, RECORDER, build_container, percentile

# DynamoDB's published limits (developer guide: "Service, account, and table quotas" and
# "Transactions"): a partition serves at most 1,000 WCU/s and 3,000 RCU/s, and one item never
# spans partitions; a transactional write costs 2 WCU per KB of item; a strongly consistent read
# 1 RCU per 4 KB.
PARTITION_WCU, PARTITION_RCU = 1000, 3000


# --------------------------------------------------------------------------- moto with a conflict model


def _serve_with_conflicts(conn, hold_ms: float) -> None:
    import logging

    from moto.dynamodb.exceptions import TransactionCanceledException
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler
    from bench.common import run_server
    from devstack.moto_patches import install, item_key
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    install()
    hold = hold_ms / 1000
    busy: dict = {}            # item -> monotonic time until which a transaction holds it
    local = threading.local()
    inner_tx, inner_call = DynamoDBBackend.transact_write_items, DynamoHandler.call_action

    def ident(self, item):
        op_type, op = next(iter(item.items()))
        key = item_key(self, op_type, op)
        return op["TableName"], str(sorted((k, str(v)) for k, v in key.items()))

    def transact_write_items(self, transact_items):  # runs under devstack's lock
        now = time.monotonic()
        idents = [ident(self, item) for item in transact_items]
        conflicted = [busy.get(i, 0) > now for i in idents]
        if any(conflicted):
            raise TransactionCanceledException(
                [("TransactionConflict", "Transaction is ongoing for the item", None) if c else (None, None, None)
                 for c in conflicted])
        result = inner_tx(self, transact_items)
        until = time.monotonic() + hold
        for i in idents:
            busy[i] = until
        local.until = until
        return result

    def call_action(self):
        local.until = None
        try:
            return inner_call(self)   # devstack's lock is released when this returns
        finally:
            until = getattr(local, "until", None)
            if until:                 # the client waits while the items are held, as with DynamoDB
                time.sleep(max(0.0, until - time.monotonic()))

    DynamoDBBackend.transact_write_items = transact_write_items
    DynamoHandler.call_action = call_action
    run_server(conn)


@contextlib.contextmanager
def moto(hold_ms: float | None):
    if hold_ms is None:
        from bench.common import moto_server
        with moto_server() as (endpoint, _pid):
            yield endpoint
        return
    ctx = multiprocessing.get_context("spawn")
    parent_end, child_end = ctx.Pipe()
    proc = ctx.Process(target=_serve_with_conflicts, args=(child_end, hold_ms), daemon=True)
    proc.start()
    try:
        yield f"http://127.0.0.1:{parent_end.recv()}"
    finally:
        parent_end.send("stop")
        proc.join(timeout=10)


# --------------------------------------------------------------------------- one run


def _stub_processor(container):
    from chalicelib.services.processor import Processor

    class StubProcessor(Processor):
        """The real state machine; rendering and S3 replaced by a fixed output record."""

        def _render_and_store(self, batch, job):
            return [{"pipeline_id": p["id"], "key": f"outputs/{job['batch_id']}/{job['job_id']}/{p['id']}.jpg",
                     "format": "jpeg", "width": 800, "height": 533, "size": 123_456} for p in batch["pipelines"]]

    return StubProcessor(container.repository, None, container.settings)


def item_size(item: dict) -> int:
    """Approximate DynamoDB item size (attribute names + values) from a low-level item."""
    def size(v: dict) -> int:
        (kind, value), = v.items()
        if kind == "S":
            return len(value.encode())
        if kind == "N":
            return (len(value.lstrip("-").replace(".", "").lstrip("0")) + 1) // 2 + 1
        if kind == "B":
            return len(value)
        if kind in ("BOOL", "NULL"):
            return 1
        if kind == "L":
            return 3 + sum(1 + size(e) for e in value)
        if kind == "M":
            return 3 + sum(1 + len(k.encode()) + size(e) for k, e in value.items())
        if kind in ("SS", "NS", "BS"):
            return sum(size({kind[0]: e}) for e in value)
        return 0
    return sum(len(k.encode()) + size(v) for k, v in item.items())


def one_run(container, pipeline_ids: list[str], files: int, threads: int, dup: float = 0.1,
            max_passes: int = 1, seed: int = 7) -> dict:
    repo = container.repository
    created = container.batches.create(OWNER, {"pipeline_ids": pipeline_ids, "files": [
        {"name": f"PL_CON{i:05d}_front.jpg", "size": 2_000_000} for i in range(files)]})
    bid = created["batch"]["id"]
    keys = [j["key"] for j in repo.all_jobs(bid)]
    rng = random.Random(seed)
    deliveries = keys + rng.sample(keys, int(dup * files))
    rng.shuffle(deliveries)
    processor = _stub_processor(container)
    final_writes, lock = [], threading.Lock()
    real_finalize = repo.finalize

    def counting_finalize(batch, status, now):
        won = real_finalize(batch, status, now)
        if won:
            with lock:
                final_writes.append(status)
        return won

    latencies, outcomes = [], []

    def deliver(key):
        t0 = time.perf_counter()
        try:
            outcome = processor.process_key(key)
        except Exception as exc:   # the SQS handler would report the message for redelivery
            outcome = f"raised {type(exc).__name__}"
        dt = time.perf_counter() - t0
        with lock:
            latencies.append(dt)
            outcomes.append(outcome)
        return key, outcome

    repo.finalize = counting_finalize
    passes = 0
    try:
        with RECORDER.window() as w:
            t0 = time.perf_counter()
            pending = deliveries
            while pending and passes < max_passes:
                passes += 1
                with ThreadPoolExecutor(threads) as pool:
                    results = list(pool.map(deliver, pending))
                pending = [k for k, o in results if o.startswith("raised")]
            seconds = time.perf_counter() - t0
    finally:
        del repo.finalize   # back to the class method
    batch = repo.get_batch(bid)
    raw = container.dynamodb.get_item(TableName=container.settings.table("batches"), Key={"id": {"S": bid}})["Item"]
    counts = w.counts
    tally: dict[str, int] = {}
    for o in outcomes:
        tally[o] = tally.get(o, 0) + 1
    stuck = sum(1 for _ in repo.jobs_with_status(bid, ("processing", "awaiting_upload")))
    return {
        "threads": threads, "files": files, "deliveries": len(deliveries), "seconds": seconds,
        "files_per_s": files / seconds, "tx": counts.calls.get("TransactWriteItems", 0),
        "tx_per_s": counts.calls.get("TransactWriteItems", 0) / seconds,
        "requests": counts.total, "requests_per_file": counts.total / files, "calls": dict(counts.calls),
        "latency_ms": counts.latency_ms(), "retries": counts.retries, "errors": dict(counts.errors), "reasons": dict(counts.reasons),
        "p50_ms": 1000 * percentile(latencies, 0.5), "p99_ms": 1000 * percentile(latencies, 0.99),
        "outcomes": tally, "passes": passes, "left_after_passes": len(pending),
        "uploaded": int(batch["uploaded"]), "succeeded": int(batch["succeeded"]), "failed": int(batch["failed"]),
        "status": batch["status"], "final_writes": len(final_writes), "stuck_jobs": stuck,
        "exact": (int(batch["uploaded"]) == files and int(batch["succeeded"]) == files
                  and batch["status"] == "completed" and len(final_writes) == 1),
        "batch_item_bytes": item_size(raw),
    }


def _log_run(r: dict, log) -> None:
    log(f"  {r['threads']:>2} threads: {r['files']} files ({r['deliveries']} deliveries) in {r['seconds']:.2f} s = "
        f"{r['files_per_s']:.0f} files/s, {r['tx_per_s']:.0f} transactions/s; process_key p50 {r['p50_ms']:.1f} ms "
        f"p99 {r['p99_ms']:.1f} ms; {r['requests_per_file']:.2f} requests/file; retries {r['retries']}; "
        f"cancellation reasons {r['reasons'] or '{}'}; outcomes {r['outcomes']}; "
        f"counters uploaded={r['uploaded']} succeeded={r['succeeded']} status={r['status']} "
        f"final writes={r['final_writes']} -> {'exact' if r['exact'] else 'NOT EXACT'}")
    log("     requests per file and mean client latency: " + ", ".join(
        f"{op} {n / r['files']:.2f} x {r['latency_ms'].get(op, 0):.1f} ms" for op, n in sorted(r["calls"].items())))


# --------------------------------------------------------------------------- DynamoDB on paper


def paper(files: int = 10_000, lambdas: int = 1000, per_file_s: float = 0.3, tx_per_file: float = 2.0,
          reads_per_file: float = 2.0, item_bytes: int = 1000, hold_ms: float = 20.0) -> dict:
    """What DynamoDB's per-item limits imply for one batch item (see docs/benchmarks.md)."""
    kb = max(1, math.ceil(item_bytes / 1024))
    wcu_per_file = tx_per_file * 2 * kb             # transactional writes cost 2 WCU per KB
    rcu_per_file = reads_per_file * math.ceil(item_bytes / 4096)   # strongly consistent reads
    offered_files_s = lambdas / per_file_s
    wcu_demand = offered_files_s * wcu_per_file
    wcu_ceiling_files_s = PARTITION_WCU / wcu_per_file
    conflict_ceiling_files_s = (1000 / hold_ms) / tx_per_file   # one transaction on the item at a time
    rcu_ceiling_files_s = PARTITION_RCU / max(rcu_per_file, 1e-9)
    return {
        "files": files, "lambdas": lambdas, "per_file_s": per_file_s, "item_kb": kb, "tx_per_file": tx_per_file,
        "wcu_per_file": wcu_per_file, "offered_files_s": offered_files_s, "wcu_demand": wcu_demand,
        "wcu_over_limit": wcu_demand / PARTITION_WCU, "wcu_ceiling_files_s": wcu_ceiling_files_s,
        "conflict_ceiling_files_s": conflict_ceiling_files_s, "hold_ms": hold_ms,
        "rcu_demand": offered_files_s * rcu_per_file,
        "item_bytes": item_bytes, "rcu_ceiling_files_s": rcu_ceiling_files_s,
        "ideal_s": files / offered_files_s,
        "floor_s": files / min(wcu_ceiling_files_s, rcu_ceiling_files_s),         # documented limits only
        "floor_conflict_s": files / min(wcu_ceiling_files_s, conflict_ceiling_files_s),  # with the assumed hold
        "shards_for_wcu": math.ceil(offered_files_s / wcu_ceiling_files_s),
        "shards_for_conflicts": math.ceil(offered_files_s / conflict_ceiling_files_s),
        "max_lambdas_wcu": math.floor(wcu_ceiling_files_s * per_file_s),
        "max_lambdas_conflict": math.floor(min(wcu_ceiling_files_s, conflict_ceiling_files_s) * per_file_s),
    }


def print_paper(p: dict, log=print) -> None:
    log(f"\nDynamoDB on paper: {p['files']:,} files, {p['lambdas']:,} concurrent Lambdas at {p['per_file_s']} s/file "
        f"-> {p['offered_files_s']:,.0f} files/s offered")
    log(f"  batch item {p['item_bytes']} bytes (bills as {p['item_kb']} KB), {p['tx_per_file']:.2f} transactional writes on it per file "
        f"-> {p['wcu_per_file']:.0f} WCU/file -> {p['wcu_demand']:,.0f} WCU/s on ONE item "
        f"({p['wcu_over_limit']:.1f}x the {PARTITION_WCU:,} WCU/s a partition serves)")
    log(f"  ceilings for one batch: {p['wcu_ceiling_files_s']:.0f} files/s by WCU; about "
        f"{p['conflict_ceiling_files_s']:.0f} files/s if a transaction holds the item ~{p['hold_ms']:.0f} ms")
    log(f"  {p['files']:,} files: {p['ideal_s']:.0f} s of compute at that concurrency, but >= {p['floor_s']:.0f} s "
        f"through the batch item by WCU alone (>= {p['floor_conflict_s']:.0f} s with conflicts)")
    log(f"  unsharded, one batch item keeps up with ~{p['max_lambdas_wcu']} concurrent Lambdas by WCU "
        f"(~{p['max_lambdas_conflict']} with conflicts); "
        f"shards to spread it: {p['shards_for_wcu']} (WCU) / {p['shards_for_conflicts']} (conflicts)")


# --------------------------------------------------------------------------- whole


def connection_retries(container) -> dict:
    """The retry configuration the repository's DynamoDB calls really use."""
    conn = container.models.Batch._get_connection().connection
    return {"pynamodb (Repository)": dict(conn.client.meta.config.retries or {}),
            "boto3 (Container.dynamodb)": dict(container.dynamodb.meta.config.retries or {})}


def run(quick: bool = False, threads=(1, 4, 8, 16), files: int | None = None, hold_ms: float = 10.0,
        log=print) -> dict:
    files = files or (300 if quick else 1000)
    RECORDER.install()
    runs = []
    log(f"moto (requests serialised): {files} files per run, 10% of events delivered twice")
    with moto(None) as endpoint:
        container = build_container(endpoint)
        pipeline = container.pipelines.create(OWNER, {"name": "bench-web", "format": "jpeg", "width": 800})
        retries = connection_retries(container)
        log(f"  retry configuration: {retries}")
        for t in threads:
            r = one_run(container, [pipeline["id"]], files, t)
            runs.append(r)
            _log_run(r, log)
    sim = None
    if hold_ms:
        log(f"moto + conflict model (a transaction holds its items {hold_ms:g} ms), {max(threads)} threads, "
            "failed deliveries redelivered at once, up to 50 passes")
        with moto(hold_ms) as endpoint:
            container = build_container(endpoint)
            pipeline = container.pipelines.create(OWNER, {"name": "bench-web", "format": "jpeg", "width": 800})
            sim = one_run(container, [pipeline["id"]], files, max(threads), max_passes=50)
            _log_run(sim, log)
            log(f"  passes needed: {sim['passes']}; deliveries that raised (each one a message back on the queue "
                f"after the 960 s visibility timeout in AWS): {sim['outcomes'].get('raised TransactWriteError', 0)}")
    base = runs[0]
    tx_per_file = base["tx"] / base["files"]
    reads = base["calls"].get("GetItem", 0) / base["files"] / 2   # half the GetItems read the batch item
    p = paper(tx_per_file=tx_per_file, reads_per_file=reads, item_bytes=base["batch_item_bytes"])
    print_paper(p, log)
    return {"runs": runs, "sim": sim, "paper": p, "retries": retries, "hold_ms": hold_ms}


def rows(outcome: dict) -> list:
    from bench.report import Row
    runs, out = outcome["runs"], []
    one = runs[0]
    for r in runs:
        out.append(Row("contention", f"{r['threads']} threads x process_key on one batch (moto, serialised)",
                       f"{r['files_per_s']:.0f} files/s, {r['tx_per_s']:.0f} tx/s",
                       f"{one['files_per_s']:.0f} files/s @1 thread", r["files_per_s"] / one["files_per_s"],
                       f"@{r['threads']}/@1", "counters exact, 1 final write", r["exact"]))
    sim = outcome.get("sim")
    if sim:
        raised = sum(n for o, n in sim["outcomes"].items() if o.startswith("raised"))
        attempts = sum(sim["outcomes"].values())
        out.append(Row("contention", f"conflict model ({outcome['hold_ms']:g} ms hold), {sim['threads']} threads: "
                       "deliveries that raised TransactionConflict", f"{raised} of {attempts} deliveries "
                       f"({sim['passes']} passes)", f"{sim['deliveries']} events", attempts / sim["deliveries"],
                       "deliveries/event", "counters exact after redelivery", sim["exact"]))
    p = outcome["paper"]
    out.append(Row("contention", f"paper: WCU/s on the batch item, {p['files']:,} files by {p['lambdas']:,} Lambdas",
                   f"{p['wcu_demand']:,.0f} WCU/s", f"{PARTITION_WCU:,} WCU/s per partition", p["wcu_over_limit"],
                   "demand/limit", "<= 1x", p["wcu_over_limit"] <= 1))
    out.append(Row("contention", f"paper: {p['files']:,}-file batch duration, counter-bound vs compute-bound",
                   f">= {p['floor_s']:.0f} s", f"{p['ideal_s']:.0f} s compute", p["floor_s"] / p["ideal_s"],
                   "floor/ideal", "<= 1.3x", p["floor_s"] / p["ideal_s"] <= 1.3))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 files per run instead of 1,000")
    parser.add_argument("--threads", default="1,4,8,16")
    parser.add_argument("--files", type=int)
    parser.add_argument("--hold-ms", type=float, default=10.0, help="conflict model hold time; 0 skips that run")
    args = parser.parse_args(argv)
    outcome = run(args.quick, [int(t) for t in args.threads.split(",")], args.files, args.hold_ms,
                  log=lambda m: print(m, flush=True))
    from bench.report import table
    print()
    print(table(rows(outcome)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
