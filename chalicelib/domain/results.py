"""A batch's per-file results as rows, and those rows as CSV, XLSX or JSON (API.md "Previews and
results"). Pure: stdlib + XlsxWriter; the caller stores the bytes.

One row per file and pipeline, files in batch order, pipelines in batch order: a failed file gets
one row per pipeline too, each with its error, so a filter on `pipeline` shows every file.
`output_name` is the path the output has in the batch's ZIP (relative to its base folder), named
exactly as the archive names it (archive.output_names).

Spreadsheet formula injection (OWASP "CSV injection"): a CSV cell starting with ``= + - @`` (or
tab/CR) is prefixed with ``'``, as in the ZIP's manifest. XLSX cells are typed: every text is
written as a string cell (never through XlsxWriter's guessing ``write()``), so ``=cmd|...`` is
text and keeps its exact value; JSON keeps exact values too.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import IO, Iterable, Iterator, Mapping, Sequence

from .archive import ArchiveJob, ArchiveOutput, output_names, spreadsheet_safe

COLUMNS = ("file", "size", "status", "error_code", "error_message", "pipeline", "output_name", "format",
           "width", "height", "bytes", "started_at", "completed_at")
FORMATS = {"csv": ("text/csv; charset=utf-8", "csv"),
           "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
           "json": ("application/json", "json")}
NUMERIC = frozenset(("size", "width", "height", "bytes"))
CSV_CHUNK_ROWS = 2000


@dataclass(frozen=True)
class ResultJob:
    file_name: str
    size: int
    status: str
    error_code: str | None
    error_message: str | None
    started_at: str | None
    completed_at: str | None
    outputs: tuple[ArchiveOutput, ...] = ()
    position: int | None = None


def result_rows(base_directory_name: str, jobs: Iterable[ResultJob], pipelines: Sequence[tuple[str, str]],
                batch_fields: Mapping[str, str] | None = None) -> list[dict]:
    """Rows of COLUMNS for `jobs` (any order; sorted by position) and the batch's (id, name) pipelines."""
    jobs = sorted(jobs, key=lambda j: (j.position if j.position is not None else 0, j.file_name))
    names = output_names(base_directory_name, [_archive_job(j) for j in jobs], [n for _, n in pipelines],
                         batch_fields)
    rows = []
    for job in jobs:
        outputs = {o.pipeline_id: o for o in job.outputs} if job.status == "completed" else {}
        for pipeline_id, pipeline_name in pipelines:
            out = outputs.get(pipeline_id)
            rows.append({
                "file": job.file_name, "size": job.size, "status": job.status,
                "error_code": job.error_code, "error_message": job.error_message,
                "pipeline": pipeline_name,
                "output_name": names.get((job.file_name, pipeline_id)) if out else None,
                "format": _format(out) if out else None,
                "width": out.width if out else None, "height": out.height if out else None,
                "bytes": out.size if out else None,
                "started_at": job.started_at, "completed_at": job.completed_at,
            })
    return rows


def _format(out: ArchiveOutput) -> str:
    return {"jpg": "jpeg", "tif": "tiff"}.get(out.extension, out.extension)


def _archive_job(job: ResultJob) -> ArchiveJob:
    return ArchiveJob(file_name=job.file_name, status=job.status, error_code=job.error_code,
                      error_message=job.error_message, outputs=job.outputs, position=job.position)


def file_name(base_directory_name: str, fmt: str) -> str:
    return f"{base_directory_name}-results.{FORMATS[fmt][1]}"


# -- writers ----------------------------------------------------------------------------------
def csv_chunks(rows: Iterable[dict]) -> Iterator[bytes]:
    """UTF-8 with a BOM and CRLF line ends (what Excel needs for non-ASCII names), in chunks."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    buf.write("\ufeff")
    writer.writerow(COLUMNS)
    for n, row in enumerate(rows, 1):
        writer.writerow(["" if row[c] is None else spreadsheet_safe(row[c]) for c in COLUMNS])
        if n % CSV_CHUNK_ROWS == 0:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode("utf-8")


def json_chunks(batch: Mapping[str, object], rows: Iterable[dict]) -> Iterator[bytes]:
    """{"batch": {...}, "columns": [...], "results": [row, ...]}, one row per line."""
    head = {"batch": dict(batch), "columns": list(COLUMNS)}
    yield json.dumps(head, ensure_ascii=False)[:-1].encode() + b', "results": ['
    for n, row in enumerate(rows):
        yield (b",\n" if n else b"\n") + json.dumps({c: row[c] for c in COLUMNS}, ensure_ascii=False).encode()
    yield b"\n]}\n"


def write_xlsx(rows: Iterable[dict], target: IO[bytes], sheet_title: str = "Results") -> None:
    """One sheet: a bold frozen header with filters, then one typed row per result.

    constant_memory writes each row to a temporary file as soon as the next begins, so memory
    does not grow with the batch (XlsxWriter docs, "Working with Memory and Performance")."""
    import xlsxwriter

    book = xlsxwriter.Workbook(target, {"constant_memory": True, "strings_to_formulas": False,
                                        "strings_to_numbers": False, "strings_to_urls": False})
    try:
        sheet = book.add_worksheet(_sheet_name(sheet_title))
        bold = book.add_format({"bold": True})
        for c, name in enumerate(COLUMNS):
            sheet.write_string(0, c, name, bold)
        widths = {"file": 40, "error_message": 40, "output_name": 40, "started_at": 21, "completed_at": 21,
                  "error_code": 18, "status": 22, "pipeline": 16}
        for c, name in enumerate(COLUMNS):
            sheet.set_column(c, c, widths.get(name, 10))
        sheet.freeze_panes(1, 0)
        count = 0
        for r, row in enumerate(rows, 1):
            count = r
            for c, name in enumerate(COLUMNS):
                value = row[name]
                if value is None:
                    continue
                if name in NUMERIC:
                    sheet.write_number(r, c, value)
                else:
                    sheet.write_string(r, c, str(value))
        sheet.autofilter(0, 0, count, len(COLUMNS) - 1)
    finally:
        book.close()


def _sheet_name(title: str) -> str:
    # Excel: at most 31 characters, none of []:*?/\
    cleaned = "".join("_" if ch in "[]:*?/\\" else ch for ch in title).strip("'")
    return cleaned[:31] or "Results"
