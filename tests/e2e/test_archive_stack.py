"""Large archives on the local stack: built in parallel parts by the build_archive_part pollers,
then checked with zipfile, `unzip -t` and `bsdtar -tf`. Two stacks: one with S3's real 5 MiB
minimum part and outputs over 10 MiB (so members are copied with UploadPartCopy), one with 4 KiB
parts (moto's minimum lowered through its S3_UPLOAD_PART_MIN_SIZE) so a few images make dozens of
parts and tasks."""
from __future__ import annotations

import io
import random
import re
import shutil
import subprocess
import zipfile

import pytest
import requests
from PIL import Image

from tests.e2e.conftest import LocalStack, upload, wait_for

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024

STACKS = {
    "real-parts": {"ARCHIVE_SYNC_MAX_BYTES": 0, "ARCHIVE_PART_SIZE": 6 * MIB, "ARCHIVE_TASK_BYTES": 12 * MIB},
    "small-parts": {"ARCHIVE_SYNC_MAX_BYTES": 0, "S3_UPLOAD_PART_MIN_SIZE": 4096, "ARCHIVE_MIN_PART_SIZE": 4096,
                    "ARCHIVE_PART_SIZE": 8192, "ARCHIVE_TASK_BYTES": 16384},
}
SIDES = {"real-parts": (2000, 1900, 60, 90, 120), "small-parts": (40, 60, 80, 100, 120, 130)}


@pytest.fixture(scope="module", params=sorted(STACKS))
def archive_stack(request):
    stack = LocalStack(**STACKS[request.param], WORKERS=1).start()
    stack.kind = request.param
    yield stack
    stack.stop()


def noise_png(side: int) -> bytes:
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), random.Random(side).randbytes(side * side * 3)).save(
        buf, "PNG", compress_level=0)
    return buf.getvalue()


def test_a_large_archive_built_in_parallel_parts_passes_every_reader(archive_stack, tmp_path):
    stack, http = archive_stack, archive_stack.session()
    r = http.post(f"{stack.url}/pipelines", json={"name": "lossless", "format": "png", "compression": 0})
    assert r.status_code == 201, r.text
    files = {f"PL_ZIP1_{side}.png": noise_png(side) for side in SIDES[stack.kind]}
    r = http.post(f"{stack.url}/batches", json={"pipeline_ids": [r.json()["pipeline"]["id"]], "files": [
        {"name": n, "size": len(d), "content_type": "image/png"} for n, d in files.items()]})
    assert r.status_code == 201, r.text
    created = r.json()
    for u in created["uploads"]:
        assert upload(u, files[u["file_name"]]).status_code in (200, 201, 204)
    bid, base = created["batch"]["id"], created["batch"]["base_directory_name"]
    wait_for(lambda: http.get(f"{stack.url}/batches/{bid}").json()["batch"]["status"] == "completed",
             timeout=300, what="the batch to complete")

    def ready():
        r = http.get(f"{stack.url}/batches/{bid}/download?redirect=false")
        assert r.status_code in (200, 202), r.text
        return r.json() if r.status_code == 200 else None
    first = http.get(f"{stack.url}/batches/{bid}/download")
    assert first.status_code == 202 and first.headers["Retry-After"]
    url = wait_for(ready, timeout=300, interval=1, what="the archive to be built")["url"]
    data = requests.get(url, timeout=60).content

    built = re.findall(r"building archives/\S+ in (\d+) parts \((\d+) copied inside S3\), (\d+) tasks",
                       stack.log_path.read_text())
    assert built, "the stack's log says nothing of a build in parts"
    parts, copied, tasks = map(int, built[-1])
    assert parts > 3 and tasks > 1
    if stack.kind == "real-parts":
        assert copied >= 2 and len(data) > 20 * MIB   # the two 11-12 MiB outputs, copied inside S3

    s3 = stack.boto("s3")
    jobs = http.get(f"{stack.url}/batches/{bid}").json()["batch"]["jobs"]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert names[0] == f"{base}/manifest.csv" and len(names) == len(files) + 1
        for job in jobs:
            stored = s3.get_object(Bucket="imgbatch-local", Key=job["outputs"][0]["key"])["Body"].read()
            assert zf.read(f"{base}/{job['file_name']}") == stored
    path = tmp_path / f"{base}.zip"
    path.write_bytes(data)
    for tool in ("unzip", "bsdtar"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (CI installs unzip and libarchive-tools)")
    subprocess.run(["unzip", "-t", str(path)], check=True, capture_output=True)
    listed = subprocess.run(["bsdtar", "-tf", str(path)], check=True, capture_output=True, text=True).stdout
    assert listed.splitlines() == names
    assert "Uploads" not in s3.list_multipart_uploads(Bucket="imgbatch-local")
