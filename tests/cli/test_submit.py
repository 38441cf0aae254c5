"""`imgbatch submit`: collect, create, upload (with retries), wait and download."""

from __future__ import annotations

import io
import json
import re
import zipfile

import httpx

from .conftest import make_image, parse_json, plain


def test_submit_folder_uploads_images_and_skips_the_rest(run, fake, photo_folder):
    web = fake.add_pipeline("Web")

    result = run("submit", str(photo_folder), "--pipeline", "web")

    assert result.exit_code == 0, result.output
    assert fake.violations == []
    assert fake.last_batch_body["pipeline_ids"] == [web["id"]]
    sent = {f["name"]: f for f in fake.last_batch_body["files"]}
    assert set(sent) == {"PL_DXB191_Front.png", "PL_DXB191_Back.jpg", "PL_DXB191_Side.webp"}
    assert sent["PL_DXB191_Side.webp"]["content_type"] == "image/webp"
    # Every file arrived once, byte for byte, with the presigned fields sent before it.
    assert len(fake.received) == 3
    for upload in fake.received:
        assert upload.part_names[-1] == "file"
        assert set(upload.part_names[:-1]) == {"key", "Content-Type", "x-amz-algorithm",
                                               "x-amz-credential", "x-amz-date", "policy",
                                               "x-amz-signature"}
        local = next(photo_folder.rglob(upload.file_name))
        assert upload.file_bytes == local.read_bytes()
    # Notices name the skipped files and say why; hidden files are skipped silently.
    assert "notes.txt" in result.stderr and "not an image extension" in result.stderr
    assert "looks_like.png" in result.stderr and "not a recognised image" in result.stderr
    assert "hidden" not in result.stderr and "thumb" not in result.stderr
    assert "Created batch PL_DXB_2025-11-05_batch-1" in result.stdout
    assert "Uploaded 3 of 3 files" in result.stdout


def test_pipeline_by_id_and_several_pipelines(run, fake, photo_folder):
    web = fake.add_pipeline("web")
    thumb = fake.add_pipeline("thumb")

    result = run("submit", str(photo_folder / "PL_DXB191_Front.png"),
                 "-p", thumb["id"], "-p", "WEB", "-p", "thumb",
                 "--description", "3-view Render", "--prefix", "PL_XYZ")

    assert result.exit_code == 0, result.output
    assert fake.last_batch_body["pipeline_ids"] == [thumb["id"], web["id"]]
    assert fake.last_batch_body["description"] == "3-view Render"
    assert fake.last_batch_body["customer_prefix"] == "PL_XYZ"


def test_unknown_pipeline_is_a_usage_error_listing_the_choices(run, fake, photo_folder):
    fake.add_pipeline("web")
    fake.add_pipeline("thumb")

    result = run("submit", str(photo_folder), "--pipeline", "print")

    assert result.exit_code == 2
    assert "unknown pipeline 'print'" in result.stderr
    assert "web (" in result.stderr and "thumb (" in result.stderr
    assert fake.batches == {}


def test_no_images_is_a_usage_error(run, fake, tmp_path):
    fake.add_pipeline("web")
    (tmp_path / "readme.txt").write_text("hi")

    result = run("submit", str(tmp_path), "-p", "web")

    assert result.exit_code == 2
    assert "no image files found" in result.stderr


def test_duplicate_names_in_nested_folders_are_refused_before_creating(run, fake, tmp_path):
    fake.add_pipeline("web")
    make_image(tmp_path / "a" / "Front.png", "PNG")
    make_image(tmp_path / "b" / "Front.png", "PNG")

    result = run("submit", str(tmp_path), "-p", "web")

    assert result.exit_code == 2
    assert "Front.png" in result.stderr and "unique" in result.stderr
    assert fake.batches == {}


def test_missing_path_is_a_usage_error(run, fake, tmp_path):
    result = run("submit", str(tmp_path / "nope"), "-p", "web")
    assert result.exit_code == 2


def test_wait_until_completed_exits_0(run, fake, photo_folder):
    fake.add_pipeline("web")

    result = run("submit", str(photo_folder), "-p", "web", "--wait")

    assert result.exit_code == 0, result.output
    polls = [r for r in fake.api_requests if r.method == "GET" and "/batches/" in r.url.path]
    assert len(polls) >= 3  # one file finishes per poll in the fake
    assert all(r.url.params.get("jobs_limit") == "1" for r in polls)
    assert "finished: completed (3 succeeded, 0 failed, 0 cancelled)" in result.stdout
    assert fake.sleeps  # polling waited between requests, through the injected sleep


def test_wait_completed_with_errors_exits_1(run, fake, photo_folder):
    fake.add_pipeline("web")
    fake.failing_files["PL_DXB191_Back.jpg"] = ("decode_error", "cannot decode image")

    result = run("submit", str(photo_folder), "-p", "web", "--wait")

    assert result.exit_code == 1, result.output
    assert "completed_with_errors (2 succeeded, 1 failed" in result.stdout


def test_wait_line_never_shows_fewer_uploaded_than_were_just_uploaded(run, fake, photo_folder):
    """The service's `uploaded` can lag behind storage; what we uploaded ourselves is certain."""
    fake.add_pipeline("web")
    fake.uploaded_lags = True  # the API counts a file as uploaded only once it is processed

    result = run("submit", str(photo_folder), "-p", "web", "--wait", terminal=200, interactive=True)

    assert result.exit_code == 0, result.output
    assert "Uploaded 3 of 3 files" in result.stdout
    shown = re.findall(r"uploaded (\d)/3 · processed (\d)/3", plain(result.stderr))
    assert shown, result.stderr
    assert {uploaded for uploaded, _ in shown} == {"3"}
    # Processing is a figure of its own, and it moved while uploads stood at 3/3.
    assert {processed for _, processed in shown} >= {"1", "2", "3"}


def test_download_waits_for_the_archive_then_saves_it(run, fake, photo_folder, tmp_path):
    fake.add_pipeline("web")
    fake.archive_plan = [202, 202]
    fake.retry_after = "7"
    out = tmp_path / "out"

    result = run("submit", str(photo_folder), "-p", "web", "--download", str(out))

    assert result.exit_code == 0, result.output
    assert fake.violations == []  # includes: no Authorization header towards S3
    (batch_id,) = fake.batches
    saved = out / "PL_DXB_2025-11-05_batch-1.zip"
    assert saved.read_bytes() == fake.archive_bytes(batch_id)
    assert list(out.iterdir()) == [saved]  # the temporary file was renamed, nothing left over
    assert fake.sleeps.count(7.0) == 2  # honoured Retry-After twice
    downloads = [r for r in fake.api_requests if r.url.path.endswith("/download")]
    assert len(downloads) == 3
    with zipfile.ZipFile(io.BytesIO(saved.read_bytes())) as archive:
        assert "PL_DXB_2025-11-05_batch-1/manifest.csv" in archive.namelist()
    assert f"Saved {saved} (" in result.stdout and "): 3 images and manifest.csv" in result.stdout
    s3_get = [r for r in fake.s3_requests if r.method == "GET"]
    assert len(s3_get) == 1 and "authorization" not in s3_get[0].headers


def test_download_name_falls_back_to_base_directory_name(run, fake, photo_folder, tmp_path):
    fake.add_pipeline("web")
    fake.archive_disposition = None

    result = run("submit", str(photo_folder), "-p", "web", "--download", str(tmp_path))

    assert result.exit_code == 0, result.output
    assert (tmp_path / "PL_DXB_2025-11-05_batch-1.zip").is_file()


def test_download_name_from_server_cannot_escape_the_folder(run, fake, photo_folder, tmp_path):
    fake.add_pipeline("web")
    fake.archive_disposition = 'attachment; filename="../../evil.zip"'
    out = tmp_path / "out"

    result = run("submit", str(photo_folder), "-p", "web", "--download", str(out))

    assert result.exit_code == 0, result.output
    assert (out / "evil.zip").is_file()
    assert not (tmp_path / "evil.zip").exists()


def test_failed_batch_skips_download(run, fake, photo_folder, tmp_path):
    fake.add_pipeline("web")
    for name in ("PL_DXB191_Front.png", "PL_DXB191_Back.jpg", "PL_DXB191_Side.webp"):
        fake.failing_files[name] = ("decode_error", "bad")

    result = run("submit", str(photo_folder), "-p", "web", "--download", str(tmp_path / "out"))

    assert result.exit_code == 1
    assert "Nothing to download: every file failed." in result.stderr
    assert not (tmp_path / "out").exists()


def test_transient_503_is_retried_then_succeeds(run, fake, photo_folder):
    fake.add_pipeline("web")
    fake.s3_faults["PL_DXB191_Front.png"] = [503, 503]

    result = run("submit", str(photo_folder), "-p", "web", "--json")

    assert result.exit_code == 0, result.output
    assert len(fake.uploads_for("PL_DXB191_Front.png")) == 3
    uploads = {u["file_name"]: u for u in json.loads(result.stdout)["uploads"]}
    assert uploads["PL_DXB191_Front.png"]["attempts"] == 3
    assert uploads["PL_DXB191_Front.png"]["ok"] is True
    assert len(fake.sleeps) == 2 and fake.sleeps[1] > fake.sleeps[0] / 2  # backed off


def test_connection_error_on_upload_is_retried(run, fake, photo_folder):
    fake.add_pipeline("web")
    fake.s3_faults["PL_DXB191_Back.jpg"] = [httpx.ConnectError("connection reset")]

    result = run("submit", str(photo_folder), "-p", "web")

    assert result.exit_code == 0, result.output
    assert len(fake.uploads_for("PL_DXB191_Back.jpg")) == 2


def test_403_is_not_retried_and_reported_per_file(run, fake, photo_folder):
    fake.add_pipeline("web")
    fake.s3_faults["PL_DXB191_Side.webp"] = [403]

    result = run("submit", str(photo_folder), "-p", "web", "--wait")

    assert result.exit_code == 1
    assert len(fake.uploads_for("PL_DXB191_Side.webp")) == 1
    assert "PL_DXB191_Side.webp: HTTP 403 AccessDenied: Invalid according to Policy" in result.stderr
    assert "Uploaded 2 of 3 files" in result.stdout
    batch_id = next(iter(fake.batches))
    assert f"imgbatch cancel {batch_id}" in result.stderr
    assert f"imgbatch resume {batch_id} {photo_folder}" in result.stderr
    # --wait is skipped: the batch cannot finish before the upload window closes.
    assert not any(r.url.params.get("jobs_limit") for r in fake.api_requests)
    assert "Traceback" not in result.output


def test_gives_up_after_repeated_5xx(run, fake, photo_folder):
    fake.add_pipeline("web")
    fake.s3_faults["PL_DXB191_Front.png"] = [500] * 10

    result = run("submit", str(photo_folder / "PL_DXB191_Front.png"), "-p", "web")

    assert result.exit_code == 1
    assert len(fake.uploads_for("PL_DXB191_Front.png")) == 5
    assert "gave up after 5 attempts" in result.stderr


def test_ctrl_c_during_upload_stops_cleanly(run, fake, photo_folder):
    fake.add_pipeline("web")
    fake.s3_faults["PL_DXB191_Front.png"] = [KeyboardInterrupt()]

    result = run("submit", str(photo_folder), "-p", "web", "--concurrency", "1")

    assert result.exit_code == 130
    batch_id = next(iter(fake.batches))
    assert f"imgbatch cancel {batch_id}" in result.stderr
    assert "Interrupted" in result.stderr
    assert "Traceback" not in result.output


def test_api_limit_error_shows_the_api_message(run, fake, photo_folder):
    fake.add_pipeline("web")
    fake.max_files = 2

    result = run("submit", str(photo_folder), "-p", "web")

    assert result.exit_code == 3
    assert "files: 3 files is over the limit of 2 (HTTP 413 RequestEntityTooLarge)" in result.stderr


def test_submit_json_is_the_only_stdout(run, fake, photo_folder, tmp_path):
    fake.add_pipeline("web")

    result = run("--json", "submit", str(photo_folder), "-p", "web", "--download", str(tmp_path / "o"))

    data = parse_json(result)
    assert data["batch"]["status"] == "completed"
    assert len(data["uploads"]) == 3 and all(u["ok"] for u in data["uploads"])
    assert {s["reason"] for s in data["skipped"]} >= {"content is not a recognised image"}
    assert data["archive"]["path"].endswith("PL_DXB_2025-11-05_batch-1.zip")


def test_upload_links_beyond_the_first_page_are_fetched(run, fake, photo_folder):
    fake.add_pipeline("web")
    fake.uploads_per_response = 2

    result = run("submit", str(photo_folder), "-p", "web")

    assert result.exit_code == 0, result.output
    assert len(fake.received) == 3 and fake.violations == []
    pages = [r for r in fake.api_requests if r.url.path.endswith("/uploads")]
    assert [r.url.params.get("cursor") for r in pages] == ["2"]
    piped = run("--json", "submit", str(photo_folder), "-p", "web")
    data = parse_json(piped)
    assert piped.exit_code == 0 and sorted(u["file_name"] for u in data["uploads"] if u["ok"]) == [
        "PL_DXB191_Back.jpg", "PL_DXB191_Front.png", "PL_DXB191_Side.webp"]


def many_images(root, n: int):
    for i in range(n):
        make_image(root / f"PL_BIG{i:03d}_x.png", "PNG", colour=(i, 40, 40))
    return root


def test_a_big_batch_uploads_while_its_later_pages_of_links_come(run, fake, tmp_path):
    """A 100,000-file batch fetched its 100 pages of links before the first upload (and its
    last links waited hours before use). Each page is now fetched when the uploads are about
    to need it: a couple of tasks per worker ahead."""
    from imgbatch.upload import AHEAD_PER_WORKER
    fake.add_pipeline("web")
    fake.uploads_per_response = 10
    real, sent_before = fake._pending_uploads, {}

    def pending(request, query, bid):
        sent_before[query.get("cursor")] = len(fake.received)
        return real(request, query, bid)
    fake._pending_uploads = pending

    result = run("submit", str(many_images(tmp_path / "big", 30)), "-p", "web", "--concurrency", "2",
                 terminal=100, interactive=True)

    assert result.exit_code == 0, result.output
    assert len(fake.received) == 30 and fake.violations == []
    ahead = AHEAD_PER_WORKER * 2
    assert set(sent_before) == {"10", "20"}
    assert sent_before["10"] >= 10 - ahead and sent_before["20"] >= 20 - ahead, sent_before
    assert "30/30 files" in plain(result.stderr)


def test_links_that_stop_coming_part_way_stop_the_upload_with_a_way_to_resume(run, fake, tmp_path):
    fake.add_pipeline("web")
    fake.uploads_per_response = 10
    real = fake._pending_uploads

    def pending(request, query, bid):
        if query.get("cursor") == "20":
            return httpx.Response(403, json={"Code": "ForbiddenError", "Message": "token revoked"})
        return real(request, query, bid)
    fake._pending_uploads = pending
    folder = many_images(tmp_path / "big", 30)

    result = run("submit", str(folder), "-p", "web", "--concurrency", "2")

    assert result.exit_code == 130, result.output
    assert len(fake.received) == 20
    err = plain(result.stderr)
    assert "Stopped: more upload links could not be fetched" in err and "token revoked" in err
    assert "20 of 30 files were uploaded" in err
    batch_id = next(iter(fake.batches))
    assert f"imgbatch resume {batch_id} {folder}" in err

    fake._pending_uploads = real
    again = run("resume", batch_id, str(folder), "--wait")
    assert again.exit_code == 0, again.output
    assert len(fake.received) == 30 and all(j["status"] == "completed" for j in fake.jobs[batch_id])


def test_a_terminal_counts_the_upload_links_a_resume_fetches(run, fake, photo_folder):
    batch_id = interrupted_batch(run, fake, photo_folder)
    fake.uploads_per_response = 1

    shown = run("resume", batch_id, str(photo_folder), terminal=100, interactive=True)

    assert shown.exit_code == 0, shown.output
    assert "Fetching upload links: " in shown.stderr


# -- resume ---------------------------------------------------------------------------------


def interrupted_batch(run, fake, photo_folder) -> str:
    fake.add_pipeline("web")
    fake.s3_faults["PL_DXB191_Front.png"] = [KeyboardInterrupt()]
    result = run("submit", str(photo_folder), "-p", "web", "--concurrency", "1")
    assert result.exit_code == 130
    (batch_id,) = fake.batches
    assert f"imgbatch resume {batch_id} {photo_folder}" in result.stderr
    return batch_id


def test_resume_uploads_what_the_batch_still_waits_for(run, fake, photo_folder):
    batch_id = interrupted_batch(run, fake, photo_folder)
    before = {r.file_name for r in fake.received if r.file_name}

    result = run("resume", batch_id, str(photo_folder), "--wait")

    assert result.exit_code == 0, result.output
    again = [r.file_name for r in fake.received[len(before):]]
    assert "PL_DXB191_Front.png" in again
    assert all(j["status"] == "completed" for j in fake.jobs[batch_id])
    assert "finished: completed" in result.stdout


def test_resume_by_name_with_nothing_left(run, fake, photo_folder):
    fake.add_pipeline("web")
    assert run("submit", str(photo_folder), "-p", "web").exit_code == 0

    result = run("resume", "PL_DXB_2025-11-05_batch-1", str(photo_folder))

    assert result.exit_code == 0, result.output
    assert "Nothing to upload" in result.stdout


def test_resume_warns_about_files_not_given(run, fake, photo_folder):
    batch_id = interrupted_batch(run, fake, photo_folder)
    waiting = [j["file_name"] for j in fake.jobs[batch_id] if j["status"] == "awaiting_upload"]

    result = run("resume", batch_id, str(photo_folder / "more" / "PL_DXB191_Side.webp"))

    assert result.exit_code == 1, result.output
    for name in waiting:
        if name != "PL_DXB191_Side.webp":
            assert name in result.stderr


def test_resume_without_the_uploads_route_says_so(run, fake, photo_folder):
    batch_id = interrupted_batch(run, fake, photo_folder)
    fake.uploads_route = False

    result = run("resume", batch_id, str(photo_folder))

    assert result.exit_code == 3
    assert "cannot re-issue upload links" in result.stderr and "Traceback" not in result.output


def test_resume_json(run, fake, photo_folder):
    batch_id = interrupted_batch(run, fake, photo_folder)

    data = parse_json(run("resume", batch_id, str(photo_folder), "--json"))

    assert data["batch"]["id"] == batch_id
    assert all(u["ok"] for u in data["uploads"]) and data["uploads"]
