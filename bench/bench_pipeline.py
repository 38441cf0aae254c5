"""Benchmark: our render() against naive Pillow and (when installed) pyvips.

    python -m bench.bench_pipeline            # full run, median of 5
    python -m bench.bench_pipeline --quick    # smoke run, median of 1, smaller 96 MP stand-in

Task for every method: file on disk -> EXIF orientation -> RGB -> width 800
(aspect kept, Lanczos-class) -> JPEG q85 in memory. Each (method, input) runs
in a fresh child process: time is the median of N runs there, memory is the
child's peak RSS (VmHWM), both absolute and above the baseline measured after
imports. pyvips is optional (pip install pyvips pyvips-binary) and is
limited to one thread, like Pillow.

"preview" is ours with the 320 px WebP preview rendition (issue 14): its extra time is the
preview's cost per file. A 12 MP HEIC (made with pillow-heif) is decoded by all three.
Encoders (`encode_rows`): one 1600x1067 photo encoded in-process by every output format with
the pipeline's settings (PNG compression 70, quality 85, TIFF Deflate + predictor, AVIF speed 8)
against Pillow's defaults for that format (TIFF's default is uncompressed): time and bytes.

Targets from shared/design/PERFORMANCE.md and issue 17 are printed, never asserted.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WIDTH = 800
QUALITY = 85
METHODS = ("naive", "ours", "pyvips", "preview")


# --------------------------------------------------------------------------- inputs


def _photo_like(size: tuple[int, int]):
    """Smooth shapes plus fine noise, so JPEGs have realistic entropy (a flat
    or pure-noise image would make decode unrealistically fast or slow)."""
    from PIL import Image, ImageDraw, ImageFilter

    small = Image.new("RGB", (320, 240))
    draw = ImageDraw.Draw(small)
    for i in range(40):
        x, y = (i * 97) % 320, (i * 57) % 240
        draw.ellipse((x - 40, y - 30, x + 40, y + 30), fill=((i * 53) % 256, (i * 97) % 256, (i * 31) % 256))
    base = small.filter(ImageFilter.GaussianBlur(6)).resize(size, Image.Resampling.BICUBIC)
    tile = Image.merge("RGB", [Image.effect_noise((512, 512), 24 + 8 * b) for b in range(3)])
    noise = Image.new("RGB", size)
    for x in range(0, size[0], 512):
        for y in range(0, size[1], 512):
            noise.paste(tile, (x, y))
    return Image.blend(base, noise, 0.18)


def make_inputs(directory: Path, quick: bool) -> list[tuple[str, Path]]:
    from PIL import Image

    items = []

    def add(label: str, name: str, im, fmt: str, **params) -> None:
        path = directory / name
        im.save(path, fmt, **params)
        items.append((label, path))

    add("1920x1080 JPEG", "hd.jpg", _photo_like((1920, 1080)), "JPEG", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6
    add("24 MP JPEG (EXIF 6)", "24mp.jpg", _photo_like((6000, 4000)), "JPEG", quality=90, exif=exif.tobytes())
    if quick:
        add("48 MP JPEG (quick)", "48mp.jpg", _photo_like((8485, 5657)), "JPEG", quality=90)
    else:
        add("96 MP JPEG", "96mp.jpg", _photo_like((12000, 8000)), "JPEG", quality=90)
    rgba = _photo_like((4000, 3000)).convert("RGBA")
    rgba.putalpha(Image.radial_gradient("L").resize((4000, 3000)))
    add("12 MP RGBA PNG", "12mp_rgba.png", rgba, "PNG")
    gray16 = Image.linear_gradient("L").resize((4000, 3000)).convert("I").point(lambda v: v * 257)
    add("12 MP 16-bit grey PNG", "12mp_16bit.png", gray16.convert("I;16"), "PNG")
    import pillow_heif

    pillow_heif.register_heif_opener()
    size = (2000, 1500) if quick else (4032, 3024)  # a phone's 12 MP
    add(f"{size[0] * size[1] / 1e6:.0f} MP HEIC", "photo.heic", _photo_like(size), "HEIF", quality=80)
    return items


# --------------------------------------------------------------------------- child


def _run_naive(path: str) -> bytes:
    from PIL import Image, ImageOps

    if path.endswith(".heic"):
        import pillow_heif

        pillow_heif.register_heif_opener()

    im = Image.open(path)
    im.load()
    im = ImageOps.exif_transpose(im)
    im = im.convert("RGB")
    im = im.resize((WIDTH, max(1, round(im.height * WIDTH / im.width))), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=QUALITY)
    return buf.getvalue()


def _run_ours(path: str) -> bytes:
    from chalicelib.domain.imaging import Limits, RenderSpec, render

    # The service's default source limit is 50 MP; the 96 MP case needs more
    # (Pillow's own ceiling, lowered to 50 MP at import, only warns below 100 MP).
    limits = Limits(max_pixels=100_000_000)
    with open(path, "rb") as fh:
        return render(fh, [RenderSpec("jpeg", width=WIDTH, quality=QUALITY)], limits)[0].data


def _run_preview(path: str) -> bytes:
    from chalicelib.domain.imaging import Limits, RenderSpec, render

    limits = Limits(max_pixels=100_000_000)
    with open(path, "rb") as fh:
        return render(fh, [RenderSpec("jpeg", width=WIDTH, quality=QUALITY)], limits, preview=True)[0].data


def _run_pyvips(path: str) -> bytes:
    import pyvips

    # thumbnail() uses shrink-on-load and applies EXIF orientation.
    im = pyvips.Image.thumbnail(path, WIDTH, height=10_000_000, size="down")
    if im.hasalpha():
        im = im.flatten(background=[255, 255, 255])
    return im.write_to_buffer(f".jpg[Q={QUALITY}]")


def peak_rss_kb() -> int:
    # VmHWM is this process's own peak; ru_maxrss would include the parent's
    # peak (it survives fork+exec on Linux), and the parent holds 96 MP images.
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(method: str, path: str, repeat: int) -> None:
    sys.path.insert(0, str(REPO))
    # Import everything first so the baseline includes the libraries.
    import PIL.Image  # noqa: F401

    if method in ("ours", "preview"):
        import chalicelib.domain.imaging  # noqa: F401
    if method == "pyvips":
        import pyvips

        pyvips.cache_set_max(0)  # no cross-run cache: every run decodes
    run = {"naive": _run_naive, "ours": _run_ours, "pyvips": _run_pyvips, "preview": _run_preview}[method]
    base_kb = peak_rss_kb()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = run(path)
        times.append(time.perf_counter() - t0)
    peak_kb = peak_rss_kb()
    print(json.dumps({"ms": 1000 * statistics.median(times), "peak_mb": peak_kb / 1024,
                      "delta_mb": (peak_kb - base_kb) / 1024, "bytes": len(out)}))


# --------------------------------------------------------------------------- parent


def have_pyvips() -> bool:
    try:
        import pyvips  # noqa: F401
    except Exception:  # ImportError, or OSError when libvips is missing
        return False
    return True


def measure(method: str, path: Path, repeat: int) -> dict | None:
    env = dict(os.environ, VIPS_CONCURRENCY="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-m", "bench.bench_pipeline", "--child", method, str(path), str(repeat)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0:
        print(f"  {method} on {path.name} failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _ratio(a: dict | None, b: dict | None, key: str) -> float | None:
    return a[key] / b[key] if a and b and b[key] else None


def run(quick: bool = False, repeat: int | None = None, log=print) -> dict:
    """Generate the inputs and measure every (method, input) pair in this one run.

    Returns {"inputs": [labels], "methods": [...], "repeat": n, "results": {(label, method): dict|None}}."""
    repeat = repeat or (1 if quick else 5)
    methods = [m for m in METHODS if m != "pyvips" or have_pyvips()]
    log(f"methods: {', '.join(methods)}; median of {repeat}; one fresh process per measurement")
    results: dict[tuple[str, str], dict | None] = {}
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        t0 = time.perf_counter()
        inputs = make_inputs(Path(tmp), quick)
        log(f"generated {len(inputs)} inputs in {time.perf_counter() - t0:.1f} s")
        for label, path in inputs:
            for method in methods:
                results[label, method] = measure(method, path, repeat)
    return {"inputs": [label for label, _ in inputs], "methods": methods, "repeat": repeat, "results": results}


def print_table(outcome: dict) -> None:
    results = outcome["results"]
    header = ("| input | naive ms | ours ms | pyvips ms | naive/ours | ours/pyvips "
              "| naive peak MB (+delta) | ours peak MB (+delta) | pyvips peak MB (+delta) | mem naive/ours |")
    print()
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for label in outcome["inputs"]:
        n, o, v = (results.get((label, m)) for m in METHODS[:3])

        def mem(r):
            return "-" if r is None else f"{r['peak_mb']:.0f} (+{r['delta_mb']:.0f})"

        print(f"| {label} | {_fmt(n and n['ms'], '.0f')} | {_fmt(o and o['ms'], '.0f')} | {_fmt(v and v['ms'], '.0f')} "
              f"| {_fmt(_ratio(n, o, 'ms'), '.1f')}x | {_fmt(_ratio(o, v, 'ms'), '.2f')}x "
              f"| {mem(n)} | {mem(o)} | {mem(v)} | {_fmt(_ratio(n, o, 'delta_mb'), '.1f')}x |")


LARGE_JPEG_PREFIXES = ("24 MP", "48 MP", "96 MP")
TARGET_VS_NAIVE, TARGET_VS_PYVIPS, TARGET_PEAK_MB = 3.0, 1.5, 80
WEAK_PREFIXES, TARGET_WEAK_VS_PYVIPS = ("12 MP RGBA PNG", "12 MP 16-bit grey PNG"), 1.2


def rows(outcome: dict) -> list:
    """Rows for the combined table (bench/report.py)."""
    from bench.report import Row
    results, out = outcome["results"], []
    for label in outcome["inputs"]:
        n, o, v, pv = (results.get((label, m)) for m in METHODS)
        large = label.startswith(LARGE_JPEG_PREFIXES)
        weak = label.startswith(WEAK_PREFIXES)  # issue 17: RGBA and 16-bit PNG sources
        speed = _ratio(n, o, "ms")
        out.append(Row("pipeline", f"{label}: time vs naive Pillow", f"{_fmt(o and o['ms'], '.0f')} ms",
                       f"{_fmt(n and n['ms'], '.0f')} ms", speed, "naive/ours",
                       f">= {TARGET_VS_NAIVE:g}x" if large else "-",
                       (speed is not None and speed >= TARGET_VS_NAIVE) if large else None))
        if "pyvips" in outcome["methods"]:
            anchor = _ratio(o, v, "ms")
            target = TARGET_VS_PYVIPS if large else TARGET_WEAK_VS_PYVIPS if weak else None
            out.append(Row("pipeline", f"{label}: time vs pyvips thumbnail", f"{_fmt(o and o['ms'], '.0f')} ms",
                           f"{_fmt(v and v['ms'], '.0f')} ms", anchor, "ours/pyvips",
                           f"<= {target:g}x" if target else "-",
                           (anchor is not None and anchor <= target) if target else None))
        huge = label.startswith(("96 MP", "48 MP"))
        verdict = (o is not None and o["peak_mb"] < TARGET_PEAK_MB) if huge else (
            (o is not None and n is not None and o["peak_mb"] <= n["peak_mb"]) if weak else None)
        out.append(Row("pipeline", f"{label}: peak RSS (whole process)", f"{_fmt(o and o['peak_mb'], '.0f')} MB",
                       f"{_fmt(n and n['peak_mb'], '.0f')} MB naive", _ratio(n, o, "peak_mb"), "naive/ours",
                       f"ours < {TARGET_PEAK_MB} MB" if huge else "ours <= naive" if weak else "-", verdict))
        if o and pv:
            extra = pv["ms"] - o["ms"]
            out.append(Row("pipeline", f"{label}: + 320 px WebP preview, added time", f"{extra:+.1f} ms",
                           f"{o['ms']:.0f} ms without", (pv["ms"] / o["ms"]) if o["ms"] else None,
                           "with/without", "-", None))
    return out


def encode_rows(log=print) -> list:
    """Every output format's encoder on one decoded photo: the pipeline's settings vs Pillow's defaults."""
    import io as _io

    from bench.report import Row
    from chalicelib.domain.imaging import RenderSpec, _encode

    im = _photo_like((1600, 1067))
    ours = {"jpeg": RenderSpec("jpeg"), "png": RenderSpec("png"), "webp": RenderSpec("webp"),
            "avif": RenderSpec("avif"), "tiff": RenderSpec("tiff"), "tiff (lzw)": RenderSpec("tiff", tiff_compression="lzw")}
    pillow = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF", "tiff": "TIFF", "tiff (lzw)": None}

    def best_of(fn, n=3):
        times, data = [], b""
        for _ in range(n):
            t0 = time.perf_counter()
            data = fn()
            times.append(time.perf_counter() - t0)
        return 1000 * min(times), len(data)

    def default(fmt):
        buf = _io.BytesIO()
        im.save(buf, fmt)
        return buf.getvalue()

    rows = []
    for name, spec in ours.items():
        ms, size = best_of(lambda: _encode(im.copy(), spec, None)[0])
        if pillow[name]:
            base_ms, base_size = best_of(lambda: default(pillow[name]))
            baseline = f"{base_ms:.0f} ms, {base_size / 1024:.0f} KiB Pillow default"
        else:
            base_ms, base_size, baseline = None, None, "-"
        log(f"  encode {name}: {ms:.0f} ms, {size / 1024:.0f} KiB; Pillow default: {baseline}")
        rows.append(Row("pipeline", f"encode 1600x1067 photo as {name} (pipeline settings)",
                        f"{ms:.0f} ms, {size / 1024:.0f} KiB", baseline,
                        (size / base_size) if base_size else None, "bytes ours/default", "-", None))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repetition, 48 MP instead of 96 MP")
    parser.add_argument("--repeat", type=int, help="repetitions per measurement (median); default 5, quick 1")
    parser.add_argument("--child", nargs=3, metavar=("METHOD", "PATH", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return 0

    outcome = run(args.quick, args.repeat)
    results, inputs = outcome["results"], outcome["inputs"]
    print_table(outcome)

    print()
    print("targets (PERFORMANCE.md, not asserted):")
    big = next(label for label in inputs if label.startswith("24 MP"))
    n, o = results.get((big, "naive")), results.get((big, "ours"))
    speed, memr = _ratio(n, o, "ms"), _ratio(n, o, "delta_mb")
    print(f"  24 MP JPEG: >= 3x faster than naive: {_fmt(speed, '.1f')}x "
          f"[{'met' if speed and speed >= 3 else 'MISSED'}]")
    print(f"  24 MP JPEG: >= 4x less memory than naive (delta over baseline): {_fmt(memr, '.1f')}x "
          f"[{'met' if memr and memr >= 4 else 'MISSED'}]")
    huge = next(label for label in inputs if label.startswith(("96 MP", "48 MP")))
    o = results.get((huge, "ours"))
    peak = o and o["peak_mb"]
    print(f"  {huge}: ours peak RSS < 80 MB (whole process): {_fmt(peak, '.0f')} MB "
          f"[{'met' if peak and peak < 80 else 'MISSED'}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
