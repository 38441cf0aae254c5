"""In-memory adapters: every port of chalicelib/ports.py without AWS, for fast service tests.

They keep the observable semantics of the DynamoDB repository, the S3 store and the SQS queues,
and tests/contract holds them to it: one suite runs against these and against the real adapters
on moto. What "the same" means here:

- One lock. A transition checks every condition it has and then applies every write it makes
  under that lock, as one DynamoDB transaction does: it either changes nothing and returns
  False, or moves the record and its counters together.
- Reads hand out copies; nothing a caller does to a returned dict reaches the store.
- Records carry the domain fields of ports.py (no index keys). A batch being deleted has no
  owner, as in DynamoDB where `owner` is one of the index keys `mark_deleting` removes: every
  owner-scoped read then answers 404 for it.
- Lists follow the DynamoDB query they stand for: the same partitions, sort keys and order, the
  same page sizes and search budget (so a search may hand back a short page with a cursor), and
  a cursor is the sort key where the next page starts, as an ExclusiveStartKey is (valid even
  when the item it came from has moved). As on moto, the last page has no cursor even when it
  is exactly full (DynamoDB itself may hand back one more, empty, page).

- Jobs are materialised as DynamoDB's are: create_batch gives the first manifest chunk's jobs
  their records, materialize_jobs the others (domain/buckets.py CHUNK_SIZE, read when called, so
  a test may shrink it). Until then a job is listed (list_jobs, all_jobs, jobs_with_status) as
  created, but get_job, find_job, get_jobs and jobs_by_status do not see it and only expire_job
  and cancel_job (which write the whole job) can move it.
- Every committed change of a batch record is kept as the batches table's stream would hand it
  (take_changes: sequence, old, new), for the event services. The one difference: a live
  batch's counts in these images are the current ones, where DynamoDB's item holds its counts
  only once they are final (its bucket counters hold them meanwhile).

Where DynamoDB's behaviour is an accident rather than a rule, the fake follows the rule and
tests/contract says so: a batch being deleted moves to no other status (`_move_batch`; the
DynamoDB repository raises AttributeError there). A move to the status a batch already has is a
caller's mistake that DynamoDB refuses (one update cannot touch a figure twice): ValueError.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import io
import itertools
import json
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable, Iterator, Sequence
from urllib.parse import parse_qs, quote, unquote, urlsplit

from ..domain import buckets, naming
from ..domain.batches import (
    BATCH_STATUSES, CANCELLED, DELETING, FINAL_STATUSES, JOB_AWAITING, JOB_CANCELLED, JOB_COMPLETED, JOB_FAILED,
    JOB_PROCESSING, PROCESSING, QUEUED, BatchQuery, NewBatch,
)
from ..domain.naming import prefix_key
from ..domain.pipelines import name_key
from ..ports import MAYBE_DONE, ConditionFailed, Page, SourceChanged, UploadGone
from .multipart import MAX_PARTS, MIN_PART_SIZE
from .storage import content_disposition   # plain string code: the S3 store's header, exactly

STATUS_RANK = {s: i for i, s in enumerate(BATCH_STATUSES)}
SEARCH_SCAN_BUDGET = 1000   # index entries examined per search request (adapters/repository.py)
OPEN, CANCELLING = "open", "cancelling"   # the sweep's sparse sets (and DELETING)
RETRY_PENDING = "pending"   # as adapters/repository.py
PART_SIZE = 16 * 1024 * 1024   # what write_stream reports as parts (adapters/multipart.py)

# The fields of a stored record that the ports hand out; anything starting with "_" is the
# fake's own bookkeeping (sort keys, the sweep's set, whether the batch is listed).
JOB_FIELDS = ("batch_id", "job_id", "position", "owner", "file_name", "size", "content_type", "key", "status",
              "error_code", "error_message", "outputs", "preview", "attempt", "created_at", "updated_at",
              "started_at", "completed_at")


def _json(value):
    """What a JSON attribute gives back: plain JSON types, never the caller's objects."""
    return None if value is None else json.loads(json.dumps(value))


def _public(record: dict) -> dict:
    return copy.deepcopy({k: v for k, v in record.items() if not k.startswith("_")})


def _created_sk(new: NewBatch) -> str:
    return f"{new.created.astimezone(timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{new.id}"


@dataclass(frozen=True)
class Change:
    """One committed change of a batch, shaped as adapters/batch_stream.Change (what the event
    services read): the sequence is unique and increasing, as a stream record's is."""
    sequence: str
    old: dict | None
    new: dict | None


class MemoryRepository:
    """ports.Repository in memory (see the module docstring for what it promises)."""

    search_scan_budget = SEARCH_SCAN_BUDGET

    def __init__(self):
        self._lock = threading.RLock()
        self._pipelines: dict[tuple[str, str], dict] = {}
        self._pipeline_names: dict[tuple[str, str], str] = {}      # (owner, name key) -> id
        self._counters: dict[tuple[str, str, str], int] = {}
        self._stats: dict[str, dict[str, int]] = {}
        self._batches: dict[str, dict] = {}
        self._jobs: dict[str, dict[str, dict]] = {}                 # batch id -> job id -> job
        self._job_batch: dict[str, str] = {}                        # job id -> batch id
        self._chunks_done: dict[str, set[int]] = {}                 # batch id -> chunks materialised
        self._build_locks: dict[tuple[str, str], dict] = {}         # (batch, fingerprint) -> marker
        self._tokens: dict[str, str] = {}
        self._drop_folders: dict[tuple[str, str], dict] = {}        # (owner, folder) -> claim
        self._changes: list[Change] = []
        self._sequence = 0

    # -- the batches table's stream ----------------------------------------------------
    def _changed(self, old: dict | None, batch_id: str) -> None:
        """Record a change of a batch record (under the lock), its images as get_batch reads them."""
        self._sequence += 1
        new = self._batches.get(batch_id)
        self._changes.append(Change(f"{self._sequence:021d}", old, _public(new) if new is not None else None))

    def take_changes(self) -> list[Change]:
        """Every change since the last take, in commit order (each handed out once)."""
        with self._lock:
            taken, self._changes = self._changes, []
            return taken

    # -- pipelines -----------------------------------------------------------------
    def create_pipeline(self, owner: str, pid: str, spec: dict, now: str) -> dict:
        with self._lock:
            name = (owner, name_key(spec["name"]))
            if (owner, pid) in self._pipelines or name in self._pipeline_names:
                raise ConditionFailed("name taken")
            self._pipelines[(owner, pid)] = {"id": pid, "spec": _json(spec), "created_at": now, "updated_at": now}
            self._pipeline_names[name] = pid
            return self._pipeline(self._pipelines[(owner, pid)])

    def get_pipeline(self, owner: str, pid: str) -> dict | None:
        with self._lock:
            found = self._pipelines.get((owner, pid))
            return self._pipeline(found) if found else None

    def get_pipelines(self, owner: str, pids: Sequence[str]) -> dict[str, dict]:
        with self._lock:
            return {p: self._pipeline(self._pipelines[(owner, p)]) for p in pids if (owner, p) in self._pipelines}

    def list_pipelines(self, owner: str) -> list[dict]:
        with self._lock:   # the table's sort key is the id
            return [self._pipeline(p) for (o, pid), p in sorted(self._pipelines.items()) if o == owner]

    def replace_pipeline(self, owner: str, pid: str, old_name: str, spec: dict, now: str) -> dict:
        with self._lock:
            old, new = (owner, name_key(old_name)), (owner, name_key(spec["name"]))
            renamed = old != new
            if (owner, pid) not in self._pipelines or renamed and (
                    self._pipeline_names.get(old) != pid or new in self._pipeline_names):
                raise ConditionFailed("name taken or pipeline gone")
            self._pipelines[(owner, pid)].update(spec=_json(spec), updated_at=now)
            if renamed:
                del self._pipeline_names[old]
                self._pipeline_names[new] = pid
            return self._pipeline(self._pipelines[(owner, pid)])

    def delete_pipeline(self, owner: str, pid: str, name: str) -> None:
        with self._lock:
            guard = (owner, name_key(name))
            if (owner, pid) not in self._pipelines or self._pipeline_names.get(guard) != pid:
                raise ConditionFailed("pipeline gone")
            del self._pipelines[(owner, pid)], self._pipeline_names[guard]

    @staticmethod
    def _pipeline(stored: dict) -> dict:
        return {"id": stored["id"], **_json(stored["spec"]), "created_at": stored["created_at"],
                "updated_at": stored["updated_at"]}

    # -- counters and aggregates ------------------------------------------------------
    def next_counter(self, owner: str, prefix: str, batch_date: str) -> int:
        with self._lock:
            key = (owner, prefix, batch_date)
            self._counters[key] = self._counters.get(key, 0) + 1
            return self._counters[key]

    def stats(self, owner: str) -> dict:
        """The owner's maintained figures (a figure appears once something moved it, as an
        ADD creates it) and the largest batch the owner can list."""
        with self._lock:
            figures = dict(self._stats.get(owner, {}))
            figures["max_files_in_batch"] = max(
                (b["total_files"] for b in self._batches.values() if b["_listed"] and b["owner"] == owner),
                default=0)
            return figures

    def _add(self, owner: str, **deltas: int) -> None:
        figures = self._stats.setdefault(owner, {})
        for name, delta in deltas.items():
            figures[name] = figures.get(name, 0) + delta

    # -- batches -----------------------------------------------------------------------
    def create_batch(self, new: NewBatch) -> dict:
        """The batch, its jobs (listed at once) and the first chunk's job records. A clash of batch
        ids raises ConditionFailed and changes nothing. (DynamoDB's repository writes a batch's
        counters and manifest before the conditional put that finds the clash, so there it would
        rewrite them; batch ids are random UUIDs, so that never happens in practice.)"""
        batch = new.record()
        with self._lock:
            if new.id in self._batches:
                raise ConditionFailed("batch id already exists")
            jobs = self._jobs.setdefault(new.id, {})
            for job in new.job_records():
                # _stored: the job has its own record (materialised, or moved by expire/cancel)
                jobs[job["job_id"]] = {**{f: None for f in JOB_FIELDS}, **copy.deepcopy(job), "_stored": False}
                self._job_batch[job["job_id"]] = new.id
            created_sk = _created_sk(new)
            self._batches[new.id] = {
                **copy.deepcopy(batch), "pipelines": _json(batch["pipelines"]),
                "_created_sk": created_sk, "_files_sk": f"{new.total_files:06d}#{created_sk}",
                "_search": naming.search_text(new.customer_prefix, new.base_directory_name, new.description),
                "_shard": OPEN, "_listed": True,
            }
            n = new.total_files
            self._add(new.owner, total_batches=1, **{QUEUED: 1}, files_current=n, total_files_all_time=n)
            self._changed(None, new.id)
            self._materialize(new.id, 0)
        return batch

    def get_batch(self, batch_id: str, counts: bool = True) -> dict | None:   # counts are on the record here
        with self._lock:
            found = self._batches.get(batch_id)
            return _public(found) if found else None

    def settled_batch(self, batch_id: str, after: int | None = None) -> dict | None:
        batch = self.get_batch(batch_id)
        if batch is None or batch["status"] == DELETING:
            return None
        if batch["status"] in FINAL_STATUSES:
            return batch
        done = batch["succeeded"] + batch["failed"] + batch["cancelled"]
        return batch if done >= batch["total_files"] else None

    def update_batch_fields(self, batch: dict, changes: dict, now: str) -> dict | None:
        """Description and integration fields (None removes one) in any status but deleting; the
        search text follows the description."""
        with self._lock:
            stored = self._batches.get(batch["id"])
            if stored is None or stored["status"] == DELETING:
                return None
            old = _public(stored)
            stored.update({name: _json(value) for name, value in changes.items()}, updated_at=now)
            if "description" in changes:
                stored["_search"] = naming.search_text(batch["customer_prefix"], batch["base_directory_name"],
                                                       changes["description"])
            self._changed(old, batch["id"])
            return _public(stored)

    def list_batches(self, query: BatchQuery, start: dict | None = None) -> Page:
        """One page from the entries DynamoDB's matching index would hold, read as the repository
        reads them: pages of `limit` entries, or with a search pages of min(budget, 5 x limit,
        at least 100) filtered by the search, until the page is full or the budget is spent."""
        with self._lock:
            entries = self._index_entries(query)
            if start is not None:
                after = start["after"]
                entries = [e for e in entries if (e[0] > after if query.ascending else e[0] < after)]
            needle = query.search.casefold() if query.search else None
            limit, budget = query.limit, self.search_scan_budget
            page_size = min(budget, max(limit * 5, 100)) if needle else limit
            items, last_key, scanned, at = [], None, 0, 0
            while True:
                page = entries[at:at + page_size]
                at += len(page)
                scanned += len(page)
                page_end = {"after": page[-1][0]} if page and at < len(entries) else None
                matches = [e for e in page if needle is None or needle in e[1]["_search"]]
                full = False
                for n, (sort_value, batch) in enumerate(matches, 1):
                    items.append(batch)
                    if len(items) == limit:
                        more = n < len(matches) or page_end is not None
                        last_key = {"after": sort_value} if more else None
                        full = True
                        break
                if full:
                    break
                last_key = page_end
                if last_key is not None and scanned < budget:
                    continue
                break
            return Page([_public(b) for b in items], last_key, scanned, len(items))

    def _index_entries(self, query: BatchQuery) -> list[tuple[str, dict]]:
        """(sort key, batch) of the owner's listed batches in the query's partition, in order."""
        sort = query.sort_by
        if sort == "status" and query.status:   # one status: sorting by status is sorting by creation
            sort = "created_at"
        wanted_prefix = prefix_key(query.customer_prefix) if query.customer_prefix else None
        entries = []
        for b in self._batches.values():
            if not b["_listed"] or b["owner"] != query.owner:
                continue
            if query.status and b["status"] != query.status:
                continue
            if wanted_prefix is not None and prefix_key(b["customer_prefix"]) != wanted_prefix:
                continue
            key = {"created_at": b["_created_sk"], "total_files": b["_files_sk"],
                   "status": f"{STATUS_RANK[b['status']]}#{b['_created_sk']}"}[sort]
            entries.append((key, b))
        entries.sort(key=lambda e: e[0], reverse=not query.ascending)
        return entries

    def mark_deleting(self, batch: dict, now: str) -> bool:
        """The first step of a delete: out of every list and figure, under the status the batch
        has now (False when it moved since `batch` was read)."""
        with self._lock:
            stored = self._batches.get(batch["id"])
            if stored is None or stored["status"] != batch["status"] or stored["status"] == DELETING:
                return False
            self._add(stored["owner"], total_batches=-1, **{stored["status"]: -1},
                      files_current=-int(stored["total_files"]))
            old = _public(stored)
            stored.update(status=DELETING, updated_at=now, owner=None, _shard=DELETING, _listed=False)
            self._changed(old, batch["id"])
            return True

    def sync_counters(self, batch_id: str) -> None:
        """Nothing to do: every transition here looks at the batch itself."""

    def purge_batch(self, batch_id: str) -> None:
        """Jobs, then the batch itself if it is marked deleting (DynamoDB's purge removes the jobs
        whatever the batch's status; callers only purge batches marked deleting). Idempotent."""
        with self._lock:
            for job_id in self._jobs.pop(batch_id, {}):
                if self._job_batch.get(job_id) == batch_id:
                    del self._job_batch[job_id]
            self._chunks_done.pop(batch_id, None)
            if batch_id in self._batches and self._batches[batch_id]["status"] == DELETING:
                old = _public(self._batches.pop(batch_id))
                self._changed(old, batch_id)

    def _sparse(self, shard: str, before: str | None = None) -> list[str]:
        with self._lock:
            found = [(b["upload_expires_at"], b["id"]) for b in self._batches.values()
                     if b["_shard"] == shard and (before is None or b["upload_expires_at"] <= before)]
        return [batch_id for _, batch_id in sorted(found)]

    def expired_batches(self, before: str) -> Iterable[str]:
        return iter(self._sparse(OPEN, before))

    def interrupted_cancels(self) -> Iterable[str]:
        return iter(self._sparse(CANCELLING))

    def interrupted_deletes(self) -> Iterable[str]:
        return iter(self._sparse(DELETING))

    # -- the job's life ---------------------------------------------------------------------
    def _job_and_batch(self, job: dict, upsert: bool = False) -> tuple[dict | None, dict | None]:
        """The job's record and its batch. A job not materialised has no record, so a transition
        that conditions on it finds nothing; one that writes the whole job (`upsert`) may move it."""
        stored = self._jobs.get(job["batch_id"], {}).get(job["job_id"])
        if stored is not None and not stored["_stored"] and not upsert:
            stored = None
        return stored, self._batches.get(job["batch_id"])

    @staticmethod
    def _open(batch: dict | None) -> bool:
        return batch is not None and batch["status"] in (QUEUED, PROCESSING)

    def claim_upload(self, job: dict, now: str) -> bool:
        with self._lock:
            stored, batch = self._job_and_batch(job)
            if stored is None or stored["status"] != JOB_AWAITING or stored["key"] != job["key"] \
                    or not self._open(batch):
                return False   # moved on, not this object's, or the batch is closed
            stored.update(status=JOB_PROCESSING, updated_at=now, started_at=now, attempt=1)
            batch.update(uploaded=batch["uploaded"] + 1, updated_at=now)
            return True

    def finish_job(self, job: dict, attempt: int, now: str, outputs: list | None = None,
                   error: tuple[str, str] | None = None, preview: dict | None = None) -> bool | str:
        """MAYBE_DONE for the file that completes the batch (DynamoDB also answers it for the last
        file of each bucket: the port allows more, never fewer)."""
        with self._lock:
            stored, batch = self._job_and_batch(job)
            if stored is None or stored["status"] != JOB_PROCESSING or stored["attempt"] != attempt \
                    or not self._open(batch):
                return False
            if error:
                stored.update(status=JOB_FAILED, error_code=error[0], error_message=error[1], outputs=None,
                              preview=None)
                batch["failed"] += 1
            else:
                stored.update(status=JOB_COMPLETED, outputs=_json(outputs), error_code=None, error_message=None,
                              preview=_json(preview) if preview else None)
                batch["succeeded"] += 1
            stored.update(updated_at=now, completed_at=now)
            batch["updated_at"] = now
            done = batch["succeeded"] + batch["failed"] + batch["cancelled"]
            return MAYBE_DONE if done >= batch["total_files"] else True

    def expire_job(self, job: dict, now: str, message: str) -> bool:
        with self._lock:
            stored, batch = self._job_and_batch(job, upsert=True)
            if stored is None or stored["status"] != JOB_AWAITING or not self._open(batch):
                return False
            stored.update(status=JOB_FAILED, updated_at=now, completed_at=now, error_code="upload_expired",
                          error_message=message, attempt=0, _stored=True)
            batch.update(failed=batch["failed"] + 1, updated_at=now)
            return True

    def reopen_job(self, job: dict, now: str, mark_batch: bool = True) -> bool:
        """failed -> processing (new attempt) while the batch is open; a job whose upload was never
        counted (it expired first) counts it now. `job`'s attempt is the one expected."""
        attempt = int(job.get("attempt") or 0)
        with self._lock:
            stored, batch = self._job_and_batch(job)
            if stored is None or stored["status"] != JOB_FAILED or stored["attempt"] != attempt \
                    or not self._open(batch):
                return False
            stored.update(status=JOB_PROCESSING, updated_at=now, attempt=attempt + 1, error_code=None,
                          error_message=None, completed_at=None, started_at=now)
            batch.update(failed=batch["failed"] - 1, updated_at=now)
            if mark_batch:
                batch["reopens"] = int(batch.get("reopens") or 0) + 1
            if attempt == 0:
                batch["uploaded"] += 1
            return True

    def cancel_job(self, job: dict, now: str) -> bool:
        with self._lock:
            stored, batch = self._job_and_batch(job, upsert=True)
            if stored is None or stored["status"] not in (JOB_AWAITING, JOB_PROCESSING) \
                    or batch is None or batch["status"] != CANCELLED:
                return False
            stored.update(status=JOB_CANCELLED, updated_at=now, completed_at=now, _stored=True)
            batch.update(cancelled=batch["cancelled"] + 1, updated_at=now)
            return True

    # -- the batch's life ------------------------------------------------------------------
    def _move_batch(self, batch_id: str, old: str, new: str, now: str, **writes) -> bool:
        """old -> new with the owner's figures. A batch being deleted moves nowhere: it is out of
        every figure already (DynamoDB's repository raises instead; see tests/contract)."""
        if old == new:   # DynamoDB refuses an update that moves one figure twice
            raise ValueError(f"batch {batch_id} cannot move from {old} to {new}")
        with self._lock:
            stored = self._batches.get(batch_id)
            if stored is None or stored["status"] != old or old == DELETING:
                return False
            self._add(stored["owner"], **{old: -1})
            self._add(stored["owner"], **{new: 1})
            before = _public(stored)
            stored.update(status=new, updated_at=now, **writes)
            self._changed(before, batch_id)
            return True

    def start_batch(self, batch: dict, now: str) -> bool:
        return self._move_batch(batch["id"], QUEUED, PROCESSING, now, started_at=now)

    def finalize(self, batch: dict, status: str, now: str) -> bool:
        """The final status, once: a cancelled batch stays in the sweep's set until its jobs are.
        Not after a retry reopened a file since `batch` was read (its counts are stale then)."""
        with self._lock:
            stored = self._batches.get(batch["id"])
            if status != CANCELLED and stored is not None and (
                    int(stored.get("reopens") or 0) != int(batch.get("reopens") or 0) or stored.get("retrying")):
                return False
            return self._move_batch(batch["id"], batch["status"], status, now, completed_at=now,
                                    _shard=CANCELLING if status == CANCELLED else None)

    def reopen_batch(self, batch: dict, now: str) -> bool:
        return self._move_batch(batch["id"], batch["status"], PROCESSING, now, completed_at=None, _shard=OPEN)

    def begin_retry(self, batch: dict, now: str) -> bool:
        if batch["status"] == CANCELLED:
            return False
        if batch["status"] in FINAL_STATUSES:
            return self._move_batch(batch["id"], batch["status"], PROCESSING, now, completed_at=None, _shard=OPEN,
                                    retrying=RETRY_PENDING)
        with self._lock:
            stored = self._batches.get(batch["id"])
            if stored is None or stored["status"] != batch["status"] or stored["status"] not in (QUEUED, PROCESSING):
                return False
            before = _public(stored)
            stored.update(retrying=RETRY_PENDING, updated_at=now)
            self._changed(before, batch["id"])
            return True

    def take_retry(self, batch_id: str, token: str, now: str, stale_before: str) -> bool:
        with self._lock:
            stored = self._batches.get(batch_id)
            mark = stored.get("retrying") if stored is not None else None
            if mark is None or (mark != RETRY_PENDING and stored["updated_at"] >= stale_before):
                return False
            before = _public(stored)
            stored.update(retrying=token, updated_at=now)
            self._changed(before, batch_id)
            return True

    def end_retry(self, batch_id: str, token: str) -> bool:
        with self._lock:
            stored = self._batches.get(batch_id)
            if stored is None or stored.get("retrying") != token:
                return False
            before = _public(stored)
            del stored["retrying"]
            stored["reopens"] = int(stored.get("reopens") or 0) + 1
            self._changed(before, batch_id)
            return True

    def settle_cancel(self, batch_id: str) -> None:
        with self._lock:
            stored = self._batches.get(batch_id)
            if stored is not None and stored["status"] == CANCELLED and stored["_shard"] is not None:
                old = _public(stored)   # the same fields: only the sweep's set changes
                stored["_shard"] = None
                self._changed(old, batch_id)

    # -- jobs ---------------------------------------------------------------------------------
    def get_jobs(self, batch_id: str, job_ids: Sequence[str]) -> dict[str, dict]:
        return {j: job for j in job_ids if (job := self.get_job(batch_id, j)) is not None}

    def materialize_jobs(self, batch: dict, chunk: int) -> int:
        with self._lock:
            return self._materialize(batch["id"], chunk)

    def _materialize(self, batch_id: str, chunk: int) -> int:
        """Records for the chunk's jobs that have none (never overwriting one a transition wrote);
        a chunk once done, or one the batch does not have, writes nothing."""
        jobs = self._jobs.get(batch_id)
        done = self._chunks_done.setdefault(batch_id, set())
        if not jobs or chunk in done or not 0 <= chunk < buckets.chunk_count(len(jobs)):
            return 0
        written = 0
        for job in jobs.values():
            if buckets.chunk_of(job["position"]) == chunk and not job["_stored"]:
                job["_stored"] = True
                written += 1
        done.add(chunk)
        return written

    def get_job(self, batch_id: str, job_id: str) -> dict | None:
        with self._lock:
            found = self._jobs.get(batch_id, {}).get(job_id)
            return _public(found) if found and found["_stored"] else None

    def find_job(self, job_id: str) -> dict | None:
        with self._lock:
            batch_id = self._job_batch.get(job_id)
            return self.get_job(batch_id, job_id) if batch_id else None

    def all_jobs(self, batch_id: str) -> Iterable[dict]:
        """In file order (as the manifest gives it)."""
        with self._lock:
            jobs = sorted(self._jobs.get(batch_id, {}).values(), key=lambda j: j["position"])
            return iter([_public(j) for j in jobs])

    def jobs_with_status(self, batch_id: str, statuses: Sequence[str]) -> Iterable[dict]:
        """In file order, as all_jobs."""
        return iter([j for j in self.all_jobs(batch_id) if j["status"] in statuses])

    @staticmethod
    def jobs_after(job: dict) -> dict:
        # as the DynamoDB repository's: a page starts at the position its key names
        return {"position": int(job["position"]) + 1}

    def list_jobs(self, batch_id: str, limit: int, start_key: dict | None) -> Page:
        """A batch's jobs in file order."""
        with self._lock:
            jobs = sorted(self._jobs.get(batch_id, {}).values(), key=lambda j: j["position"])
            if start_key is not None:
                jobs = [j for j in jobs if j["position"] >= int(start_key["position"])]
            page = jobs[:limit]
            last = self.jobs_after(page[-1]) if len(page) == limit and len(jobs) > limit else None
            return Page([_public(j) for j in page], last, len(page), len(page))

    def jobs_by_status(self, owner: str, status: str, limit: int, start_key: dict | None) -> Page:
        """An owner's jobs in one status, most recently changed first (across batches)."""
        with self._lock:
            entries = sorted(((f"{j['updated_at']}#{j['job_id']}", j) for jobs in self._jobs.values()
                              for j in jobs.values() if j["_stored"] and j["owner"] == owner
                              and j["status"] == status),
                             key=lambda e: e[0], reverse=True)
            if start_key is not None:
                entries = [e for e in entries if e[0] < start_key["after"]]
            page = entries[:limit]
            last = {"after": page[-1][0]} if len(page) == limit and len(entries) > limit else None
            return Page([_public(j) for _, j in page], last, len(page), len(page))

    # -- archive builds ---------------------------------------------------------------------
    # A marker per (batch, fingerprint): started_at (moved by every sign of progress), and once the
    # build runs in parts its upload id and the tasks counted. A claim writes a fresh marker.
    def claim_archive_build(self, batch_id: str, fingerprint: str, now: str, stale_before: str) -> bool:
        with self._lock:
            marker = self._build_locks.get((batch_id, fingerprint))
            if marker is not None and not marker["started_at"] < stale_before:
                return False
            self._build_locks[(batch_id, fingerprint)] = {"started_at": now, "upload_id": None, "tasks": set()}
            return True

    def release_archive_build(self, batch_id: str, fingerprint: str) -> None:
        with self._lock:
            self._build_locks.pop((batch_id, fingerprint), None)

    # -- drop folders -------------------------------------------------------------------------
    def claim_drop_folder(self, owner: str, folder: str, batch_id: str, now: str, stale_before: str) -> bool:
        with self._lock:
            held = self._drop_folders.get((owner, folder))
            if held is not None and not (held["batch_id"] == batch_id and held["state"] == "creating"
                                         and held["updated_at"] < stale_before):
                return False
            self._drop_folders[(owner, folder)] = {"batch_id": batch_id, "state": "creating", "updated_at": now}
            return True

    def drop_folder_created(self, owner: str, folder: str, batch_id: str, now: str) -> None:
        with self._lock:
            held = self._drop_folders.get((owner, folder))
            if held is not None and held["batch_id"] == batch_id:
                held.update(state="created", updated_at=now)

    def drop_folder(self, owner: str, folder: str) -> dict | None:
        with self._lock:
            held = self._drop_folders.get((owner, folder))
            return dict(held) if held else None

    def release_drop_folder(self, owner: str, folder: str, batch_id: str) -> None:
        with self._lock:
            held = self._drop_folders.get((owner, folder))
            if held is not None and held["batch_id"] == batch_id:
                del self._drop_folders[(owner, folder)]

    def start_archive_upload(self, batch_id: str, fingerprint: str, upload_id: str, now: str) -> bool:
        with self._lock:
            marker = self._build_locks.get((batch_id, fingerprint))
            if marker is None or marker["upload_id"] is not None:
                return False
            marker.update(upload_id=upload_id, started_at=now)
            return True

    def count_archive_task(self, batch_id: str, fingerprint: str, upload_id: str, task: int,
                           now: str) -> int | None:
        with self._lock:
            marker = self._build_locks.get((batch_id, fingerprint))
            if marker is None or marker["upload_id"] != upload_id:
                return None
            marker["tasks"].add(int(task))
            marker["started_at"] = now
            return len(marker["tasks"])

    def finish_archive_build(self, batch_id: str, fingerprint: str, upload_id: str) -> bool:
        with self._lock:
            marker = self._build_locks.get((batch_id, fingerprint))
            if marker is None or marker["upload_id"] != upload_id:
                return False
            del self._build_locks[(batch_id, fingerprint)]
            return True

    # -- API tokens ---------------------------------------------------------------------------
    def owner_for_token(self, digest: str) -> str | None:
        with self._lock:
            return self._tokens.get(digest)

    def save_token(self, digest: str, owner: str) -> None:
        with self._lock:
            self._tokens[digest] = owner


class NoSuchKey(KeyError):
    """The object is not stored (S3's NoSuchKey)."""


class EntityTooSmall(ValueError):
    """S3 refuses to complete an upload whose parts before the last are under its minimum."""


class _Body:
    """A stored object's bytes as botocore's StreamingBody reads them."""

    def __init__(self, data: bytes):
        self._stream = io.BytesIO(data)

    def read(self, amount: int | None = None) -> bytes:
        return self._stream.read(amount)

    def iter_chunks(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        while chunk := self._stream.read(chunk_size):
            yield chunk

    def close(self) -> None:
        self._stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class MemoryStorage:
    """ports.ObjectStore, ports.PresignedMultipart (clients' uploads in parts) and
    ports.MultipartStore (archive builds) in memory. Presigned URLs point at a host that does not
    exist (`.invalid`): nothing outside the process can use them; tests upload parts with
    `put_part(url, data)`. As on moto, a part of another size than its URL was signed for is
    accepted (S3 itself refuses it: the URL signs Content-Length).

    Multipart uploads follow S3: parts are sent by number in any order (a part sent again
    replaces itself), nothing is visible until the upload is completed, a completed or aborted
    upload is gone (UploadGone), and every part but the last must be at least `min_part_size`
    (S3's 5 MiB; a test lowers it as tests/functional lowers moto's). Where moto is laxer than
    S3 the fake follows S3 (tests/contract cannot hold moto to it): an upload id belongs to its
    key, and a copied range must lie inside its source."""

    min_part_size = MIN_PART_SIZE

    def __init__(self, bucket: str = "imgbatch-memory"):
        self.bucket = bucket
        self.origin = f"https://{bucket}.storage.invalid"
        self._lock = threading.Lock()
        self._objects: dict[str, dict] = {}
        self._uploads: dict[str, dict] = {}    # upload id -> key, object fields, initiated, parts by number
        self._ticks = itertools.count()

    def presign_upload(self, key: str, size: int, content_type: str, expires_in: int) -> dict:
        """A POST form with the policy S3 would enforce: the exact key, size and content type."""
        policy = {"expires_in": expires_in, "conditions": [
            {"bucket": self.bucket}, {"key": key}, {"Content-Type": content_type},
            ["content-length-range", size, size]]}
        encoded = base64.b64encode(json.dumps(policy).encode()).decode()
        return {"url": f"{self.origin}/", "fields": {"Content-Type": content_type, "key": key, "policy": encoded}}

    def presign_download(self, key: str, expires_in: int, file_name: str | None = None) -> str:
        url = f"{self.origin}/{quote(key)}?expires_in={expires_in}"
        return url + (f"&file_name={quote(file_name, safe='')}" if file_name else "")

    def browser_origins(self, probe_key: str) -> list[str]:
        return [self.origin]

    def head(self, key: str) -> dict | None:
        with self._lock:
            found = self._objects.get(key)
        if found is None:
            return None
        head = {"ContentLength": len(found["data"]), "ContentType": found["content_type"],
                "ETag": _etag(found["data"]), "LastModified": found.get("modified")}
        if found.get("disposition"):
            head["ContentDisposition"] = found["disposition"]
        return head

    def fetch(self, key: str) -> tuple[int, _Body] | None:
        with self._lock:
            found = self._objects.get(key)
        return None if found is None else (len(found["data"]), _Body(found["data"]))

    def read_chunks(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        found = self.fetch(key)
        if found is None:
            raise NoSuchKey(key)
        with found[1] as body:
            yield from body.iter_chunks(chunk_size)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        with self._lock:
            self._objects[key] = {"data": bytes(data), "content_type": content_type, "modified": self._now()}

    def _now(self) -> datetime:
        """LastModified: strictly later for every write (S3's has whole seconds)."""
        return datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=next(self._ticks))

    def write_stream(self, key: str, chunks: Iterable[bytes], content_type: str,
                     file_name: str | None = None) -> dict:
        """Stored only once every chunk has come: a failing stream leaves nothing (S3 aborts the
        multipart upload). Reports the parts S3 would have received."""
        buffer = io.BytesIO()
        for chunk in chunks:
            buffer.write(chunk)
        data = buffer.getvalue()
        record = {"data": data, "content_type": content_type, "modified": self._now()}
        if file_name:
            record["disposition"] = content_disposition(file_name)
        with self._lock:
            self._objects[key] = record
        parts = 0 if len(data) < PART_SIZE else -(-len(data) // PART_SIZE)
        return {"key": key, "size": len(data), "parts": parts}

    def delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            doomed = [k for k in self._objects if k.startswith(prefix)]
            for key in doomed:
                del self._objects[key]
            return len(doomed)

    def list_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        with self._lock:
            found = sorted((k, len(o["data"])) for k, o in self._objects.items() if k.startswith(prefix))
        return iter(found)

    # -- multipart uploads (ports.PresignedMultipart) ------------------------------------------
    def start_multipart(self, key: str, content_type: str) -> str:
        upload_id = uuid.uuid4().hex
        with self._lock:   # S3 keeps Initiated to the second; a tick keeps the fake's order strict
            initiated = self._now()
            self._uploads[upload_id] = {"key": key, "object": {"content_type": content_type},
                                        "initiated": initiated, "parts": {}}
        return upload_id

    def multipart_uploads(self, prefix: str) -> list[dict]:
        with self._lock:
            found = [{"key": u["key"], "upload_id": uid, "initiated": u["initiated"]}
                     for uid, u in self._uploads.items() if u["key"].startswith(prefix)]
        return sorted(found, key=lambda u: (u["initiated"], u["upload_id"]))

    def list_parts(self, key: str, upload_id: str) -> dict[int, dict] | None:
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is None or upload["key"] != key:
                return None
            return {n: {"size": len(data), "etag": _etag(data)} for n, data in sorted(upload["parts"].items())}

    def presign_part(self, key: str, upload_id: str, number: int, size: int, expires_in: int) -> str:
        return (f"{self.origin}/{quote(key)}?uploadId={upload_id}&partNumber={number}&content-length={size}"
                f"&expires_in={expires_in}")

    def put_part(self, url: str, data: bytes) -> str:
        """What a client's PUT to a presigned part URL does; the part's ETag."""
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        key, upload_id, number = unquote(parts.path[1:]), query["uploadId"][0], int(query["partNumber"][0])
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is None or upload["key"] != key:
                raise NoSuchKey(f"no multipart upload {upload_id} of {key}")
            upload["parts"][number] = bytes(data)
        return _etag(data)

    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is None or upload["key"] != key:
                raise NoSuchKey(f"no multipart upload {upload_id} of {key}")
            numbers = [n for n, _ in parts]
            if numbers != sorted(set(numbers)):
                raise ValueError("parts must be listed once each, in ascending order (InvalidPartOrder)")
            held = upload["parts"]
            for i, (number, etag) in enumerate(parts):
                if number not in held or _etag(held[number]) != etag:
                    raise ValueError(f"part {number} is not stored with that ETag (InvalidPart)")
                if i < len(parts) - 1 and len(held[number]) < self.min_part_size:
                    raise ValueError(f"part {number} is smaller than {self.min_part_size} bytes and not the last"
                                     " (EntityTooSmall)")
            self._objects[key] = {**upload["object"], "data": b"".join(held[n] for n in numbers),
                                  "modified": self._now()}
            del self._uploads[upload_id]

    def abort_multipart(self, key: str, upload_id: str) -> None:
        self.abort_upload(key, upload_id)

    # -- ports.MultipartStore ------------------------------------------------------------
    def read_range(self, key: str, start: int, length: int, object_size: int,
                   chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """As the S3 store's ranged GET: lazy (a generator, checked when first read), nothing to
        read for length 0, SourceChanged when the object is gone, another size than planned, or
        the range is not inside it."""
        if length == 0:
            return
        with self._lock:
            found = self._objects.get(key)
        if found is None:
            raise SourceChanged(f"{key} is gone or shorter than the {object_size} bytes planned")
        data = found["data"]
        if len(data) != object_size or start >= len(data) or start + length > len(data):
            raise SourceChanged(f"{key} is {len(data)} bytes now, planned as {object_size}")
        for at in range(start, start + length, chunk_size):
            yield data[at:min(at + chunk_size, start + length)]

    def start_upload(self, key: str, content_type: str, file_name: str | None = None) -> str:
        upload_id = uuid.uuid4().hex + uuid.uuid4().hex   # opaque, as S3's
        record = {"content_type": content_type}
        if file_name:
            record["disposition"] = content_disposition(file_name)
        with self._lock:
            self._uploads[upload_id] = {"key": key, "object": record, "initiated": self._now(), "parts": {}}
        return upload_id

    def _upload(self, key: str, upload_id: str) -> dict:
        """The unfinished upload (under the lock); UploadGone once completed or aborted."""
        upload = self._uploads.get(upload_id)
        if upload is None or upload["key"] != key:
            raise UploadGone(f"{key} upload {upload_id[:16]}... is gone")
        return upload

    def check_upload(self, key: str, upload_id: str) -> None:
        with self._lock:
            self._upload(key, upload_id)

    @staticmethod
    def _part_number(number: int) -> None:
        if not 1 <= number <= MAX_PARTS:
            raise ValueError(f"part number {number} is outside 1-{MAX_PARTS}")

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> None:
        self._part_number(number)
        with self._lock:
            self._upload(key, upload_id)["parts"][number] = bytes(body)

    def copy_part(self, key: str, upload_id: str, number: int, source_key: str, start: int, length: int) -> None:
        """UploadPartCopy of bytes [start, start + length) of the source. (S3 refuses a range
        that is not inside the source; moto cuts it short instead: the fake follows S3.)"""
        self._part_number(number)
        with self._lock:
            upload = self._upload(key, upload_id)
            source = self._objects.get(source_key)
            if source is None or start + length > len(source["data"]):
                raise SourceChanged(f"{source_key} is gone or shorter than planned")
            upload["parts"][number] = source["data"][start:start + length]

    def complete_upload(self, key: str, upload_id: str, parts: int) -> None:
        """Complete with parts 1..parts exactly (RuntimeError otherwise, as the S3 store's
        check); EntityTooSmall, leaving the upload as it was, when a part before the last is
        under the minimum."""
        with self._lock:
            upload = self._upload(key, upload_id)
            numbers = sorted(upload["parts"])
            if numbers != list(range(1, parts + 1)):
                missing = sorted(set(range(1, parts + 1)) - set(numbers))[:10]
                raise RuntimeError(f"{key}: {len(numbers)} parts listed, {parts} expected "
                                   f"(missing e.g. {missing}); not completing")
            bodies = [upload["parts"][n] for n in numbers]
            if any(len(b) < self.min_part_size for b in bodies[:-1]):
                raise EntityTooSmall(f"{key}: a part before the last is under {self.min_part_size} bytes")
            self._objects[key] = {**upload["object"], "data": b"".join(bodies), "modified": self._now()}
            del self._uploads[upload_id]

    def abort_upload(self, key: str, upload_id: str) -> None:
        with self._lock:
            upload = self._uploads.get(upload_id)
            if upload is not None and upload["key"] == key:
                del self._uploads[upload_id]

    def abort_multipart_uploads(self, prefix: str) -> int:
        uploads = self.multipart_uploads(prefix)
        for upload in uploads:
            self.abort_multipart(upload["key"], upload["upload_id"])
        return len(uploads)

    def abort_uploads(self, key: str, keep: str | None = None) -> int:
        with self._lock:
            doomed = [u for u, upload in self._uploads.items() if upload["key"] == key and u != keep]
            for upload_id in doomed:
                del self._uploads[upload_id]
            return len(doomed)

    # for tests: what is stored
    def uploads(self, key: str | None = None) -> list[str]:
        """The ids of unfinished multipart uploads (of `key`)."""
        with self._lock:
            return sorted(u for u, upload in self._uploads.items() if key is None or upload["key"] == key)

    def keys(self, prefix: str = "") -> list[str]:
        with self._lock:
            return sorted(k for k in self._objects if k.startswith(prefix))

    def data(self, key: str) -> bytes:
        with self._lock:
            return self._objects[key]["data"]


def _etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


class _Messages:
    def __init__(self):
        self._lock = threading.Lock()
        self._messages: list = []

    def _send(self, messages: list) -> None:
        with self._lock:
            self._messages.extend(messages)

    def take(self) -> list:
        """Every message sent since the last take, in the order sent (each is handed out once)."""
        with self._lock:
            taken, self._messages = self._messages, []
            return taken


class MemoryProcessingQueue(_Messages):
    """ports.ProcessingQueue: the upload keys to process (again)."""

    def enqueue_keys(self, keys: list[str], jobs: list[dict] | None = None) -> None:
        # take() hands out keys; the job states sent along are kept for inspection
        self.jobs = getattr(self, "jobs", []) + list(jobs or [])
        self._send(list(keys))


class MemoryArchiveQueue(_Messages):
    """ports.ArchiveQueue: archive builds requested, as the SQS adapter words them ({"batch_id",
    "partial"}, and "prebuild": true for a prebuild); take_tasks() for the parts queue's tasks."""

    def __init__(self):
        super().__init__()
        self._tasks = _Messages()

    def request_build(self, batch_id: str, partial: bool, prebuild: bool = False) -> None:
        message = {"batch_id": batch_id, "partial": partial}
        if prebuild:
            message["prebuild"] = True
        self._send([message])

    def request_prebuild(self, batch_id: str) -> None:
        self.request_build(batch_id, partial=False, prebuild=True)

    def request_tasks(self, tasks: list[dict]) -> None:
        self._tasks._send([_json(t) for t in tasks])

    def take_tasks(self) -> list[dict]:
        return self._tasks.take()


class MemoryMaintenanceQueue(_Messages):
    """ports.MaintenanceQueue: background steps, as the messages sent."""

    def send(self, message: dict) -> None:
        self._send([dict(message)])

    def send_many(self, messages: list[dict]) -> None:
        self._send([dict(m) for m in messages])
