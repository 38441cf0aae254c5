"""Every command other than submit, against the fake API."""

from __future__ import annotations

import json

import pytest

from .conftest import parse_json


@pytest.fixture
def three_batches(fake):
    fake.add_pipeline("web")
    fake.failing_files["PL_DXB191_Back.png"] = ("decode_error", "cannot identify image file")
    return [
        fake.add_batch(["PL_DXB191_Front.png", "PL_DXB191_Back.png"]),
        fake.add_batch(["ACME_AE1.png"], processed=False),
        fake.add_batch(["x.png", "y.png", "z.png"], description="three in a row"),
    ]


# -- list -----------------------------------------------------------------------------------


def test_list_shows_a_table(run, three_batches):
    result = run("list")

    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert lines[0] == ["base_directory_name", "files", "status", "uploaded", "processed", "created (UTC)"]
    # newest first
    assert lines[1][:5] == ["MISC_2025-11-05_batch-1", "3", "completed", "3/3", "3/3"]
    assert lines[2][:5] == ["ACME_AE_2025-11-05_batch-1", "1", "processing", "1/1", "0/1"]
    assert lines[3][:5] == ["PL_DXB_2025-11-05_batch-1", "2", "completed_with_errors", "2/2", "2/2 1 failed"]


def test_list_passes_filters_and_sort(run, fake, three_batches):
    result = run("list", "--status", "completed", "--customer", "MISC", "--search", "three",
                 "--sort", "total_files", "--order", "asc", "--limit", "10")

    assert result.exit_code == 0, result.output
    params = fake.api_requests[-1].url.params
    assert dict(params) == {"status": "completed", "customer_prefix": "MISC", "search": "three",
                            "sort_by": "total_files", "sort_order": "asc", "limit": "10"}
    assert "MISC_2025-11-05_batch-1" in result.stdout
    assert "PL_DXB" not in result.stdout


def test_list_all_follows_next_cursor(run, fake, three_batches):
    result = run("--json", "list", "--limit", "1", "--all")

    data = parse_json(result)
    assert len(data["batches"]) == 3 and data["next_cursor"] is None
    assert len([r for r in fake.api_requests if r.url.path == "/batches"]) == 3


def test_list_without_all_hints_at_more(run, three_batches):
    result = run("list", "--limit", "2")

    assert result.exit_code == 0
    assert "More batches: add --all, or --cursor 2" in result.stderr


def test_list_ids_column_and_empty_list(run, fake, three_batches):
    assert three_batches[0]["id"] in run("list", "--ids").stdout
    assert run("list", "--status", "cancelled").stdout.strip() == "No batches."


def test_invalid_choice_is_a_usage_error(run):
    assert run("list", "--sort", "name").exit_code == 2
    assert run("list", "--limit", "500").exit_code == 2
    assert run("frobnicate").exit_code == 2


# -- show / stats ---------------------------------------------------------------------------


def test_show_pages_through_jobs_and_shows_errors(run, fake, three_batches):
    fake.jobs_page_size = 1
    batch = three_batches[0]

    result = run("show", batch["id"])

    assert result.exit_code == 0, result.output
    assert "PL_DXB_2025-11-05_batch-1" in result.stdout
    assert "Jobs (2)" in result.stdout
    assert "PL_DXB191_Front.png" in result.stdout
    assert "decode_error: cannot identify image file" in result.stdout
    assert "web (" in result.stdout  # pipeline ids shown with their names
    cursors = [r.url.params.get("jobs_cursor") for r in fake.api_requests if r.url.path.endswith(batch["id"])]
    assert cursors == [None, "1"]


def test_show_accepts_the_base_directory_name(run, three_batches):
    result = run("--json", "show", "PL_DXB_2025-11-05_batch-1")

    data = parse_json(result)
    assert data["batch"]["id"] == three_batches[0]["id"]
    assert len(data["batch"]["jobs"]) == 2 and data["batch"]["jobs_next_cursor"] is None


def test_show_unknown_name_is_a_usage_error(run, three_batches):
    result = run("show", "NOPE_2025-11-05_batch-9")
    assert result.exit_code == 2
    assert "no batch with id or name" in result.stderr


def test_stats(run, three_batches):
    result = run("stats")
    assert result.exit_code == 0
    assert "Batches" in result.stdout and "completed_with_errors" in result.stdout

    data = parse_json(run("stats", "--json"))
    assert data["total_batches"] == 3 and data["total_files_all_time"] == 6


# -- cancel / retry / delete ----------------------------------------------------------------


def test_cancel(run, fake, three_batches):
    pending = three_batches[1]

    result = run("cancel", pending["id"])

    assert result.exit_code == 0, result.output
    assert "1 file(s) cancelled" in result.stdout
    assert fake.batches[pending["id"]]["status"] == "cancelled"


def test_cancel_a_final_batch_reports_the_conflict(run, three_batches):
    result = run("cancel", three_batches[2]["id"])

    assert result.exit_code == 3
    assert "Batch is already completed; nothing to cancel (HTTP 409 ConflictError)" in result.stderr


def test_retry(run, fake, three_batches):
    batch = three_batches[0]

    data = parse_json(run("--json", "retry", batch["id"]))

    assert data["batch"]["status"] == "processing"
    assert fake.batches[batch["id"]]["progress"]["failed"] == 0


def test_wait_command_follows_a_retried_batch(run, fake, three_batches):
    batch = three_batches[0]
    run("retry", batch["id"])

    result = run("wait", batch["id"])

    assert result.exit_code == 0, result.output
    assert "finished: completed (2 succeeded" in result.stdout


def test_delete_with_yes(run, fake, three_batches):
    result = run("delete", three_batches[0]["id"], "--yes")

    assert result.exit_code == 0
    assert three_batches[0]["id"] not in fake.batches


def test_delete_asks_first(run, fake, three_batches):
    batch_id = three_batches[0]["id"]

    declined = run("delete", batch_id, input="n\n")
    assert declined.exit_code == 1
    assert batch_id in fake.batches
    assert "Delete batch PL_DXB_2025-11-05_batch-1 (2 files)" in declined.stderr

    accepted = run("--json", "delete", batch_id, input="y\n")
    assert json.loads(accepted.stdout) == {"id": batch_id, "deleted": True}
    assert batch_id not in fake.batches


# -- download -------------------------------------------------------------------------------


def test_download_command(run, fake, three_batches, tmp_path):
    batch = three_batches[0]
    fake.archive_plan = [202]

    result = run("download", batch["id"], "-o", str(tmp_path))

    assert result.exit_code == 0, result.output
    saved = tmp_path / "PL_DXB_2025-11-05_batch-1.zip"
    assert saved.read_bytes() == fake.archive_bytes(batch["id"])
    assert fake.violations == []


def test_download_of_a_failed_batch_says_the_zip_has_no_images_and_exits_1(run, fake, tmp_path):
    fake.add_pipeline("web")
    fake.failing_files.update({"a.png": ("not_an_image", "x"), "b.png": ("corrupt_image", "y")})
    batch = fake.add_batch(["a.png", "b.png"])

    result = run("download", batch["id"], "-o", str(tmp_path))

    assert result.exit_code == 1, result.output
    saved = tmp_path / "MISC_2025-11-05_batch-1.zip"
    assert saved.is_file()  # kept: its manifest says why each file failed
    assert f"Saved {saved} (" in result.stderr
    assert "0 images: every file failed; the ZIP holds only manifest.csv" in result.stderr
    assert "Saved" not in result.stdout


def test_download_of_a_cancelled_batch_explains_the_empty_zip(run, fake, tmp_path):
    fake.add_pipeline("web")
    batch = fake.add_batch(["a.png", "b.png", "c.png"], processed=False)
    fake.failing_files["a.png"] = ("corrupt_image", "y")
    fake.advance(batch["id"], 1)
    assert run("cancel", batch["id"]).exit_code == 0

    result = run("download", batch["id"], "-o", str(tmp_path), "--json")

    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["images"] == 0 and data["path"].endswith("MISC_2025-11-05_batch-1.zip")

    result = run("download", batch["id"], "-o", str(tmp_path))
    assert "0 images: no file succeeded (1 failed, 2 cancelled)" in result.stderr


def test_download_before_anything_finished_is_409_with_a_hint(run, fake, three_batches, tmp_path):
    result = run("download", three_batches[1]["id"], "-o", str(tmp_path))

    assert result.exit_code == 3
    assert "has finished yet" in result.stderr and "--partial" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_download_partial(run, fake, tmp_path):
    fake.add_pipeline("web")
    batch = fake.add_batch(["a.png", "b.png"], processed=False)
    fake.advance(batch["id"], 1)

    data = parse_json(run("download", batch["id"], "--partial", "-o", str(tmp_path), "--json"))

    assert data["path"] == str(tmp_path / "MISC_2025-11-05_batch-1.zip")
    assert data["images"] == 1
    request = [r for r in fake.api_requests if r.url.path.endswith("/download")][-1]
    assert request.url.params["partial"] == "true"


# -- pipelines ------------------------------------------------------------------------------


def test_pipelines_list_create_show_delete(run, fake):
    assert "No pipelines yet" in run("pipelines", "list").stdout

    created = run("pipelines", "create", "--name", "Thumb", "--format", "JPG", "--width", "200",
                  "--height", "200", "--fit", "cover", "--quality", "70", "--compression", "10",
                  "--background", "000", "--keep-metadata", "--no-upscale")
    assert created.exit_code == 0, created.output
    assert fake.last_pipeline_body == {
        "name": "Thumb", "format": "jpeg", "width": 200, "height": 200, "fit": "cover",
        "quality": 70, "compression": 10, "background": "#000", "keep_metadata": True,
        "upscale": False,
    }

    listed = run("pipelines", "list")
    assert "Thumb" in listed.stdout and "200x200" in listed.stdout and "cover, quality 70" in listed.stdout

    shown = run("pipelines", "show", "thumb")
    assert "cover" in shown.stdout and "yes" in shown.stdout

    (pipeline_id,) = fake.pipelines
    deleted = run("pipelines", "delete", "thumb", "--yes")
    assert deleted.exit_code == 0 and pipeline_id not in fake.pipelines


def test_pipelines_create_sends_only_given_options(run, fake):
    run("pipelines", "create", "--name", "plain")
    assert fake.last_pipeline_body == {"name": "plain"}


def test_pipelines_create_reports_every_problem_the_api_finds(run, fake):
    """Values go to the API as given: one run lists every problem, each field on its own line."""
    result = run("pipelines", "create", "--name", "x", "--format", "gif", "--width", "-5", "--quality", "200",
                 "--background", "white", "--max-bytes", "2M")
    assert result.exit_code == 3 and fake.pipelines == {}
    assert "Error: 4 problems: format must be one of: png, jpeg, webp, avif, tiff" in result.stderr
    lines = [line.strip() for line in result.stderr.splitlines() if line.startswith("  ")]
    assert [line.split(":", 1)[0] for line in lines] == ["format", "width", "quality", "background"]
    assert "  width: width must be between 1 and 16384, got -5" in result.stderr
    assert fake.last_pipeline_body["max_bytes"] == 2 * 1024 * 1024
    # click still checks what is not a value judgement: types and missing names
    assert run("pipelines", "create", "--name", "x", "--width", "wide").exit_code == 2
    assert run("pipelines", "create", "--format", "png").exit_code == 2


def test_pipelines_create_every_issue_17_option(run, fake):
    created = run("pipelines", "create", "--name", "print", "--format", "TIF", "--width", "2000", "--height",
                  "2000", "--fit", "pad", "--tiff-compression", "lzw", "--embed-icc", "--trim", "5", "--dpi", "300",
                  "--sharpen", "80", "--filename", "{prefix}_{counter:04}.{ext}", "--background", "ffffff")
    assert created.exit_code == 0, created.output
    assert fake.last_pipeline_body == {
        "name": "print", "format": "tiff", "width": 2000, "height": 2000, "fit": "pad", "tiff_compression": "lzw",
        "embed_icc": True, "trim": 5, "dpi": 300, "sharpen": 80, "filename": "{prefix}_{counter:04}.{ext}",
        "background": "#ffffff"}
    listed = run("pipelines", "list").stdout
    assert "pad, lzw, trim 5, sharpen 80, 300 dpi, sRGB tagged, names {prefix}_{counter:04}.{ext}" in listed
    shown = run("pipelines", "show", "print").stdout
    assert "tiff_compression  lzw" in shown and "filename          {prefix}_{counter:04}.{ext}" in shown
    small = run("pipelines", "create", "--name", "small", "--format", "webp", "--max-bytes", "500K")
    assert small.exit_code == 0 and fake.last_pipeline_body["max_bytes"] == 500 * 1024
    assert "max 512.0 kB" in run("pipelines", "list").stdout


def test_pipelines_update_merges_the_flags_into_what_is_stored(run, fake):
    stored = fake.add_pipeline("web", format="jpeg", width=800, quality=70, trim=3, filename="{stem}_web.{ext}")
    result = run("pipelines", "update", "web", "--quality", "90", "--max-bytes", "300000", "--unset", "trim",
                 "--unset", "filename")
    assert result.exit_code == 0, result.output
    assert "Updated pipeline web" in result.stdout
    put = [r for r in fake.api_requests if r.method == "PUT"][-1]
    assert put.url.path == f"/pipelines/{stored['id']}"
    body = json.loads(put.content)
    assert body["quality"] == 90 and body["max_bytes"] == 300000 and body["width"] == 800
    assert "trim" not in body and "filename" not in body and "id" not in body and "created_at" not in body
    assert fake.pipelines[stored["id"]]["trim"] is None and fake.pipelines[stored["id"]]["quality"] == 90
    renamed = run("pipelines", "update", stored["id"], "--name", "web-large", "--json")
    assert json.loads(renamed.stdout)["pipeline"]["name"] == "web-large"


def test_pipelines_update_shows_every_problem_and_changes_nothing(run, fake):
    stored = fake.add_pipeline("web", format="jpeg", width=800)
    result = run("pipelines", "update", "web", "--format", "png", "--max-bytes", "100", "--sharpen", "900")
    assert result.exit_code == 3
    assert "  sharpen: sharpen must be between 0 and 500, got 900" in result.stderr
    assert "  max_bytes: max_bytes must be between 1024 and 104857600, got 100" in result.stderr
    assert fake.pipelines[stored["id"]]["format"] == "jpeg"
    assert run("pipelines", "update", "web").exit_code == 2   # nothing to change
    both = run("pipelines", "update", "web", "--trim", "3", "--unset", "trim")
    assert both.exit_code == 2 and "contradict" in both.stderr


def test_pipelines_create_conflict_shows_api_message(run, fake):
    fake.add_pipeline("web")
    result = run("pipelines", "create", "--name", "WEB", "--format", "png")
    assert result.exit_code == 3
    assert "a pipeline named 'WEB' already exists (HTTP 409 ConflictError)" in result.stderr


def test_pipelines_show_unknown(run, fake):
    fake.add_pipeline("web")
    result = run("pipelines", "show", "print")
    assert result.exit_code == 2
    assert "unknown pipeline 'print'" in result.stderr and "web (" in result.stderr


# -- errors ---------------------------------------------------------------------------------


def test_401_tells_how_to_set_the_token(run, fake):
    result = run("--token", "wrong", "list")

    assert result.exit_code == 3
    assert "HTTP 401" in result.stderr and "Missing or invalid bearer token" in result.stderr
    assert "IMGBATCH_TOKEN" in result.stderr and "--token" in result.stderr
    assert "Traceback" not in result.output


def test_404_shows_the_api_message(run, fake):
    result = run("show", "6f1c1a52-0000-4000-8000-000000000000")

    assert result.exit_code == 3
    assert "Batch 6f1c1a52-0000-4000-8000-000000000000 not found (HTTP 404 NotFoundError)" in result.stderr


def test_network_error_exits_3_after_retrying_gets(run, fake):
    fake.api_down = True

    result = run("stats")

    assert result.exit_code == 3
    assert "cannot reach the API at http://127.0.0.1:8000" in result.stderr
    assert "Traceback" not in result.output
    assert len(fake.api_requests) == 3  # GETs are retried before giving up
    assert len(fake.sleeps) == 2


def test_network_error_on_post_is_not_retried(run, fake):
    fake.api_down = True
    result = run("cancel", "6f1c1a52-0000-4000-8000-000000000000")
    assert result.exit_code == 3
    assert len(fake.api_requests) == 1


# -- JSON on every command ------------------------------------------------------------------


@pytest.mark.parametrize("position", ["global", "local"])
@pytest.mark.parametrize(
    "command, key",
    [
        (["list"], "batches"),
        (["list", "--all"], "batches"),
        (["show", "{id}"], "batch"),
        (["stats"], "total_batches"),
        (["cancel", "{pending}"], "batch"),
        (["retry", "{id}"], "batch"),
        (["delete", "{id}", "--yes"], "deleted"),
        (["download", "{id}", "-o", "{tmp}"], "path"),
        (["wait", "{id}"], "batch"),
        (["pipelines", "list"], "pipelines"),
        (["pipelines", "show", "web"], "pipeline"),
        (["pipelines", "create", "--name", "new", "--format", "png"], "pipeline"),
        (["pipelines", "update", "web", "--dpi", "72"], "pipeline"),
        (["results", "{id}", "-o", "{tmp}"], "path"),
        (["contact-sheet", "{id}", "-o", "{tmp}"], "files"),
        (["pipelines", "delete", "web", "--yes"], "deleted"),
    ],
)
def test_json_output_is_parseable(run, three_batches, tmp_path, command, key, position):
    values = {"id": three_batches[0]["id"], "pending": three_batches[1]["id"], "tmp": str(tmp_path)}
    args = [part.format(**values) for part in command]
    args = ["--json", *args] if position == "global" else [*args, "--json"]

    result = run(*args)

    assert result.exit_code in (0, 1), result.output
    data = json.loads(result.stdout)
    assert key in data


# -- results, contact sheet, previews -----------------------------------------------------------


def test_results_saves_the_staged_file_under_its_name(run, fake, three_batches, tmp_path):
    batch = three_batches[0]
    result = run("results", batch["base_directory_name"], "--format", "xlsx", "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    saved = tmp_path / f"{batch['base_directory_name']}-results.xlsx"
    assert saved.read_bytes().startswith(b"file,status")
    assert f"Saved {saved}" in result.stdout
    request = [r for r in fake.api_requests if r.url.path.endswith("/results")][-1]
    assert request.url.params["format"] == "xlsx" and request.url.params["redirect"] == "false"
    assert not [r for r in fake.s3_requests if "authorization" in r.headers]   # the token stays with the API
    assert run("results", batch["id"], "--format", "xls").exit_code == 2


def test_contact_sheet_saves_every_part(run, fake, tmp_path):
    fake.sheet_part_files = 2
    batch = fake.add_batch(["a.png", "b.png", "c.png", "d.png", "e.png"])
    result = run("contact-sheet", batch["id"], "-o", str(tmp_path))
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.iterdir())
    base = batch["base_directory_name"]
    assert names == [f"{base}-contact-sheet-part-{n}-of-3.pdf" for n in (1, 2, 3)]
    assert (tmp_path / names[1]).read_bytes() == b"%PDF-1.4 part 2"
    only = run("contact-sheet", batch["id"], "--part", "3", "-o", str(tmp_path / "one"), "--json")
    assert [f["part"] for f in json.loads(only.stdout)["files"]] == [3]
    assert run("contact-sheet", batch["id"], "--part", "4").exit_code == 3


def test_show_links_adds_the_preview_urls_and_labels_max_bytes(run, fake):
    fake.add_pipeline("small", max_bytes=2048)
    fake.failing_files["big.png"] = ("exceeds_max_bytes", "the JPEG output is 9,000 bytes even at quality 10")
    batch = fake.add_batch(["ok.png", "big.png"])
    result = run("show", batch["id"], "--links")
    table = result.stdout.splitlines()
    header = next(line for line in table if line.startswith("file\t")).split("\t")
    assert header[-1] == "preview"
    rows = {line.split("\t")[0]: line.split("\t") for line in table if "\t" in line}
    assert rows["ok.png"][-1].startswith("https://s3.fake.test/outputs/") and rows["big.png"][-1] == "-"
    assert rows["big.png"][4] == ("exceeds_max_bytes (over the pipeline's max_bytes even at the lowest quality): "
                                  "the JPEG output is 9,000 bytes even at quality 10")
