"""What goes into a batch download: entry names, the manifest, and the ZIP members they make.

Pure: stdlib only. The bytes are laid out by ``zip_layout.py`` (the one ZIP writer).

Layout (API.md "Act")::

    {base}/manifest.csv                      always, inside the base folder so that
                                             extracting the archive never scatters files
    {base}/{output name}                     one pipeline
    {base}/{pipeline name}/{output name}     several pipelines

Output name = input stem + output extension (``PL_DXB191_Front.png`` -> ``PL_DXB191_Front.jpg``),
or the pipeline's ``filename`` template filled in (``domain/filenames.py``; ``{counter}`` is the
file's position in the batch, ``{prefix}`` and ``{date}`` come from ``batch_fields``), made safe
the same way.
Names are unique per folder, compared case-insensitively because macOS and Windows extract
``a.jpg`` and ``A.jpg`` onto the same file. A name that is taken gets `` (2)``, `` (3)``... before
its extension; names that are free keep priority, so a real ``a (2).jpg`` is never renamed because
of a collision elsewhere. Jobs are ordered by file name first, so the result does not depend on
the order the jobs were read in. The manifest's ``output name`` column holds the path actually
written, relative to the base folder.

Manifest: UTF-8 with a BOM and CRLF line ends (what Excel needs to show non-ASCII names).
Text cells starting with ``= + - @`` (or tab/CR) are prefixed with ``'`` so a spreadsheet
never evaluates a file name or error message as a formula (OWASP "CSV injection"); the
file name ``-x.png`` is therefore shown as ``'-x.png`` in the manifest, and only there.
"""
from __future__ import annotations

import csv
import io
import re
import unicodedata
import zlib
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from .filenames import render_name
from .zip_layout import DEFLATED, Member

MANIFEST_FILE_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("file", "pipeline", "status", "error", "output name", "size", "dimensions")

# One path component, in UTF-8 bytes: most file systems stop at 255; keep room for " (99999)".
MAX_NAME_BYTES = 240

_UNSAFE_CHARS = re.compile(r'[/\\<>:"|?*]')  # separators + characters Windows refuses
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                     *(f"LPT{i}" for i in range(1, 10))}
_EDGE_DOTS_SPACES = re.compile(r"^[\s.]+|[\s.]+$")
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ArchiveOutput:
    pipeline_id: str
    pipeline_name: str
    key: str          # S3 key of the output object
    extension: str    # "jpg" | "png" | "webp" | "avif" | "tif"
    size: int
    width: int
    height: int
    filename: str | None = None  # the pipeline's name template; None: stem + extension
    crc32: int | None = None     # recorded at processing time; None for outputs stored before that


@dataclass(frozen=True)
class ArchiveJob:
    file_name: str
    status: str       # awaiting_upload | processing | completed | failed | cancelled
    error_code: str | None
    error_message: str | None
    outputs: tuple[ArchiveOutput, ...] = ()
    position: int | None = None  # 0-based place in the batch, for {counter}


@dataclass(frozen=True)
class PlannedEntry:
    arcname: str      # path inside the zip
    key: str          # S3 key to read
    size: int
    crc32: int | None = None


def manifest_arcname(base_directory_name: str) -> str:
    return f"{safe_entry_name(base_directory_name)}/{MANIFEST_FILE_NAME}"


def safe_entry_name(name: str) -> str:
    """One path component that cannot escape its folder or break an extractor; never empty."""
    name = unicodedata.normalize("NFC", name)
    # Cc: control characters; Cf: invisible format characters such as U+202E, which can make
    # "x\u202Egpj.exe" display as "xexe.jpg".
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf"))
    name = _UNSAFE_CHARS.sub("_", name)
    # Leading dots hide files or spell "..", trailing dots/spaces are dropped by Windows.
    name = _EDGE_DOTS_SPACES.sub("", name)
    if name.split(".", 1)[0].upper() in _WINDOWS_RESERVED:
        name = "_" + name
    return _truncate(name or "_", MAX_NAME_BYTES)


def plan_archive(
    base_directory_name: str,
    jobs: Iterable[ArchiveJob],
    pipeline_names: Sequence[str],
    batch_fields: Mapping[str, str] | None = None,
) -> tuple[list[PlannedEntry], bytes]:
    """Entries in a stable order (pipeline by pipeline, files by name) and the manifest bytes.

    ``pipeline_names`` are the batch's pipelines in batch order: more than one means one
    sub-folder per pipeline. Outputs are grouped by ``pipeline_id``, so two pipelines that share
    a (safe) name still get two folders (``Web`` and ``Web (2)``). ``batch_fields`` gives the
    templates' ``{prefix}`` and ``{date}``.
    """
    base = safe_entry_name(base_directory_name)
    jobs, folders, given = _name_outputs(base_directory_name, jobs, pipeline_names, batch_fields)
    order = {pid: n for n, pid in enumerate(folders)}
    entries = []
    for (i, j), rel in given.items():
        out = _outputs(jobs[i])[j]
        entries.append((order.get(out.pipeline_id, 0), i,
                        PlannedEntry(f"{base}/{rel}", out.key, out.size, out.crc32)))
    entries.sort(key=lambda e: e[:2])
    return [e for _, _, e in entries], _manifest(jobs, given)


def output_names(
    base_directory_name: str,
    jobs: Iterable[ArchiveJob],
    pipeline_names: Sequence[str],
    batch_fields: Mapping[str, str] | None = None,
) -> dict[tuple[str, str], str]:
    """(file name, pipeline id) -> the output's path in the ZIP relative to the base folder, as
    the manifest's ``output name`` column gives it (file names are unique within a batch)."""
    jobs, _, given = _name_outputs(base_directory_name, jobs, pipeline_names, batch_fields)
    return {(jobs[i].file_name, _outputs(jobs[i])[j].pipeline_id): rel for (i, j), rel in given.items()}


def _name_outputs(
    base_directory_name: str,
    jobs: Iterable[ArchiveJob],
    pipeline_names: Sequence[str],
    batch_fields: Mapping[str, str] | None,
) -> tuple[list[ArchiveJob], dict[str, str], dict[tuple[int, int], str]]:
    """(jobs by file name, pipeline id -> folder, (job index, output index) -> relative path)."""
    several = len(pipeline_names) > 1
    jobs = sorted(jobs, key=lambda j: j.file_name)

    folders = _pipeline_folders(jobs, pipeline_names) if several else {}
    # Everything that wants a name in one folder, in the order that decides who keeps it.
    wanted: dict[str, list[tuple[int, int, str]]] = {}  # folder -> [(job i, output j, name)]
    for i, job in enumerate(jobs):
        for j, out in enumerate(_outputs(job)):
            folder = folders.get(out.pipeline_id, "")
            name = (_output_name(job.file_name, out.extension) if out.filename is None
                    else _templated_name(out, job, i, base_directory_name, batch_fields or {}))
            wanted.setdefault(folder, []).append((i, j, name))
    given: dict[tuple[int, int], str] = {}
    for folder, names in wanted.items():
        reserved = [MANIFEST_FILE_NAME] if folder == "" else []
        unique = _unique_names([n for _, _, n in names], reserved)
        for (i, j, _), name in zip(names, unique):
            given[i, j] = f"{folder}/{name}" if folder else name
    return jobs, folders, given


def archive_members(entries: Iterable[PlannedEntry], manifest: bytes, manifest_name: str) -> list[Member]:
    """The ZIP's members: the manifest first (deflated: it is text), then every entry stored as
    is. Every entry needs its CRC-32 (``PlannedEntry.crc32``); ``manifest_name`` is normally
    ``manifest_arcname(base_directory_name)``."""
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)   # raw deflate, as ZIP stores it
    members = [Member(manifest_name, len(manifest), zlib.crc32(manifest),
                      data=deflate.compress(manifest) + deflate.flush(), method=DEFLATED)]
    for e in entries:
        if e.crc32 is None:
            raise ValueError(f"{e.arcname}: the CRC-32 of {e.key} is needed before the archive is laid out")
        members.append(Member(e.arcname, e.size, e.crc32, key=e.key))
    return members


def _outputs(job: ArchiveJob) -> tuple[ArchiveOutput, ...]:
    return job.outputs if job.status == "completed" else ()


def _pipeline_folders(jobs: list[ArchiveJob], pipeline_names: Sequence[str]) -> dict[str, str]:
    """pipeline_id -> unique folder name, in batch pipeline order."""
    rank = {name: n for n, name in reversed(list(enumerate(pipeline_names)))}
    pipelines = {(o.pipeline_id, o.pipeline_name) for j in jobs for o in _outputs(j)}
    ordered = sorted(pipelines, key=lambda p: (rank.get(p[1], len(rank)), p[1], p[0]))
    names = _unique_names([safe_entry_name(name) for _, name in ordered], [MANIFEST_FILE_NAME])
    return {pid: name for (pid, _), name in zip(ordered, names)}


def _output_name(file_name: str, extension: str) -> str:
    stem, dot, _ = file_name.rpartition(".")
    ext = safe_entry_name(extension.lower().lstrip("."))
    return safe_entry_name(f"{stem if dot and stem else file_name}.{ext}")


_FORMATS = {"jpg": "jpeg", "tif": "tiff"}


def _templated_name(out: ArchiveOutput, job: ArchiveJob, index: int, base: str,
                    batch_fields: Mapping[str, str]) -> str:
    stem, dot, _ = job.file_name.rpartition(".")
    ext = out.extension.lower().lstrip(".")
    values = {"stem": stem if dot and stem else job.file_name, "ext": ext, "format": _FORMATS.get(ext, ext),
              "pipeline": out.pipeline_name, "prefix": batch_fields.get("prefix", ""), "batch": base,
              "date": batch_fields.get("date", ""),
              "counter": (job.position if job.position is not None else index) + 1,
              "width": out.width, "height": out.height}
    return safe_entry_name(render_name(out.filename, values))


def _unique_names(names: list[str], reserved: Iterable[str]) -> list[str]:
    taken = {n.casefold() for n in reserved}
    result: list[str | None] = []
    for name in names:  # first pass: free names are kept as they are
        free = name.casefold() not in taken
        result.append(name if free else None)
        if free:
            taken.add(name.casefold())
    for k, name in enumerate(names):
        if result[k] is None:
            n = 2
            while (candidate := _with_counter(name, n)).casefold() in taken:
                n += 1
            taken.add(candidate.casefold())
            result[k] = candidate
    return result  # type: ignore[return-value]


def _with_counter(name: str, n: int) -> str:
    stem, dot, ext = name.rpartition(".")
    if not (dot and stem):
        stem, ext = name, ""
    suffix = f" ({n})" + (f".{ext}" if ext else "")
    return _truncate(stem, 255 - len(suffix.encode())) + suffix


def _truncate(text: str, max_bytes: int) -> str:
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    return _EDGE_DOTS_SPACES.sub("", raw[:max_bytes].decode("utf-8", "ignore")) or "_"


def _manifest(jobs: list[ArchiveJob], given: dict[tuple[int, int], str]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)  # default dialect: CRLF, quotes only when needed
    writer.writerow(MANIFEST_COLUMNS)
    for i, job in enumerate(jobs):
        error = ": ".join(part for part in (job.error_code, job.error_message) if part)
        outputs = _outputs(job)
        if not outputs:
            writer.writerow(_cells(job.file_name, "", job.status, error, "", "", ""))
        for j, out in enumerate(outputs):
            writer.writerow(_cells(job.file_name, out.pipeline_name, job.status, error,
                                   given[i, j], out.size, f"{out.width}x{out.height}"))
    return buf.getvalue().encode("utf-8-sig")


def _cells(*values: object) -> list[object]:
    return [spreadsheet_safe(v) for v in values]


def spreadsheet_safe(value: object) -> object:
    """A text cell a spreadsheet will show as text, never evaluate (CSV files)."""
    return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES) else value
