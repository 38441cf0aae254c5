"""Benchmark: batch ZIP streamed into S3 (the single-stream writer: the layout of
domain/zip_layout.py streamed through one MultipartUpload) vs a plain copy of the same bytes,
against moto server.

    .venv/bin/python -m bench.bench_zip            # 100 MB and 1 GB
    .venv/bin/python -m bench.bench_zip --quick    # 20 MB and 100 MB

moto runs in its own process and every build runs in a fresh (spawned) process, so each peak RSS
(VmHWM of the child) belongs to that build alone. Targets: the peak RSS of the smallest and
largest builds less than 32 MB apart (memory independent of archive size), and zip throughput at
least 0.7x the plain copy (both through the same MultipartUpload).
Not collected by pytest (file name does not start with test_).
"""
from __future__ import annotations

import argparse
import multiprocessing
import time

BUCKET = "bench-zip"
MB = 1024 * 1024
READ_CHUNK = 1 * MB
TARGET_RSS_SPREAD_MB = 32
TARGET_RATIO = 0.7


def _client(endpoint: str):
    import boto3
    return boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint,
                        aws_access_key_id="bench", aws_secret_access_key="bench")


def _serve(conn) -> None:
    import logging
    from moto.server import ThreadedMotoServer
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    conn.send(server.get_host_and_port()[1])
    conn.recv()  # any message, or the parent's end closing, means stop
    server.stop()


def _build(endpoint: str, mode: str, prefix: str, part_size: int, result) -> None:
    """Runs in a fresh process: one archive (or plain copy) of every object under prefix."""
    import zlib
    from datetime import datetime

    from chalicelib.adapters.multipart import MultipartUpload, upload_stream
    from chalicelib.domain.archive import (
        ArchiveJob, ArchiveOutput, archive_members, manifest_arcname, plan_archive)
    from chalicelib.domain.zip_layout import layout_zip, stream

    s3 = _client(endpoint)
    objects = [o for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
               for o in page.get("Contents", [])]

    def read_chunks(key):
        return s3.get_object(Bucket=BUCKET, Key=key)["Body"].iter_chunks(READ_CHUNK)

    # The CRC-32s that processing records, computed from the same seeds before the clock starts.
    crcs = {o["Key"]: zlib.crc32(_content(o["Key"], o["Size"])) for o in objects} if mode == "zip" else {}
    started = time.perf_counter()
    if mode == "zip":
        base = f"BENCH_{prefix.strip('/')}"
        jobs = [ArchiveJob(f"img{i:05d}.png", "completed", None, None,
                           (ArchiveOutput("p1", "Web", o["Key"], "jpg", o["Size"], 800, 600, crc32=crcs[o["Key"]]),))
                for i, o in enumerate(objects)]
        entries, manifest = plan_archive(base, jobs, ["Web"])
        layout = layout_zip(archive_members(entries, manifest, manifest_arcname(base)), datetime.now())
        # the service reads with Storage.read_range; a whole-object GET is what it sends here too
        stored = upload_stream(s3, BUCKET, f"archives/{prefix}.zip",
                               stream(layout.segments, lambda source: read_chunks(source.key)),
                               part_size=part_size)
    else:
        with MultipartUpload(s3, BUCKET, f"archives/{prefix}.plain", part_size=part_size) as up:
            for o in objects:
                for chunk in read_chunks(o["Key"]):
                    up.write(chunk)
            stored = up.complete()
    seconds = time.perf_counter() - started
    # VmHWM: this process's own peak. ru_maxrss would report the parent's peak when the parent
    # was bigger (it survives the fork+exec of a spawned child on Linux), e.g. under `python -m bench`.
    from bench.bench_pipeline import peak_rss_kb
    peak_mb = peak_rss_kb() / 1024
    result.put({"seconds": seconds, "peak_rss_mb": peak_mb, "bytes": stored["size"],
                "parts": stored["parts"], "objects": len(objects)})


def _run_child(ctx, *args) -> dict:
    queue = ctx.Queue()
    child = ctx.Process(target=_build, args=(*args, queue))
    child.start()
    result = queue.get()
    child.join()
    if child.exitcode:
        raise SystemExit(f"build {args[1:3]} failed with exit code {child.exitcode}")
    return result


def _content(key: str, size: int) -> bytes:
    import random
    return random.Random(key).randbytes(size)


def _populate(s3, prefix: str, total_mb: int, object_mb: float) -> None:
    size = int(object_mb * MB)
    for i in range(max(1, int(total_mb / object_mb))):
        key = f"{prefix}/{i:05d}.jpg"
        s3.put_object(Bucket=BUCKET, Key=key, Body=_content(key, size))


def _empty_bucket(s3) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})
    s3.delete_bucket(Bucket=BUCKET)


def run(sizes: list[int], object_mb: float = 1.0, part_mb: int = 16, repeat=1, log=print) -> dict:
    """Plain copy and zip build of each size, side by side against one moto server.

    `repeat` is an int or {size: n}; with n > 1 the plain and zip builds alternate n times and
    the median time (and the largest peak RSS) is kept. Returns {(size, mode): result}."""
    import statistics
    ctx = multiprocessing.get_context("spawn")
    parent_end, child_end = ctx.Pipe()
    server = ctx.Process(target=_serve, args=(child_end,), daemon=True)
    server.start()
    endpoint = f"http://127.0.0.1:{parent_end.recv()}"
    s3 = _client(endpoint)
    s3.create_bucket(Bucket=BUCKET)
    results = {}
    try:
        for size in sizes:
            prefix = f"size{size}"
            t = time.perf_counter()
            _populate(s3, prefix, size, object_mb)
            log(f"{size} MB: stored {size / object_mb:.0f} objects in {time.perf_counter() - t:.1f} s")
            n = repeat.get(size, 1) if isinstance(repeat, dict) else repeat
            runs: dict[str, list[dict]] = {"plain": [], "zip": []}
            for _ in range(max(1, n)):
                for mode in ("plain", "zip"):
                    r = _run_child(ctx, endpoint, mode, prefix, part_mb * MB)
                    runs[mode].append(r)
                    log(f"  {mode:5}: {r['bytes'] / MB:8.1f} MB in {r['seconds']:6.2f} s "
                        f"= {r['bytes'] / MB / r['seconds']:6.1f} MB/s, {r['parts']} parts, "
                        f"peak RSS {r['peak_rss_mb']:6.1f} MB")
            for mode, rs in runs.items():
                results[size, mode] = dict(rs[0], seconds=statistics.median(r["seconds"] for r in rs),
                                           peak_rss_mb=max(r["peak_rss_mb"] for r in rs), runs=len(rs))
    finally:
        _empty_bucket(s3)
        parent_end.send("stop")
        server.join(timeout=10)
    return results


def rows(results: dict) -> list:
    """Rows for the combined table (bench/report.py)."""
    from bench.report import Row
    sizes = sorted({size for size, _ in results})
    out = []
    for size in sizes:
        z, p = results[size, "zip"], results[size, "plain"]
        zr, pr = z["bytes"] / MB / z["seconds"], p["bytes"] / MB / p["seconds"]
        note = f" (median of {z['runs']})" if z.get("runs", 1) > 1 else ""
        out.append(Row("zip", f"{size} MB archive: throughput vs plain copy{note}", f"{zr:.0f} MB/s",
                       f"{pr:.0f} MB/s plain", zr / pr, "zip/plain", f">= {TARGET_RATIO}", zr / pr >= TARGET_RATIO))
    small, large = min(sizes), max(sizes)
    a, b = results[small, "zip"]["peak_rss_mb"], results[large, "zip"]["peak_rss_mb"]
    out.append(Row("zip", f"peak RSS of the build, {large} MB vs {small} MB archive", f"{b:.0f} MB",
                   f"{a:.0f} MB", b / a, f"{large}/{small} MB", f"+{TARGET_RSS_SPREAD_MB} MB at most",
                   b - a < TARGET_RSS_SPREAD_MB))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000", help="archive sizes in MB (default 100,1000)")
    parser.add_argument("--quick", action="store_true", help="sizes 20,100")
    parser.add_argument("--object-mb", type=float, default=1.0, help="size of each image object")
    parser.add_argument("--part-mb", type=int, default=16, help="multipart part size")
    parser.add_argument("--repeat", type=int, default=1, help="alternate plain/zip builds this many times (median)")
    args = parser.parse_args()
    sizes = [20, 100] if args.quick else [int(s) for s in args.sizes.split(",")]
    results = run(sizes, args.object_mb, args.part_mb, args.repeat, log=lambda m: print(m, flush=True))

    small, large = min(sizes), max(sizes)
    spread = results[large, "zip"]["peak_rss_mb"] - results[small, "zip"]["peak_rss_mb"]
    print(f"\npeak RSS of zip builds: {small} MB -> {results[small, 'zip']['peak_rss_mb']:.1f} MB, "
          f"{large} MB -> {results[large, 'zip']['peak_rss_mb']:.1f} MB, difference {spread:+.1f} MB "
          f"(target < {TARGET_RSS_SPREAD_MB}) {'OK' if spread < TARGET_RSS_SPREAD_MB else 'MISSED'}")
    for size in sizes:
        zip_rate = results[size, "zip"]["bytes"] / results[size, "zip"]["seconds"]
        plain_rate = results[size, "plain"]["bytes"] / results[size, "plain"]["seconds"]
        ratio = zip_rate / plain_rate
        print(f"throughput zip/plain at {size} MB: {ratio:.2f} (target >= {TARGET_RATIO}) "
              f"{'OK' if ratio >= TARGET_RATIO else 'MISSED'}")


if __name__ == "__main__":
    main()
