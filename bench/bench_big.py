"""Benchmark: one very large batch of tiny images end to end on the local stack (issue 15).

    .venv/bin/python -m bench.bench_big                      # 100,000 files (about two hours on 2 cores)
    .venv/bin/python -m bench.bench_big --files 2000         # the same steps, small
    .venv/bin/python -m bench.bench_big --create-only        # steps 1, 3 (a job page), a cancel and 4, no uploads

moto runs in its own process (bench.split_stack, as `bench_e2e --moto split`), so the CPU the
service's own process spends per file is told apart from the CPU the AWS emulation spends.
Steps, all in this one run, on a fresh stack:

1. `POST /batches` with every file (the 10 s target on the local stack), then the upload links
   paged through `GET /batches/{id}/uploads` (1,000 a page);
2. every presigned POST, UPLOADERS at a time, while the stack processes what has arrived (at
   most AHEAD messages waiting in its queues: see Pacer);
3. `GET /batches/{id}` until the batch is final, its counts compared with the files sent; a job
   page from the middle of the batch;
4. `DELETE /batches/{id}`: how long the request takes, whether the batch has left the owner's list
   at once, and how long the background purge takes until no object and no item of it is left.

The CPU per file beyond the pipeline is (the handlers' CPU - the pure pipeline's CPU for the same
files) / files: the handlers' CPU is what their invocations spent on the threads running them
(bench.split_stack's trace), which is what Lambda runs; the pure pipeline is imaging.render() of every
distinct image, measured in this process before the stack starts. The whole stack process's CPU per
file is shown beside it: it also holds what AWS does for us in production (the local pollers that
stand in for Lambda's SQS and stream event sources, idle polling of eight queues included), the API
requests and the sweep. moto's CPU is shown too. Nothing here is asserted.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import cpu_seconds, moto_server
from bench.bench_e2e import BenchStack, upload

PIPELINE = {"name": "bench-big-thumb", "format": "webp", "width": 32}
SIZE = (64, 48)
VARIANTS = 64               # distinct images; file i sends variant i % VARIANTS
UPLOADERS = 8               # presigned POSTs in flight
AHEAD = 2_000               # messages waiting in the stack's queues before the uploaders wait (Pacer)
CPU_TARGET_MS = 20          # the service's own CPU per file outside moto and the pipeline
POST_TARGET_S = 10


def tiny_images() -> list[bytes]:
    from PIL import Image
    out = []
    for i in range(VARIANTS):
        im = Image.new("RGB", SIZE, ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256))
        im.putpixel((i % SIZE[0], i % SIZE[1]), (255, 255, 255))
        buf = io.BytesIO()
        im.save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def pipeline_ms(images: list[bytes], rounds: int = 20) -> float:
    """The pure pipeline per file, as the processor calls it (mean over every variant, `rounds` times)."""
    from chalicelib.domain import imaging
    from chalicelib.domain.pipelines import validate_pipeline
    from chalicelib.services.processor import render_specs
    from chalicelib.settings import Settings
    specs = render_specs([validate_pipeline(PIPELINE)])
    limits = imaging.Limits(max_pixels=Settings().max_pixels)
    imaging.render(io.BytesIO(images[0]), specs, limits)
    t0 = time.process_time()
    for _ in range(rounds):
        for data in images:
            imaging.render(io.BytesIO(data), specs, limits)
    return 1000 * (time.process_time() - t0) / (rounds * len(images))


def _leftovers(endpoint: str, batch_id: str) -> dict:
    """What is still stored of a batch: objects under its prefixes (up to a page of 1,000 each: moto
    walks every key of the bucket for each page, so counting 300,000 objects every few seconds
    slowed the purge it measured), items in the per-file tables."""
    import boto3
    from chalicelib.resources import TABLES
    kw = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    s3, ddb = boto3.client("s3", **kw), boto3.client("dynamodb", **kw)
    bucket = s3.list_buckets()["Buckets"][0]["Name"]
    objects = 0
    for prefix in ("uploads", "outputs", "previews", "archives"):
        objects += s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/{batch_id}/").get("KeyCount", 0)
    items = 0
    for spec in TABLES:
        if spec.key in ("jobs", "counters", "manifests"):
            for page in ddb.get_paginator("scan").paginate(TableName=spec.default, Select="COUNT"):
                items += page["Count"]
    return {"objects": objects, "items": items}


def handler_cpu(path: str | None) -> dict[str, float]:
    """CPU seconds each handler's invocations spent (bench.split_stack's trace), so the handlers,
    what Lambda runs and bills, are told apart from the local emulation of the event sources."""
    import json
    totals: dict[str, float] = {}
    try:
        with open(path or "") as fh:
            for line in fh:
                if line.strip():
                    call = json.loads(line)
                    totals[call["handler"]] = totals.get(call["handler"], 0.0) + call.get("cpu", 0.0)
    except (OSError, ValueError):
        return {}
    return totals


class Pacer:
    """Holds the uploaders back while more than `ahead` messages wait in the stack's queues.
    SQS does not slow down with a queue's depth; moto passes over every message of a queue on
    each receive, so uploading 100,000 files faster than two cores process them would leave tens
    of thousands of S3 notifications waiting and measure moto's scans instead of the service.
    A batch arriving faster than it is processed is what production does; here the uploads only
    keep a fixed lead, and the run still ends when the last file is final."""

    def __init__(self, endpoint: str, ahead: int):
        import boto3
        self.sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
        self.urls = self.sqs.list_queues().get("QueueUrls", [])
        self.ahead, self.lock = ahead, threading.Lock()
        self.depth, self.checked, self.waited = 0, 0.0, 0.0

    def _read(self) -> None:
        self.depth = sum(int(self.sqs.get_queue_attributes(
            QueueUrl=u, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"])
            for u in self.urls)
        self.checked = time.monotonic()

    def wait(self) -> None:
        if self.ahead <= 0:
            return
        with self.lock:   # one uploader waits; the others queue behind it
            if time.monotonic() - self.checked > 1.0:
                self._read()
            while self.depth >= self.ahead:
                t = time.monotonic()
                time.sleep(1.0)
                self._read()
                self.waited += time.monotonic() - t
            self.depth += 1   # this upload's notification, until the next reading


PAGE_WAITS: list[float] = []   # seconds each GET .../uploads took, in order


def upload_pages(http, url: str, created: dict):
    """The upload links of a new batch, a page at a time: POST's own, then GET .../uploads.
    The timeout is generous: while thousands of uploads are being registered and processed, moto
    serialises DynamoDB requests behind one lock that is not fair, and a page (40 BatchWriteItems
    when it materialises its chunk) has been seen to wait over a minute for it."""
    yield created["uploads"]
    cursor = created.get("uploads_next_cursor")
    while cursor:
        t = time.perf_counter()
        page = http.get(f"{url}/batches/{created['batch']['id']}/uploads", params={"cursor": cursor}, timeout=900)
        PAGE_WAITS.append(time.perf_counter() - t)
        page.raise_for_status()
        page = page.json()
        yield page["uploads"]
        cursor = page.get("next_cursor")


def run(files: int = 100_000, workers: int = 2, log=print, create_only: bool = False, ahead: int = AHEAD) -> dict:
    images = tiny_images()
    per_file_ms = pipeline_ms(images)
    log(f"{files} files of {SIZE[0]}x{SIZE[1]} PNG ({VARIANTS} distinct, {len(images[0])} bytes each), "
        f"pipeline {PIPELINE['format']} {PIPELINE['width']} px: {per_file_ms:.2f} ms CPU/file")
    names = [f"PL_BIG{i:06d}_front.png" for i in range(files)]
    body = {n: images[i % VARIANTS] for i, n in enumerate(names)}
    out: dict = {"files": files, "workers": workers, "pipeline_ms_per_file": per_file_ms, "create_only": create_only}
    with contextlib.ExitStack() as stack:
        endpoint, moto_pid = stack.enter_context(moto_server())
        sp = stack.enter_context(BenchStack(workers, True, endpoint))
        http = sp.session()
        r = http.post(f"{sp.url}/pipelines", json=PIPELINE)
        r.raise_for_status()
        pid = r.json()["pipeline"]["id"]
        t = time.perf_counter()
        r = http.post(f"{sp.url}/batches", json={"pipeline_ids": [pid], "description": "bench_big",
                                                 "files": [{"name": n, "size": len(body[n])} for n in names]},
                      timeout=120)
        r.raise_for_status()
        out["post_s"] = time.perf_counter() - t
        created = r.json()
        bid = created["batch"]["id"]
        log(f"POST /batches with {files} files: {out['post_s']:.2f} s (target < {POST_TARGET_S} s), "
            f"{len(created['uploads'])} upload links in the answer")
        if create_only:
            t = time.perf_counter()
            pages = sum(1 for _ in upload_pages(http, sp.url, created))
            out["links_s"] = time.perf_counter() - t
            log(f"upload links: {pages} pages of up to 1,000 in {out['links_s']:.1f} s "
                f"({1000 * out['links_s'] / max(pages - 1, 1):.0f} ms a page after the first)")
        else:
            cpu0 = cpu_seconds(sp.proc.pid), cpu_seconds(moto_pid)
            handlers0 = handler_cpu(sp.trace_path)
            t0 = time.perf_counter()
            sent = [0]
            pacer = Pacer(endpoint, ahead)

            def send(u):
                pacer.wait()
                resp = upload(u, body[u["file_name"]])
                if resp.status_code != 204:
                    raise RuntimeError(f"upload of {u['file_name']} failed: {resp.status_code} {resp.text[:200]}")
                sent[0] += 1

            pages, pending = 0, []
            with ThreadPoolExecutor(UPLOADERS) as pool:
                for links in upload_pages(http, sp.url, created):   # uploading while the next page comes
                    pages += 1
                    pending += [pool.submit(send, u) for u in links]
                for f in pending:
                    f.result()
            out["uploads_s"] = time.perf_counter() - t0
            out["paced_s"] = pacer.waited
            log(f"uploads: {sent[0]} presigned POSTs ({pages} pages of links) done after {out['uploads_s']:.1f} s"
                + (f", {pacer.waited:.0f} s of it waiting for the stack (at most {ahead} messages queued)"
                   if ahead > 0 else ""))
            if PAGE_WAITS:
                log(f"  GET .../uploads while uploading: {', '.join(f'{w:.1f}' for w in PAGE_WAITS)} s")
            last_log = 0.0
            while True:
                t = time.perf_counter()
                batch = http.get(f"{sp.url}/batches/{bid}", params={"jobs_limit": 1}, timeout=60).json()["batch"]
                read_s = time.perf_counter() - t   # reading a big batch sums its counters: seconds on moto
                elapsed = time.perf_counter() - t0
                if batch["status"] not in ("queued", "processing"):
                    break
                if elapsed - last_log >= 60:
                    last_log = elapsed
                    p = batch["progress"]
                    log(f"  {elapsed:6.0f} s: {p['succeeded']} succeeded, {p['failed']} failed of {files} "
                        f"({(p['succeeded'] + p['failed']) / elapsed:.0f} files/s)")
                time.sleep(max(2.0, 10 * read_s))   # polling takes at most a tenth of moto
            out["wall_s"] = time.perf_counter() - t0
            out["stack_cpu_s"] = cpu_seconds(sp.proc.pid) - cpu0[0]
            out["moto_cpu_s"] = cpu_seconds(moto_pid) - cpu0[1]
            out["status"], out["progress"] = batch["status"], batch["progress"]
            out["stack_ms_per_file"] = 1000 * out["stack_cpu_s"] / files - per_file_ms
            out["moto_ms_per_file"] = 1000 * out["moto_cpu_s"] / files
            handlers = {name: cpu - handlers0.get(name, 0.0) for name, cpu in handler_cpu(sp.trace_path).items()}
            out["handler_ms_per_file"] = {name: round(1000 * cpu / files, 2) for name, cpu in sorted(handlers.items())}
            out["service_ms_per_file"] = 1000 * sum(handlers.values()) / files - per_file_ms
            log(f"batch {batch['status']}: {batch['progress']['succeeded']} succeeded, {batch['progress']['failed']} "
                f"failed, after {out['wall_s']:.0f} s from the first upload ({files / out['wall_s']:.0f} files/s)")
            log(f"CPU per file: the handlers {out['service_ms_per_file']:.1f} ms beyond the pipeline's "
                f"{per_file_ms:.1f} ms (target <= {CPU_TARGET_MS} ms; by handler, pipeline included: "
                f"{out['handler_ms_per_file']}); the whole stack process {out['stack_ms_per_file']:.1f} ms "
                f"(also the local event-source pollers, the stream poller, the API and the sweep); "
                f"moto {out['moto_ms_per_file']:.1f} ms")

        t = time.perf_counter()
        middle = http.get(f"{sp.url}/batches/{bid}", params={"jobs_limit": 100}, timeout=60).json()
        out["get_s"] = time.perf_counter() - t
        log(f"GET /batches/{{id}} with a page of {len(middle['batch'].get('jobs') or [])} jobs: {out['get_s']:.2f} s")

        if create_only:   # nothing uploaded: the batch is still open, so it can be cancelled
            t = time.perf_counter()
            r = http.post(f"{sp.url}/batches/{bid}/cancel", timeout=60)
            out["cancel_s"] = time.perf_counter() - t
            log(f"cancel: {r.status_code} in {out['cancel_s']:.2f} s, status {r.json()['batch']['status']}")
        t = time.perf_counter()
        r = http.delete(f"{sp.url}/batches/{bid}", timeout=60)
        out["delete_s"] = time.perf_counter() - t
        listed = [b["id"] for b in http.get(f"{sp.url}/batches", timeout=60).json()["batches"]]
        out["listed_after_delete"] = bid in listed
        log(f"DELETE: {r.status_code} in {out['delete_s']:.2f} s; "
            f"still listed right after: {out['listed_after_delete']}")
        t = time.perf_counter()
        while True:
            left = _leftovers(endpoint, bid)
            if left == {"objects": 0, "items": 0} or time.perf_counter() - t > 3600:
                break
            time.sleep(5)
        out["purge_s"], out["left"] = time.perf_counter() - t, left
        log(f"purge in the background: {left['objects']} objects and {left['items']} items left after "
            f"{out['purge_s']:.0f} s")
    return out


def rows(out: dict) -> list:
    from bench.report import Row
    n = out["files"]
    if out["create_only"]:
        return [
            Row("big", f"POST /batches, {n} files, local stack", f"{out['post_s']:.2f} s", "-", None, "-",
                f"< {POST_TARGET_S} s", out["post_s"] < POST_TARGET_S),
            Row("big", "cancel answers (its files cancelled in the background)", f"{out['cancel_s']:.2f} s", "-",
                None, "-", "-", None),
            Row("big", "DELETE answers; batch gone from the list at once", f"{out['delete_s']:.2f} s", "-", None,
                "-", "not listed", not out["listed_after_delete"]),
            Row("big", "background purge until nothing of the batch is left", f"{out['purge_s']:.0f} s",
                f"{out['left']}", None, "-", "nothing left", out["left"] == {"objects": 0, "items": 0}),
        ]
    return [
        Row("big", f"POST /batches, {n} files, local stack", f"{out['post_s']:.2f} s", "-", None, "-",
            f"< {POST_TARGET_S} s", out["post_s"] < POST_TARGET_S),
        Row("big", f"{n} tiny PNGs, first upload -> final, WORKERS={out['workers']}", f"{out['wall_s']:.0f} s",
            f"{n / out['wall_s']:.0f} files/s", None, "-", "completed, counts exact",
            out["status"] == "completed" and out["progress"]["succeeded"] == n),
        Row("big", "handlers' CPU per file beyond the pipeline (moto in its own process)",
            f"{out['service_ms_per_file']:.1f} ms", f"{out['pipeline_ms_per_file']:.1f} ms pipeline",
            None, "-", f"<= {CPU_TARGET_MS} ms", out["service_ms_per_file"] <= CPU_TARGET_MS),
        Row("big", "whole stack process CPU per file beyond the pipeline (pollers, API, sweep too)",
            f"{out['stack_ms_per_file']:.1f} ms", f"{out['pipeline_ms_per_file']:.1f} ms pipeline",
            None, "-", "-", None),
        Row("big", "DELETE answers; batch gone from the list at once", f"{out['delete_s']:.2f} s", "-", None, "-",
            "not listed", not out["listed_after_delete"]),
        Row("big", "background purge until nothing of the batch is left", f"{out['purge_s']:.0f} s",
            f"{out['left']}", None, "-", "nothing left", out["left"] == {"objects": 0, "items": 0}),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2, help="poller threads in the stack (WORKERS)")
    parser.add_argument("--ahead", type=int, default=AHEAD,
                        help="messages the stack's queues may hold before the uploaders wait (0: never wait)")
    parser.add_argument("--create-only", action="store_true",
                        help="create, page the upload links, read, delete and purge; upload nothing")
    args = parser.parse_args(argv)
    out = run(args.files, args.workers, log=lambda m: print(m, flush=True), create_only=args.create_only,
              ahead=args.ahead)
    from bench.report import table
    print()
    print(table(rows(out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
