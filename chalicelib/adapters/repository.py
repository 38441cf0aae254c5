"""DynamoDB repository on PynamoDB: the only module that knows item layouts and keys.

Returns plain dicts (attribute name -> value) so services never touch PynamoDB.
Atomicity comes from DynamoDB itself: conditional writes and TransactWrite.
"""
from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta, timezone
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from pynamodb.connection import Connection
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from ..domain.batches import (
    BATCH_STATUSES, CANCELLED, DELETING, JOB_AWAITING, JOB_CANCELLED, JOB_COMPLETED, JOB_FAILED, JOB_PROCESSING, PROCESSING,
    QUEUED,
)
from ..domain import naming
from ..domain.batches import BatchQuery, NewBatch
from ..domain.naming import prefix_key
from ..domain.pipelines import name_key
from ..ports import ConditionFailed, Page
from .models import Models, batch_index_name

STATUS_RANK = {s: i for i, s in enumerate(BATCH_STATUSES)}
JOB_WRITE_CHUNK = 250
TRANSACTION_ATTEMPTS = 10
RETRYABLE_CODES = frozenset({"TransactionConflict", "ThrottlingError", "ThrottlingException",
                             "ProvisionedThroughputExceeded", "ProvisionedThroughputExceededException",
                             "RequestLimitExceeded", "TransactionInProgressException"})
SORT_KEYS = {"created_at": "created_sk", "total_files": "files_sk", "status": "status_sk"}
SEARCH_SCAN_BUDGET = 1000  # index items examined per search request before handing back a cursor
# A batch being deleted keeps its item (so every transition can see it is going) but none of these:
# without them it is in no list index, so it leaves every list at once.
LIST_INDEX_KEYS = ("owner", "owner_status", "owner_prefix", "owner_status_prefix", "created_sk", "files_sk",
                   "status_sk")
# The sparse index's partitions: open batches (expiry), and cancels/deletes a crash left half-done.
OPEN, CANCELLING = "open", "cancelling"   # and DELETING, the status itself


@dataclass
class ReadMeter:
    """Items DynamoDB returned to us, so tests and benchmarks can check read cost."""
    index_items: int = 0
    items: int = 0
    requests: int = 0


def _conflict(exc: Exception) -> bool:
    if isinstance(exc, TransactWriteError):
        return any(r is not None and r.code == "ConditionalCheckFailed" for r in (exc.cancellation_reasons or []))
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


def _contended(exc: TransactWriteError) -> bool:
    reasons = [r.code for r in (exc.cancellation_reasons or []) if r is not None]
    return exc.cause_response_code in RETRYABLE_CODES or any(code in RETRYABLE_CODES for code in reasons)


class MetaKey:
    """The meta table holds four kinds of small items, told apart by the prefix of their key."""

    @staticmethod
    def counter(owner: str, prefix: str, batch_date: str) -> str:
        """`value`: the last batch-N of an owner's prefix on a day (ADD 1, atomic)."""
        return f"seq#{owner}#{prefix}#{batch_date}"

    @staticmethod
    def stats(owner: str) -> str:
        """An owner's figures: total_batches, one count per status, files_current (moved in the
        same transactions as the batches they count)."""
        return f"stats#{owner}"

    @staticmethod
    def token(digest: str) -> str:
        """`owner` of an API token, keyed by the token's SHA-256 (the token itself is never stored)."""
        return f"token#{digest}"

    @staticmethod
    def build_lock(batch_id: str, fingerprint: str) -> str:
        """`state`/`started_at` while one archive build of that content runs (expires by TTL)."""
        return f"archive#{batch_id}#{fingerprint}"

    @staticmethod
    def drop_folder(owner: str, folder: str) -> str:
        """`batch_id`, `state` and `started_at` (its last change) of the batch a drop folder
        became. Owner and folder are S3 key segments, so the "/" between them cannot be ambiguous."""
        return f"drop#{owner}/{folder}"


def batch_index_keys(owner: str, prefix: str, status: str, created_sk: str) -> dict:
    return {
        "owner_status": f"{owner}#{status}",
        "owner_status_prefix": f"{owner}#{status}#{prefix_key(prefix)}",
        "status_sk": f"{STATUS_RANK[status]}#{created_sk}",
    }


def _update(item, actions: list, condition=None) -> tuple:
    return ("update", item, {"actions": actions, "condition": condition})


def _save(item, condition=None) -> tuple:
    return ("save", item, {"condition": condition})


def _delete(item, condition=None) -> tuple:
    return ("delete", item, {"condition": condition})


def _plain(item) -> dict:
    return {name: getattr(item, name) for name in item.get_attributes()}


class DynamoRepository:
    """ports.Repository on DynamoDB (PynamoDB models from adapters/models.py)."""

    def __init__(self, models: Models, connection: Connection):
        self.m = models
        self.conn = connection
        self.meter = ReadMeter()

    def _transact(self, *writes: tuple) -> bool:
        """Apply the writes in one DynamoDB transaction; False when a condition fails.
        Conflicts with a concurrent transaction on the same item (the batch counters under
        parallel Lambdas) are retried here with jittered backoff: botocore does not retry
        them, and a failed SQS record would otherwise wait out the 16-minute visibility timeout."""
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                with TransactWrite(connection=self.conn) as tx:
                    for method, item, kwargs in writes:
                        getattr(tx, method)(item, **kwargs)
                return True
            except TransactWriteError as exc:
                if _conflict(exc):
                    return False
                if not _contended(exc) or attempt == TRANSACTION_ATTEMPTS - 1:
                    raise
                time.sleep(random.uniform(0, min(1.0, 0.01 * 2 ** attempt)))
        return False

    # -- pipelines -------------------------------------------------------
    def create_pipeline(self, owner: str, pid: str, spec: dict, now: str) -> dict:
        P = self.m.Pipeline
        item = P(owner, f"pipeline#{pid}", id=pid, spec=spec, created_at=now, updated_at=now)
        guard = P(owner, f"name#{name_key(spec['name'])}", id=pid)
        if not self._transact(_save(item, P.sk.does_not_exist()), _save(guard, P.sk.does_not_exist())):
            raise ConditionFailed("name taken")
        return self._pipeline(item)

    def get_pipeline(self, owner: str, pid: str) -> dict | None:
        try:
            return self._pipeline(self.m.Pipeline.get(owner, f"pipeline#{pid}", consistent_read=True))
        except DoesNotExist:
            return None

    def get_pipelines(self, owner: str, pids: Sequence[str]) -> dict[str, dict]:
        found = self.m.Pipeline.batch_get([(owner, f"pipeline#{p}") for p in pids], consistent_read=True)
        return {p["id"]: p for p in map(self._pipeline, found)}

    def list_pipelines(self, owner: str) -> list[dict]:
        P = self.m.Pipeline
        return [self._pipeline(p) for p in P.query(owner, P.sk.startswith("pipeline#"))]

    def replace_pipeline(self, owner: str, pid: str, old_name: str, spec: dict, now: str) -> dict:
        P = self.m.Pipeline
        writes = [_update(P(owner, f"pipeline#{pid}"), [P.spec.set(spec), P.updated_at.set(now)], P.sk.exists())]
        if name_key(old_name) != name_key(spec["name"]):
            writes += [_delete(P(owner, f"name#{name_key(old_name)}"), P.id == pid),
                       _save(P(owner, f"name#{name_key(spec['name'])}", id=pid), P.sk.does_not_exist())]
        if not self._transact(*writes):
            raise ConditionFailed("name taken or pipeline gone")
        return self.get_pipeline(owner, pid)

    def delete_pipeline(self, owner: str, pid: str, name: str) -> None:
        P = self.m.Pipeline
        if not self._transact(_delete(P(owner, f"pipeline#{pid}"), P.sk.exists()),
                              _delete(P(owner, f"name#{name_key(name)}"), P.id == pid)):
            raise ConditionFailed("pipeline gone")

    @staticmethod
    def _pipeline(item) -> dict:
        return {"id": item.id, **item.spec, "created_at": item.created_at, "updated_at": item.updated_at}

    # -- counters and aggregates -----------------------------------------
    def next_counter(self, owner: str, prefix: str, batch_date: str) -> int:
        M = self.m.Meta
        item = M(MetaKey.counter(owner, prefix, batch_date))
        item.update(actions=[M.value.add(1)])  # atomic; DynamoDB returns the new value
        return int(item.value)

    def stats(self, owner: str) -> dict:
        try:
            item = _plain(self.m.Meta.get(MetaKey.stats(owner), consistent_read=True))
        except DoesNotExist:
            item = {}
        B = self.m.Batch
        top = list(B.query(owner, index_name=batch_index_name("owner", "files_sk"),
                           scan_index_forward=False, limit=1))
        self.meter.index_items += len(top)
        item["max_files_in_batch"] = int(top[0].files_sk.split("#", 1)[0]) if top else 0
        return {k: int(v) if isinstance(v, (int, float)) else v for k, v in item.items() if v is not None}

    def _stats_update(self, owner: str):
        return self.m.Meta(MetaKey.stats(owner))

    # -- batches ---------------------------------------------------------
    def create_batch(self, new: NewBatch) -> dict:
        """Jobs first, then the batch with its aggregates in one transaction: a crash
        in between leaves only unreachable job items, never a batch without jobs.
        Returns the batch as services see it."""
        B, M = self.m.Batch, self.m.Meta
        batch = new.record()
        created_sk = f"{new.created.astimezone(timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{new.id}"
        item = {
            **batch, "search_text": naming.search_text(new.customer_prefix, new.base_directory_name, new.description),
            "owner_prefix": f"{new.owner}#{prefix_key(new.customer_prefix)}", "created_sk": created_sk,
            "files_sk": f"{new.total_files:06d}#{created_sk}", "open_shard": OPEN,
            **batch_index_keys(new.owner, new.customer_prefix, QUEUED, created_sk),
        }
        item = {k: v for k, v in item.items() if v is not None}
        jobs = [{**job, "owner_status": f"{new.owner}#{JOB_AWAITING}",
                 "updated_sk": f"{job['created_at']}#{job['job_id']}"} for job in new.job_records()]
        chunks = [jobs[i:i + JOB_WRITE_CHUNK] for i in range(0, len(jobs), JOB_WRITE_CHUNK)]
        # BatchWriteItem takes 25 items a call; a 10,000-file batch is 400 calls,
        # so they go out in parallel to stay well inside API Gateway's 29 s.
        with ThreadPoolExecutor(max_workers=min(8, len(chunks) or 1)) as pool:
            list(pool.map(self._write_jobs, chunks))
        n = new.total_files
        if not self._transact(
                _save(B(**item), B.id.does_not_exist()),
                _update(self._stats_update(new.owner), [
                    M.total_batches.add(1), getattr(M, QUEUED).add(1),
                    M.files_current.add(n), M.total_files_all_time.add(n)])):
            raise ConditionFailed("batch id already exists")
        return batch

    def _write_jobs(self, jobs: list[dict]) -> None:
        J = self.m.Job
        with J.batch_write() as writer:
            for job in jobs:
                writer.save(J(**job))

    def get_batch(self, batch_id: str) -> dict | None:
        try:
            return _plain(self.m.Batch.get(batch_id, consistent_read=True))
        except DoesNotExist:
            return None

    @staticmethod
    def _batch_partition(q: BatchQuery) -> tuple[str, str]:
        """The list index partition that narrows to exactly this query's filters."""
        if q.status and q.customer_prefix:
            return "owner_status_prefix", f"{q.owner}#{q.status}#{prefix_key(q.customer_prefix)}"
        if q.status:
            return "owner_status", f"{q.owner}#{q.status}"
        if q.customer_prefix:
            return "owner_prefix", f"{q.owner}#{prefix_key(q.customer_prefix)}"
        return "owner", q.owner

    def list_batches(self, query: BatchQuery, start: dict | None = None) -> Page:
        """One page of an owner's batches from the index that matches the filters and the sort
        (never a table scan); `start` is a previous page's `last_key`."""
        B = self.m.Batch
        partition, value = self._batch_partition(query)
        sort = SORT_KEYS[query.sort_by]
        if sort == "status_sk" and query.status:   # one status: sorting by status is sorting by creation
            sort = "created_sk"
        search, limit = query.search, query.limit
        kwargs: dict[str, Any] = dict(index_name=batch_index_name(partition, sort), scan_index_forward=query.ascending,
                                      last_evaluated_key=start)
        if search:
            kwargs["filter_condition"] = B.search_text.contains(search.casefold())
            kwargs["page_size"] = min(SEARCH_SCAN_BUDGET, max(limit * 5, 100))
        else:
            kwargs["page_size"] = limit
        pages = B.query(value, **kwargs).page_iter
        ids, last_key, scanned = [], None, 0
        for page in pages:
            scanned += page.get("ScannedCount", 0)
            items = page.get("Items", [])
            for n, raw in enumerate(items, 1):
                ids.append(raw["id"]["S"])
                if len(ids) == limit:
                    more = n < len(items) or pages.last_evaluated_key is not None
                    last_key = {k: raw[k] for k in pages.key_names} if more else None
                    break
            else:
                last_key = pages.last_evaluated_key
                if last_key is not None and scanned < SEARCH_SCAN_BUDGET:
                    continue
            break
        fetched = self._batch_get(ids)
        self.meter.index_items += scanned
        return Page([fetched[i] for i in ids if i in fetched], last_key, scanned, len(fetched))

    def _batch_get(self, ids: Sequence[str]) -> dict[str, dict]:
        if not ids:
            return {}
        found = {b.id: _plain(b) for b in self.m.Batch.batch_get(ids, consistent_read=True)}
        self.meter.items += len(found)
        return found

    def mark_deleting(self, batch: dict, now: str) -> bool:
        """The first step of a delete, atomic with the owner's aggregates: the batch leaves every
        list index (its index keys go), stops every transition (they all condition on a status it no
        longer has) and is subtracted from the status it has *now*; False when the status moved
        since `batch` was read, so the caller reads again. The sweep finishes what a crash left."""
        if batch["status"] not in BATCH_STATUSES:   # already being deleted
            return False
        B, M = self.m.Batch, self.m.Meta
        hidden = [getattr(B, name).remove() for name in LIST_INDEX_KEYS]
        return self._transact(
            _update(B(batch["id"]), [B.status.set(DELETING), B.updated_at.set(now), B.open_shard.set(DELETING)]
                    + hidden, B.status == batch["status"]),
            _update(self._stats_update(batch["owner"]), [
                M.total_batches.add(-1), getattr(M, batch["status"]).add(-1),
                M.files_current.add(-int(batch["total_files"]))]))

    def purge_batch(self, batch_id: str) -> None:
        """Jobs, then the batch item itself; only for a batch already marked deleting. Idempotent."""
        J, B = self.m.Job, self.m.Batch
        keys = J.query(batch_id, attributes_to_get=["batch_id", "job_id"])
        with J.batch_write() as writer:
            for job in keys:
                writer.delete(job)
        try:
            B(batch_id).delete(condition=B.status == DELETING)
        except DeleteError as exc:
            if not _conflict(exc):
                raise

    def _sparse(self, partition: str) -> Iterable[str]:
        B = self.m.Batch
        for b in B.query(partition, index_name="open-expiry"):
            yield b.id

    def interrupted_cancels(self) -> Iterable[str]:
        """Cancelled batches whose jobs are not all cancelled yet (a crash cut the cancel short)."""
        return self._sparse(CANCELLING)

    def interrupted_deletes(self) -> Iterable[str]:
        """Batches marked for deletion whose records and objects are not all gone yet."""
        return self._sparse(DELETING)

    # -- state transitions ---------------------------------------------------
    def claim_upload(self, job: dict, now: str) -> bool:
        """awaiting_upload -> processing and the batch's `uploaded` += 1, atomically.
        False when the job already moved on (duplicate event) or the batch is final."""
        J, B = self.m.Job, self.m.Batch
        return self._transact(
            _update(J(job["batch_id"], job["job_id"]),
                    self._job_actions(job, JOB_PROCESSING, now) + [J.started_at.set(now), J.attempt.add(1)],
                    J.status == JOB_AWAITING),
            _update(B(job["batch_id"]), [B.uploaded.add(1), B.updated_at.set(now)], B.status.is_in(QUEUED, PROCESSING)))

    def _job_actions(self, job: dict, status: str, now: str) -> list:
        J = self.m.Job
        return [J.status.set(status), J.updated_at.set(now), J.owner_status.set(f"{job['owner']}#{status}"),
                J.updated_sk.set(f"{now}#{job['job_id']}")]

    def finish_job(self, job: dict, attempt: int, now: str, outputs: list | None = None,
                   error: tuple[str, str] | None = None, preview: dict | None = None) -> bool:
        """processing -> completed|failed and the batch counter += 1, in one transaction.
        The job condition (status and attempt) makes a redelivered event count once."""
        J, B = self.m.Job, self.m.Batch
        status = JOB_FAILED if error else JOB_COMPLETED
        actions = self._job_actions(job, status, now) + [J.completed_at.set(now)]
        if error:
            actions += [J.error_code.set(error[0]), J.error_message.set(error[1]), J.outputs.remove(),
                        J.preview.remove()]
        else:
            actions += [J.outputs.set(outputs), J.error_code.remove(), J.error_message.remove(),
                        J.preview.set(preview) if preview else J.preview.remove()]
        counter = B.failed if error else B.succeeded
        return self._transact(
            _update(J(job["batch_id"], job["job_id"]), actions, (J.status == JOB_PROCESSING) & (J.attempt == attempt)),
            _update(B(job["batch_id"]), [counter.add(1), B.updated_at.set(now)], B.status.is_in(QUEUED, PROCESSING)))

    def expire_job(self, job: dict, now: str, message: str) -> bool:
        """awaiting_upload -> failed(upload_expired), counted once."""
        J, B = self.m.Job, self.m.Batch
        actions = self._job_actions(job, JOB_FAILED, now) + [
            J.completed_at.set(now), J.error_code.set("upload_expired"), J.error_message.set(message)]
        return self._transact(
            _update(J(job["batch_id"], job["job_id"]), actions, J.status == JOB_AWAITING),
            _update(B(job["batch_id"]), [B.failed.add(1), B.updated_at.set(now)], B.status.is_in(QUEUED, PROCESSING)))

    def reopen_job(self, job: dict, now: str) -> bool:
        """failed -> processing for a retry (new attempt); the batch's failed count goes back down.
        A job that never had its upload counted (it expired before its file came) counts it now,
        so `uploaded` never falls behind `succeeded`. Only while the batch is open: a retry first
        reopens a final batch, so a cancel or delete in between makes this fail, not strand the job."""
        J, B = self.m.Job, self.m.Batch
        attempt = int(job.get("attempt") or 0)
        actions = self._job_actions(job, JOB_PROCESSING, now) + [
            J.attempt.add(1), J.error_code.remove(), J.error_message.remove(), J.completed_at.remove(),
            J.started_at.set(now)]
        counters = [B.failed.add(-1), B.updated_at.set(now)] + ([B.uploaded.add(1)] if attempt == 0 else [])
        return self._transact(
            _update(J(job["batch_id"], job["job_id"]), actions, (J.status == JOB_FAILED) & (J.attempt == attempt)),
            _update(B(job["batch_id"]), counters, B.status.is_in(QUEUED, PROCESSING)))

    def cancel_job(self, job: dict, now: str) -> bool:
        """awaiting_upload|processing -> cancelled with the batch's `cancelled` += 1, in one
        transaction, so a crash part-way through a cancel never leaves the count short."""
        J, B = self.m.Job, self.m.Batch
        return self._transact(
            _update(J(job["batch_id"], job["job_id"]),
                    self._job_actions(job, JOB_CANCELLED, now) + [J.completed_at.set(now)],
                    J.status.is_in(JOB_AWAITING, JOB_PROCESSING)),
            _update(B(job["batch_id"]), [B.cancelled.add(1), B.updated_at.set(now)], B.status == CANCELLED))

    def settle_cancel(self, batch_id: str) -> None:
        """Every job of a cancelled batch is accounted for: it leaves the sweep's index."""
        B = self.m.Batch
        try:
            B(batch_id).update(actions=[B.open_shard.remove()], condition=B.status == CANCELLED)
        except UpdateError as exc:
            if not _conflict(exc):
                raise

    def finalize(self, batch: dict, status: str, now: str) -> bool:
        """Write the final status and completed_at; the condition lets exactly one caller win.
        A cancelled batch stays in the sweep's index until its jobs are all cancelled."""
        B = self.m.Batch
        shard = B.open_shard.set(CANCELLING) if status == CANCELLED else B.open_shard.remove()
        return self._move_batch(batch, batch["status"], status, now, [B.completed_at.set(now), shard])

    def reopen_batch(self, batch: dict, now: str) -> bool:
        """A final batch goes back to processing (retry); completed_at is set again when it ends."""
        B = self.m.Batch
        return self._move_batch(batch, batch["status"], PROCESSING, now,
                                [B.completed_at.remove(), B.open_shard.set(OPEN)])

    def expired_batches(self, before: str) -> Iterable[str]:
        """Open batches past their upload deadline (a sparse, keys-only index: cheap to walk)."""
        B = self.m.Batch
        for b in B.query(OPEN, B.upload_expires_at <= before, index_name="open-expiry"):
            yield b.id

    def jobs_with_status(self, batch_id: str, statuses: Sequence[str]) -> Iterable[dict]:
        J = self.m.Job
        for job in J.query(batch_id, filter_condition=J.status.is_in(*statuses), consistent_read=True):
            yield _plain(job)

    def start_batch(self, batch: dict, now: str) -> bool:
        """queued -> processing, once; the aggregates move in the same transaction."""
        return self._move_batch(batch, QUEUED, PROCESSING, now, [self.m.Batch.started_at.set(now)])

    def _move_batch(self, batch: dict, old: str, new: str, now: str, extra: list) -> bool:
        if old not in BATCH_STATUSES:   # a batch being deleted goes nowhere else (and has no figure)
            return False
        B, M = self.m.Batch, self.m.Meta
        keys = batch_index_keys(batch["owner"], batch["customer_prefix"], new, batch["created_sk"])
        actions = [B.status.set(new), B.updated_at.set(now)] + [getattr(B, k).set(v) for k, v in keys.items()]
        return self._transact(
            _update(B(batch["id"]), actions + extra, B.status == old),
            _update(self._stats_update(batch["owner"]), [getattr(M, old).add(-1), getattr(M, new).add(1)]))

    # -- archives ----------------------------------------------------------------
    def all_jobs(self, batch_id: str) -> Iterable[dict]:
        for job in self.m.Job.query(batch_id, consistent_read=True):
            yield _plain(job)

    def claim_archive_build(self, batch_id: str, fingerprint: str, now: str, stale_before: str) -> bool:
        """One build per archive content; a build silent since `stale_before` may be taken over."""
        M = self.m.Meta
        marker = M(MetaKey.build_lock(batch_id, fingerprint), state="building", started_at=now)
        marker.expires = timedelta(days=1)
        try:
            marker.save(condition=M.id.does_not_exist() | (M.started_at < stale_before))
        except PutError as exc:
            if _conflict(exc):
                return False
            raise
        return True

    def release_archive_build(self, batch_id: str, fingerprint: str) -> None:
        self.m.Meta(MetaKey.build_lock(batch_id, fingerprint)).delete()

    # -- drop folders ------------------------------------------------------------
    def claim_drop_folder(self, owner: str, folder: str, batch_id: str, now: str, stale_before: str) -> bool:
        M = self.m.Meta
        claim = M(MetaKey.drop_folder(owner, folder), owner=owner, batch_id=batch_id, state="creating", started_at=now)
        stale = (M.batch_id == batch_id) & (M.state == "creating") & (M.started_at < stale_before)
        try:
            claim.save(condition=M.id.does_not_exist() | stale)
        except PutError as exc:
            if _conflict(exc):
                return False
            raise
        return True

    def drop_folder_created(self, owner: str, folder: str, batch_id: str, now: str) -> None:
        M = self.m.Meta
        try:
            M(MetaKey.drop_folder(owner, folder)).update(actions=[M.state.set("created"), M.started_at.set(now)],
                                                         condition=M.batch_id == batch_id)
        except UpdateError as exc:
            if not _conflict(exc):
                raise

    def drop_folder(self, owner: str, folder: str) -> dict | None:
        try:
            item = self.m.Meta.get(MetaKey.drop_folder(owner, folder), consistent_read=True)
        except DoesNotExist:
            return None
        return {"batch_id": item.batch_id, "state": item.state, "updated_at": item.started_at}

    def release_drop_folder(self, owner: str, folder: str, batch_id: str) -> None:
        M = self.m.Meta
        try:
            M(MetaKey.drop_folder(owner, folder)).delete(condition=M.batch_id == batch_id)
        except DeleteError as exc:
            if not _conflict(exc):
                raise

    # -- API tokens (stored hashed) -----------------------------------------
    def owner_for_token(self, digest: str) -> str | None:
        try:
            return self.m.Meta.get(MetaKey.token(digest)).owner
        except DoesNotExist:
            return None

    def save_token(self, digest: str, owner: str) -> None:
        self.m.Meta(MetaKey.token(digest), owner=owner).save()

    # -- jobs ------------------------------------------------------------
    @staticmethod
    def jobs_after(job: dict) -> dict:
        """The `last_key` a page of list_jobs ending with `job` would hand back."""
        return {"batch_id": {"S": job["batch_id"]}, "job_id": {"S": job["job_id"]},
                "position": {"N": str(job["position"])}}

    def list_jobs(self, batch_id: str, limit: int, start_key: dict | None) -> Page:
        """A batch's jobs in file order (the position index)."""
        J = self.m.Job
        result = J.query(batch_id, index_name="batch-position", limit=limit, page_size=limit,
                         last_evaluated_key=start_key, consistent_read=True)
        items = [_plain(j) for j in result]
        self.meter.items += len(items)
        last = result.last_evaluated_key if len(items) == limit else None
        return Page(items, last, len(items), len(items))

    def get_job(self, batch_id: str, job_id: str) -> dict | None:
        try:
            return _plain(self.m.Job.get(batch_id, job_id, consistent_read=True))
        except DoesNotExist:
            return None

    def find_job(self, job_id: str) -> dict | None:
        J = self.m.Job
        for key in J.query(job_id, index_name="job-id", limit=1):
            return self.get_job(key.batch_id, job_id)
        return None

    def jobs_by_status(self, owner: str, status: str, limit: int, start_key: dict | None) -> Page:
        J = self.m.Job
        result = J.query(f"{owner}#{status}", index_name="owner-status-updated", scan_index_forward=False,
                         limit=limit, page_size=limit, last_evaluated_key=start_key)
        keys = [(k.batch_id, k.job_id) for k in result]
        last = result.last_evaluated_key if len(keys) == limit else None
        found = {(j.batch_id, j.job_id): _plain(j) for j in J.batch_get(keys, consistent_read=True)} if keys else {}
        self.meter.index_items += len(keys)
        self.meter.items += len(found)
        # The index is eventually consistent: drop items whose status has moved on.
        items = [found[k] for k in keys if k in found and found[k]["status"] == status]
        return Page(items, last, len(keys), len(found))


