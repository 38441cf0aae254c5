"""Benchmark: DynamoDB cost of the API, in-process through the service layer, against moto server.

    .venv/bin/python -m bench.bench_api            # POST /batches 10/1,000/10,000/100,000 files; lists at 100 vs 10,000
    .venv/bin/python -m bench.bench_api --quick    # 10/1,000/10,000 files; lists at 100 vs 2,000 batches

moto runs in its own process (with devstack's DynamoDB patches). The service runs here, built by
its own composition root (wiring.Container) on that endpoint, so every DynamoDB request it makes
is counted by botocore event hooks (bench/common.py: logical calls and HTTP attempts) and every
item a list/stats query reads is counted by Repository.meter (ReadMeter).

Create: requests and wall time per file for 10, 1,000 and 10,000 files. The baseline is the naive
design (one PutItem per job); the floor is BatchWriteItem's 25 items a call plus the 3 fixed
requests (pipelines BatchGetItem, counter UpdateItem, batch+stats TransactWriteItems).
Lists and stats: items read per request for two owners in one table, one with 100 batches and
one with 10,000 (inserted directly with BatchWriteItem, shaped like BatchService.create's item).
Reads must not grow with the owner's batch count. Times against moto are not DynamoDB's
(moto evaluates an index query by walking the table) and are printed for information only.
"""
from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import OWNER, RECORDER, build_container, moto_server

FIXED_CREATE_REQUESTS = 3
API_GATEWAY_TIMEOUT_S = 29
LIST_LIMIT = 50  # the API's default page size (services/paging.py)


# --------------------------------------------------------------------------- create


def bench_create(container, pipeline_id: str, sizes: list[int], log=print) -> dict:
    out = {}
    for n in sizes:
        payload = {"pipeline_id": pipeline_id,
                   "files": [{"name": f"PL_BEN{i:05d}_front.jpg", "size": 100_000} for i in range(n)]}
        runs = 3 if n <= 1000 else 1
        times, counts = [], None
        for _ in range(runs):
            with RECORDER.window() as w:
                t0 = time.perf_counter()
                result = container.batches.create(OWNER, payload)
                times.append(time.perf_counter() - t0)
            counts = w.counts
            assert result["batch"]["total_files"] == n
        seconds = statistics.median(times)
        floor = math.ceil(n / 25) + FIXED_CREATE_REQUESTS
        out[n] = {"seconds": seconds, "ms_per_file": 1000 * seconds / n, "requests": counts.total,
                  "attempts": counts.attempts, "calls": dict(counts.calls), "floor": floor,
                  "naive": n + FIXED_CREATE_REQUESTS, "runs": runs,
                  "uploads_returned": len(result["uploads"])}
        log(f"  create {n:>6} files: {seconds:7.3f} s ({1000 * seconds / n:.2f} ms/file, median of {runs}), "
            f"{counts.describe()}; floor {floor}")
    return out


# --------------------------------------------------------------------------- listing


PREFIXES = ["PL", "AB", "CD", "XY", "QQ", "MM", "ZZ", "RR"]
STATUSES = ["completed"] * 6 + ["completed_with_errors", "failed", "processing", "queued", "cancelled"]


def _batch_items(owner: str, n: int, pipeline: dict, seed: int):
    """Batch items shaped exactly like BatchService.create's (the same index keys)."""
    from chalicelib.adapters.repository import batch_index_keys
    from chalicelib.domain import naming
    rng = random.Random(seed)
    base = 1_700_000_000
    for i in range(n):
        prefix, status = PREFIXES[i % len(PREFIXES)], STATUSES[rng.randrange(len(STATUSES))]
        t = base + i * 600
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
        created_sk = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(t)) + f"#{owner}-{i:06d}"
        batch_date = created[:10]
        files = rng.randint(1, 10_000)
        directory = naming.directory_name(prefix, batch_date, i + 1)
        description = f"bench batch {i} of {owner}"
        final = status not in ("queued", "processing")
        done = files if final else rng.randint(0, files)
        item = {
            "id": f"{owner}-{i:06d}", "owner": owner, "customer_prefix": prefix, "batch_date": batch_date,
            "batch_counter": i + 1, "base_directory_name": directory, "description": description,
            "search_text": naming.search_text(prefix, directory, description),
            "pipeline_ids": [pipeline["id"]], "pipelines": [pipeline], "total_pipelines": 1,
            "total_files": files, "total_size": files * 2_000_000, "status": status,
            "created_at": created, "updated_at": created, "upload_expires_at": created,
            "sample_file_names": [f"{prefix}_X{j}_front.jpg" for j in range(3)],
            "uploaded": done, "succeeded": done if status != "failed" else 0,
            "failed": done if status == "failed" else 0, "cancelled": 0,
            "owner_prefix": f"{owner}#{prefix}", "created_sk": created_sk,
            "files_sk": f"{files:06d}#{created_sk}",
            **batch_index_keys(owner, prefix, status, created_sk),
        }
        if final:
            item["completed_at"] = created
        else:
            item["open_shard"] = "open"
        yield item


def insert_batches(container, owner: str, n: int, pipeline: dict, seed: int) -> float:
    B, M = container.models.Batch, container.models.Meta
    items = list(_batch_items(owner, n, pipeline, seed))
    chunks = [items[i:i + 500] for i in range(0, len(items), 500)]

    def write(chunk):
        with B.batch_write() as writer:
            for item in chunk:
                writer.save(B(**item))

    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, chunks))
    stats = M(f"stats#{owner}", total_batches=n, files_current=sum(i["total_files"] for i in items),
              total_files_all_time=sum(i["total_files"] for i in items))
    for status in set(STATUSES):
        setattr(stats, status, sum(1 for i in items if i["status"] == status))
    stats.save()
    return time.perf_counter() - t0


QUERIES = [
    ("list, newest first (default)", {}),
    ("list, page 2 (cursor)", "page2"),
    ("list, sort by total_files", {"sort_by": "total_files"}),
    ("list, sort by status", {"sort_by": "status", "sort_order": "asc"}),
    ("list, status=completed", {"status": "completed"}),
    ("list, customer_prefix=PL", {"customer_prefix": "PL"}),
    ("list, status=failed & prefix=PL", {"status": "failed", "customer_prefix": "PL"}),
    ("search, matches every batch", {"search": "bench batch"}),
    ("search, matches nothing", {"search": "no-such-text"}),
    ("stats", "stats"),
]


def measure_reads(container, owner: str) -> dict:
    repo, out = container.repository, {}
    first_cursor = None
    for name, params in QUERIES:
        m0 = (repo.meter.index_items, repo.meter.items)
        with RECORDER.window() as w:
            t0 = time.perf_counter()
            if params == "stats":
                result = container.batches.stats(owner)
                returned = 1
            else:
                query = {"cursor": first_cursor} if params == "page2" else params
                result = container.batches.list(owner, query)
                returned = len(result["batches"])
                if params == {}:
                    first_cursor = result["next_cursor"]
            seconds = time.perf_counter() - t0
        out[name] = {"index_items": repo.meter.index_items - m0[0], "items": repo.meter.items - m0[1],
                     "requests": w.counts.total, "returned": returned, "ms": 1000 * seconds}
    return out


def bench_listing(container, pipeline: dict, sizes: tuple[int, int], log=print) -> dict:
    small, large = sizes
    t = insert_batches(container, "owner-small", small, pipeline, 1)
    log(f"  inserted {small} batches for owner-small in {t:.1f} s")
    t = insert_batches(container, "owner-large", large, pipeline, 2)
    log(f"  inserted {large} batches for owner-large in {t:.1f} s")
    reads = {small: measure_reads(container, "owner-small"), large: measure_reads(container, "owner-large")}
    print_reads(reads, small, large, log)
    return reads


def print_reads(reads: dict, small: int, large: int, log=print) -> None:
    log(f"\n| query | index items @{small} | items @{small} | requests @{small} | ms @{small} "
        f"| index items @{large} | items @{large} | requests @{large} | ms @{large} | returned @{large} |")
    log("|" + "---|" * 10)
    for name, _ in QUERIES:
        a, b = reads[small][name], reads[large][name]
        log(f"| {name} | {a['index_items']} | {a['items']} | {a['requests']} | {a['ms']:.0f} "
            f"| {b['index_items']} | {b['items']} | {b['requests']} | {b['ms']:.0f} | {b['returned']} |")


# --------------------------------------------------------------------------- whole


def run(quick: bool = False, create_sizes=(10, 1000, 10_000, 100_000), list_sizes=None, log=print) -> dict:
    list_sizes = list_sizes or ((100, 2000) if quick else (100, 10_000))
    RECORDER.install()
    with moto_server() as (endpoint, _pid):
        container = build_container(endpoint)
        pipeline = container.pipelines.create(OWNER, {"name": "bench-web", "format": "jpeg", "width": 800})
        log("POST /batches (service layer, in-process; moto in its own process)")
        create = bench_create(container, pipeline["id"], list(create_sizes), log)
        log(f"lists and stats: owner-small ({list_sizes[0]} batches) vs owner-large ({list_sizes[1]}), one table")
        reads = bench_listing(container, pipeline, list_sizes, log)
    return {"create": create, "reads": reads, "list_sizes": list_sizes}


def rows(outcome: dict) -> list:
    from bench.report import Row
    out = []
    create = outcome["create"]
    for n, r in create.items():
        # The old floor wrote every job inside the request (25 per BatchWriteItem); now the request
        # writes the batch, its bucket counters, its manifest chunks and the first chunk's jobs.
        out.append(Row("api", f"POST /batches {n:,} files: DynamoDB requests", f"{r['requests']}",
                       f"{r['floor']} (every job in the request, 25 per BatchWriteItem)", r["requests"] / r["floor"],
                       "ours/every-job floor", "< the every-job floor", r["requests"] < r["floor"] or n <= 25))
    sizes = sorted(create)
    if len(sizes) >= 2:
        a, b = create[sizes[-2]], create[sizes[-1]]
        out.append(Row("api", f"POST /batches time per file, {sizes[-1]:,} vs {sizes[-2]:,} files (moto)",
                       f"{b['ms_per_file']:.2f} ms/file", f"{a['ms_per_file']:.2f} ms/file",
                       b["ms_per_file"] / a["ms_per_file"], f"{sizes[-1]:,}/{sizes[-2]:,}", "<= 1.5x (flat)",
                       b["ms_per_file"] / a["ms_per_file"] <= 1.5))
        out.append(Row("api", f"POST /batches {sizes[-1]:,} files: total time (moto)", f"{b['seconds']:.1f} s",
                       f"{API_GATEWAY_TIMEOUT_S} s API Gateway limit", b["seconds"] / API_GATEWAY_TIMEOUT_S,
                       "time/limit", "< 1x", b["seconds"] < API_GATEWAY_TIMEOUT_S))
    small, large = outcome["list_sizes"]
    reads = outcome["reads"]

    def items(name, size):
        r = reads[size][name]
        return r["index_items"] + r["items"]

    plain = [name for name, _ in QUERIES if not name.startswith(("search", "stats"))]

    def per_row(name, size):
        return items(name, size) / max(1, reads[size][name]["returned"])

    worst = max(plain, key=lambda q: per_row(q, large) / per_row(q, small))
    ratio = per_row(worst, large) / per_row(worst, small)
    out.append(Row("api", f"list pages (7 query shapes, limit {LIST_LIMIT}): items read per batch returned, worst",
                   f"{per_row(worst, large):.2f} @{large:,} ({items(worst, large)} for "
                   f"{reads[large][worst]['returned']})",
                   f"{per_row(worst, small):.2f} @{small} ({items(worst, small)} for {reads[small][worst]['returned']})",
                   ratio, f"@{large:,}/@{small}", "<= 1x (flat)", ratio <= 1.0))
    biggest = max(plain, key=lambda q: items(q, large))
    out.append(Row("api", f"list pages: most items read by one page @{large:,}", f"{items(biggest, large)}",
                   f"{2 * LIST_LIMIT} (index page + BatchGetItem page)", items(biggest, large) / (2 * LIST_LIMIT),
                   "ours/page", "<= 1x", items(biggest, large) <= 2 * LIST_LIMIT))
    for name in ("search, matches every batch", "search, matches nothing"):
        r = items(name, large) / max(1, items(name, small))
        out.append(Row("api", f"{name}: items read", f"{items(name, large)} @{large:,}",
                       f"{items(name, small)} @{small}", r, f"@{large:,}/@{small}",
                       "<= 1,000 index items (scan budget)", reads[large][name]["index_items"] <= 1000))
    a, b = reads[small]["stats"], reads[large]["stats"]
    out.append(Row("api", "GET /stats: DynamoDB requests (index items read)",
                   f"{b['requests']} ({b['index_items']}) @{large:,}", f"{a['requests']} ({a['index_items']}) @{small}",
                   b["requests"] / max(1, a["requests"]), f"@{large:,}/@{small}", "<= 1x (flat)",
                   b["requests"] <= a["requests"] and b["index_items"] <= a["index_items"]))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="lists at 100 vs 2,000 batches instead of 10,000")
    parser.add_argument("--create-sizes", default="10,1000,10000,100000")
    parser.add_argument("--list-sizes", help="two owner sizes, e.g. 100,10000")
    args = parser.parse_args(argv)
    list_sizes = tuple(int(s) for s in args.list_sizes.split(",")) if args.list_sizes else None
    outcome = run(args.quick, [int(s) for s in args.create_sizes.split(",")], list_sizes,
                  log=lambda m: print(m, flush=True))
    from bench.report import table
    print()
    print(table(rows(outcome)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
