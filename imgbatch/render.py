"""How things look in a terminal: tables, detail views and progress displays (rich)."""

from __future__ import annotations

from datetime import datetime
from typing import Iterable, Sequence

from rich.console import Console, Group
from rich.filesize import decimal as human_size
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


def progress_text(batch: dict) -> Text:
    progress = batch.get("progress") or {}
    done = sum(progress.get(key) or 0 for key in ("succeeded", "failed", "cancelled"))
    text = Text(f"{done}/{batch.get('total_files', 0)} {progress.get('percent', 0):g}%")
    if progress.get("failed"):
        text.append(f" {progress['failed']} failed", style="red")
    if progress.get("cancelled"):
        text.append(f" {progress['cancelled']} cancelled", style="magenta")
    return text


def counts_text(batch: dict) -> str:
    """The live line under --wait: the batch's counters (cancelled only once there are any)."""
    p = batch.get("progress") or {}
    text = (f"uploaded {p.get('uploaded', 0)}/{batch.get('total_files', 0)} · "
            f"succeeded {p.get('succeeded', 0)} · failed {p.get('failed', 0)}")
    if p.get("cancelled"):
        text += f" · cancelled {p['cancelled']}"
    return text


def batches_table(batches: Iterable[dict], *, show_ids: bool = False) -> Table:
    # No id column by default: every command also accepts the base_directory_name, and the
    # table stays narrow enough for an 80-column terminal.
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("base_directory_name", no_wrap=True)
    table.add_column("files", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("progress", no_wrap=True)
    table.add_column("created (UTC)", no_wrap=True)
    if show_ids:
        table.add_column("id", style="dim", no_wrap=True)
    for batch in batches:
        row = [
            batch.get("base_directory_name") or "-",
            str(batch.get("total_files", "")),
            status_text(batch.get("status")),
            progress_text(batch),
            short_time(batch.get("created_at"), seconds=False),
        ]
        table.add_row(*row, *([batch.get("id", "")] if show_ids else []))
    return table


def pipeline_names(ids: Sequence[str], known: Sequence[dict]) -> str:
    """'web (id), id2': names where the pipeline still exists, bare ids where it was deleted."""
    names = {p["id"]: p.get("name") for p in known}
    return ", ".join(f"{names[i]} ({i})" if names.get(i) else i for i in ids) or "-"


def batch_details(batch: dict, pipelines: Sequence[dict] = ()) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    rows = [
        ("Batch", Text(batch.get("base_directory_name") or "-", style="bold")),
        ("ID", batch.get("id")),
        ("Status", status_text(batch.get("status"))),
        ("Progress", progress_text(batch)),
        ("Description", batch.get("description")),
        ("Customer prefix", batch.get("customer_prefix")),
        ("Files", f"{batch.get('total_files', 0)} ({human_size(batch.get('total_size') or 0)})"),
        ("Pipelines", pipeline_names(batch.get("pipeline_ids") or [], pipelines)),
        ("Created", short_time(batch.get("created_at"))),
        ("Started", short_time(batch.get("started_at"))),
        ("Completed", short_time(batch.get("completed_at"))),
    ]
    if batch.get("status") not in ("completed", "completed_with_errors", "failed", "cancelled"):
        rows.append(("Uploads open until", short_time(batch.get("upload_expires_at"))))
    for label, value in rows:
        grid.add_row(label, value if isinstance(value, Text) else str(value or "-"))
    return grid


def jobs_table(jobs: Sequence[dict]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False, title_justify="left")
    table.add_column("file", overflow="fold")
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("outputs / error", overflow="fold")
    for job in jobs:
        error = job.get("error")
        if error:
            detail = Text(f"{error.get('code')}: {error.get('message')}", style="red")
        else:
            outputs = job.get("outputs") or []
            detail = Text(", ".join(_output_summary(o) for o in outputs) or "-")
        table.add_row(job.get("file_name", ""), human_size(job.get("size") or 0),
                      status_text(job.get("status")), detail)
    return table


def _output_summary(output: dict) -> str:
    dims = f"{output.get('width')}x{output.get('height')}" if output.get("width") else ""
    return " ".join(part for part in (output.get("format"), dims, human_size(output.get("size") or 0)) if part)


def batch_view(batch: dict, pipelines: Sequence[dict] = ()) -> Group:
    jobs = batch.get("jobs") or []
    heading = Text(f"\nJobs ({len(jobs)})", style="bold")
    return Group(batch_details(batch, pipelines), heading, jobs_table(jobs))


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
    if p.get("format") in ("jpeg", "webp") and p.get("quality") is not None:
        parts.append(f"quality {p['quality']}")
    if p.get("format") == "png" and p.get("compression") is not None:
        parts.append(f"compression {p['compression']}")
    if p.get("upscale"):
        parts.append("upscale")
    if p.get("keep_metadata"):
        parts.append("keep metadata")
    return ", ".join(parts)


def pipelines_table(pipelines: Sequence[dict]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("name", no_wrap=True)
    table.add_column("format")
    table.add_column("size")
    table.add_column("settings")
    table.add_column("id", style="dim", no_wrap=True)
    for p in pipelines:
        table.add_row(p.get("name", ""), p.get("format", ""), pipeline_size(p), pipeline_settings(p), p.get("id", ""))
    return table


def pipeline_details(p: dict) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for key in ("name", "id", "format", "width", "height", "fit", "quality", "compression",
                "background", "keep_metadata", "upscale", "created_at", "updated_at"):
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
