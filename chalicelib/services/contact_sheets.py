"""A batch's contact sheet: its previews in a PDF grid, staged in S3 (domain/contact_sheet.py).

A sheet holds at most PART_FILES files (15 pages): a larger batch has several parts, asked for
with ?part=N, so that every request stays inside API Gateway's 29 s (fetching 300 previews with
16 threads and drawing 15 pages, 0.1-0.5 s a page measured here, bench/bench_see.py; a 1 GB
Lambda has about 0.6 of a vCPU) and the API function's memory (one page at a time, the part's
previews at about 10-30 kB each).
"""
from __future__ import annotations

import hashlib
import math
import tempfile
from concurrent.futures import ThreadPoolExecutor

from ..domain.batches import JOB_COMPLETED
from ..domain.contact_sheet import PER_PAGE, SheetHeader, SheetItem, write_pdf
from ..domain.keys import archive_key
from ..errors import BadRequest
from .clock import utcnow
from .ownership import owned_batch
from .staged import staged_download

PART_FILES = 300
FETCH_THREADS = 16
READ_CHUNK = 1024 * 1024


class ContactSheetService:
    def __init__(self, repository, storage, settings, clock=utcnow):
        self.repo = repository
        self.storage = storage
        self.settings = settings
        self.clock = clock

    def request(self, owner: str, batch_id: str, params: dict) -> dict:
        batch = owned_batch(self.repo, owner, batch_id)
        jobs = sorted(self.repo.all_jobs(batch_id), key=lambda j: int(j.get("position") or 0))
        parts = max(1, math.ceil(len(jobs) / PART_FILES))
        part = _part(params.get("part"), parts)
        chosen = jobs[(part - 1) * PART_FILES:part * PART_FILES]
        base = batch["base_directory_name"]
        name = f"{base}-contact-sheet.pdf" if parts == 1 else f"{base}-contact-sheet-part-{part}-of-{parts}.pdf"
        digest = hashlib.sha256(name.encode())
        for j in chosen:
            preview = (j.get("preview") or {}).get("key") if j["status"] == JOB_COMPLETED else None
            digest.update(f"\0{j['file_name']}\0{j['status']}\0{j.get('error_code')}\0{preview}".encode())
        key = archive_key(batch_id, digest.hexdigest()[:20], name)
        result = staged_download(self.repo, self.storage, self.settings, self.clock, batch_id, key, name,
                                 lambda: self._write(key, name, batch, chosen, (part - 1) * PART_FILES + 1))
        return {**result, "part": part, "parts": parts}

    def _write(self, key: str, name: str, batch: dict, jobs: list[dict], first: int) -> int:
        counts = {s: int(batch.get(s) or 0) for s in ("succeeded", "failed", "cancelled")}
        shown = f"files {first:,}-{first + len(jobs) - 1:,} of {int(batch['total_files']):,}" \
            if len(jobs) < int(batch["total_files"]) else f"{int(batch['total_files']):,} files"
        subtitle = " · ".join(part for part in (
            batch.get("description") or "", shown,
            f"{counts['succeeded']:,} succeeded, {counts['failed']:,} failed"
            + (f", {counts['cancelled']:,} cancelled" if counts["cancelled"] else "")) if part)
        header = SheetHeader(title=batch["base_directory_name"], subtitle=subtitle, first_number=first)
        with ThreadPoolExecutor(FETCH_THREADS) as pool, tempfile.TemporaryFile() as tmp:
            previews = pool.map(self._preview, jobs)   # fetched ahead, in order, while pages are drawn
            items = (SheetItem(j["file_name"], j["status"], j.get("error_code"), p) for j, p in zip(jobs, previews))
            write_pdf(header, len(jobs), lambda _page: [next(items) for _ in range(min(PER_PAGE, _left(jobs, _page)))],
                      tmp)
            tmp.seek(0)
            return self.storage.write_stream(key, iter(lambda: tmp.read(READ_CHUNK), b""), "application/pdf",
                                             name)["size"]

    def _preview(self, job: dict) -> bytes | None:
        preview = job.get("preview") if job["status"] == JOB_COMPLETED else None
        if not preview:
            return None
        found = self.storage.fetch(preview["key"])
        if found is None:
            return None
        _, body = found
        try:
            return body.read()
        finally:
            body.close()


def _left(jobs: list, page: int) -> int:
    return len(jobs) - page * PER_PAGE


def _part(raw: str | None, parts: int) -> int:
    if raw in (None, ""):
        return 1
    try:
        part = int(raw)
    except ValueError:
        raise BadRequest(f"part must be an integer between 1 and {parts}, got {raw!r}") from None
    if not 1 <= part <= parts:
        raise BadRequest(f"part must be between 1 and {parts} (this batch's sheet has {parts} part(s) "
                         f"of at most {PART_FILES} files), got {part}")
    return part
