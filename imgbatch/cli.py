"""The `imgbatch` command line: thin click commands over the client, uploader and downloader.

Exit codes are listed in imgbatch/app.py and the README.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import click
from rich.text import Text

from imgbatch import __version__, render
from imgbatch.app import EXIT_FAILURES, App, Deps, ImgbatchGroup, fail, json_option, pass_app
from imgbatch.batches import (
    BATCH_STATUSES,
    SUCCESS_STATUS,
    LookupFailed,
    PagedUploads,
    batch_request,
    resolve_batch_ref,
    resolve_pipeline_ids,
    upload_tasks,
    without_jobs,
)
from imgbatch.client import ApiError
from imgbatch.download import fetch_file
from imgbatch.files import Collection, collect
from imgbatch.live import (
    archive_json,
    download_finished,
    download_with_progress,
    report_empty_archive,
    upload_and_follow,
    wait_with_progress,
)
from imgbatch.upload import DEFAULT_CONCURRENCY

__all__ = ["Deps", "cli", "main"]


# -- the group ------------------------------------------------------------------------------


@click.group(
    cls=ImgbatchGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("--api-url", metavar="URL",
              help="API base URL. [env: IMGBATCH_API_URL; default: http://127.0.0.1:8000]")
@click.option("--token", metavar="TOKEN", help="API token. [env: IMGBATCH_TOKEN]")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Config file with api_url and token. "
                   "[env: IMGBATCH_CONFIG; default: ~/.config/imgbatch/config.toml]")
@click.option("--json", "json_mode", is_flag=True,
              help="Print the API objects as JSON on stdout and nothing else.")
@click.version_option(__version__, prog_name="imgbatch")
@click.pass_context
def cli(ctx: click.Context, **flags: Any) -> None:
    """Submit image batches to the image-batch service and follow them."""
    deps = ctx.obj if isinstance(ctx.obj, Deps) else Deps()
    app = App(deps, flags)
    ctx.obj = app
    ctx.call_on_close(app.close)


def main(args: list[str] | None = None, prog_name: str = "imgbatch") -> None:
    cli.main(args=args, prog_name=prog_name)


# -- submit / wait / download ---------------------------------------------------------------


def follow_options(command: Callable) -> Callable:
    """--wait, --download and --concurrency: what happens once a batch exists (submit, resume)."""
    options = [
        click.option("--wait", is_flag=True, help="Wait until the batch reaches a final status."),
        click.option("--download", "download_dir", metavar="DIR",
                     type=click.Path(file_okay=False, path_type=Path),
                     help="Wait, then save the batch's ZIP into DIR."),
        click.option("--concurrency", type=click.IntRange(1, 64), default=DEFAULT_CONCURRENCY,
                     metavar="N", show_default=True, help="Parallel uploads."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def collect_images(app: App, paths: tuple[Path, ...]) -> Collection:
    found = collect(paths)
    if found.skipped:
        app.warn(render.skipped_notice(found.skipped))
    if not found.images:
        raise click.UsageError("no image files found in the given paths")
    duplicates = found.duplicate_names()
    if duplicates:
        listed = "; ".join(f"{name}: {', '.join(map(str, p))}" for name, p in duplicates.items())
        raise click.UsageError(f"file names must be unique within a batch; duplicates: {listed}")
    return found


def metadata_pairs(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, item = value.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", key):
            raise click.BadParameter(f"{value!r}: expected KEY=VALUE with a key of 1-64 letters, digits, '_', '.', '-'")
        if key in out:
            raise click.BadParameter(f"{key!r} is given twice")
        out[key] = item
    return out


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-p", "--pipeline", "pipelines", multiple=True, required=True, metavar="NAME|ID",
              help="Pipeline to apply, by id or name; repeat for several.")
@click.option("-d", "--description", help="Batch description (default: derived from the names).")
@click.option("--prefix", "customer_prefix", metavar="PREFIX",
              help="Customer prefix, instead of the one parsed from the file names.")
@click.option("-m", "--metadata", "metadata", multiple=True, metavar="KEY=VALUE", callback=metadata_pairs,
              help="The batch's own metadata (carried in every event); repeat for several.")
@follow_options
@json_option
@pass_app
def submit(app: App, paths: tuple[Path, ...], pipelines: tuple[str, ...], description: str | None,
           customer_prefix: str | None, metadata: dict[str, str], **follow: Any) -> None:
    """Upload image files and folders (recursively) as one new batch.

    Non-images and hidden files are skipped. Exits 1 if any file failed to upload or, with
    --wait/--download, if the batch finished with anything other than `completed`.
    """
    found = collect_images(app, paths)
    try:
        pipeline_ids = resolve_pipeline_ids(pipelines, app.api.list_pipelines())
    except LookupFailed as exc:
        raise click.BadParameter(str(exc), param_hint="'--pipeline'") from exc

    created = app.api.create_batch(
        batch_request(found.images, pipeline_ids, description=description, customer_prefix=customer_prefix,
                      metadata=metadata))
    batch = created["batch"]
    app.say(Text.assemble("Created batch ", (batch["base_directory_name"], "bold"),
                          f" ({batch['id']}): {batch['total_files']} files, "
                          f"{render.human_size(found.total_size)}"))
    uploads = list(created.get("uploads") or [])
    if created.get("uploads_next_cursor"):
        # Large batches: the API returns the first upload links with the batch, the rest by page,
        # each fetched as the uploads come to it.
        upload_and_follow(app, batch, PagedUploads(app.api, batch["id"], found.images, uploads,
                                                   created["uploads_next_cursor"]), paths, found, **follow)
        return
    not_sent = max(0, len(found.images) - len(uploads))
    if not_sent:
        app.warn(f"The API returned upload links for only {len(uploads)} of {len(found.images)} files.")
    upload_and_follow(app, batch, upload_tasks(found.images, uploads, batch["id"]), paths, found,
                      not_sent=not_sent, **follow)


@cli.command()
@click.argument("batch_ref", metavar="BATCH")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@follow_options
@json_option
@pass_app
def resume(app: App, batch_ref: str, paths: tuple[Path, ...], **follow: Any) -> None:
    """Upload the files a batch is still waiting for, after Ctrl-C or failed uploads.

    Give the same files or folders as to submit; files already uploaded are left alone, and a
    file uploaded in parts continues at its first missing part. Works until the batch's upload
    window closes.
    """
    batch_id = batch_id_of(app, batch_ref)
    batch = without_jobs(app.api.get_batch(batch_id, jobs_limit=1))
    found = collect_images(app, paths)
    try:
        pending = fetch_upload_links(app, batch_id)
    except ApiError as exc:
        if exc.status == 404:
            exc.message = (f"the API cannot re-issue upload links (GET /batches/{batch_id}/uploads: "
                           f"{exc.message}); cancel the batch and submit the files again")
        raise
    local = {image.name: image for image in found.images}
    matched = [u for u in pending if u["file_name"] in local]
    missing = sorted(u["file_name"] for u in pending if u["file_name"] not in local)
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        app.warn(f"{len(missing)} file(s) the batch waits for are not in the given paths: {shown}")
    app.say(f"Resuming batch {batch['base_directory_name']}: uploading {len(matched)} of the "
            f"{len(pending)} file(s) it is waiting for.")
    tasks = upload_tasks([local[u["file_name"]] for u in matched], matched, batch_id)
    upload_and_follow(app, batch, tasks, paths, found, not_sent=len(missing), **follow)


def fetch_upload_links(app: App, batch_id: str) -> list[dict]:
    """Every page of the links a batch still waits for (1,000 a page: a 100,000-file batch's
    take a while), counted on a terminal as they come. (submit fetches them as it uploads.)"""
    if not app.show_progress:
        return app.api.pending_uploads(batch_id)

    def text(n: int) -> str:
        return f"Fetching upload links: {n:,}"
    with app.err.status(text(0)) as status:
        return app.api.pending_uploads(batch_id, on_page=lambda n: status.update(text(n)))


def batch_id_of(app: App, ref: str) -> str:
    try:
        return resolve_batch_ref(app.api, ref)
    except LookupFailed as exc:
        raise click.BadParameter(str(exc), param_hint="'BATCH'") from exc


@cli.command("wait")
@click.argument("batch_ref", metavar="BATCH")
@click.option("--download", "download_dir", metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path),
              help="Then save the batch's ZIP into DIR.")
@json_option
@pass_app
def wait_cmd(app: App, batch_ref: str, download_dir: Path | None) -> None:
    """Follow a batch until it finishes.

    BATCH is an id or a base_directory_name. Exits 1 unless the batch ends `completed`.
    """
    batch = app.api.get_batch(batch_id_of(app, batch_ref), jobs_limit=1)
    batch = wait_with_progress(app, batch)
    archive = download_finished(app, batch, download_dir) if download_dir else None
    if app.json:
        app.emit({"batch": batch, "archive": archive_json(archive)})
    if batch.get("status") != SUCCESS_STATUS:
        fail(EXIT_FAILURES)


@cli.command()
@click.argument("batch_ref", metavar="BATCH")
@click.option("-o", "--output", "dest", default=".", show_default=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path), help="Folder to save the ZIP in.")
@click.option("--partial", is_flag=True, help="Download what has finished so far.")
@json_option
@pass_app
def download(app: App, batch_ref: str, dest: Path, partial: bool) -> None:
    """Save a batch's ZIP archive (outputs plus manifest.csv)."""
    batch_id = batch_id_of(app, batch_ref)
    try:
        saved = download_with_progress(
            app, batch_id, dest, partial=partial,
            fallback_name=lambda: app.api.get_batch(batch_id, jobs_limit=1)["base_directory_name"] + ".zip",
        )
    except ApiError as exc:
        if exc.status == 409 and not partial:
            exc.message += " (use --partial to download what has finished so far)"
        raise
    if app.json:
        app.emit({"batch_id": batch_id, **archive_json(saved)})
    if saved.images == 0:
        if not app.json:
            report_empty_archive(app, saved, app.api.get_batch(batch_id, jobs_limit=1))
        fail(EXIT_FAILURES)


@cli.command()
@click.argument("batch_ref", metavar="BATCH")
@click.option("-f", "--format", "fmt", type=click.Choice(["csv", "xlsx", "json"]), default="csv", show_default=True,
              help="csv (UTF-8, opens in Excel), xlsx or json.")
@click.option("-o", "--output", "dest", default=".", show_default=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path), help="Folder to save the file in.")
@json_option
@pass_app
def results(app: App, batch_ref: str, fmt: str, dest: Path) -> None:
    """Save a batch's per-file results: one row per file and pipeline (status, error, output name,
    format, dimensions, bytes, times). Works in any status."""
    batch_id = batch_id_of(app, batch_ref)
    staged = app.api.results_file(batch_id, fmt)
    saved = fetch_file(app.storage, staged["url"], dest, name=staged.get("file_name") or f"{batch_id}-results.{fmt}",
                       what="results")
    if app.json:
        app.emit({"batch_id": batch_id, "path": str(saved.path), "size": saved.size})
    else:
        app.say(f"Saved {saved.path} ({render.human_size(saved.size)}).")


@cli.command("contact-sheet")
@click.argument("batch_ref", metavar="BATCH")
@click.option("--part", type=click.IntRange(min=1), metavar="N",
              help="Only part N (a sheet holds 300 files; larger batches have several parts). [default: all]")
@click.option("-o", "--output", "dest", default=".", show_default=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=Path), help="Folder to save the PDF(s) in.")
@json_option
@pass_app
def contact_sheet(app: App, batch_ref: str, part: int | None, dest: Path) -> None:
    """Save a batch's contact sheet: a PDF of every file's preview with its name and status,
    20 to a page, failed files marked."""
    batch_id = batch_id_of(app, batch_ref)
    first = app.api.contact_sheet(batch_id, part or 1)
    sheets = [first] if part else [first] + [app.api.contact_sheet(batch_id, n) for n in range(2, first["parts"] + 1)]
    saved = [fetch_file(app.storage, s["url"], dest, name=s.get("file_name") or f"{batch_id}-contact-sheet.pdf",
                        what="contact sheet") for s in sheets]
    if app.json:
        app.emit({"batch_id": batch_id, "parts": first["parts"],
                  "files": [{"part": s["part"], "path": str(f.path), "size": f.size} for s, f in zip(sheets, saved)]})
        return
    for f in saved:
        app.say(f"Saved {f.path} ({render.human_size(f.size)}).")


# -- read-only views ------------------------------------------------------------------------


@cli.command("list")
@click.option("--status", type=click.Choice(BATCH_STATUSES), help="Only batches in this status.")
@click.option("--customer", "customer_prefix", metavar="PREFIX", help="Only this customer prefix.")
@click.option("--search", metavar="TEXT", help="Match prefix, name or description.")
@click.option("--sort", "sort_by", type=click.Choice(["created_at", "total_files", "status"]))
@click.option("--order", "sort_order", type=click.Choice(["asc", "desc"]))
@click.option("--limit", type=click.IntRange(1, 200), help="Page size (API default 50, max 200).")
@click.option("--cursor", metavar="CURSOR", help="Continue from a previous page.")
@click.option("--all", "all_pages", is_flag=True, help="Follow every page.")
@click.option("--ids", is_flag=True, help="Add a column with the batch ids.")
@json_option
@pass_app
def list_cmd(app: App, all_pages: bool, ids: bool, **filters: Any) -> None:
    """List batches, newest first."""
    if all_pages:
        page = {"batches": list(app.api.iter_batches(**filters)), "next_cursor": None}
    else:
        page = app.api.list_batches(**filters)
    if app.json:
        app.emit(page)
        return
    if not page["batches"]:
        app.say("No batches.")
        return
    app.table(render.batches_grid(page["batches"], show_ids=ids))
    if page.get("next_cursor"):
        app.note(f"More batches: add --all, or --cursor {page['next_cursor']}")


@cli.command()
@click.argument("batch_ref", metavar="BATCH")
@click.option("--links", is_flag=True, help="Add a column with each file's preview URL (short-lived).")
@json_option
@pass_app
def show(app: App, batch_ref: str, links: bool) -> None:
    """Show a batch (id or name) and all its jobs."""
    batch = app.api.get_batch_with_all_jobs(batch_id_of(app, batch_ref))
    if app.json:
        app.emit({"batch": batch})
        return
    jobs = batch.get("jobs") or []
    app.details(render.batch_details(batch, app.api.list_pipelines()))
    app.say("")
    app.say(Text(f"Jobs ({len(jobs)})", style="bold"))
    shown = app.table(render.jobs_grid(jobs, links=links))
    errors = render.job_errors(jobs)
    if errors and "error" not in shown:
        app.say(Text("\nErrors", style="bold"))
        app.say(errors)


@cli.command()
@json_option
@pass_app
def stats(app: App) -> None:
    """Totals over all your batches."""
    data = app.api.stats()
    if app.json:
        app.emit(data)
    else:
        app.say(render.stats_table(data))


# -- actions --------------------------------------------------------------------------------


@cli.command()
@click.argument("batch_ref", metavar="BATCH")
@json_option
@pass_app
def cancel(app: App, batch_ref: str) -> None:
    """Cancel a batch: files not finished yet become `cancelled`."""
    batch = app.api.cancel_batch(batch_id_of(app, batch_ref))
    if app.json:
        app.emit({"batch": batch})
        return
    cancelled = (batch.get("progress") or {}).get("cancelled", 0)
    app.say(f"Cancelled batch {batch['base_directory_name']}: {cancelled} file(s) cancelled; "
            f"status {batch['status']}.")


@cli.command()
@click.argument("batch_ref", metavar="BATCH")
@json_option
@pass_app
def retry(app: App, batch_ref: str) -> None:
    """Process a batch's failed files again."""
    batch = app.api.retry_batch(batch_id_of(app, batch_ref))
    if app.json:
        app.emit({"batch": batch})
        return
    app.say(f"Retrying failed files of {batch['base_directory_name']}; status {batch['status']}. "
            f"Follow it with: imgbatch wait {batch['id']}")


@cli.command()
@click.argument("batch_ref", metavar="BATCH")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_app
def delete(app: App, batch_ref: str, yes: bool) -> None:
    """Delete a batch with its uploads, outputs and archives."""
    batch_id = batch_id_of(app, batch_ref)
    if not yes:
        batch = app.api.get_batch(batch_id, jobs_limit=1)
        confirm(f"Delete batch {batch['base_directory_name']} ({batch['total_files']} files) "
                f"and every file stored for it?")
    app.api.delete_batch(batch_id)
    if app.json:
        app.emit({"id": batch_id, "deleted": True})
    else:
        app.say(f"Deleted batch {batch_id}.")


def confirm(question: str) -> None:
    # Prompt on stderr so stdout stays clean for --json; "no" exits 1 like click's own Abort.
    if not click.confirm(question, err=True):
        click.echo("Nothing deleted.", err=True)
        fail(EXIT_FAILURES)


# -- pipelines ------------------------------------------------------------------------------


@cli.group()
def pipelines() -> None:
    """Manage processing pipelines (presets)."""


def pipeline_id_of(app: App, ref: str) -> str:
    try:
        return resolve_pipeline_ids([ref], app.api.list_pipelines())[0]
    except LookupFailed as exc:
        raise click.BadParameter(str(exc), param_hint="'PIPELINE'") from exc


@pipelines.command("list")
@json_option
@pass_app
def pipelines_list(app: App) -> None:
    """List pipelines."""
    items = app.api.list_pipelines()
    if app.json:
        app.emit({"pipelines": items})
    elif not items:
        app.say("No pipelines yet; create one with `imgbatch pipelines create`.")
    else:
        app.table(render.pipelines_grid(items))


@pipelines.command("show")
@click.argument("ref", metavar="PIPELINE")
@json_option
@pass_app
def pipelines_show(app: App, ref: str) -> None:
    """Show one pipeline (id or name)."""
    pipeline = app.api.get_pipeline(pipeline_id_of(app, ref))
    if app.json:
        app.emit({"pipeline": pipeline})
    else:
        app.say(render.pipeline_details(pipeline))


def hex_colour(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    # "ffffff" is taken for "#ffffff"; anything else goes to the API as given, which judges it.
    if value is not None and re.fullmatch(r"([0-9a-fA-F]{3}|[0-9a-fA-F]{6})", value):
        return f"#{value}"
    return value


def byte_size(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | str | None:
    """'250000', '500K', '2M' (KiB/MiB). Anything else goes to the API, which says what it wants."""
    if value is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*([kKmM]?)(?:i?[bB])?\s*", value)
    if not match:
        return value
    return int(match.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[match.group(2).lower()]


# Every pipeline setting as a flag. Values are sent as given and the API checks them all at once,
# so one run reports every problem (each field on its own line) instead of the first one only.
PIPELINE_OPTIONS = [
    click.option("--format", "format_", metavar="FORMAT",
                 help="png, jpeg (or jpg), webp, avif or tiff. [API default: none, required]"),
    click.option("--width", type=int, help="Target width in px."),
    click.option("--height", type=int, help="Target height in px."),
    click.option("--fit", metavar="FIT", help="contain, cover, exact or pad (letterbox onto width x height). "
                                             "[API default: contain]"),
    click.option("--quality", type=int, help="JPEG/WebP/AVIF quality 1-100. [API default: 85]"),
    click.option("--compression", type=int, help="PNG compression 0-100. [API default: 70]"),
    click.option("--background", callback=hex_colour, metavar="HEX",
                 help="Colour behind transparency in JPEG and of pad's canvas. [API default: #ffffff]"),
    click.option("--keep-metadata/--strip-metadata", default=None, help="[API default: strip]"),
    click.option("--upscale/--no-upscale", default=None, help="Allow enlarging. [API default: no]"),
    click.option("--tiff-compression", metavar="KIND", help="TIFF: deflate or lzw. [API default: deflate]"),
    click.option("--embed-icc/--no-embed-icc", default=None, help="Tag RGB outputs with the sRGB profile. "
                                                                  "[API default: no]"),
    click.option("--trim", type=int, metavar="TOLERANCE",
                 help="Cut uniform borders first; tolerance 0-100 (% of full scale). [API default: off]"),
    click.option("--dpi", type=int, help="Resolution written to the file, 1-10000. [API default: none]"),
    click.option("--sharpen", type=int, metavar="AMOUNT", help="Unsharp mask after resizing, 0-500 %. "
                                                               "[API default: 0, off]"),
    click.option("--max-bytes", callback=byte_size, metavar="SIZE",
                 help="JPEG/WebP/AVIF: the highest quality whose file fits, e.g. 500K or 2M; a file that "
                      "cannot fit fails with exceeds_max_bytes. [API default: none]"),
    click.option("--filename", "filename", metavar="TEMPLATE",
                 help="Output names, e.g. '{stem}_{pipeline}.{ext}', '{prefix}_{counter:04}.{ext}'. "
                      "[API default: input stem + extension]"),
]
PIPELINE_FIELDS = ("format", "width", "height", "fit", "quality", "compression", "background", "keep_metadata",
                   "upscale", "tiff_compression", "embed_icc", "trim", "dpi", "sharpen", "max_bytes", "filename")


def pipeline_options(command: Callable) -> Callable:
    for option in reversed(PIPELINE_OPTIONS):
        command = option(command)
    return command


def pipeline_fields(format_: str | None, options: dict[str, Any]) -> dict[str, Any]:
    fields = {key: value for key, value in options.items() if key in PIPELINE_FIELDS and value is not None}
    if format_ is not None:
        lowered = format_.lower()
        fields["format"] = {"jpg": "jpeg", "tif": "tiff"}.get(lowered, lowered)
    return fields


@pipelines.command("create")
@click.option("--name", required=True, help="Unique name.")
@pipeline_options
@json_option
@pass_app
def pipelines_create(app: App, name: str, format_: str | None, **options: Any) -> None:
    """Create a pipeline. Options left out take the API's defaults."""
    pipeline = app.api.create_pipeline({"name": name, **pipeline_fields(format_, options)})
    if app.json:
        app.emit({"pipeline": pipeline})
    else:
        app.say(f"Created pipeline {pipeline['name']} ({pipeline['id']}).")


@pipelines.command("update")
@click.argument("ref", metavar="PIPELINE")
@click.option("--name", help="A new unique name.")
@pipeline_options
@click.option("--unset", "unset", multiple=True, metavar="FIELD", type=click.Choice(PIPELINE_FIELDS[1:]),
              help="Back to the API's default (width, trim, filename...); repeat for several.")
@json_option
@pass_app
def pipelines_update(app: App, ref: str, name: str | None, format_: str | None, unset: tuple[str, ...],
                     **options: Any) -> None:
    """Change some settings of a pipeline; the others stay as they are.

    Reads the pipeline, applies the given options and saves it whole (PUT). Batches already
    submitted keep the settings they were submitted with.
    """
    pipeline_id = pipeline_id_of(app, ref)
    current = app.api.get_pipeline(pipeline_id)
    changes = pipeline_fields(format_, options)
    clash = sorted(set(unset) & set(changes))
    if clash:
        raise click.UsageError(f"--unset {clash[0]} and --{clash[0].replace('_', '-')} contradict each other")
    if not changes and not unset and name is None:
        raise click.UsageError("nothing to change: give at least one option (see --help)")
    body = {key: value for key, value in current.items()
            if key not in ("id", "created_at", "updated_at") and key not in unset}
    body.update(changes)
    if name is not None:
        body["name"] = name
    pipeline = app.api.replace_pipeline(pipeline_id, body)
    if app.json:
        app.emit({"pipeline": pipeline})
    else:
        app.say(f"Updated pipeline {pipeline['name']} ({pipeline['id']}).")


@pipelines.command("delete")
@click.argument("ref", metavar="PIPELINE")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_app
def pipelines_delete(app: App, ref: str, yes: bool) -> None:
    """Delete a pipeline (batches already submitted keep their copy)."""
    pipeline_id = pipeline_id_of(app, ref)
    if not yes:
        confirm(f"Delete pipeline {ref}?")
    app.api.delete_pipeline(pipeline_id)
    if app.json:
        app.emit({"id": pipeline_id, "deleted": True})
    else:
        app.say(f"Deleted pipeline {ref}.")


# -- webhooks and the local receiver (imgbatch/webhook_commands.py) ---------------------------

from imgbatch.webhook_commands import register as _register_webhooks  # noqa: E402

_register_webhooks(cli)
