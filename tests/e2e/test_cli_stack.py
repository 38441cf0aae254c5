"""The imgbatch CLI against the running local stack, as a studio would use it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest
from PIL import Image

from tests.e2e.conftest import TOKEN

pytestmark = pytest.mark.e2e


def run(stack, *args, check=True):
    env = {**os.environ, "IMGBATCH_API_URL": stack.url, "IMGBATCH_TOKEN": TOKEN, "IMGBATCH_CONFIG": "/nonexistent"}
    proc = subprocess.run([sys.executable, "-m", "imgbatch", *args], capture_output=True, text=True, env=env,
                          timeout=180)
    if check:
        assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def test_submit_wait_download_produces_the_zip(stack, tmp_path):
    folder = tmp_path / "shoot"
    (folder / "nested").mkdir(parents=True)
    Image.new("RGB", (400, 300), (200, 10, 10)).save(folder / "PL_CLI7_Front.jpg", quality=90)
    Image.new("RGBA", (300, 400), (10, 200, 10, 128)).save(folder / "PL_CLI7_Back.png")
    Image.new("RGB", (320, 240), (10, 10, 200)).save(folder / "nested" / "PL_CLI7_Side.webp")
    (folder / "notes.txt").write_text("not an image")
    run(stack, "pipelines", "create", "--name", "cli-web", "--format", "jpeg", "--width", "160", check=False)
    out = tmp_path / "out"
    proc = run(stack, "submit", str(folder), "--pipeline", "cli-web", "--wait", "--download", str(out))
    assert "notes.txt" in proc.stderr + proc.stdout  # skipped with a notice
    (archive,) = list(out.glob("*.zip"))
    assert archive.name.startswith("PL_CLI_") and "_batch-" in archive.name
    base = archive.name[:-4]
    with zipfile.ZipFile(archive) as z:
        assert z.testzip() is None
        assert sorted(z.namelist()) == sorted([f"{base}/manifest.csv", f"{base}/PL_CLI7_Front.jpg",
                                                f"{base}/PL_CLI7_Back.jpg", f"{base}/PL_CLI7_Side.jpg"])
    listed = json.loads(run(stack, "--json", "list", "--search", base).stdout)
    batches = listed["batches"] if isinstance(listed, dict) else listed
    assert any(b["base_directory_name"] == base and b["status"] == "completed" for b in batches)
    stats = json.loads(run(stack, "--json", "stats").stdout)
    assert stats["completed"] >= 1


def test_api_errors_are_messages_not_tracebacks(stack):
    proc = run(stack, "show", "00000000-0000-4000-8000-000000000000", check=False)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "imgbatch", "list"], capture_output=True, text=True,
                          env={**os.environ, "IMGBATCH_API_URL": stack.url, "IMGBATCH_TOKEN": "wrong",
                               "IMGBATCH_CONFIG": "/nonexistent"}, timeout=60)
    assert proc.returncode == 3 and "IMGBATCH_TOKEN" in proc.stderr + proc.stdout
