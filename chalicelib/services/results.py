"""The per-file results of a batch as CSV, XLSX or JSON, staged in S3 (API.md "Previews and results").

Reads every job of the batch (one Query per 1 MB page), builds the rows in memory (about 300
bytes each) and writes the file as a stream: CSV and JSON in chunks, XLSX through a temporary
file (XlsxWriter's constant_memory), so a 10,000-file batch needs neither a large response nor a
large buffer. README "Results export" has the measured time.
"""
from __future__ import annotations

import hashlib
import json
import tempfile

from ..domain.archive import ArchiveOutput
from ..domain.batches import JOB_COMPLETED
from ..domain.keys import archive_key
from ..domain.results import FORMATS, ResultJob, csv_chunks, file_name, json_chunks, result_rows, write_xlsx
from .clock import utcnow
from .ownership import owned_batch
from .paging import choice_param
from .staged import staged_download

READ_CHUNK = 1024 * 1024


class ResultsService:
    def __init__(self, repository, storage, settings, clock=utcnow):
        self.repo = repository
        self.storage = storage
        self.settings = settings
        self.clock = clock

    def request(self, owner: str, batch_id: str, params: dict) -> dict:
        fmt = choice_param(params, "format", tuple(FORMATS), "csv")
        batch = owned_batch(self.repo, owner, batch_id)
        rows = self.rows(batch)
        name = file_name(batch["base_directory_name"], fmt)
        digest = hashlib.sha256(json.dumps([name, rows], sort_keys=True).encode()).hexdigest()[:20]
        key = archive_key(batch_id, digest, name)
        return staged_download(self.repo, self.storage, self.settings, self.clock, batch_id, key, name,
                               lambda: self._write(key, name, fmt, batch, rows))

    def rows(self, batch: dict) -> list[dict]:
        pipelines = [(p["id"], p["name"]) for p in batch["pipelines"]]
        by_id = {p["id"]: p for p in batch["pipelines"]}
        jobs = [_result_job(j, by_id) for j in self.repo.all_jobs(batch["id"])]
        return result_rows(batch["base_directory_name"], jobs, pipelines,
                           {"prefix": batch["customer_prefix"], "date": batch["batch_date"]})

    def _write(self, key: str, name: str, fmt: str, batch: dict, rows: list[dict]) -> int:
        content_type = FORMATS[fmt][0]
        if fmt == "csv":
            return self.storage.write_stream(key, csv_chunks(rows), content_type, name)["size"]
        if fmt == "json":
            head = {"id": batch["id"], "base_directory_name": batch["base_directory_name"], "status": batch["status"],
                    "total_files": int(batch["total_files"])}
            return self.storage.write_stream(key, json_chunks(head, rows), content_type, name)["size"]
        with tempfile.TemporaryFile() as tmp:
            write_xlsx(rows, tmp, batch["base_directory_name"])
            tmp.seek(0)
            return self.storage.write_stream(key, iter(lambda: tmp.read(READ_CHUNK), b""), content_type, name)["size"]


def _result_job(job: dict, pipelines: dict) -> ResultJob:
    outputs = tuple(
        ArchiveOutput(pipeline_id=o["pipeline_id"], pipeline_name=pipelines.get(o["pipeline_id"], {}).get("name", "output"),
                      key=o["key"], extension=o["key"].rsplit(".", 1)[-1], size=int(o["size"]),
                      width=int(o["width"]), height=int(o["height"]),
                      filename=pipelines.get(o["pipeline_id"], {}).get("filename"))
        for o in (job.get("outputs") or [])) if job["status"] == JOB_COMPLETED else ()
    return ResultJob(file_name=job["file_name"], size=int(job["size"]), status=job["status"],
                     error_code=job.get("error_code"), error_message=job.get("error_message"),
                     started_at=job.get("started_at"), completed_at=job.get("completed_at"), outputs=outputs,
                     position=int(job["position"]) if job.get("position") is not None else None)
