"""Long-running steps with live displays: uploading, waiting for a batch, downloading its ZIP.

Each step drives the plain logic in upload.py / batches.py / download.py and shows rich progress
on stderr (only on a terminal and never with --json), then a one-line summary on stdout.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Callable

from rich.text import Text

from imgbatch import render
from imgbatch.app import EXIT_FAILURES, EXIT_INTERRUPTED, App, fail
from imgbatch.batches import SUCCESS_STATUS, PagedUploads, wait_until_final
from imgbatch.download import MANIFEST, DownloadHooks, SavedArchive, fetch_archive
from imgbatch.files import Collection
from imgbatch.progress import progress_of
from imgbatch.upload import UploadInterrupted, UploadResult, Uploader, UploadTask


def upload_and_follow(app: App, batch: dict, tasks: list[UploadTask] | PagedUploads, paths: tuple[Path, ...],
                      found: Collection, *, wait: bool, download_dir: Path | None, concurrency: int,
                      not_sent: int = 0) -> None:
    """Upload, report, then optionally wait and download; exits with the documented codes.

    `not_sent` counts files the batch waits for that are not among `tasks`: the batch cannot
    complete without them, so waiting is pointless and the exit code is 1.
    """
    resume_hint = f"imgbatch resume {batch['id']} {shlex.join(str(p) for p in paths)}"
    results: list[UploadResult] = []
    if tasks:
        try:
            results = upload_with_progress(app, tasks, concurrency)
        except UploadInterrupted as exc:
            report_interrupted_upload(app, batch, exc.results, len(tasks), resume_hint, exc.reason)
            fail(EXIT_INTERRUPTED)
    if isinstance(tasks, PagedUploads) and tasks.not_sent:
        not_sent += tasks.not_sent
        app.warn(f"The API returned upload links for only {tasks.received} of {len(tasks)} files.")
    failed = sorted((r for r in results if not r.ok), key=lambda r: r.task.file_name)
    report_uploads(app, batch, results, failed, resume_hint)
    incomplete = bool(failed) or not_sent > 0
    archive = None
    if incomplete and (wait or download_dir):
        app.warn("Not waiting: the batch cannot finish before its upload window closes.")
    if not incomplete and (wait or download_dir):
        batch = wait_with_progress(app, batch, known_uploaded=sum(1 for r in results if r.ok))
        if download_dir:
            archive = download_finished(app, batch, download_dir)
    if app.json:
        app.emit({
            "batch": batch,
            "uploads": [upload_json(r) for r in sorted(results, key=lambda r: r.task.file_name)],
            "skipped": [{"path": str(s.path), "reason": s.reason} for s in found.skipped],
            "archive": archive_json(archive),
        })
    if incomplete or ((wait or download_dir) and batch.get("status") != SUCCESS_STATUS):
        fail(EXIT_FAILURES)


def upload_with_progress(app: App, tasks: list[UploadTask] | PagedUploads, concurrency: int) -> list[UploadResult]:
    total = tasks.total_size if isinstance(tasks, PagedUploads) else sum(task.size for task in tasks)
    with render.upload_progress(app.err, disable=not app.show_progress) as progress:
        bar = progress.add_task("upload", total=total, files=f"0/{len(tasks)} files")
        finished = 0
        parts: dict[str, tuple[int, int]] = {}   # file in parts -> (parts done, parts in all)

        def show() -> None:
            text = f"{finished}/{len(tasks)} files"
            busy = [(name, done, of) for name, (done, of) in parts.items() if done < of]
            if busy:
                name, done, of = busy[0]
                text += f" · {name}: part {done}/{of}" + (f" (+{len(busy) - 1} more in parts)" if len(busy) > 1 else "")
            progress.update(bar, total=total, files=text)

        def on_done(result: UploadResult) -> None:
            nonlocal finished, total
            finished += 1
            if not result.ok:
                # A failed file will never arrive: shrink the bar rather than leave it short.
                total -= result.task.size
            parts.pop(result.task.file_name, None)
            show()

        def on_part(task: UploadTask, done: int, of: int) -> None:
            parts[task.file_name] = (done, of)
            show()

        uploader = Uploader(app.storage, api=app.api, concurrency=concurrency, sleep=app.deps.sleep)
        return uploader.run(tasks, on_bytes=lambda n: progress.advance(bar, n), on_done=on_done, on_part=on_part)


def report_uploads(app: App, batch: dict, results: list[UploadResult], failed: list[UploadResult],
                   resume_hint: str) -> None:
    if not results:
        app.say("Nothing to upload: the batch is not waiting for any of these files.")
        return
    sent = sum(r.task.size for r in results if r.ok)
    app.say(f"Uploaded {len(results) - len(failed)} of {len(results)} files "
            f"({render.human_size(sent)}).")
    for result in sorted((r for r in results if r.parts_total), key=lambda r: r.task.file_name):
        app.note(f"  {result.task.file_name}: {parts_summary(result)}")
    if not failed:
        return
    app.error(f"{len(failed)} file(s) failed to upload:")
    for result in failed:
        app.note(f"  {result.task.file_name}: {result.error}")
    app.warn(
        f"The batch waits for them until {render.short_time(batch.get('upload_expires_at'))}, then marks "
        f"them failed (upload_expired).\n"
        f"  Try them again:  {resume_hint}\n"
        f"  Stop the batch:  imgbatch cancel {batch['id']}"
    )


def parts_summary(result: UploadResult) -> str:
    """What happened to a file uploaded in parts, e.g. 'in 19 parts: 7 were already uploaded,
    sent 12 from part 8'."""
    text = f"in {result.parts_total} parts: "
    if result.parts_already:
        text += f"{result.parts_already} already uploaded, "
    if result.parts_sent:
        text += f"sent {result.parts_sent} from part {result.first_part_sent}"
    else:
        text += "sent none"
    return text


def report_interrupted_upload(app: App, batch: dict, results: list[UploadResult], total: int,
                              resume_hint: str, reason: str | None = None) -> None:
    uploaded = sum(1 for r in results if r.ok)
    why = f"Stopped: more upload links could not be fetched ({reason})" if reason else "Interrupted"
    app.warn(
        f"\n{why}: {uploaded} of {total} files were uploaded to batch "
        f"{batch['base_directory_name']} ({batch['id']}).\n"
        f"Files not uploaded by {render.short_time(batch.get('upload_expires_at'))} fail as upload_expired.\n"
        f"  Continue:        {resume_hint}\n"
        f"  Stop the batch:  imgbatch cancel {batch['id']}"
    )


def upload_json(result: UploadResult) -> dict:
    out = {"job_id": result.task.job_id, "file_name": result.task.file_name,
           "path": str(result.task.path), "ok": result.ok, "attempts": result.attempts,
           "status": result.status, "error": result.error, "method": result.task.method}
    if result.parts_total:
        out.update(parts_total=result.parts_total, parts_already=result.parts_already,
                   parts_sent=result.parts_sent, first_part_sent=result.first_part_sent)
    return out


def archive_json(archive: SavedArchive | None) -> dict | None:
    if archive is None:
        return None
    return {"path": str(archive.path), "size": archive.size, "images": archive.images}


def wait_with_progress(app: App, batch: dict, known_uploaded: int = 0) -> dict:
    """Follow the batch; `known_uploaded` files were just uploaded by us, whatever the API says yet."""
    try:
        with render.wait_progress(app.err, disable=not app.show_progress) as progress:
            bar = progress.add_task(f"{batch.get('status', ''):<10}", total=100,
                                    counts=render.counts_text(batch, known_uploaded))

            def on_update(current: dict) -> None:
                percent = (current.get("progress") or {}).get("percent") or 0
                progress.update(bar, completed=percent, description=f"{current.get('status', ''):<10}",
                                counts=render.counts_text(current, known_uploaded))
                progress.refresh()  # every answer is shown, not only those a timer tick catches

            final = wait_until_final(app.api, batch["id"], sleep=app.sleep, on_update=on_update)
    except KeyboardInterrupt:
        app.warn(f"\nStopped waiting; the batch goes on processing on the server.\n"
                 f"  Follow it again: imgbatch wait {batch['id']}\n"
                 f"  Stop it:         imgbatch cancel {batch['id']}")
        fail(EXIT_INTERRUPTED)
    p = final.get("progress") or {}
    app.say(Text.assemble(f"Batch {final['base_directory_name']} finished: ",
                          render.status_text(final["status"]),
                          f" ({p.get('succeeded', 0)} succeeded, {p.get('failed', 0)} failed, "
                          f"{p.get('cancelled', 0)} cancelled)"))
    return final


def download_finished(app: App, batch: dict, dest: Path) -> SavedArchive | None:
    if not (batch.get("progress") or {}).get("succeeded"):
        app.warn(f"Nothing to download: {why_no_images(batch)}.")
        return None
    return download_with_progress(app, batch["id"], dest, partial=False,
                                  fallback_name=lambda: batch["base_directory_name"] + ".zip")


def download_with_progress(app: App, batch_id: str, dest: Path, *, partial: bool,
                           fallback_name: Callable[[], str]) -> SavedArchive:
    # Two phases, two displays: a spinner while the API prepares the ZIP (no size yet), then a
    # byte progress bar once storage answers.
    waiting = app.err.status("Preparing the archive") if app.show_progress else None
    progress = render.download_progress(app.err, disable=not app.show_progress)
    bar = None

    def on_wait(seconds: float) -> None:
        if waiting is not None:
            waiting.update(f"Preparing the archive (asking again in {seconds:.0f}s)")

    def on_start(name: str, size: int | None) -> None:
        nonlocal bar
        if waiting is not None:
            waiting.stop()
        progress.start()
        bar = progress.add_task(f"Downloading {name}", total=size)

    hooks = DownloadHooks(on_wait=on_wait, on_start=on_start,
                          on_bytes=lambda n: progress.advance(bar, n))
    if waiting is not None:
        waiting.start()
    try:
        saved = fetch_archive(app.api, app.storage, batch_id, dest, partial=partial,
                              fallback_name=fallback_name, sleep=app.sleep, hooks=hooks)
    finally:
        if waiting is not None:
            waiting.stop()
        progress.stop()
    if saved.images:
        app.say(f"Saved {saved.path} ({render.human_size(saved.size)}): "
                f"{saved.images} image{'s' if saved.images != 1 else ''} and {MANIFEST}")
    elif saved.images is None:
        app.say(f"Saved {saved.path} ({render.human_size(saved.size)})")
    return saved


def report_empty_archive(app: App, saved: SavedArchive, batch: dict) -> None:
    """A ZIP of only the manifest is not a successful download: say what is in it and why."""
    app.error(f"Saved {saved.path} ({render.human_size(saved.size)}), but it has 0 images: "
              f"{why_no_images(batch)}; the ZIP holds only {MANIFEST}, which lists each file's error.")


def why_no_images(batch: dict) -> str:
    p = progress_of(batch)
    if p.total and p.failed == p.total:
        return "every file failed"
    if p.total and p.cancelled == p.total:
        return "every file was cancelled"
    unfinished = max(0, p.total - p.processed - p.cancelled)
    parts = [f"{p.failed} failed", f"{p.cancelled} cancelled"] + ([f"{unfinished} not finished"] if unfinished else [])
    return f"no file succeeded ({', '.join(parts)})"


