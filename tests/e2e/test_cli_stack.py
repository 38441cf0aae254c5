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


def test_list_in_a_pipe_keeps_long_names_and_ids_whole(stack, tmp_path):
    """A subprocess's stdout is a pipe: the table is tab-separated and nothing is cut."""
    prefix = "STUDIO_NORTHWEST_PRODUCTIONS_LONDON"
    Image.new("RGB", (40, 30), (1, 2, 3)).save(tmp_path / "a.png")
    run(stack, "pipelines", "create", "--name", "cli-web", "--format", "jpeg", "--width", "160", check=False)
    created = json.loads(run(stack, "--json", "submit", str(tmp_path / "a.png"), "-p", "cli-web",
                             "--prefix", prefix).stdout)["batch"]

    proc = run(stack, "list", "--ids", "--customer", prefix)

    header, *rows = proc.stdout.splitlines()
    assert header.split("\t")[0] == "base_directory_name" and header.split("\t")[-1] == "id"
    fields = next(row.split("\t") for row in rows if row.endswith(created["id"]))
    assert fields[0] == created["base_directory_name"] and len(fields[0]) > 50
    # what `cut -f1` gives is accepted by the next command as it is
    shown = run(stack, "show", fields[0]).stdout
    assert f"ID               {created['id']}" in shown.splitlines()


def test_download_of_a_failed_batch_exits_1_and_says_the_zip_has_no_images(stack, tmp_path):
    # PNG magic, then garbage: the CLI sends it (it looks like a PNG), the service fails it.
    (tmp_path / "PL_BROKEN1_Front.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 200)
    run(stack, "pipelines", "create", "--name", "cli-web", "--format", "jpeg", "--width", "160", check=False)
    submitted = run(stack, "--json", "submit", str(tmp_path), "-p", "cli-web", "--wait", check=False)
    assert submitted.returncode == 1, submitted.stderr
    batch = json.loads(submitted.stdout)["batch"]
    assert batch["status"] == "failed"

    out = tmp_path / "out"
    proc = run(stack, "download", batch["id"], "-o", str(out), check=False)

    assert proc.returncode == 1, proc.stderr
    assert "0 images: every file failed; the ZIP holds only manifest.csv" in proc.stderr
    (archive,) = out.glob("*.zip")
    with zipfile.ZipFile(archive) as z:
        assert z.namelist() == [f"{batch['base_directory_name']}/manifest.csv"]
