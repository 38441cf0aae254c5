"""Parallel uploads of local files: presigned S3 POSTs as returned by POST /batches, and uploads
in parts for files above the service's multipart threshold (imgbatch/parts.py)."""

from __future__ import annotations

import os
import re
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sized

import httpx

from imgbatch.retry import backoff_delay, is_transient_error, is_transient_status, retry_after_seconds

DEFAULT_CONCURRENCY = 8
DEFAULT_ATTEMPTS = 5
AHEAD_PER_WORKER = 2   # tasks handed to the pool per worker before the next is taken from the source
MAX_RETRY_AFTER = 30.0


@dataclass(frozen=True)
class UploadTask:
    job_id: str
    file_name: str
    path: Path
    size: int
    content_type: str
    url: str | None
    fields: Mapping[str, str]
    method: str = "POST"            # or "MULTIPART": parts through the API (imgbatch/parts.py)
    batch_id: str | None = None
    part_size: int | None = None


@dataclass
class UploadResult:
    task: UploadTask
    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None
    parts_total: int | None = None    # uploads in parts: how many the file has,
    parts_already: int = 0            # how many S3 held before this run (not sent again),
    parts_sent: int = 0               # how many this run sent,
    first_part_sent: int | None = None   # and where it began


class UploadInterrupted(Exception):
    """Ctrl-C during uploads, or the tasks' source failing part-way (`reason`: the upload links
    of a later page could not be fetched); carries the results that had finished, to report them."""

    def __init__(self, results: list[UploadResult], reason: str | None = None) -> None:
        super().__init__(reason or "upload interrupted")
        self.results = results
        self.reason = reason


class _Cancelled(Exception):
    pass


@dataclass
class _ProgressReader:
    """File wrapper handed to httpx: counts bytes as they are sent and stops on cancel.

    httpx reads it in 64 KiB chunks and takes the length from fileno()/fstat, so the body is
    streamed from disk with a correct Content-Length (S3 POST rejects chunked bodies).
    """

    raw: object
    cancel: threading.Event
    on_read: Callable[[int], None]

    def read(self, size: int = -1) -> bytes:
        if self.cancel.is_set():
            raise _Cancelled()
        chunk = self.raw.read(size)
        self.on_read(len(chunk))
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def fileno(self) -> int:
        return self.raw.fileno()


def describe_s3_error(response: httpx.Response) -> str:
    """S3 answers POST errors in XML: keep its Code and Message, drop the rest."""
    text = response.text
    code = re.search(r"<Code>(.*?)</Code>", text, re.S)
    message = re.search(r"<Message>(.*?)</Message>", text, re.S)
    detail = ": ".join(m.group(1).strip() for m in (code, message) if m)
    if not detail:
        detail = text.strip()[:200] or response.reason_phrase
    return f"HTTP {response.status_code} {detail}"


class Uploader:
    def __init__(
        self,
        http: httpx.Client,
        *,
        api=None,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_attempts: int = DEFAULT_ATTEMPTS,
        sleep: Callable[[float], None] | None = None,
        rand: Callable[[], float] | None = None,
    ) -> None:
        self._http = http
        self._api = api   # the API client: uploads in parts get their part URLs from it
        self._concurrency = max(1, concurrency)
        self._max_attempts = max(1, max_attempts)
        self._sleep = sleep
        self._rand = rand
        self._cancel = threading.Event()

    def run(
        self,
        tasks: Iterable[UploadTask],
        *,
        on_bytes: Callable[[int], None] = lambda n: None,
        on_done: Callable[[UploadResult], None] = lambda r: None,
        on_part: Callable[[UploadTask, int, int], None] = lambda task, done, total: None,
    ) -> list[UploadResult]:
        """Upload every task; per-file failures are results, Ctrl-C is UploadInterrupted.
        `on_part(task, parts done, parts in all)` follows files uploaded in parts. Tasks are
        taken from `tasks` only as workers are about to need them (a few per worker ahead), so
        an iterable that fetches its upload links page by page fetches each shortly before use."""
        self._cancel.clear()
        self._on_part = on_part
        results: list[UploadResult] = []
        workers = min(self._concurrency, len(tasks) or 1) if isinstance(tasks, Sized) else self._concurrency
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="imgbatch-upload")
        waiting = iter(tasks)
        futures: list = []
        pending: set = set()
        more, stopped = True, None
        try:
            while more or pending:
                while more and len(pending) < AHEAD_PER_WORKER * workers:
                    try:
                        task = next(waiting, None)
                    except Exception as exc:   # no more links (a page failed): finish what is under way
                        task, stopped = None, exc
                    if task is None:
                        more = False
                    else:
                        futures.append(pool.submit(self._upload_one, task, on_bytes))
                        pending.add(futures[-1])
                if not pending:
                    continue
                # A timeout keeps the main thread waking up, so Ctrl-C is seen promptly.
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    result = future.result()
                    results.append(result)
                    on_done(result)
        except KeyboardInterrupt:
            self._cancel.set()
            pool.shutdown(wait=False, cancel_futures=True)
            # Report every upload that had finished, including ones not handled by the loop yet.
            finished = [f.result() for f in futures
                        if f.done() and not f.cancelled() and f.exception() is None]
            raise UploadInterrupted(finished) from None
        except BaseException:
            self._cancel.set()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        if stopped is not None:
            raise UploadInterrupted(results, reason=str(stopped)) from stopped
        return results

    # Runs in a worker thread.
    def _upload_one(self, task: UploadTask, on_bytes: Callable[[int], None]) -> UploadResult:
        if self._cancel.is_set():
            return UploadResult(task, ok=False, attempts=0, error="cancelled")
        if task.method == "MULTIPART":
            return self._upload_in_parts(task, on_bytes)
        attempt = 0
        while True:
            attempt += 1
            sent = 0

            def count(n: int) -> None:
                nonlocal sent
                sent += n
                on_bytes(n)

            outcome = self._attempt(task, attempt, count)
            result = outcome.result
            if not result.ok and sent:
                # These bytes are either sent again or never count: take them off the bar.
                on_bytes(-sent)
            if result.ok or not outcome.retryable:
                return result
            if attempt >= self._max_attempts:
                result.error = f"{result.error} (gave up after {attempt} attempts)"
                return result
            delay = backoff_delay(attempt, self._rand() if self._rand else None)
            if outcome.retry_after is not None:
                delay = max(delay, min(outcome.retry_after, MAX_RETRY_AFTER))
            self._pause(delay)
            if self._cancel.is_set():
                result.error = "cancelled"
                return result

    def _upload_in_parts(self, task: UploadTask, on_bytes: Callable[[int], None]) -> UploadResult:
        from imgbatch.parts import PartsUploader
        if self._api is None:
            return UploadResult(task, ok=False, attempts=0, error="uploads in parts need the API client")
        try:
            actual = os.stat(task.path).st_size
        except OSError as exc:
            return UploadResult(task, ok=False, attempts=0, error=f"cannot read file: {exc}")
        if actual != task.size:
            return UploadResult(task, ok=False, attempts=0, error=(
                f"file changed since the batch was created (declared {task.size} bytes, now {actual})"))
        parts = PartsUploader(self._api, self._http, max_attempts=self._max_attempts, cancel=self._cancel,
                              pause=self._pause, rand=self._rand)
        outcome = parts.upload(task, on_bytes, getattr(self, "_on_part", lambda *a: None))
        return UploadResult(task, ok=outcome.ok, attempts=outcome.attempts, status=outcome.status,
                            error=outcome.error, parts_total=outcome.parts_total or None,
                            parts_already=outcome.parts_already, parts_sent=len(outcome.parts_sent),
                            first_part_sent=outcome.first_sent)

    def _attempt(self, task: UploadTask, attempt: int, count: Callable[[int], None]) -> "_Outcome":
        def failed(error: str, status: int | None = None, retryable: bool = False) -> _Outcome:
            result = UploadResult(task, ok=False, attempts=attempt, status=status, error=error)
            return _Outcome(result, retryable=retryable)

        try:
            with task.path.open("rb") as fh:
                actual = os.fstat(fh.fileno()).st_size
                if actual != task.size:
                    # The presigned policy pins the declared size; S3 would refuse it anyway.
                    return failed(
                        f"file changed since the batch was created "
                        f"(declared {task.size} bytes, now {actual})"
                    )
                response = self._http.post(
                    task.url,
                    # httpx writes data fields before files; S3 requires the file last.
                    data={key: str(value) for key, value in task.fields.items()},
                    files={
                        "file": (
                            task.file_name,
                            _ProgressReader(fh, self._cancel, count),
                            task.content_type,
                        )
                    },
                )
        except _Cancelled:
            return failed("cancelled")
        except OSError as exc:
            return failed(f"cannot read file: {exc}")
        except httpx.HTTPError as exc:
            return failed(f"{type(exc).__name__}: {exc}", retryable=is_transient_error(exc))
        except httpx.InvalidURL as exc:
            return failed(f"invalid upload URL: {exc}")

        status = response.status_code
        if response.is_success:
            return _Outcome(UploadResult(task, ok=True, attempts=attempt, status=status))
        outcome = failed(describe_s3_error(response), status, is_transient_status(status))
        outcome.retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        return outcome

    def _pause(self, seconds: float) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        else:
            # Waiting on the cancel event instead of time.sleep lets Ctrl-C end backoffs at once.
            self._cancel.wait(seconds)


@dataclass
class _Outcome:
    result: UploadResult
    retryable: bool = False
    retry_after: float | None = None
