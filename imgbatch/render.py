"""How things look in a terminal: tables, detail views and progress displays (rich)."""

from __future__ import annotations

from datetime import datetime
from typing import Iterable, Sequence

from rich.console import Console
from rich.filesize import decimal as human_size
from rich.padding import Padding
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from imgbatch.progress import BatchProgress, progress_of
from imgbatch.tables import Cell, Column, Grid

STATUS_STYLES = {
    "queued": "dim",
    "awaiting_upload": "dim",
    "processing": "cyan",
    "completed": "green",
    "completed_with_errors": "yellow",
    "failed": "red",
    "cancelled": "magenta",
}

__all__ = ["human_size"]

# Error codes whose name alone does not say what to do (the web UI labels them the same way,
# web/format.js ERROR_LABELS); the others read well as they are.
ERROR_LABELS = {
    "exceeds_max_bytes": "over the pipeline's max_bytes even at the lowest quality",
}


def error_text(error: dict) -> str:
    """'exceeds_max_bytes (over the pipeline's max_bytes ...): message'; unknown codes as they are."""
    code = error.get("code") or ""
    label = ERROR_LABELS.get(code)
    head = f"{code} ({label})" if label else code
    return f"{head}: {error.get('message')}"


def status_text(status: str | None) -> Text:
    return Text(status or "-", style=STATUS_STYLES.get(status or "", ""))


def short_time(value: str | None, *, seconds: bool = True) -> str:
    """'2025-11-05T14:03:11Z' -> '2025-11-05 14:03:11Z' (still UTC, just easier to read)."""
    if not value:
        return "-"
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return parsed.strftime("%Y-%m-%d %H:%M:%SZ" if seconds else "%Y-%m-%d %H:%M")


def uploaded_cell(progress: BatchProgress) -> str:
    return f"{progress.uploaded}/{progress.total}"


def processed_cell(progress: BatchProgress) -> Text:
    """'2/3 1 failed': files processed (succeeded or failed), then failures and cancellations."""
    text = Text(f"{progress.processed}/{progress.total}")
    if progress.failed:
        text.append(f" {progress.failed} failed", style="red")
    if progress.cancelled:
        text.append(f" {progress.cancelled} cancelled", style="magenta")
    return text


def counts_text(batch: dict, known_uploaded: int = 0) -> str:
    """The live line under --wait: uploads and processing as two separate figures."""
    p = progress_of(batch, known_uploaded)
    text = (f"uploaded {p.uploaded}/{p.total} · processed {p.processed}/{p.total} "
            f"({p.succeeded} succeeded, {p.failed} failed)")
    if p.cancelled:
        text += f" · cancelled {p.cancelled}"
    return text


def batches_grid(batches: Iterable[dict], *, show_ids: bool = False) -> Grid:
    # No id column by default: every command also accepts the base_directory_name.
    columns = [
        Column("base_directory_name"),
        Column("files", priority=4, justify="right"),
        Column("status", priority=1),
        Column("uploaded", priority=3, justify="right"),
        Column("processed", priority=2, wrap=7),
        Column("created (UTC)", priority=5),
    ]
    if show_ids:
        columns.append(Column("id", style="dim"))
    grid = Grid(columns)
    for batch in batches:
        p = progress_of(batch)
        row = [
            batch.get("base_directory_name") or "-",
            str(batch.get("total_files", "")),
            status_text(batch.get("status")),
            uploaded_cell(p),
            processed_cell(p),
            short_time(batch.get("created_at"), seconds=False),
        ]
        grid.add(*row, *([batch.get("id", "")] if show_ids else []))
    return grid


def pipeline_names(ids: Sequence[str], known: Sequence[dict]) -> str:
    """'web (id), id2': names where the pipeline still exists, bare ids where it was deleted."""
    names = {p["id"]: p.get("name") for p in known}
    return ", ".join(f"{names[i]} ({i})" if names.get(i) else i for i in ids) or "-"


def batch_details(batch: dict, pipelines: Sequence[dict] = ()) -> list[tuple[str, Cell]]:
    p = progress_of(batch)
    processed = Text(f"{p.processed}/{p.total}: {p.succeeded} succeeded, ")
    processed.append(f"{p.failed} failed", style="red" if p.failed else "")
    if p.cancelled:
        processed.append(f", {p.cancelled} cancelled", style="magenta")
    rows: list[tuple[str, Cell]] = [
        ("Batch", Text(batch.get("base_directory_name") or "-", style="bold")),
        ("ID", batch.get("id") or "-"),
        ("Status", status_text(batch.get("status"))),
        ("Uploaded", uploaded_cell(p)),
        ("Processed", processed),
        ("Description", batch.get("description") or "-"),
        ("Customer prefix", batch.get("customer_prefix") or "-"),
        ("Files", f"{batch.get('total_files', 0)} ({human_size(batch.get('total_size') or 0)})"),
        ("Pipelines", pipeline_names(batch.get("pipeline_ids") or [], pipelines)),
        ("Created", short_time(batch.get("created_at"))),
        ("Started", short_time(batch.get("started_at"))),
        ("Completed", short_time(batch.get("completed_at"))),
    ]
    if batch.get("status") not in ("completed", "completed_with_errors", "failed", "cancelled"):
        rows.append(("Uploads open until", short_time(batch.get("upload_expires_at"))))
    return rows


def details_grid(rows: Sequence[tuple[str, Cell]]) -> Table:
    """Label/value pairs on a terminal; values wrap (never cut) when they do not fit."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(label, value)
    return grid


def details_plain(rows: Sequence[tuple[str, Cell]]) -> str:
    """The same pairs for a pipe: aligned labels, each value whole on its line."""
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value.plain if isinstance(value, Text) else value}"
                     for label, value in rows)


def jobs_grid(jobs: Sequence[dict], *, links: bool = False) -> Grid:
    columns = [
        Column("file"),
        Column("status"),  # with the name, what the table is for: never dropped
        Column("size", priority=4, justify="right"),
        Column("outputs", priority=3, wrap=12),
        Column("error", priority=2, wrap=16),
    ]
    if links:  # the preview's short-lived URL, whole (it is only useful whole)
        columns.append(Column("preview", style="dim"))
    grid = Grid(columns)
    for job in jobs:
        error = job.get("error")
        outputs = ", ".join(_output_summary(o) for o in job.get("outputs") or [])
        row = [job.get("file_name", ""), status_text(job.get("status")),
               human_size(job.get("size") or 0), outputs or "-",
               Text(error_text(error), style="red") if error else "-"]
        if links:
            row.append((job.get("preview") or {}).get("url") or "-")
        grid.add(*row)
    return grid


def job_errors(jobs: Sequence[dict]) -> Padding | None:
    """Failed files and why, for a terminal too narrow for the error column (wrapped, not cut)."""
    lines = [f"{job.get('file_name')}: {error_text(job['error'])}" for job in jobs if job.get("error")]
    return Padding(Text("\n".join(lines), overflow="fold"), (0, 0, 0, 2)) if lines else None


def _output_summary(output: dict) -> str:
    dims = f"{output.get('width')}x{output.get('height')}" if output.get("width") else ""
    return " ".join(part for part in (output.get("format"), dims, human_size(output.get("size") or 0)) if part)


STATS_ROWS = [
    ("total_batches", "Batches"),
    ("queued", "  queued"),
    ("processing", "  processing"),
    ("completed", "  completed"),
    ("completed_with_errors", "  completed_with_errors"),
    ("failed", "  failed"),
    ("cancelled", "  cancelled"),
    ("total_files_all_time", "Files (all time)"),
    ("avg_files_per_batch", "Average files per batch"),
    ("max_files_in_batch", "Most files in a batch"),
]


def stats_table(stats: dict) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column()
    table.add_column(justify="right")
    for key, label in STATS_ROWS:
        value = stats.get(key, "-")
        if isinstance(value, float):
            value = f"{value:.1f}"
        style = STATUS_STYLES.get(key, "bold" if not label.startswith(" ") else "")
        table.add_row(Text(label, style=style), str(value))
    return table


def pipeline_size(p: dict) -> str:
    if not p.get("width") and not p.get("height"):
        return "original"
    return f"{p.get('width') or 'auto'}x{p.get('height') or 'auto'}"


def pipeline_settings(p: dict) -> str:
    parts = [p.get("fit") or "contain"]
    if p.get("format") in ("jpeg", "webp", "avif") and p.get("quality") is not None:
        parts.append(f"quality {p['quality']}")
    if p.get("max_bytes"):
        parts.append(f"max {human_size(p['max_bytes'])}")
    if p.get("format") == "png" and p.get("compression") is not None:
        parts.append(f"compression {p['compression']}")
    if p.get("format") == "tiff" and p.get("tiff_compression"):
        parts.append(p["tiff_compression"])
    if p.get("trim") is not None:
        parts.append(f"trim {p['trim']}")
    if p.get("sharpen"):
        parts.append(f"sharpen {p['sharpen']}")
    if p.get("dpi"):
        parts.append(f"{p['dpi']} dpi")
    if p.get("embed_icc"):
        parts.append("sRGB tagged")
    if p.get("upscale"):
        parts.append("upscale")
    if p.get("keep_metadata"):
        parts.append("keep metadata")
    if p.get("filename"):
        parts.append(f"names {p['filename']}")
    return ", ".join(parts)


def pipelines_grid(pipelines: Sequence[dict]) -> Grid:
    grid = Grid([
        Column("name"),
        Column("format", priority=2),
        Column("size", priority=3),
        Column("settings", priority=4, wrap=10),
        Column("id", style="dim"),
    ])
    for p in pipelines:
        grid.add(p.get("name", ""), p.get("format", ""), pipeline_size(p), pipeline_settings(p), p.get("id", ""))
    return grid


def pipeline_details(p: dict) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for key in ("name", "id", "format", "width", "height", "fit", "quality", "compression",
                "background", "keep_metadata", "upscale", "tiff_compression", "embed_icc", "trim", "dpi",
                "sharpen", "max_bytes", "filename", "created_at", "updated_at"):
        value = p.get(key)
        if key.endswith("_at"):
            value = short_time(value)
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        grid.add_row(key, "-" if value is None else str(value))
    return grid


def upload_progress(console: Console, *, disable: bool) -> Progress:
    return Progress(
        TextColumn("[bold]Uploading"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[files]}"),
        TimeRemainingColumn(),
        console=console,
        disable=disable,
    )


def wait_progress(console: Console, *, disable: bool) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(bar_width=12),
        TaskProgressColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        console=console,
        disable=disable,
    )


def download_progress(console: Console, *, disable: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        disable=disable,
    )


def skipped_notice(skipped: Sequence, shown: int = 10) -> str:
    lines = [f"Skipped {len(skipped)} file(s) that are not images:"]
    lines += [f"  {item.path}: {item.reason}" for item in skipped[:shown]]
    if len(skipped) > shown:
        lines.append(f"  ... and {len(skipped) - shown} more")
    return "\n".join(lines)
