"""build/package/deployment.zip runs on Lambda's python3.11 runtime (x86_64, glibc 2.26).

Pillow and pillow-heif must be manylinux2014 wheels (glibc 2.17 baseline), not builds from source
for this machine: their extension modules may link only to libraries bundled in pillow.libs/ and
pillow_heif.libs/ or to the system libraries the manylinux2014 policy allows and the Lambda image
has. Every codec the pipeline offers (JPEG, PNG, WebP, AVIF, TIFF LZW/Deflate, HEIC input) must work
from the unzipped package alone. The ELF files are
read with pyelftools (no ldd: that would resolve against this machine's libraries).
The zip must hold the app, its runtime dependencies and the web UI, and no development tools.
"""
from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from deploy_support import ROOT

# Present on Lambda's python3.11 image (Amazon Linux 2) and allowed by the manylinux2014 policy
# (auditwheel's list, which includes libz). Anything else must be vendored in pillow.libs/.
SYSTEM_LIBS = {"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "librt.so.1", "ld-linux-x86-64.so.2",
               "libz.so.1", "libstdc++.so.6", "libgcc_s.so.1"}
MANYLINUX2014_GLIBC = (2, 17)
MANYLINUX2014_GLIBCXX = (3, 4, 19)
DEV_ONLY = {"moto", "pytest", "_pytest", "chalice/cli", "chalice/deploy", "click", "rich", "httpx", "imgbatch",
            "bench", "devstack", "tests", "deploy", "hypothesis", "schemathesis", "cfnlint", "samtranslator",
            "werkzeug", "flask", "docker", "requests", "pyelftools", "elftools", "openapi_spec_validator",
            "playwright", "pyvips", "vendor", "build", ".chalice"}


@pytest.fixture(scope="module")
def zip_path(package_dir) -> Path:
    return package_dir / "deployment.zip"


@pytest.fixture(scope="module")
def names(zip_path) -> list[str]:
    with zipfile.ZipFile(zip_path) as z:
        return z.namelist()


@pytest.fixture(scope="module")
def extracted(zip_path, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("lambda-task")
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(target)
    return target


def elf_needs(path: Path) -> tuple[str, list[str], set[str]]:
    """(machine, DT_NEEDED entries, versioned symbol requirements such as GLIBC_2.14)."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        needed, versions = [], set()
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                needed += [t.needed for t in section.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
            if isinstance(section, GNUVerNeedSection):
                for _, auxiliaries in section.iter_versions():
                    versions.update(a.name for a in auxiliaries)
        return elf["e_machine"], needed, versions


def _version(name: str, prefix: str) -> tuple[int, ...] | None:
    return tuple(int(p) for p in name[len(prefix):].split(".")) if re.fullmatch(rf"{prefix}[\d.]+", name) else None


@pytest.mark.parametrize("dist,pin", [("pillow", "Pillow"), ("pillow_heif", "pillow-heif")])
def test_image_libraries_are_the_manylinux2014_wheels(names, extracted, dist, pin):
    [wheel] = [n for n in names if re.fullmatch(rf"{dist}-[\d.]+\.dist-info/WHEEL", n, re.I)]
    text = (extracted / wheel).read_text()
    tags = re.findall(r"^Tag: (\S+)$", text, re.M)
    assert tags and set(tags) <= {"cp311-cp311-manylinux_2_17_x86_64", "cp311-cp311-manylinux2014_x86_64"}, tags
    assert "linux_x86_64" not in [t.split("-")[-1] for t in tags], "built from source for this machine"
    assert "Root-Is-Purelib: false" in text
    version = re.match(rf"{dist}-([\d.]+)\.dist-info", wheel, re.I).group(1)
    pinned = re.search(rf"^{re.escape(pin)}==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M | re.I).group(1)
    assert version == pinned


def test_image_binaries_link_only_to_bundled_or_lambda_system_libraries(names, extracted):
    modules = [n for n in names if re.fullmatch(r"PIL/_imaging[\w.-]*\.so", n)]
    assert any(n.startswith("PIL/_imaging.cpython-311-x86_64-linux-gnu") for n in modules), modules
    assert any(re.fullmatch(r"_pillow_heif\.cpython-311-x86_64-linux-gnu\.so", n) for n in names)
    vendored = [n for n in names if n.startswith(("pillow.libs/", "pillow_heif.libs/")) and not n.endswith("/")]
    bundled = {Path(n).name for n in vendored}
    assert any(n.startswith("pillow.libs/") for n in vendored), "pillow.libs/ is missing: the wheel's vendored " \
        "libraries (libjpeg, libwebp, libavif, ...) are gone"
    heif = {Path(n).name.split("-")[0] for n in vendored if n.startswith("pillow_heif.libs/")}
    assert {"libheif", "libde265"} <= heif, heif
    problems = []
    extensions = [n for n in names if re.fullmatch(r"PIL/[^/]+\.so", n) or re.fullmatch(r"_pillow_heif[^/]*\.so", n)]
    for name in extensions + vendored:
        machine, needed, versions = elf_needs(extracted / name)
        if machine != "EM_X86_64":
            problems.append(f"{name}: built for {machine}")
        for lib in needed:
            if lib not in bundled and lib not in SYSTEM_LIBS:
                problems.append(f"{name} needs {lib}, neither bundled nor on Lambda")
        for v in versions:
            glibc, glibcxx = _version(v, "GLIBC_"), _version(v, "GLIBCXX_")
            if glibc and glibc > MANYLINUX2014_GLIBC:
                problems.append(f"{name} needs {v} (> glibc 2.17)")
            if glibcxx and glibcxx > MANYLINUX2014_GLIBCXX:
                problems.append(f"{name} needs {v}")
    assert not problems, "\n".join(problems)


def test_the_zip_alone_imports_the_app_and_pillow_encodes(extracted):
    """No site-packages at all (-I -S): only the zip and the standard library, as on Lambda."""
    probe = f"""
import io, sys
sys.path.insert(0, {str(extracted)!r})
import app
from PIL import Image, features
import PIL
assert PIL.__file__.startswith({str(extracted)!r}), PIL.__file__
for handler in ("app", "process_upload", "build_archive", "expire_uploads", "token_auth"):
    assert callable(getattr(app, handler)), handler
for fmt, params in (("JPEG", {{}}), ("PNG", {{}}), ("WEBP", {{}}), ("AVIF", {{"speed": 8}}),
                    ("TIFF", {{"compression": "tiff_lzw"}}), ("TIFF", {{"compression": "tiff_adobe_deflate"}})):
    buf = io.BytesIO(); Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, fmt, **params)
    assert Image.open(io.BytesIO(buf.getvalue())).size == (8, 8), fmt
assert features.check("webp") and features.check("jpg") and features.check("zlib") and features.check("avif")
assert features.check("libtiff") and features.check("littlecms2")
# HEIC: pillow-heif from the zip, its bundled encoder makes a real file, the pipeline decodes it
import pillow_heif
assert pillow_heif.__file__.startswith({str(extracted)!r}), pillow_heif.__file__
from chalicelib.domain import imaging
buf = io.BytesIO(); Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, "HEIF", quality=90)
assert imaging.sniff_format(buf.getvalue()) == "HEIF"
outs = imaging.render(buf.getvalue(), [imaging.RenderSpec(f, width=32) for f in imaging.FORMATS], preview=True)
assert [(o.format, o.width, o.height) for o in outs] == [(f, 32, 24) for f in imaging.FORMATS]
assert outs.preview.format == "webp"
# XLSX results export: XlsxWriter from the zip, in constant_memory mode as services/results.py uses it
import xlsxwriter, tempfile
assert xlsxwriter.__file__.startswith({str(extracted)!r}), xlsxwriter.__file__
from chalicelib.domain.results import write_xlsx, COLUMNS, NUMERIC
with tempfile.TemporaryFile() as tmp:
    write_xlsx([{{c: 1 if c in NUMERIC else "=1+1" for c in COLUMNS}}], tmp)
    assert tmp.tell() > 1000
# observability: Powertools and the X-Ray SDK from the zip, JSON lines and EMF as in Lambda
import aws_lambda_powertools, aws_xray_sdk, contextlib
for module in (aws_lambda_powertools, aws_xray_sdk):
    assert module.__file__.startswith({str(extracted)!r}), module.__file__
from chalicelib import observability as o
logs, metrics = io.StringIO(), io.StringIO()
obs = o.PowertoolsObservability(tracing=True, stream=logs, metrics_stream=metrics)
with obs.invocation("process_upload", "r"):
    obs.info("job.processed", batch_id="b")
    obs.metric(o.FILES_PROCESSED)
import json
assert json.loads(logs.getvalue())["batch_id"] == "b"
assert json.loads(metrics.getvalue())["FilesProcessed"] == [1.0]
print("ok", PIL.__version__, pillow_heif.__version__)
"""
    result = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "us-east-1"}, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("ok"), result.stderr[-3000:]


def test_the_xlsx_writer_is_small_and_pure_python(zip_path):
    """XlsxWriter for the results export: no compiled code, well under 1 MB compressed."""
    with zipfile.ZipFile(zip_path) as z:
        infos = [i for i in z.infolist() if i.filename.startswith("xlsxwriter/")]
    assert infos and not [i.filename for i in infos if i.filename.endswith(".so")]
    assert sum(i.compress_size for i in infos) < 1024 * 1024, sum(i.compress_size for i in infos)


def test_web_ui_and_openapi_spec_are_in_the_zip(names, extracted):
    web = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "web").iterdir()
                 if p.is_file() and not p.name.startswith("."))
    assert "web/index.html" in web
    assert set(web) <= set(names), set(web) - set(names)
    for name in web:
        assert (extracted / name).read_bytes() == (ROOT / name).read_bytes(), name
    assert (extracted / "chalicelib" / "openapi.json").read_bytes() == (ROOT / "chalicelib" / "openapi.json").read_bytes()
    assert "app.py" in names and "chalicelib/resources.py" in names


def _runtime_closure() -> set[str]:
    """requirements.txt and everything it requires, as installed here (markers evaluated)."""
    todo = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            todo.append(Requirement(line))
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen or (req.marker and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        todo += [Requirement(r) for r in metadata.requires(req.name) or []]
    return seen


def test_only_runtime_dependencies_no_development_tools(names):
    top = {n.split("/", 1)[0] for n in names}
    forbidden = {d for d in DEV_ONLY if any(n == d or n.startswith(d + "/") for n in names)}
    assert not forbidden, forbidden
    dists = {canonicalize_name(re.sub(r"-[^-]+\.dist-info$", "", t)) for t in top if t.endswith(".dist-info")}
    assert dists == _runtime_closure()
    # every other top-level entry is the app, Chalice's runtime, the web UI or a file of a packaged dist
    owned = {"app.py", "chalicelib", "chalice", "web"}
    for t in top:
        if t.endswith((".dist-info", ".data")):
            continue
        record_owners = [r for r in names if r.endswith(".dist-info/RECORD")]
        assert t in owned or any(t in _record_tops(r) for r in record_owners), f"unexpected {t} in the zip"
    assert sorted(n for n in names if n.startswith("chalice/")) == ["chalice/__init__.py", "chalice/app.py"]


_record_cache: dict[str, set[str]] = {}


def _record_tops(record: str) -> set[str]:
    if record not in _record_cache:
        with zipfile.ZipFile(ROOT / "build" / "package" / "deployment.zip") as z:
            lines = z.read(record).decode().splitlines()
        _record_cache[record] = {line.split(",", 1)[0].split("/", 1)[0] for line in lines if line}
    return _record_cache[record]


def test_powertools_and_the_xray_sdk_are_small_and_self_contained(names, extracted, zip_path):
    """Pure Python but for wrapt's one optional extension, which links to glibc alone (and wrapt
    falls back to Python without it)."""
    with zipfile.ZipFile(zip_path) as z:
        infos = z.infolist()
    for top, limit in (("aws_lambda_powertools/", 3 * 1024 * 1024), ("aws_xray_sdk/", 512 * 1024),
                       ("wrapt/", 512 * 1024)):
        mine = [i for i in infos if i.filename.startswith(top)]
        assert mine, f"{top} is not in the zip"
        assert sum(i.compress_size for i in mine) < limit, (top, sum(i.compress_size for i in mine))
    compiled = [n for n in names if n.startswith(("aws_lambda_powertools/", "aws_xray_sdk/", "wrapt/", "jmespath/"))
                and (n.endswith(".so") or ".so." in n)]
    assert [Path(n).parent.name for n in compiled] == ["wrapt"], compiled
    for name in compiled:
        machine, needed, versions = elf_needs(extracted / name)
        assert machine == "EM_X86_64" and set(needed) <= SYSTEM_LIBS, (name, needed)
        assert all((_version(v, "GLIBC_") or (0,)) <= MANYLINUX2014_GLIBC for v in versions), (name, versions)
    pinned = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^aws-lambda-powertools==[\d.]+$", pinned, re.M)
    assert re.search(r"^aws-xray-sdk==[\d.]+$", pinned, re.M)
