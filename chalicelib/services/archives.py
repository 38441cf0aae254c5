"""Whole-batch ZIP downloads: plan, cache, build (inline, or in parallel parts), hand out a URL.

One ZIP writer (domain/zip_layout.py) lays the whole archive out in advance from the names,
sizes and CRC-32s recorded at processing time; Lambda never returns the bytes.
- Inline (the API request, up to ARCHIVE_SYNC_MAX_BYTES / _ENTRIES; or a build whose parts make
  one task): the layout is streamed into one S3 multipart upload in constant memory.
- In parallel parts (build_archive, then build_archive_part): the coordinator cuts the layout
  into S3 parts and the parts into tasks, starts the multipart upload, stores the layout's input
  beside the archive and sends one message per task. Each worker uploads its task's parts (copied
  inside S3 for large members, generated from header bytes and ranged reads otherwise) and
  counts its task in the build's marker item, exactly under redelivery. A delivery that sees every
  task counted completes the upload (a second completion finds it gone), then releases the marker
  on condition: the one delivery that releases it announces the archive (archive_ready).
- Failures: a failed task raises and SQS delivers it again; a build that stops making progress
  (no task counted for BUILD_STALE_AFTER) is claimed again by the next poll, whose coordinator
  aborts the old upload; the bucket's lifecycle rule aborts whatever is still left after a day.
An archive's key holds a fingerprint of everything it contains, so an unchanged batch reuses
its archive and any change (retry, more files finished) builds anew.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from ..domain.archive import (
    ArchiveJob, ArchiveOutput, PlannedEntry, archive_members, manifest_arcname, plan_archive,
)
from ..domain.batches import DELETING, FINAL_STATUSES, JOB_COMPLETED, JOB_FINAL_STATUSES
from ..domain.keys import archive_key, archive_plan_key
from ..domain.zip_layout import (
    Layout, Member, Part, Source, group_parts, layout_zip, split_parts, stream,
)
from ..errors import BadRequest, Conflict, NotFound, NotReady, TooLarge
from ..ports import SourceChanged, UploadGone
from ..observability import ARCHIVE_BUILD_DURATION, ARCHIVE_BUILDS_FAILED, ARCHIVE_BYTES, NOOP
from .clock import iso, parse_iso, utcnow
from .ownership import is_uuid, owned_batch

log = logging.getLogger("imgbatch.archives")
BUILD_STALE_AFTER = timedelta(minutes=16)  # the builder's 15-minute timeout, plus a margin
ASSUMED_BYTES_PER_SECOND = 40 * 1024 * 1024  # for Retry-After; measured S3->S3 streaming is faster
PLAN_VERSION = 1
MAX_ARCHIVE_BYTES = 5 * 1024 ** 4   # S3's largest object
PARTS_IN_FLIGHT = 2      # parts of a task sent at once: memory is this many part buffers
READS_IN_FLIGHT = 8      # ranged reads filling one generated part (small members are latency-bound)
CRC_READS_IN_FLIGHT = 8  # outputs stored before CRCs were recorded, read once at planning


class ArchiveService:
    def __init__(self, repository, storage, settings, queue, clock=utcnow, on_ready=None, obs=NOOP):
        self.repo = repository
        self.storage = storage
        self.settings = settings
        self.queue = queue
        self.clock = clock
        # called with (batch, archive key) once a batch's whole ZIP is built: the archive.ready event
        self.on_ready = on_ready
        self.obs = obs

    # -- the API call ------------------------------------------------------------
    def request(self, owner: str, batch_id: str, partial: bool) -> dict:
        """{"status": "ready", "url", "file_name", "expires_at", "size"} or {"status": "building", "retry_after"}."""
        batch = owned_batch(self.repo, owner, batch_id)
        plan = self._plan(batch, partial)
        head = self.storage.head(plan.key)
        if head is not None:
            size = int(head["ContentLength"])
        elif plan.bytes <= self.settings.archive_sync_max_bytes and \
                len(plan.entries) < self.settings.archive_sync_max_entries:
            size = self._build_inline(plan, self._layout(plan, self.clock()))
        else:
            now = self.clock()
            if self.repo.claim_archive_build(batch_id, plan.fingerprint, iso(now), iso(now - BUILD_STALE_AFTER)):
                self.queue.request_build(batch_id, partial)
            seconds = plan.bytes / ASSUMED_BYTES_PER_SECOND
            return {"status": "building", "retry_after": int(min(30, max(2, seconds / 4))),
                    "file_name": plan.file_name}
        expires = self.clock() + timedelta(seconds=self.settings.download_ttl_seconds)
        return {"status": "ready", "file_name": plan.file_name, "expires_at": iso(expires), "size": size,
                "url": self.storage.presign_download(plan.key, self.settings.download_ttl_seconds, plan.file_name)}

    # -- the builder function (the coordinator) -------------------------------------
    def build_requested(self, batch_id: str, partial: bool, prebuild: bool = False) -> str | None:
        """Build what the API queued (it holds the build marker), or, for `prebuild`, the ZIP of a
        batch that just became final (PREBUILD_ARCHIVES): then the marker is taken here, so a
        download asked for meanwhile and this build do not both run."""
        batch = self.repo.get_batch(batch_id)
        if batch is None:
            return None  # deleted meanwhile
        try:
            plan = self._plan(batch, partial)
        except (NotReady, TooLarge):
            return None
        if self.storage.head(plan.key) is not None:
            return plan.key
        now = self.clock()
        if prebuild and not self.repo.claim_archive_build(batch_id, plan.fingerprint, iso(now),
                                                          iso(now - BUILD_STALE_AFTER)):
            return None   # being built already; that build announces it
        try:
            layout = self._layout(plan, now)
        except SourceChanged:
            return self._source_changed(plan)
        spec = BuildSpec.of(plan, layout, now, self.settings)
        parts, tasks = spec.cut(layout.layout)
        if len(tasks) == 1:  # one worker's share anyway: no queue round trip
            try:
                self._build_inline(plan, layout)
            except NotFound:
                return None  # deleted while it was built
            finally:
                self.repo.release_archive_build(batch_id, plan.fingerprint)
            return plan.key
        return self._start_parts(plan, spec, parts, len(tasks), now)

    def _start_parts(self, plan: "Plan", spec: "BuildSpec", parts: list[Part], tasks: int,
                     now: datetime) -> str | None:
        upload_id = self.storage.start_upload(plan.key, "application/zip", plan.file_name)
        if not self.repo.start_archive_upload(plan.batch_id, plan.fingerprint, upload_id, iso(now)):
            # A repeated build request while a build of this content runs (or its marker is gone):
            # that build goes on, this one never started.
            self.storage.abort_upload(plan.key, upload_id)
            return None
        # Uploads of the same key left by a build that died before this one took over.
        self.storage.abort_uploads(plan.key, keep=upload_id)
        self.storage.put(archive_plan_key(plan.batch_id, plan.fingerprint), spec.encode(upload_id),
                         "application/gzip")
        self.queue.request_tasks([{"batch_id": plan.batch_id, "fingerprint": plan.fingerprint, "key": plan.key,
                                   "upload_id": upload_id, "task": n} for n in range(1, tasks + 1)])
        log.info("building %s in %d parts (%d copied inside S3), %d tasks (%d bytes)", plan.key, len(parts),
                 sum(p.copy is not None for p in parts), tasks, spec.size)
        return plan.key

    # -- the part builder function (the workers) -------------------------------------
    def build_task(self, batch_id: str, fingerprint: str, key: str, upload_id: str, task: int) -> str:
        """Upload one task's parts and count the task. Returns "uploaded"; "completed" for the one
        delivery that finishes the archive; or "stale" (the build is finished, aborted or
        superseded: nothing to do). Anything else raises, and SQS delivers the task again."""
        spec = self._load_spec(batch_id, fingerprint)
        if spec is None:
            # Finished (the plan goes last), or the batch was deleted with its plan: then its
            # upload goes too, rather than waiting for the lifecycle rule.
            current = self.repo.get_batch(batch_id)
            if current is None or current["status"] == DELETING:
                self.storage.abort_uploads(key)
            return "stale"
        if spec.upload_id != upload_id:
            return "stale"
        layout = spec.layout()
        parts, tasks = spec.cut(layout)
        first, last = tasks[task - 1]
        try:
            self.storage.check_upload(spec.key, upload_id)
            self._send_parts(spec.key, upload_id, layout, parts[first - 1:last])
        except UploadGone:
            return self._complete(batch_id, fingerprint, spec, len(parts))
        except SourceChanged:
            return self._source_changed_during_parts(batch_id, spec)
        counted = self.repo.count_archive_task(batch_id, fingerprint, upload_id, task, iso(self.clock()))
        if counted is None:
            return "stale"
        if counted < len(tasks):
            return "uploaded"
        return self._complete(batch_id, fingerprint, spec, len(parts))

    def _complete(self, batch_id: str, fingerprint: str, spec: "BuildSpec", parts: int) -> str:
        """Every task is counted. Any delivery that sees it completes the upload, so a worker that
        died on the way is replaced by the next delivery of its task; completing twice finds the
        upload gone. Then the marker is released on condition, and only the delivery that releases
        it goes on: the archive is announced once."""
        try:
            self.storage.complete_upload(spec.key, spec.upload_id, parts)
            log.info("built %s (%d bytes, %d parts)", spec.key, spec.size, parts)
        except UploadGone:
            if self.storage.head(spec.key) is None:
                return "stale"   # aborted: a newer build took over, or the batch went
        current = self.repo.get_batch(batch_id)
        if current is None or current["status"] == DELETING:
            # A delete that swept the archives while this one was being written would leave it behind.
            self.storage.delete(spec.key)
            self.storage.delete(archive_plan_key(batch_id, fingerprint))
            return "stale"
        if not self.repo.finish_archive_build(batch_id, fingerprint, spec.upload_id):
            return "stale"
        # Once per archive, by the delivery that released the marker: from its planning to now.
        self.obs.info("archive.built", batch_id=batch_id, outcome="built", key=spec.key, bytes=spec.size,
                      parts=parts, parallel=True)
        self.obs.metric(ARCHIVE_BUILD_DURATION, (self.clock() - spec.modified).total_seconds())
        self.obs.metric(ARCHIVE_BYTES, spec.size)
        self.archive_ready(batch_id, spec.key, spec.partial)
        self.storage.delete(archive_plan_key(batch_id, fingerprint))
        return "completed"

    def _send_parts(self, key: str, upload_id: str, layout: Layout, parts: list[Part]) -> None:
        with ThreadPoolExecutor(PARTS_IN_FLIGHT) as pool, ThreadPoolExecutor(READS_IN_FLIGHT) as reads:
            def send(part: Part) -> None:
                if part.copy is not None:
                    self.storage.copy_part(key, upload_id, part.number, part.copy.key, part.copy.start,
                                           part.copy.length)
                else:
                    self.storage.upload_part(key, upload_id, part.number, self._assemble(layout, part, reads))
            for _ in pool.map(send, parts):
                pass

    def _assemble(self, layout: Layout, part: Part, reads: ThreadPoolExecutor) -> bytearray:
        """A generated part's bytes: literal header bytes and ranged reads, each read written
        straight into its place in one buffer, several at a time."""
        buffer = bytearray(part.size)
        view = memoryview(buffer)
        jobs, at = [], 0
        for piece in layout.pieces(part.start, part.end):
            if isinstance(piece, Source):
                jobs.append((piece, at))
            else:
                view[at:at + len(piece)] = piece.data
            at += len(piece)

        def fill(job: tuple[Source, int]) -> None:
            source, offset = job
            for chunk in self.storage.read_range(source.key, source.start, source.length, source.object_size):
                view[offset:offset + len(chunk)] = chunk
                offset += len(chunk)
        for _ in reads.map(fill, jobs):
            pass
        return buffer

    # -- finishing ---------------------------------------------------------------------
    def archive_ready(self, batch_id: str, key: str, partial: bool = False) -> None:
        """Called once an archive is stored and can be downloaded at once, by whichever build wrote
        it: the API request, the coordinator, or the one part worker that released the build's
        marker. Once per archive; a function that dies between storing the archive and this call
        does not call it (the archive is still served). A whole batch's archive is announced
        (`archive.ready`, through `on_ready`); a partial one is not."""
        log.info("archive ready: %s", key)
        if self.on_ready is None or partial:
            return
        batch = self.repo.get_batch(batch_id)
        if batch is not None and batch["status"] != DELETING:
            self.on_ready(batch, key)

    def _source_changed(self, plan: "Plan") -> str | None:
        current = self.repo.get_batch(plan.batch_id)
        if current is None or current["status"] == DELETING:
            self.repo.release_archive_build(plan.batch_id, plan.fingerprint)
            return None
        raise SourceChanged(f"an output of batch {plan.batch_id} changed while its archive was planned")

    def _source_changed_during_parts(self, batch_id: str, spec: "BuildSpec") -> str:
        current = self.repo.get_batch(batch_id)
        if current is None or current["status"] == DELETING:
            self.storage.abort_upload(spec.key, spec.upload_id)
            return "stale"
        raise SourceChanged(f"an output of batch {batch_id} is gone or changed while its archive was built")

    # -- planning and the inline build ----------------------------------------------------
    def _plan(self, batch: dict, partial: bool) -> "Plan":
        jobs = list(self.repo.all_jobs(batch["id"]))
        finished = [j for j in jobs if j["status"] in JOB_FINAL_STATUSES]
        total = int(batch["total_files"])
        if batch["status"] not in FINAL_STATUSES and not partial:
            raise NotReady(f"batch {batch['id']} is still {batch['status']} ({len(finished)} of {total} files "
                           "finished); wait for it to finish or add ?partial=true for what is finished so far")
        if not finished:
            raise NotReady(f"nothing in batch {batch['id']} is finished yet; try again once files are processed")
        pipelines = {p["id"]: p for p in batch["pipelines"]}
        archive_jobs = [_archive_job(j, pipelines) for j in jobs]
        base = batch["base_directory_name"]
        entries, manifest = plan_archive(base, archive_jobs, [p["name"] for p in batch["pipelines"]],
                                         {"prefix": batch["customer_prefix"], "date": batch["batch_date"]})
        digest = hashlib.sha256()
        digest.update(base.encode())
        digest.update(manifest)
        for e in entries:
            digest.update(f"\0{e.arcname}\0{e.key}\0{e.size}".encode())
        for j in sorted(jobs, key=lambda j: j["job_id"]):
            digest.update(f"\0{j['job_id']}:{j['status']}:{int(j.get('attempt') or 0)}".encode())
        fingerprint = digest.hexdigest()[:20]
        file_name = f"{base}.zip"
        size = sum(e.size for e in entries) + len(manifest)
        if size > MAX_ARCHIVE_BYTES:   # a 1 TiB batch whose pipelines multiply it more than fivefold
            raise TooLarge(f"the ZIP of batch {batch['id']} would hold {size} bytes of files, over S3's limit of "
                           f"{MAX_ARCHIVE_BYTES} bytes for one object; download its files one at a time "
                           "(GET /jobs/{job_id}/download)")
        return Plan(batch_id=batch["id"], partial=partial, entries=entries, manifest=manifest,
                    manifest_name=manifest_arcname(base),
                    fingerprint=fingerprint, file_name=file_name,
                    key=archive_key(batch["id"], fingerprint, file_name),
                    bytes=size)

    def _layout(self, plan: "Plan", now: datetime) -> "PlannedLayout":
        """The archive laid out; outputs stored before CRCs were recorded are read once for theirs.
        Entries are dated `now` in UTC to the second, as a build plan stores it (BuildSpec)."""
        missing = [e for e in plan.entries if e.crc32 is None]

        def crc(entry: PlannedEntry) -> PlannedEntry:
            value = 0
            for chunk in self.storage.read_range(entry.key, 0, entry.size, entry.size):
                value = zlib.crc32(chunk, value)
            return replace(entry, crc32=value)
        if missing:
            with ThreadPoolExecutor(CRC_READS_IN_FLIGHT) as pool:
                found = {e.key: e for e in pool.map(crc, missing)}
            log.info("%s: read %d outputs stored without a CRC-32", plan.key, len(missing))
            entries = [found.get(e.key, e) if e.crc32 is None else e for e in plan.entries]
        else:
            entries = plan.entries
        members = archive_members(entries, plan.manifest, plan.manifest_name)
        return PlannedLayout(members, layout_zip(members, _utc_second(now)))

    def _build_inline(self, plan: "Plan", planned: "PlannedLayout") -> int:
        def read(source: Source):
            return self.storage.read_range(source.key, source.start, source.length, source.object_size)
        with self.obs.transition("archive.built", batch_id=plan.batch_id) as step:
            step.fields.update(key=plan.key, entries=len(plan.entries))
            try:
                with self.obs.span("archive"):
                    result = self.storage.write_stream(plan.key, stream(planned.layout.segments, read),
                                                       "application/zip", plan.file_name)
            except SourceChanged:
                current = self.repo.get_batch(plan.batch_id)
                if current is None or current["status"] == DELETING:
                    step.outcome = "deleted_meanwhile"
                    raise NotFound(f"batch {plan.batch_id} not found") from None
                self.obs.metric(ARCHIVE_BUILDS_FAILED)
                raise
            except Exception:
                self.obs.metric(ARCHIVE_BUILDS_FAILED)
                raise
            step.fields.update(bytes=result["size"], parts=result["parts"])
            self.obs.metric(ARCHIVE_BUILD_DURATION, step.elapsed_ms() / 1000)
            self.obs.metric(ARCHIVE_BYTES, result["size"])
            # A delete that swept the archives while this one was being written would leave it behind.
            current = self.repo.get_batch(plan.batch_id)
            if current is None or current["status"] == DELETING:
                self.storage.delete(plan.key)
                step.outcome = "deleted_meanwhile"
                raise NotFound(f"batch {plan.batch_id} not found")
            step.outcome = "built"
        self.archive_ready(plan.batch_id, plan.key, plan.partial)
        return result["size"]

    def _load_spec(self, batch_id: str, fingerprint: str) -> "BuildSpec | None":
        stored = self.storage.fetch(archive_plan_key(batch_id, fingerprint))
        if stored is None:
            return None
        _, body = stored
        with body:
            return BuildSpec.decode(body.read())

    # -- one job's output ------------------------------------------------------------
    def job_output(self, owner: str, job_id: str, pipeline_id: str | None) -> str:
        job = self.repo.find_job(job_id) if is_uuid(job_id) else None
        if job is None or job["owner"] != owner:
            raise NotFound(f"job {job_id} not found")
        if job["status"] != JOB_COMPLETED:
            raise Conflict(f"job {job_id} is {job['status']}; only completed jobs have outputs to download")
        outputs = job.get("outputs") or []
        if pipeline_id:
            chosen = [o for o in outputs if o["pipeline_id"] == pipeline_id]
            if not chosen:
                raise BadRequest(f"job {job_id} has no output for pipeline {pipeline_id}; its pipelines: "
                                 f"{', '.join(o['pipeline_id'] for o in outputs)}")
        elif len(outputs) > 1:
            raise BadRequest(f"job {job_id} has outputs of {len(outputs)} pipelines; choose one with "
                             f"?pipeline_id= (one of: {', '.join(o['pipeline_id'] for o in outputs)})")
        else:
            chosen = outputs
        out = chosen[0]
        stem = job["file_name"].rsplit(".", 1)[0] if "." in job["file_name"] else job["file_name"]
        ext = out["key"].rsplit(".", 1)[-1]
        return self.storage.presign_download(out["key"], self.settings.download_ttl_seconds, f"{stem}.{ext}")


@dataclass
class Plan:
    batch_id: str
    partial: bool
    entries: list[PlannedEntry]
    manifest: bytes
    manifest_name: str
    fingerprint: str
    file_name: str
    key: str
    bytes: int


@dataclass(frozen=True)
class PlannedLayout:
    members: list[Member]
    layout: Layout


@dataclass(frozen=True)
class BuildSpec:
    """What every worker of a parallel build needs to lay out the very same archive and cut the
    very same parts: the members (names, keys, sizes and CRC-32s; the manifest's deflated bytes),
    the time stamp, and the sizes that decide the cut. Stored gzipped beside the archive while it
    is built (keys.archive_plan_key), so messages stay small whatever the number of files."""
    key: str
    members: tuple[Member, ...]
    modified: datetime
    part_size: int
    min_part: int
    task_bytes: int
    size: int
    upload_id: str = ""
    partial: bool = False

    @classmethod
    def of(cls, plan: Plan, planned: PlannedLayout, now: datetime, settings) -> "BuildSpec":
        return cls(plan.key, tuple(planned.members), _utc_second(now), settings.archive_part_size,
                   settings.archive_min_part_size, settings.archive_task_bytes, planned.layout.size,
                   partial=plan.partial)

    def layout(self) -> Layout:
        layout = layout_zip(self.members, self.modified)
        if layout.size != self.size:  # a worker running other code than the coordinator did
            raise RuntimeError(f"{self.key}: laid out as {layout.size} bytes here, {self.size} when planned")
        return layout

    def cut(self, layout: Layout) -> tuple[list[Part], list[tuple[int, int]]]:
        parts = split_parts(layout, self.part_size, min_part=self.min_part)
        return parts, group_parts(parts, self.task_bytes)

    def encode(self, upload_id: str) -> bytes:
        members = [[m.name, m.key, m.size, m.crc32] if m.key is not None else
                   {"name": m.name, "size": m.size, "crc32": m.crc32, "method": m.method,
                    "data": base64.b64encode(m.data or b"").decode()} for m in self.members]
        return gzip.compress(json.dumps({
            "version": PLAN_VERSION, "key": self.key, "upload_id": upload_id, "modified": iso(self.modified),
            "part_size": self.part_size, "min_part": self.min_part, "task_bytes": self.task_bytes,
            "size": self.size, "partial": self.partial, "members": members}, separators=(",", ":")).encode(),
            compresslevel=6)

    @classmethod
    def decode(cls, data: bytes) -> "BuildSpec":
        raw = json.loads(gzip.decompress(data))
        if raw.get("version") != PLAN_VERSION:
            raise RuntimeError(f"build plan version {raw.get('version')} is not {PLAN_VERSION}")
        members = tuple(Member(m[0], int(m[2]), int(m[3]), key=m[1]) if isinstance(m, list) else
                        Member(m["name"], int(m["size"]), int(m["crc32"]), data=base64.b64decode(m["data"]),
                               method=int(m["method"])) for m in raw["members"])
        return cls(raw["key"], members, parse_iso(raw["modified"]), int(raw["part_size"]), int(raw["min_part"]),
                   int(raw["task_bytes"]), int(raw["size"]), raw["upload_id"], bool(raw.get("partial")))


def _utc_second(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(microsecond=0)


def _archive_job(job: dict, pipelines: dict) -> ArchiveJob:
    outputs = tuple(
        ArchiveOutput(pipeline_id=o["pipeline_id"],
                      pipeline_name=pipelines.get(o["pipeline_id"], {}).get("name", "output"),
                      key=o["key"], extension=o["key"].rsplit(".", 1)[-1], size=int(o["size"]),
                      width=int(o["width"]), height=int(o["height"]),
                      filename=pipelines.get(o["pipeline_id"], {}).get("filename"),
                      crc32=int(o["crc32"]) if o.get("crc32") is not None else None)
        for o in (job.get("outputs") or [])) if job["status"] == JOB_COMPLETED else ()
    return ArchiveJob(file_name=job["file_name"], status=job["status"], error_code=job.get("error_code"),
                      error_message=job.get("error_message"), outputs=outputs,
                      position=int(job["position"]) if job.get("position") is not None else None)
