"""What the services need from the outside world, as Protocols. The services depend on these and
on nothing in chalicelib/adapters: the DynamoDB repository, the S3 store and the SQS queues
implement them for AWS (and moto), chalicelib/adapters/memory.py implements them in memory for
fast service tests, and tests/contract runs one suite against both.

Records cross this seam as plain dicts of domain fields (batch: API.md's B fields plus the
counters; job: J's fields plus batch_id, owner, key, position, attempt); cursors as opaque
JSON-able dicts (`Page.last_key`) that the services sign and hand back unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Iterable, Iterator, Protocol, Sequence

from .domain.batches import BatchQuery, NewBatch


MAYBE_DONE = "maybe_done"   # finish_job: counted, and the batch may be complete now (look)


class ConditionFailed(Exception):
    """A conditional write lost: the item is not in the state the caller expected."""


class UploadGone(Exception):
    """The multipart upload no longer exists: it was completed or aborted."""


class SourceChanged(Exception):
    """A stored object is gone, or is no longer the size it was planned with."""


@dataclass
class Page:
    items: list[dict]
    last_key: dict | None           # where the next page starts; None on the last page
    index_items_read: int = 0
    items_fetched: int = 0


class PipelineStore(Protocol):
    def create_pipeline(self, owner: str, pid: str, spec: dict, now: str) -> dict:
        """Raises ConditionFailed when the owner already has a pipeline of that name."""
    def get_pipeline(self, owner: str, pid: str) -> dict | None: ...
    def get_pipelines(self, owner: str, pids: Sequence[str]) -> dict[str, dict]: ...
    def list_pipelines(self, owner: str) -> list[dict]: ...
    def replace_pipeline(self, owner: str, pid: str, old_name: str, spec: dict, now: str) -> dict:
        """Raises ConditionFailed when the new name is taken or the pipeline is gone."""
    def delete_pipeline(self, owner: str, pid: str, name: str) -> None:
        """Raises ConditionFailed when the pipeline is gone."""


class BatchStore(Protocol):
    """Batches, their jobs and the owner's figures. Every transition is conditional and atomic
    with the counters it moves: it returns False (changing nothing) when the record is not in
    the state the transition starts from, so duplicated and concurrent callers count once."""

    # creating, reading, listing
    def next_counter(self, owner: str, prefix: str, batch_date: str) -> int: ...
    def create_batch(self, new: NewBatch) -> dict: ...
    def update_batch_fields(self, batch: dict, changes: dict, now: str) -> dict | None:
        """Description and integration fields (None: remove); None when the batch is gone or being deleted."""
    def get_batch(self, batch_id: str, counts: bool = True) -> dict | None:
        """counts=False: the batch's own fields, for callers that need its status or settings and
        not its progress (a big batch's counts are summed from up to 1,000 counters)."""
    def settled_batch(self, batch_id: str, after: int | None = None) -> dict | None:
        """The batch with its counts when none of its files is left to finish (or it is final),
        else None; None also when it is gone or being deleted. `after`: the bucket whose last
        file the caller just counted (a store with buckets looks at the others first and stops
        at the first with a file left: see DynamoRepository.settled_batch)."""
    def list_batches(self, query: BatchQuery, start: dict | None = None) -> Page: ...
    def stats(self, owner: str) -> dict: ...
    def get_job(self, batch_id: str, job_id: str) -> dict | None: ...
    def get_jobs(self, batch_id: str, job_ids: Sequence[str]) -> dict[str, dict]:
        """Several jobs of one batch at once (by id; missing ones are left out)."""
    def find_job(self, job_id: str) -> dict | None: ...
    def list_jobs(self, batch_id: str, limit: int, start_key: dict | None) -> Page: ...
    def jobs_after(self, job: dict) -> dict:
        """The `last_key` of a list_jobs page that ends with `job`."""
    def all_jobs(self, batch_id: str) -> Iterable[dict]:
        """Every job, in file order."""
    def jobs_with_status(self, batch_id: str, statuses: Sequence[str]) -> Iterable[dict]:
        """Open statuses in file order; final ones (completed, failed, cancelled) in no promised
        order, and cheaply when a big batch has few of them."""
    def jobs_by_status(self, owner: str, status: str, limit: int, start_key: dict | None) -> Page: ...

    # the job's life
    def claim_upload(self, job: dict, now: str) -> bool: ...
    def finish_job(self, job: dict, attempt: int, now: str, outputs: list | None = None,
                   error: tuple[str, str] | None = None, preview: dict | None = None) -> bool | str:
        """False when nothing moved; MAYBE_DONE when counted and the batch may be complete (the
        caller looks: finalize_if_done); else True. A store may answer MAYBE_DONE more often than
        strictly needed (per bucket), never less."""
    def expire_job(self, job: dict, now: str, message: str) -> bool: ...
    def reopen_job(self, job: dict, now: str, mark_batch: bool = True) -> bool:
        """failed -> processing for a retry. `mark_batch`: the reopen also counts on the batch item
        (reopens), so a finisher that read the counts before it cannot close the batch on them;
        a big retry's background step needs none (begin_retry holds every final status off) and
        so reopens many files at once without their transactions meeting on the batch item."""
    def cancel_job(self, job: dict, now: str) -> bool: ...

    # the batch's life
    def start_batch(self, batch: dict, now: str) -> bool: ...
    def finalize(self, batch: dict, status: str, now: str) -> bool: ...
    def reopen_batch(self, batch: dict, now: str) -> bool: ...
    def settle_cancel(self, batch_id: str) -> None: ...
    def begin_retry(self, batch: dict, now: str) -> bool:
        """A big batch's retry whose files are reopened in the background: a final batch goes back
        to processing (counters untouched: sync_counters opens them), an open one stays; no final
        status is written until end_retry. False when the status moved since `batch` was read."""
    def take_retry(self, batch_id: str, token: str, now: str, stale_before: str) -> bool:
        """The one worker that reopens a big retry's files takes its mark (pending, or silent since
        `stale_before`); a duplicate delivery of the step gets False and does nothing."""
    def end_retry(self, batch_id: str, token: str) -> bool: ...
    def mark_deleting(self, batch: dict, now: str) -> bool: ...
    def sync_counters(self, batch_id: str) -> None:
        """A store whose per-file transitions are allowed by something other than the batch item
        (DynamoDB's bucket counters) makes that agree with the batch's status now: nothing counts
        once it is being deleted, only cancels once it is cancelled, everything while it is open.
        A delete, cancel or retry of a big batch leaves that to its background step, which calls
        this first."""
    def materialize_jobs(self, batch: dict, chunk: int) -> int:
        """Every job of one manifest chunk (domain/buckets.py CHUNK_SIZE positions) gets its record,
        unless it has one; idempotent. Jobs are listed before it (as created) but can be claimed
        only after it: uploads are handed out for a chunk once it is materialised."""
    def purge_batch(self, batch_id: str) -> None: ...

    # what the sweep looks for
    def expired_batches(self, before: str) -> Iterable[str]: ...
    def interrupted_cancels(self) -> Iterable[str]: ...
    def interrupted_deletes(self) -> Iterable[str]: ...

    # one archive build per content
    def claim_archive_build(self, batch_id: str, fingerprint: str, now: str, stale_before: str) -> bool: ...
    def release_archive_build(self, batch_id: str, fingerprint: str) -> None: ...
    def start_archive_upload(self, batch_id: str, fingerprint: str, upload_id: str, now: str) -> bool:
        """Record the multipart upload of the build holding the marker; False (changing nothing)
        when the marker is gone or already records an upload."""
    def count_archive_task(self, batch_id: str, fingerprint: str, upload_id: str, task: int,
                           now: str) -> int | None:
        """Count one finished task of that upload, once however often it is reported, and mark the
        build alive (`now`). Returns how many distinct tasks are counted, or None when the marker
        no longer records this upload (a newer build took over, or the build was released)."""
    def finish_archive_build(self, batch_id: str, fingerprint: str, upload_id: str) -> bool:
        """Release the marker of that upload's build; True for exactly one caller, False when it
        is gone or records another upload."""


class TokenStore(Protocol):
    def owner_for_token(self, digest: str) -> str | None: ...
    def save_token(self, digest: str, owner: str) -> None: ...


class DropFolderStore(Protocol):
    """Which batch a drop folder became (services/dropfolders.py). One batch per folder at a
    time: the claim is a lease while the batch is being created, then the folder's record."""

    def claim_drop_folder(self, owner: str, folder: str, batch_id: str, now: str, stale_before: str) -> bool:
        """True when the caller may create `batch_id` from the folder now: the folder was free,
        or its claim for this very batch was left `creating` before `stale_before` (a crash)."""
    def drop_folder_created(self, owner: str, folder: str, batch_id: str, now: str) -> None: ...
    def drop_folder(self, owner: str, folder: str) -> dict | None:
        """{"batch_id", "state" ("creating" | "created"), "updated_at"} or None."""
    def release_drop_folder(self, owner: str, folder: str, batch_id: str) -> None:
        """Free the folder if `batch_id` holds it (its batch was deleted, or never made)."""


class Repository(PipelineStore, BatchStore, TokenStore, DropFolderStore, Protocol):
    """Everything the services keep in the database."""


class ObjectStore(Protocol):
    """The bucket: presigned transfers for clients, reads and writes for the functions."""
    def presign_upload(self, key: str, size: int, content_type: str, expires_in: int) -> dict: ...
    def presign_download(self, key: str, expires_in: int, file_name: str | None = None) -> str: ...
    def head(self, key: str) -> dict | None: ...
    def fetch(self, key: str) -> tuple[int, IO[bytes]] | None:
        """(size, streaming body with iter_chunks) or None when the object is gone."""
    def read_chunks(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]: ...
    def put(self, key: str, data: bytes, content_type: str) -> None: ...
    def write_stream(self, key: str, chunks: Iterable[bytes], content_type: str,
                     file_name: str | None = None) -> dict: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def list_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(key, size) of every object under prefix, in key order."""
    def abort_multipart_uploads(self, prefix: str) -> int:
        """Abort every multipart upload in progress under prefix; how many there were."""
    def browser_origins(self, probe_key: str) -> list[str]:
        """The origins a browser talks to for presigned transfers (for the UI's CSP)."""


class MultipartStore(Protocol):
    """One object written as S3 multipart parts by several workers, each part sent on its own."""
    def read_range(self, key: str, start: int, length: int, object_size: int) -> Iterator[bytes]:
        """Bytes [start, start + length) of an object planned as `object_size` bytes long; raises
        SourceChanged when it is gone or its size differs."""
    def start_upload(self, key: str, content_type: str, file_name: str | None = None) -> str: ...
    def check_upload(self, key: str, upload_id: str) -> None:
        """Raises UploadGone when the upload was completed or aborted."""
    def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> None: ...
    def copy_part(self, key: str, upload_id: str, number: int, source_key: str, start: int, length: int) -> None:
        """Server-side copy of a source range into part `number`; SourceChanged when the source is gone."""
    def complete_upload(self, key: str, upload_id: str, parts: int) -> None:
        """Complete with parts 1..`parts` as uploaded; UploadGone when it is no longer there."""
    def abort_upload(self, key: str, upload_id: str) -> None:
        """Abort one upload (gone already is fine)."""
    def abort_uploads(self, key: str, keep: str | None = None) -> int:
        """Abort every unfinished upload of `key` except `keep`; returns how many."""


class PresignedMultipart(Protocol):
    """S3 multipart uploads that clients fill through presigned UploadPart URLs
    (services/multipart.py). Part numbers are 1-based."""
    def start_multipart(self, key: str, content_type: str) -> str:
        """A new multipart upload of `key`; its upload id."""
    def multipart_uploads(self, prefix: str) -> list[dict]:
        """[{"key", "upload_id", "initiated"}] in progress under prefix, oldest first (ties by id)."""
    def list_parts(self, key: str, upload_id: str) -> dict[int, dict] | None:
        """part number -> {"size", "etag"} of the parts S3 holds; None when there is no such upload."""
    def presign_part(self, key: str, upload_id: str, number: int, size: int, expires_in: int) -> str:
        """A PUT URL for one part that S3 accepts only with exactly `size` bytes (signed Content-Length)."""
    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        """Join the (number, etag) parts into the object (S3 then announces ObjectCreated)."""
    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Abort one upload; one that is gone already is fine."""


class ProcessingQueue(Protocol):
    def enqueue_keys(self, keys: list[str], jobs: list[dict] | None = None) -> None:
        """Ask for these uploads to be processed (again), each with its job's state when known
        (so the processing function need not read it). The arrivals queue has the same
        shape: there it asks for objects to be registered as arrived (drop folders' files)."""


class MaintenanceQueue(Protocol):
    def send(self, message: dict) -> None:
        """Work too long for the request that asks for it: {"kind": "materialize" | "purge" |
        "cancel_jobs" | "retry_jobs", "batch_id", ...}; services/maintenance.py runs it."""


class ArchiveQueue(Protocol):
    def request_build(self, batch_id: str, partial: bool) -> None: ...
    def request_tasks(self, tasks: list[dict]) -> None:
        """One message per task of a parallel archive build (the parts queue)."""
