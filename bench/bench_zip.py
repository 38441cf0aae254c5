"""Benchmark: batch ZIP streamed into S3 vs a plain copy of the same bytes, against moto server.

    .venv/bin/python -m bench.bench_zip            # 100 MB and 1 GB
    .venv/bin/python -m bench.bench_zip --quick    # 20 MB and 100 MB

moto runs in its own process and every build runs in a fresh (spawned) process, so each peak RSS
(getrusage in the child) belongs to that build alone. Targets: the peak RSS of the smallest and
largest builds less than 32 MB apart (memory independent of archive size), and zip throughput at
least 0.7x the plain copy (both through the same MultipartUpload).
Not collected by pytest (file name does not start with test_).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
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
    from chalicelib.adapters.multipart import MultipartUpload, upload_stream
    from chalicelib.domain.archive import (
        ArchiveJob, ArchiveOutput, manifest_arcname, plan_archive, stream_zip)

    s3 = _client(endpoint)
    objects = [o for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
               for o in page.get("Contents", [])]

    def read_chunks(key):
        return s3.get_object(Bucket=BUCKET, Key=key)["Body"].iter_chunks(READ_CHUNK)

    started = time.perf_counter()
    if mode == "zip":
        base = f"BENCH_{prefix.strip('/')}"
        jobs = [ArchiveJob(f"img{i:05d}.png", "completed", None, None,
                           (ArchiveOutput("p1", "Web", o["Key"], "jpg", o["Size"], 800, 600),))
                for i, o in enumerate(objects)]
        entries, manifest = plan_archive(base, jobs, ["Web"])
        stored = upload_stream(s3, BUCKET, f"archives/{prefix}.zip",
                               stream_zip(entries, read_chunks, manifest, manifest_arcname(base)),
                               part_size=part_size)
    else:
        with MultipartUpload(s3, BUCKET, f"archives/{prefix}.plain", part_size=part_size) as up:
            for o in objects:
                for chunk in read_chunks(o["Key"]):
                    up.write(chunk)
            stored = up.complete()
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
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


def _populate(s3, prefix: str, total_mb: int, object_mb: float) -> None:
    size = int(object_mb * MB)
    for i in range(max(1, int(total_mb / object_mb))):
        s3.put_object(Bucket=BUCKET, Key=f"{prefix}/{i:05d}.jpg", Body=os.urandom(size))


def _empty_bucket(s3) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})
    s3.delete_bucket(Bucket=BUCKET)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000", help="archive sizes in MB (default 100,1000)")
    parser.add_argument("--quick", action="store_true", help="sizes 20,100")
    parser.add_argument("--object-mb", type=float, default=1.0, help="size of each image object")
    parser.add_argument("--part-mb", type=int, default=16, help="multipart part size")
    args = parser.parse_args()
    sizes = [20, 100] if args.quick else [int(s) for s in args.sizes.split(",")]

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
            _populate(s3, prefix, size, args.object_mb)
            print(f"{size} MB: stored {size / args.object_mb:.0f} objects in {time.perf_counter() - t:.1f} s",
                  flush=True)
            for mode in ("plain", "zip"):
                r = _run_child(ctx, endpoint, mode, prefix, args.part_mb * MB)
                results[size, mode] = r
                print(f"  {mode:5}: {r['bytes'] / MB:8.1f} MB in {r['seconds']:6.2f} s "
                      f"= {r['bytes'] / MB / r['seconds']:6.1f} MB/s, {r['parts']} parts, "
                      f"peak RSS {r['peak_rss_mb']:6.1f} MB", flush=True)
    finally:
        _empty_bucket(s3)
        parent_end.send("stop")
        server.join(timeout=10)

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
