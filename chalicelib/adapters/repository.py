"""DynamoDB repository on PynamoDB: the only module that knows item layouts and keys.

Returns plain dicts (attribute name -> value) so services never touch PynamoDB.
Atomicity comes from DynamoDB itself: conditional writes and TransactWrite.
"""
from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta, timezone
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from pynamodb.connection import Connection
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from ..domain.batches import (
    BATCH_STATUSES, CANCELLED, DELETING, FINAL_STATUSES, JOB_AWAITING, JOB_CANCELLED, JOB_COMPLETED, JOB_FAILED,
    JOB_PROCESSING, PROCESSING, QUEUED,
)
from ..domain import naming
from ..domain.batches import BatchQuery, NewBatch
from ..domain.buckets import CHUNK_SIZE, SETTLED_FIRST_LOOK, bucket_of, chunk_count, chunk_of
from ..domain.keys import upload_key
from ..domain.naming import prefix_key
from ..domain.pipelines import name_key
from ..observability import NOOP, WRITES_RETRIED
from ..ports import MAYBE_DONE, ConditionFailed, Page
from .models import Models, batch_index_name

STATUS_RANK = {s: i for i, s in enumerate(BATCH_STATUSES)}
JOB_WRITE_CHUNK = 250
TRANSACTION_ATTEMPTS = 10
CONFLICT_CODES = frozenset({"TransactionConflict", "TransactionInProgressException"})
THROTTLE_CODES = frozenset({"ThrottlingError", "ThrottlingException", "ProvisionedThroughputExceeded",
                            "ProvisionedThroughputExceededException", "RequestLimitExceeded"})
RETRYABLE_CODES = CONFLICT_CODES | THROTTLE_CODES
SORT_KEYS = {"created_at": "created_sk", "total_files": "files_sk", "status": "status_sk"}
COUNT_FIELDS = ("uploaded", "succeeded", "failed", "cancelled")
COUNTED_BY = {JOB_COMPLETED: "succeeded", JOB_FAILED: "failed", JOB_CANCELLED: "cancelled"}   # job status: counter
# The job fields an item holds (everything else on a job dict is derived or a key).
JOB_FIELDS = frozenset(("batch_id", "bucket", "position", "owner", "file_name", "size", "content_type", "key",
                        "status", "error_code", "error_message", "outputs", "preview", "attempt", "created_at",
                        "updated_at", "started_at", "completed_at"))
# The owner-status index key is spread over this many values: every transition of every job of an
# owner moves an index row, and one key would cap that at one partition's ~1,000 writes/s.
OWNER_STATUS_SPREAD = 32
# A bucket counter's state (see DynamoRepository._set_counters).
COUNTING, CANCELLING_JOBS, CLOSED = "counting", "cancelling", "closed"
RETRY_PENDING = "pending"   # a big retry's mark before a worker takes it (take_retry)
# A delete or cancel of a batch with more buckets than this leaves closing them to its background
# step (sync_counters), so the request answers at once: 1,000 counters are 1,000 UpdateItems.
INLINE_COUNTERS = 10


def bucket_key(batch_id: str, bucket: int) -> str:
    """The partition of one bucket of a batch: its jobs (jobs table) and its counter."""
    return f"{batch_id}#{bucket}"


def _buckets(batch: dict) -> int:
    return int(batch.get("buckets") or 1)


def chunk_key(batch_id: str, chunk: int) -> str:
    return f"{batch_id}#{chunk}"


def owner_status(owner: str, status: str, job_id: str) -> str:
    return f"{owner}#{status}#{uuid.UUID(job_id).int % OWNER_STATUS_SPREAD:02d}"
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


def _updated(item, actions: list, condition) -> bool:
    """One conditional UpdateItem: False when its condition does not hold."""
    try:
        item.update(actions=actions, condition=condition)
    except UpdateError as exc:
        if _conflict(exc):
            return False
        raise
    return True


def _contended(exc: TransactWriteError) -> str | None:
    """Why a transaction may be tried again: "conflict" or "throttle"; None when it may not."""
    codes = {exc.cause_response_code} | {r.code for r in (exc.cancellation_reasons or []) if r is not None}
    if codes & THROTTLE_CODES:
        return "throttle"
    return "conflict" if codes & CONFLICT_CODES else None


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


def _update(item, actions: list, condition=None, return_values: str | None = None) -> tuple:
    kwargs = {"actions": actions, "condition": condition}
    if return_values:   # ALL_OLD: a failed condition hands back the item as it was
        kwargs["return_values"] = return_values
    return ("update", item, kwargs)


def _save(item, condition=None) -> tuple:
    return ("save", item, {"condition": condition})


def _delete(item, condition=None) -> tuple:
    return ("delete", item, {"condition": condition})


def _plain(item) -> dict:
    return {name: getattr(item, name) for name in item.get_attributes()}


class DynamoRepository:
    """ports.Repository on DynamoDB (PynamoDB models from adapters/models.py)."""

    def __init__(self, models: Models, connection: Connection, obs=NOOP):
        self.m = models
        self.conn = connection
        self.meter = ReadMeter()
        self._immutable: dict[str, dict] = {}   # batch id -> fields that never change
        self.obs = obs

    def _transact(self, *writes: tuple) -> bool:
        """Apply the writes in one DynamoDB transaction; False when a condition fails."""
        return self._transact_reasons(*writes) is None

    def _transact_reasons(self, *writes: tuple) -> list | None:
        """Apply the writes in one DynamoDB transaction; None when it committed, else the
        cancellation reasons of a failed condition (one per write, None for writes that were not
        the reason), so the caller can tell which one failed. Conflicts with a concurrent
        transaction on the same item and throttling are retried here with jittered backoff:
        botocore does not retry them, and a failed SQS record would otherwise wait out the
        16-minute visibility timeout."""
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                with TransactWrite(connection=self.conn) as tx:
                    for method, item, kwargs in writes:
                        getattr(tx, method)(item, **kwargs)
                return None
            except TransactWriteError as exc:
                if _conflict(exc):
                    reasons = list(exc.cancellation_reasons or [])
                    return [r if r is not None and r.code == "ConditionalCheckFailed" else None for r in reasons]
                reason = _contended(exc)
                if reason is None or attempt == TRANSACTION_ATTEMPTS - 1:
                    raise
                self.obs.metric(WRITES_RETRIED, dimension=reason)
                time.sleep(random.uniform(0, min(1.0, 0.01 * 2 ** attempt)))
        raise RuntimeError("unreachable")

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
        """A batch's parts first (its bucket counters and manifest chunks), then the batch with its
        aggregates in one transaction (a crash in between leaves only unreachable parts, never a
        batch without them), then the jobs of the first chunk. The other chunks' jobs are
        materialised later (materialize_jobs): creating a 100,000-file batch writes about 1,100
        items, not 100,000. Returns the batch as services see it."""
        B, M, C, F = self.m.Batch, self.m.Meta, self.m.Counter, self.m.Manifest
        batch = new.record()
        created_sk = f"{new.created.astimezone(timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}#{new.id}"
        item = {
            **batch, "search_text": naming.search_text(new.customer_prefix, new.base_directory_name, new.description),
            "owner_prefix": f"{new.owner}#{prefix_key(new.customer_prefix)}", "created_sk": created_sk,
            "files_sk": f"{new.total_files:06d}#{created_sk}", "open_shard": OPEN,
            **batch_index_keys(new.owner, new.customer_prefix, QUEUED, created_sk),
        }
        item = {k: v for k, v in item.items() if v is not None}
        totals = Counter(j.bucket for j in new.jobs)
        counters = [C(bucket_key(new.id, b), total=totals.get(b, 0), last=totals.get(b, 0) - 1)
                    for b in range(new.buckets)]
        chunks = [F(chunk_key(new.id, c), files=[self._manifest_row(new.id, j)
                                                  for j in new.jobs[c * CHUNK_SIZE:(c + 1) * CHUNK_SIZE]])
                  for c in range(chunk_count(new.total_files))]
        self._write_all(counters + chunks)
        n = new.total_files
        if not self._transact(
                _save(B(**item), B.id.does_not_exist()),
                _update(self._stats_update(new.owner), [
                    M.total_batches.add(1), getattr(M, QUEUED).add(1),
                    M.files_current.add(n), M.total_files_all_time.add(n)])):
            raise ConditionFailed("batch id already exists")
        self.materialize_jobs(batch, 0)
        return batch

    def _write_all(self, items: list) -> None:
        """BatchWriteItem in parallel groups (25 items a call), each group one model's."""
        by_model: dict[type, list] = {}
        for it in items:
            by_model.setdefault(type(it), []).append(it)
        groups = [same[i:i + JOB_WRITE_CHUNK] for same in by_model.values()
                  for i in range(0, len(same), JOB_WRITE_CHUNK)]

        def write(group):
            with type(group[0]).batch_write() as writer:
                for it in group:
                    writer.save(it)
        with ThreadPoolExecutor(max_workers=min(8, len(groups) or 1)) as pool:
            list(pool.map(write, groups))

    def materialize_jobs(self, batch: dict, chunk: int) -> int:
        """Give every job of one manifest chunk its item (awaiting upload), unless it has one:
        conditional puts in transactions of 100, so a job an arrival or a sweep already moved is
        never overwritten. Idempotent; returns how many items were written."""
        J, F = self.m.Job, self.m.Manifest
        try:
            part = F.get(chunk_key(batch["id"], chunk), consistent_read=True)
        except DoesNotExist:
            return 0
        if part.materialized:
            return 0
        jobs = [self._job_item(self._manifest_job(batch, chunk * CHUNK_SIZE + n, row))
                for n, row in enumerate(part.files)]
        written = 0
        for start in range(0, len(jobs), 100):
            group = jobs[start:start + 100]
            if self._transact(*[_save(j, J.job_id.does_not_exist()) for j in group]):
                written += len(group)
                continue
            for j in group:   # some exist already: one by one
                try:
                    j.save(condition=J.job_id.does_not_exist())
                    written += 1
                except PutError as exc:
                    if not _conflict(exc):
                        raise
        part.update(actions=[F.materialized.set(True)])
        return written

    @staticmethod
    def _manifest_row(batch_id: str, job) -> list:
        """[job id, name, size, content type, bucket], and the key only when it is not the usual
        upload key (a drop folder's file stays where the studio wrote it): rows stay small."""
        row = [job.job_id, job.file_name, job.size, job.content_type, job.bucket]
        return row if job.key == upload_key(batch_id, job.job_id, job.file_name) else row + [job.key]

    @staticmethod
    def _manifest_job(batch: dict, position: int, row: list) -> dict:
        """A job as created, from its manifest row: what a not yet materialised job is."""
        job_id, file_name, size, content_type, bucket = row[:5]
        key = row[5] if len(row) > 5 else upload_key(batch["id"], job_id, file_name)
        return {"batch_id": batch["id"], "job_id": job_id, "position": position, "owner": batch["owner"],
                "file_name": file_name, "size": size, "content_type": content_type,
                "key": key, "status": JOB_AWAITING,
                "created_at": batch["created_at"], "updated_at": batch["created_at"], "attempt": 0,
                "bucket": bucket}

    def _job_item(self, job: dict):
        fields = {k: v for k, v in job.items() if k in JOB_FIELDS and v is not None}
        return self.m.Job(bucket_key(job["batch_id"], int(job.get("bucket") or 0)), job["job_id"],
                          owner_status=owner_status(job["owner"], job["status"], job["job_id"]),
                          updated_sk=f"{job['updated_at']}#{job['job_id']}", **fields)

    def get_batch(self, batch_id: str, counts: bool = True) -> dict | None:
        """The batch with its counts: kept on the item once final, else summed from its buckets
        (counts=False: not summed; the item's own count fields are left out, not to be read stale)."""
        try:
            batch = _plain(self.m.Batch.get(batch_id, consistent_read=True))
        except DoesNotExist:
            return None
        if not counts:
            return {k: v for k, v in batch.items() if k not in COUNT_FIELDS}
        return self._with_counts([batch])[0]

    def _with_counts(self, batches: list[dict]) -> list[dict]:
        live = [b for b in batches if not b.get("counts_final")]
        if live:
            keys = [bucket_key(b["id"], k) for b in live for k in range(int(b.get("buckets") or 1))]
            sums: dict[str, Counter] = {b["id"]: Counter() for b in live}
            latest = {b["id"]: b.get("updated_at") or "" for b in live}
            for group in self._counters(keys):
                for _, c in group:
                    if c is None:
                        continue
                    batch_id = c.bucket_key.rsplit("#", 1)[0]
                    sums[batch_id].update({f: int(getattr(c, f) or 0) for f in COUNT_FIELDS})
                    latest[batch_id] = max(latest[batch_id], c.updated_at or "")
            for b in live:   # the batch changed when its record did or any of its files did
                b.update({f: sums[b["id"]][f] for f in COUNT_FIELDS}, updated_at=latest[b["id"]] or b.get("updated_at"))
        return batches

    def _counters(self, keys: Sequence[str], first: int = 100, attributes: list[str] | None = None):
        """Counters by key, strongly consistent, one BatchGetItem at a time (the first for `first`
        keys, the others for 100), each group a list of (key, counter or None) in key order: a reader
        that has seen enough stops, and no request is made for what it did not read."""
        start, size = 0, first
        while start < len(keys):
            group = keys[start:start + size]
            found = {c.bucket_key: c for c in self.m.Counter.batch_get(group, consistent_read=True,
                                                                       attributes_to_get=attributes)}
            yield [(k, found.get(k)) for k in group]
            start, size = start + size, 100

    def settled_batch(self, batch_id: str, after: int | None = None) -> dict | None:
        """The batch with its counts when none of its files is left to finish, else None. The
        counters are read from the bucket after `after` (the caller's, just settled, read last)
        round the ring, ten then a hundred at a time, and the reading stops at the first bucket
        with a file to finish: at the end of a 100,000-file batch each of its 1,000 buckets' last
        file looks, and most see an unsettled bucket among the first few (a full read each was a
        million counter reads per batch). Exactly one final status still: the last bucket to
        settle is read settled by its own finisher, which reads after every other commit."""
        try:
            batch = _plain(self.m.Batch.get(batch_id, consistent_read=True))
        except DoesNotExist:
            return None
        if batch["status"] == DELETING:
            return None
        if batch.get("counts_final") or batch["status"] in FINAL_STATUSES:
            return batch     # final: its counts are on the item
        n = _buckets(batch)
        start = 0 if after is None else (after + 1) % n
        keys = [bucket_key(batch_id, (start + i) % n) for i in range(n)]
        sums, latest = Counter(), batch.get("updated_at") or ""
        for group in self._counters(keys, first=SETTLED_FIRST_LOOK):
            for _, c in group:
                if c is None or int(c.done or 0) < int(c.total or 0):
                    return None
                sums.update({f: int(getattr(c, f) or 0) for f in COUNT_FIELDS})
                latest = max(latest, c.updated_at or "")
        return {**batch, **{f: sums[f] for f in COUNT_FIELDS}, "updated_at": latest or batch.get("updated_at")}

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
        self._with_counts(list(found.values()))
        return found

    def update_batch_fields(self, batch: dict, changes: dict, now: str) -> dict | None:
        """PATCH: description and integration fields, in any status but deleting; the search text
        follows the description. None when the batch is gone or being deleted."""
        B = self.m.Batch
        actions = [B.updated_at.set(now)]
        for name, value in changes.items():
            attr = getattr(B, name)
            actions.append(attr.remove() if value is None else attr.set(value))
        if "description" in changes:
            actions.append(B.search_text.set(naming.search_text(
                batch["customer_prefix"], batch["base_directory_name"], changes["description"])))
        item = B(batch["id"])
        try:
            item.update(actions=actions, condition=B.id.exists() & (B.status != DELETING))
        except UpdateError as exc:
            if _conflict(exc):
                return None
            raise
        return self._with_counts([_plain(item)])[0]

    def mark_deleting(self, batch: dict, now: str) -> bool:
        """The first step of a delete, atomic with the owner's aggregates: the batch leaves every
        list index (its index keys go), stops every transition (they all condition on a status it no
        longer has) and is subtracted from the status it has *now*; False when the status moved
        since `batch` was read, so the caller reads again. The sweep finishes what a crash left."""
        if batch["status"] not in BATCH_STATUSES:   # already being deleted
            return False
        B, M = self.m.Batch, self.m.Meta
        hidden = [getattr(B, name).remove() for name in LIST_INDEX_KEYS]
        marked = self._transact(
            _update(B(batch["id"]), [B.status.set(DELETING), B.updated_at.set(now), B.open_shard.set(DELETING)]
                    + hidden, B.status == batch["status"]),
            _update(self._stats_update(batch["owner"]), [
                M.total_batches.add(-1), getattr(M, batch["status"]).add(-1),
                M.files_current.add(-int(batch["total_files"]))]))
        if marked and _buckets(batch) <= INLINE_COUNTERS:   # else the purge's first step (sync_counters)
            self._set_counters(batch, CLOSED)
        return marked

    def sync_counters(self, batch_id: str) -> None:
        """Set a batch's counters to what its status wants: closed while it is being deleted,
        counting only cancels once it is cancelled, counting while it is open (a big retry's
        background step opens them before it reopens any file). A purge calls this before any
        object goes, so a worker finishing after it fails its commit and removes what it wrote,
        and one that committed before it wrote its outputs before the purge lists them.
        Idempotent."""
        try:
            batch = _plain(self.m.Batch.get(batch_id, consistent_read=True))
        except DoesNotExist:
            return
        state = {DELETING: CLOSED, CANCELLED: CANCELLING_JOBS, QUEUED: COUNTING, PROCESSING: COUNTING}.get(
            batch["status"])
        if state is not None:
            self._set_counters(batch, state)

    def _set_counters(self, batch: dict, state: str) -> None:
        """A batch's bucket counters count (COUNTING) exactly while it is queued or processing;
        then claims, finishes, expiries and reopens count; once it is cancelled only cancel_job
        counts (CANCELLING_JOBS); final or being deleted, nothing (CLOSED). Closing follows the
        status change, so a file finishing in that instant still counts (it finished); reopening
        precedes the status change, so nothing counts before the batch is open again."""
        C = self.m.Counter
        keys = [bucket_key(batch["id"], k) for k in range(_buckets(batch))]

        def move(key):
            try:
                C(key).update(actions=[C.state.set(state)], condition=C.bucket_key.exists())
            except UpdateError as exc:
                if not _conflict(exc):
                    raise
        with ThreadPoolExecutor(max_workers=min(16, len(keys))) as pool:
            list(pool.map(move, keys))

    def purge_batch(self, batch_id: str) -> None:
        """Jobs, counters, manifest, then the batch item itself; only for a batch already marked
        deleting. Idempotent (a crash part-way is finished by running it again)."""
        B, J, C, F = self.m.Batch, self.m.Job, self.m.Counter, self.m.Manifest
        try:
            batch = _plain(B.get(batch_id, consistent_read=True))
        except DoesNotExist:
            return
        if batch["status"] != DELETING:
            return
        buckets = int(batch.get("buckets") or 1)
        for chunk in range(chunk_count(int(batch["total_files"]))):
            try:
                rows = F.get(chunk_key(batch_id, chunk), consistent_read=True).files
            except DoesNotExist:
                continue
            with J.batch_write() as writer:
                for job_id, _name, _size, _type, bucket, *_key in rows:
                    writer.delete(J(bucket_key(batch_id, bucket), job_id))
        with J.batch_write() as writer:   # what a materialiser racing this purge may have written
            for k in range(buckets):
                for job in J.query(bucket_key(batch_id, k), attributes_to_get=["bucket_key", "job_id"]):
                    writer.delete(job)
        with C.batch_write() as writer:
            for k in range(buckets):
                writer.delete(C(bucket_key(batch_id, k)))
        with F.batch_write() as writer:
            for chunk in range(chunk_count(int(batch["total_files"]))):
                writer.delete(F(chunk_key(batch_id, chunk)))
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
    # Each moves one job and its bucket's counter in one transaction; the job's condition makes a
    # duplicate count nothing, the counter's `state` makes a final, cancelled or deleted batch count nothing.
    def _counter(self, job: dict):
        return self.m.Counter(bucket_key(job["batch_id"], int(job.get("bucket") or 0)))

    def claim_upload(self, job: dict, now: str) -> bool:
        """awaiting_upload -> processing (attempt 1) and the bucket's `uploaded` += 1, atomically.
        False when the job already moved on (a duplicate event), is not this object's, or the
        batch is cancelled or being deleted."""
        J, C = self.m.Job, self.m.Counter
        return self._transact(
            _update(self._job_item_key(job),
                    self._job_actions(job, JOB_PROCESSING, now) + [J.started_at.set(now), J.attempt.set(1)],
                    (J.status == JOB_AWAITING) & (J.key == job["key"])),
            _update(self._counter(job), [C.uploaded.add(1), C.updated_at.set(now)], C.state == COUNTING))

    def _job_item_key(self, job: dict):
        return self.m.Job(bucket_key(job["batch_id"], int(job.get("bucket") or 0)), job["job_id"])

    def _job_actions(self, job: dict, status: str, now: str) -> list:
        J = self.m.Job
        return [J.status.set(status), J.updated_at.set(now),
                J.owner_status.set(owner_status(job["owner"], status, job["job_id"])),
                J.updated_sk.set(f"{now}#{job['job_id']}")]

    def _upsert_actions(self, job: dict) -> list:
        """Every created-time field, for a transition that may find the job not yet materialised."""
        J = self.m.Job
        return [getattr(J, f).set(job[f]) for f in ("batch_id", "bucket", "position", "owner", "file_name", "size",
                                                     "content_type", "key", "created_at") if job.get(f) is not None]

    def finish_job(self, job: dict, attempt: int, now: str, outputs: list | None = None,
                   error: tuple[str, str] | None = None, preview: dict | None = None):
        """processing -> completed|failed and the bucket's count += 1, in one transaction. The job
        condition (status and attempt) makes a redelivered event count once. Returns MAYBE_DONE when
        this was the last file of its bucket (the batch may be complete: the caller looks), True
        otherwise, False when nothing moved. The last file is told by the counter's condition
        failing on `done < last` (last = total - 1, stored: conditions cannot do arithmetic), so no
        file pays a read to find out."""
        J, C = self.m.Job, self.m.Counter
        status = JOB_FAILED if error else JOB_COMPLETED
        actions = self._job_actions(job, status, now) + [J.completed_at.set(now)]
        if error:
            actions += [J.error_code.set(error[0]), J.error_message.set(error[1]), J.outputs.remove(),
                        J.preview.remove()]
        else:
            actions += [J.outputs.set(outputs), J.error_code.remove(), J.error_message.remove(),
                        J.preview.set(preview) if preview else J.preview.remove()]
        counted = [(C.failed if error else C.succeeded).add(1), C.done.add(1), C.updated_at.set(now)]
        job_write = _update(self._job_item_key(job), actions, (J.status == JOB_PROCESSING) & (J.attempt == attempt))
        reasons = self._transact_reasons(
            job_write, _update(self._counter(job), counted, (C.state == COUNTING) & (C.done < C.last),
                               return_values="ALL_OLD"))
        if reasons is None:
            return True
        if reasons[0] is not None:      # the job moved on: a duplicate, or cancelled
            return False
        old = reasons[1].raw_item or {}
        if old.get("state", {}).get("S", COUNTING) != COUNTING:
            return False                 # final, cancelled or being deleted
        # the last file of its bucket (done == total - 1): count it with that very condition
        last = self._transact_reasons(job_write, _update(self._counter(job), counted,
                                                          (C.state == COUNTING) & (C.done == C.last)))
        return MAYBE_DONE if last is None else False

    def expire_job(self, job: dict, now: str, message: str) -> bool:
        """awaiting_upload -> failed(upload_expired), counted once (also a job not yet materialised)."""
        J, C = self.m.Job, self.m.Counter
        actions = self._upsert_actions(job) + self._job_actions(job, JOB_FAILED, now) + [
            J.attempt.set(0), J.completed_at.set(now), J.error_code.set("upload_expired"),
            J.error_message.set(message)]
        return self._transact(
            _update(self._job_item_key(job), actions, J.job_id.does_not_exist() | (J.status == JOB_AWAITING)),
            _update(self._counter(job), [C.failed.add(1), C.done.add(1), C.updated_at.set(now)],
                    C.state == COUNTING))

    def reopen_job(self, job: dict, now: str, mark_batch: bool = True) -> bool:
        """failed -> processing for a retry (new attempt); the bucket's failed count goes back down.
        A job that never had its upload counted (it expired before its file came) counts it now,
        so `uploaded` never falls behind `succeeded`. Only while the counters count: a retry first
        reopens a final batch, so a cancel or delete in between makes this fail, not strand the job."""
        J, C = self.m.Job, self.m.Counter
        attempt = int(job.get("attempt") or 0)
        actions = self._job_actions(job, JOB_PROCESSING, now) + [
            J.attempt.add(1), J.error_code.remove(), J.error_message.remove(), J.completed_at.remove(),
            J.started_at.set(now)]
        counters = [C.failed.add(-1), C.done.add(-1), C.updated_at.set(now)] + (
            [C.uploaded.add(1)] if attempt == 0 else [])
        B = self.m.Batch
        writes = [_update(self._job_item_key(job), actions, (J.status == JOB_FAILED) & (J.attempt == attempt)),
                  _update(self._counter(job), counters, C.state == COUNTING)]
        if mark_batch:   # a finisher that read the counts before this reopen must not close the batch on them
            writes.append(_update(B(job["batch_id"]), [B.reopens.add(1)], B.status.is_in(QUEUED, PROCESSING)))
        return self._transact(*writes)

    def cancel_job(self, job: dict, now: str) -> bool:
        """awaiting_upload|processing -> cancelled with the bucket's `cancelled` += 1, in one
        transaction, so a crash part-way through a cancel never leaves the count short. (The
        counters are closed by then: nothing else counts.)"""
        J, C = self.m.Job, self.m.Counter
        return self._transact(
            _update(self._job_item_key(job),
                    self._upsert_actions(job) + self._job_actions(job, JOB_CANCELLED, now) + [J.completed_at.set(now)],
                    J.job_id.does_not_exist() | J.status.is_in(JOB_AWAITING, JOB_PROCESSING)),
            _update(self._counter(job), [C.cancelled.add(1), C.done.add(1), C.updated_at.set(now)],
                    C.state == CANCELLING_JOBS))

    def settle_cancel(self, batch_id: str) -> None:
        """Every job of a cancelled batch is accounted for: its counts become final on the batch
        item, and it leaves the sweep's index."""
        B = self.m.Batch
        batch = self.get_batch(batch_id)
        if batch is None or batch["status"] != CANCELLED:
            return
        try:
            B(batch_id).update(actions=[B.open_shard.remove(), B.counts_final.set(True)] + [
                getattr(B, f).set(int(batch[f])) for f in COUNT_FIELDS], condition=B.status == CANCELLED)
        except UpdateError as exc:
            if not _conflict(exc):
                raise

    def finalize(self, batch: dict, status: str, now: str) -> bool:
        """Write the final status and completed_at; the condition lets exactly one caller win.
        The counts in `batch` (summed from its buckets by get_batch, all files accounted for)
        become final on the item. A cancelled batch stays in the sweep's index until its jobs
        are all cancelled, and its counts are settled then."""
        B = self.m.Batch
        if status == CANCELLED:
            # What the counts become once every unfinished file is cancelled (settle_cancel writes
            # the exact ones), so the item (and its stream event) already says so.
            total, ok, failed = int(batch["total_files"]), int(batch.get("succeeded") or 0), int(batch.get("failed") or 0)
            extra = [B.open_shard.set(CANCELLING), B.uploaded.set(int(batch.get("uploaded") or 0)),
                     B.succeeded.set(ok), B.failed.set(failed), B.cancelled.set(max(0, total - ok - failed))]
        else:
            extra = [B.open_shard.remove(), B.counts_final.set(True)] + [
                getattr(B, f).set(int(batch.get(f) or 0)) for f in COUNT_FIELDS]
        # The counts were summed after `batch` was read; a retry that reopened a file since then
        # (reopen_job adds to `reopens`) makes them stale, and this write must lose. A cancel wins.
        reopens = int(batch.get("reopens") or 0)
        # Nor while a big batch's retry is reopening its files in the background.
        guard = None if status == CANCELLED else (
            (B.reopens == reopens) if reopens else (B.reopens.does_not_exist() | (B.reopens == 0))
        ) & B.retrying.does_not_exist()
        moved = self._move_batch(batch, batch["status"], status, now, [B.completed_at.set(now)] + extra, guard)
        if moved and status != CANCELLED:
            self._set_counters(batch, CLOSED)
        elif moved and _buckets(batch) <= INLINE_COUNTERS:   # else cancel_jobs' first step (sync_counters)
            self._set_counters(batch, CANCELLING_JOBS)
        return moved

    def reopen_batch(self, batch: dict, now: str) -> bool:
        """A final batch goes back to processing (retry); completed_at is set again when it ends."""
        B = self.m.Batch
        if batch["status"] not in BATCH_STATUSES:
            return False
        self._set_counters(batch, COUNTING)   # first: see _set_counters
        return self._move_batch(batch, batch["status"], PROCESSING, now,
                                [B.completed_at.remove(), B.open_shard.set(OPEN), B.counts_final.set(False)])

    def begin_retry(self, batch: dict, now: str) -> bool:
        """A big batch's retry, its background half to come: a final batch goes back to processing
        (its counters are opened by that half, before any file), an open one stays; either way
        no final status is written until end_retry. False when the status moved since `batch`."""
        B = self.m.Batch
        if batch["status"] == CANCELLED:
            return False
        if batch["status"] in FINAL_STATUSES:
            return self._move_batch(batch, batch["status"], PROCESSING, now, [
                B.completed_at.remove(), B.open_shard.set(OPEN), B.counts_final.set(False),
                B.retrying.set(RETRY_PENDING)])
        if batch["status"] not in (QUEUED, PROCESSING):
            return False
        return _updated(B(batch["id"]), [B.retrying.set(RETRY_PENDING), B.updated_at.set(now)],
                        B.status == batch["status"])

    def take_retry(self, batch_id: str, token: str, now: str, stale_before: str) -> bool:
        """One worker reopens a big retry's files: the first to take the pending mark, or one taking
        over a mark silent since `stale_before` (its worker died)."""
        B = self.m.Batch
        return _updated(B(batch_id), [B.retrying.set(token), B.updated_at.set(now)],
                        (B.retrying == RETRY_PENDING) | (B.retrying.exists() & (B.updated_at < stale_before)))

    def end_retry(self, batch_id: str, token: str) -> bool:
        """The mark goes (if `token` holds it), and `reopens` moves: a finisher that read the counts
        while the mark held (before files were reopened) cannot write a final status on them."""
        B = self.m.Batch
        return _updated(B(batch_id), [B.retrying.remove(), B.reopens.add(1)], B.retrying == token)

    def expired_batches(self, before: str) -> Iterable[str]:
        """Open batches past their upload deadline (a sparse, keys-only index: cheap to walk)."""
        B = self.m.Batch
        for b in B.query(OPEN, B.upload_expires_at <= before, index_name="open-expiry"):
            yield b.id

    def jobs_with_status(self, batch_id: str, statuses: Sequence[str]) -> Iterable[dict]:
        """Open statuses walk the batch in file order (most of a batch may be awaiting). Final
        ones are looked for only in the buckets whose counters count them, one Query of a
        bucket's partition each, so finding the few failures of a 100,000-file batch (or that it
        has none) reads its counters and those buckets, not every job."""
        counted = [COUNTED_BY[s] for s in statuses if s in COUNTED_BY]
        if not statuses or len(counted) < len(statuses):
            yield from (job for job in self.all_jobs(batch_id) if job["status"] in statuses)
            return
        batch = self._batch_fields(batch_id)
        if batch is None:
            return
        J = self.m.Job
        keys = [bucket_key(batch_id, k) for k in range(int(batch["buckets"]))]
        for group in self._counters(keys, attributes=["bucket_key", *counted]):
            for key, c in group:
                if c is not None and not any(int(getattr(c, f) or 0) for f in counted):
                    continue
                jobs = [_plain(item) for item in J.query(key, filter_condition=J.status.is_in(*statuses),
                                                         consistent_read=True)]
                self.meter.items += len(jobs)
                yield from sorted(jobs, key=lambda j: int(j["position"]))

    def start_batch(self, batch: dict, now: str) -> bool:
        """queued -> processing, once; the aggregates move in the same transaction."""
        return self._move_batch(batch, QUEUED, PROCESSING, now, [self.m.Batch.started_at.set(now)])

    def _move_batch(self, batch: dict, old: str, new: str, now: str, extra: list, guard=None) -> bool:
        if old not in BATCH_STATUSES:   # a batch being deleted goes nowhere else (and has no figure)
            return False
        B, M = self.m.Batch, self.m.Meta
        keys = batch_index_keys(batch["owner"], batch["customer_prefix"], new, batch["created_sk"])
        actions = [B.status.set(new), B.updated_at.set(now)] + [getattr(B, k).set(v) for k, v in keys.items()]
        return self._transact(
            _update(B(batch["id"]), actions + extra, B.status == old if guard is None else (B.status == old) & guard),
            _update(self._stats_update(batch["owner"]), [getattr(M, old).add(-1), getattr(M, new).add(1)]))

    # -- archives ----------------------------------------------------------------
    def all_jobs(self, batch_id: str) -> Iterable[dict]:
        """Every job in file order, a manifest chunk at a time (those not yet materialised as created)."""
        start: dict | None = {"position": 0}
        while start is not None:
            page = self.list_jobs(batch_id, CHUNK_SIZE, start)
            yield from page.items
            start = page.last_key

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

    def start_archive_upload(self, batch_id: str, fingerprint: str, upload_id: str, now: str) -> bool:
        """The claimed marker records the build's multipart upload, once: a repeated build request
        finds it taken and leaves the running build alone."""
        M = self.m.Meta
        try:
            M(MetaKey.build_lock(batch_id, fingerprint)).update(
                actions=[M.upload_id.set(upload_id), M.started_at.set(now)],
                condition=M.id.exists() & M.upload_id.does_not_exist())
        except UpdateError as exc:
            if _conflict(exc):
                return False
            raise
        return True

    def count_archive_task(self, batch_id: str, fingerprint: str, upload_id: str, task: int,
                           now: str) -> int | None:
        """ADD the task to a number set: a task reported twice (SQS redelivers) is in it once, so
        the set's size is exact. On condition that the marker still records this upload, so a
        superseded build's workers count nothing. `started_at` moves too: a build that makes
        progress never looks stale. One small item per build, written once per task."""
        M = self.m.Meta
        item = M(MetaKey.build_lock(batch_id, fingerprint))
        try:
            item.update(actions=[M.tasks_done.add({task}), M.started_at.set(now)],
                        condition=M.upload_id == upload_id)
        except UpdateError as exc:
            if _conflict(exc):
                return None
            raise
        return len(item.tasks_done or ())

    def finish_archive_build(self, batch_id: str, fingerprint: str, upload_id: str) -> bool:
        """Delete the marker of that upload's build; True for exactly one caller."""
        M = self.m.Meta
        try:
            M(MetaKey.build_lock(batch_id, fingerprint)).delete(condition=M.upload_id == upload_id)
        except DeleteError as exc:
            if _conflict(exc):
                return False
            raise
        return True

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
        return {"position": int(job["position"]) + 1}

    def list_jobs(self, batch_id: str, limit: int, start_key: dict | None) -> Page:
        """A batch's jobs in file order: the manifest chunks give the order and what a job was
        created as; the jobs' own items (one BatchGetItem per 100) what has become of them."""
        F = self.m.Manifest
        first = int((start_key or {}).get("position", 0))
        try:
            head = F.get(chunk_key(batch_id, chunk_of(first)), consistent_read=True)
        except DoesNotExist:
            return Page([], None)
        batch = self._batch_fields(batch_id)
        if batch is None:
            return Page([], None)
        total = int(batch["total_files"])
        rows, chunk, part = [], chunk_of(first), head
        while part is not None and len(rows) < limit and chunk * CHUNK_SIZE < total:
            base = chunk * CHUNK_SIZE
            rows += [(base + n, row) for n, row in enumerate(part.files) if base + n >= first][:limit - len(rows)]
            chunk += 1
            part = None
            if len(rows) < limit and chunk * CHUNK_SIZE < total:
                try:
                    part = F.get(chunk_key(batch_id, chunk), consistent_read=True)
                except DoesNotExist:
                    part = None
        jobs = [self._manifest_job(batch, position, row) for position, row in rows]
        found = self._get_jobs(batch_id, jobs)
        items = [found.get(j["job_id"], j) for j in jobs]
        self.meter.items += len(items)
        end = first + len(items)
        return Page(items, {"position": end} if items and end < total else None, len(items), len(found))

    def _batch_fields(self, batch_id: str) -> dict | None:
        """The immutable fields a job listing needs (cached: they never change)."""
        cached = self._immutable.get(batch_id)
        if cached is None:
            try:
                item = self.m.Batch.get(batch_id, consistent_read=True, attributes_to_get=[
                    "id", "owner", "created_at", "total_files", "buckets"])
            except DoesNotExist:
                return None
            cached = {"id": item.id, "owner": item.owner, "created_at": item.created_at,
                      "total_files": item.total_files, "buckets": item.buckets or 1}
            if item.owner is None:   # being deleted: do not remember it
                return cached
            self._immutable[batch_id] = cached
        return cached

    def _get_jobs(self, batch_id: str, jobs: list[dict]) -> dict[str, dict]:
        keys = [(bucket_key(batch_id, int(j["bucket"])), j["job_id"]) for j in jobs]
        found = {}
        for start in range(0, len(keys), 100):
            for item in self.m.Job.batch_get(keys[start:start + 100], consistent_read=True):
                found[item.job_id] = _plain(item)
        return found

    def get_jobs(self, batch_id: str, job_ids: Sequence[str]) -> dict[str, dict]:
        """Several jobs of one batch by id, one BatchGetItem per 100 (which refuses a key twice);
        missing ones, and ones not materialised yet, are left out."""
        batch = self._batch_fields(batch_id)
        if batch is None:
            return {}
        buckets = int(batch["buckets"])
        wanted = [{"job_id": j, "bucket": bucket_of(j, buckets)} for j in dict.fromkeys(job_ids)]
        return self._get_jobs(batch_id, wanted)

    def get_job(self, batch_id: str, job_id: str) -> dict | None:
        batch = self._batch_fields(batch_id)
        if batch is None:
            return None
        try:
            return _plain(self.m.Job.get(bucket_key(batch_id, bucket_of(job_id, int(batch["buckets"]))), job_id,
                                         consistent_read=True))
        except DoesNotExist:
            return None

    def find_job(self, job_id: str) -> dict | None:
        J = self.m.Job
        for key in J.query(job_id, index_name="job-id", limit=1):
            try:
                return _plain(J.get(key.bucket_key, job_id, consistent_read=True))
            except DoesNotExist:
                return None
        return None

    def jobs_by_status(self, owner: str, status: str, limit: int, start_key: dict | None) -> Page:
        """An owner's jobs in one status, most recently changed first. The index key is spread
        over OWNER_STATUS_SPREAD values (one key would take every transition of every job of the
        owner: a write hot spot), so a page merges the newest of each; the cursor remembers where
        each one stands."""
        J = self.m.Job
        after = dict(start_key or {})
        heads = []
        for spread in range(OWNER_STATUS_SPREAD):
            cond = J.updated_sk < after[str(spread)] if str(spread) in after else None
            got = J.query(f"{owner}#{status}#{spread:02d}", cond, index_name="owner-status-updated",
                          scan_index_forward=False, limit=limit + 1, page_size=limit + 1)
            heads += [(k.updated_sk, spread, k) for k in got]
        heads.sort(key=lambda h: h[0], reverse=True)
        page = heads[:limit]
        for sk, spread, _ in page:
            after[str(spread)] = sk
        more = len(heads) > limit
        keys = [(k.bucket_key, k.job_id) for _, _, k in page]
        found = {(j.bucket_key, j.job_id): _plain(j) for j in J.batch_get(keys, consistent_read=True)} if keys else {}
        self.meter.index_items += len(heads)
        self.meter.items += len(found)
        # The index is eventually consistent: drop items whose status has moved on.
        items = [found[k] for k in keys if k in found and found[k]["status"] == status]
        return Page(items, after if more else None, len(heads), len(found))
