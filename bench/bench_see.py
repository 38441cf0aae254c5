"""Benchmark: what seeing the images costs (issue 14), in-process, no AWS.

    .venv/bin/python -m bench.bench_see            # 1,000-job page, 10,000-file results, a 300-file sheet
    .venv/bin/python -m bench.bench_see --quick

- Previews on a jobs page: `job_view` of 1,000 completed jobs with and without presigning their
  preview URLs (boto3's presigner, SigV4, local CPU only: nothing is sent).
- Results export: rows of a 10,000-file batch (one and three pipelines) written as CSV, JSON and
  XLSX (XlsxWriter constant_memory) to a temporary file, as services/results.py streams them to S3.
- Contact sheet: the PDF of one 300-file part (15 pages) from synthetic 320 px WebP previews,
  and the peak RSS of the process while it is drawn.
Times are medians of a few runs on whatever machine this is; they are printed, never asserted.
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time

import boto3
from botocore.config import Config
from PIL import Image


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_previews(n: int, repeat: int) -> dict:
    from chalicelib.adapters.storage import Storage
    from chalicelib.services.views import job_view

    s3 = boto3.session.Session(region_name="us-east-1").client(
        "s3", config=Config(signature_version="s3v4"), aws_access_key_id="bench", aws_secret_access_key="bench")
    storage = Storage(s3, "imgbatch-bench")
    jobs = [{"job_id": f"{i:08d}-0000-4000-8000-000000000000", "file_name": f"PL_B{i}_Front.png", "size": 1000,
             "status": "completed", "created_at": "2026-12-01T00:00:00Z",
             "outputs": [{"pipeline_id": "p", "key": f"outputs/b/{i}/p.jpg", "format": "jpeg", "width": 800,
                          "height": 600, "size": 1000}],
             "preview": {"key": f"outputs/b/{i}/preview.webp", "width": 320, "height": 240, "format": "webp",
                         "size": 9000}} for i in range(n)]
    sign = lambda key: storage.presign_download(key, 900)  # noqa: E731
    sign("warm-up")
    plain = _median(lambda: [job_view(j) for j in jobs], repeat)
    signed = _median(lambda: [job_view(j, sign) for j in jobs], repeat)
    return {"jobs": n, "plain_s": plain, "signed_s": signed, "per_url_ms": (signed - plain) / n * 1000}


def bench_results(files: int, pipelines: int, repeat: int) -> dict:
    from chalicelib.domain.archive import ArchiveOutput
    from chalicelib.domain.results import ResultJob, csv_chunks, json_chunks, result_rows, write_xlsx

    pipes = [(f"p{k}", f"pipeline {k}") for k in range(pipelines)]
    jobs = []
    for i in range(files):
        failed = i % 50 == 7
        outputs = () if failed else tuple(
            ArchiveOutput(pipeline_id=pid, pipeline_name=name, key=f"outputs/b/{i}/{pid}.jpg", extension="jpg",
                          size=120_000 + i, width=1600, height=1200) for pid, name in pipes)
        jobs.append(ResultJob(file_name=f"PL_DXB{i:05d}_Front.png", size=2_400_000 + i,
                              status="failed" if failed else "completed",
                              error_code="corrupt_image" if failed else None,
                              error_message="the image data is damaged" if failed else None,
                              started_at="2026-12-01T10:00:00Z", completed_at="2026-12-01T10:00:02Z",
                              outputs=outputs, position=i))
    out = {"files": files, "pipelines": pipelines}
    out["rows_s"] = _median(lambda: result_rows("PL_DXB_2026-12-01_batch-1", jobs, pipes), repeat)
    rows = result_rows("PL_DXB_2026-12-01_batch-1", jobs, pipes)
    out["rows"] = len(rows)

    def to_file(kind):
        with tempfile.TemporaryFile() as tmp:
            if kind == "csv":
                for chunk in csv_chunks(rows):
                    tmp.write(chunk)
            elif kind == "json":
                for chunk in json_chunks({"id": "b"}, rows):
                    tmp.write(chunk)
            else:
                write_xlsx(rows, tmp)
            out[f"{kind}_bytes"] = tmp.tell()

    for kind in ("csv", "json", "xlsx"):
        out[f"{kind}_s"] = _median(lambda: to_file(kind), repeat)
    return out


def bench_sheet(files: int, noise: bool) -> dict:
    import psutil

    from chalicelib.domain.contact_sheet import PER_PAGE, SheetHeader, SheetItem, write_pdf

    previews = []
    for i in range(8):
        buf = io.BytesIO()
        if noise:   # the worst case: incompressible previews, slow to decode and to re-encode
            picture = Image.effect_noise((320, 240), 40 + 10 * i).convert("RGB")
        else:       # smooth, photo-like detail
            picture = Image.effect_mandelbrot((320, 240), (-2 + i * 0.1, -1.2, 1, 1.2), 60).convert("RGB")
        picture.save(buf, "WEBP", quality=80)
        previews.append(buf.getvalue())
    items = [SheetItem(f"PL_DXB{i:05d}_Front_with_a_longer_name.png", "failed" if i % 40 == 3 else "completed",
                       "corrupt_image" if i % 40 == 3 else None, previews[i % 8]) for i in range(files)]
    process = psutil.Process()
    before = process.memory_info().rss
    peak = [before]
    it = iter(items)

    def page_items(n):
        peak[0] = max(peak[0], process.memory_info().rss)
        return [next(it) for _ in range(min(PER_PAGE, files - n * PER_PAGE))]

    with tempfile.TemporaryFile() as tmp:
        started = time.perf_counter()
        pages = write_pdf(SheetHeader("PL_DXB_2026-12-01_batch-1", "bench"), files, page_items, tmp)
        elapsed = time.perf_counter() - started
        size = tmp.tell()
    return {"files": files, "noise": noise, "pages": pages, "s": elapsed, "per_page_ms": elapsed / pages * 1000, "bytes": size,
            "rss_growth_mb": (peak[0] - before) / 1e6}


def run(quick: bool = False, log=print) -> dict:
    repeat = 1 if quick else 3
    outcome = {"previews": bench_previews(1000, repeat)}
    p = outcome["previews"]
    log(f"previews: 1,000 jobs {p['plain_s'] * 1000:.0f} ms without URLs, {p['signed_s'] * 1000:.0f} ms with "
        f"({p['per_url_ms']:.2f} ms a URL)")
    outcome["results"] = [bench_results(2000 if quick else 10_000, k, repeat) for k in (1, 3)]
    for r in outcome["results"]:
        log(f"results: {r['files']:,} files x {r['pipelines']} pipelines = {r['rows']:,} rows: rows "
            f"{r['rows_s']:.2f} s; csv {r['csv_s']:.2f} s ({r['csv_bytes'] / 1e6:.1f} MB); json {r['json_s']:.2f} s "
            f"({r['json_bytes'] / 1e6:.1f} MB); xlsx {r['xlsx_s']:.2f} s ({r['xlsx_bytes'] / 1e6:.1f} MB)")
    outcome["sheet"] = [bench_sheet(100 if quick else 300, noise) for noise in (False, True)]
    for s in outcome["sheet"]:
        log(f"contact sheet ({'noise previews, worst case' if s['noise'] else 'smooth previews'}): {s['files']} files, "
            f"{s['pages']} pages in {s['s']:.2f} s ({s['per_page_ms']:.0f} ms a page), {s['bytes'] / 1e6:.1f} MB PDF, "
            f"RSS grew {s['rss_growth_mb']:.0f} MB while drawing")
    return outcome


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_see", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    run(quick=args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
