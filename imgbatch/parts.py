"""Uploads in parts: a file above the service's multipart threshold goes to S3 as one multipart
upload whose part URLs the API hands out (POST /batches/{id}/jobs/{job_id}/multipart).

The API lists the parts S3 already holds, so a run after a crash, Ctrl-C or a lost connection
sends only the parts still missing (`imgbatch resume` continues at the first missing part). Each
part is retried on its own with the same backoff as whole files; a part is streamed from disk
with the exact Content-Length its URL was signed for. Once every part is in, the API joins them.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import httpx

from imgbatch.client import ApiClient, ApiError
from imgbatch.retry import backoff_delay, is_transient_error, is_transient_status, retry_after_seconds

PART_CONCURRENCY = 4   # parts of one file in flight at once
CHUNK = 64 * 1024
MAX_RETRY_AFTER = 30.0


class PartsCancelled(Exception):
    pass


@dataclass
class PartsOutcome:
    ok: bool
    parts_total: int = 0
    parts_already: int = 0            # held by S3 before this run: not sent again
    parts_sent: list[int] = field(default_factory=list)
    error: str | None = None
    status: int | None = None
    attempts: int = 1                  # the most attempts any one part took

    @property
    def first_sent(self) -> int | None:
        return min(self.parts_sent) if self.parts_sent else None


class _PartReader:
    """One part of a file as an iterator of chunks (httpx sends it with the Content-Length
    given, not chunked: S3 signs the length). Counts bytes and stops on cancel."""

    def __init__(self, path, offset: int, length: int, cancel: threading.Event, on_read: Callable[[int], None]):
        self.path, self.offset, self.length, self.cancel, self.on_read = path, offset, length, cancel, on_read

    def __iter__(self):
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            left = self.length
            while left:
                if self.cancel.is_set():
                    raise PartsCancelled()
                chunk = fh.read(min(CHUNK, left))
                if not chunk:
                    raise OSError(f"the file ended {left} bytes early (it changed since the batch was created)")
                left -= len(chunk)
                self.on_read(len(chunk))
                yield chunk


class PartsUploader:
    def __init__(self, api: ApiClient, http: httpx.Client, *, max_attempts: int, cancel: threading.Event,
                 pause: Callable[[float], None], rand: Callable[[], float] | None = None,
                 part_concurrency: int = PART_CONCURRENCY) -> None:
        self._api = api
        self._http = http
        self._max_attempts = max_attempts
        self._cancel = cancel
        self._pause = pause
        self._rand = rand
        self._part_concurrency = max(1, part_concurrency)

    def upload(self, task, on_bytes: Callable[[int], None],
               on_part: Callable[[object, int, int], None] = lambda task, done, total: None) -> PartsOutcome:
        """Send every part S3 does not hold yet, then complete. `on_bytes` counts bytes of
        this file (parts S3 held before count at once); `on_part(task, parts done, total)`."""
        counted = 0

        def count(n: int) -> None:
            nonlocal counted
            counted += n
            on_bytes(n)

        outcome = PartsOutcome(ok=False)
        try:
            for round_ in range(2):   # a second round when completion finds a part missing or wrong
                upload, parts = self._start(task)
                outcome.parts_total = upload["parts_total"]
                if round_ == 0:
                    outcome.parts_already = len(upload["parts_uploaded"])
                    count(upload["bytes_uploaded"])
                done = len(upload["parts_uploaded"])
                on_part(task, done, outcome.parts_total)
                self._send_parts(task, parts, outcome, count, on_part, done)
                problem = self._complete(task)
                if problem is None:
                    outcome.ok = True
                    return outcome
            outcome.error = problem
        except PartsCancelled:
            outcome.error = "cancelled"
        except _PartFailed as exc:
            outcome.error, outcome.status = str(exc), exc.status
        except ApiError as exc:
            outcome.error, outcome.status = f"the API refused the upload in parts: {exc}", exc.status
        except OSError as exc:
            outcome.error = f"cannot read file: {exc}"
        on_bytes(-counted)   # a failed file never counts on the bar
        return outcome

    # -- steps ----------------------------------------------------------------------------
    def _start(self, task) -> tuple[dict, list[dict]]:
        """The upload (started or resumed) and the URLs of every part still to send."""
        first = self._api.start_multipart(task.batch_id, task.job_id)["upload"]
        if first["size"] != task.size:
            raise _PartFailed(f"file changed since the batch was created (declared {first['size']} bytes, "
                              f"now {task.size})", None)
        parts, page = list(first["parts"]), first
        while page.get("next_after") is not None:
            page = self._api.start_multipart(task.batch_id, task.job_id, after=page["next_after"])["upload"]
            parts += page["parts"]
        return first, parts

    def _send_parts(self, task, parts: list[dict], outcome: PartsOutcome, count, on_part, done: int) -> None:
        lock = threading.Lock()
        progress = {"done": done}

        def one(part: dict) -> None:
            attempts = self._send_part(task, part, count)
            with lock:
                outcome.parts_sent.append(part["part_number"])
                outcome.attempts = max(outcome.attempts, attempts)
                progress["done"] += 1
                on_part(task, progress["done"], outcome.parts_total)

        if not parts:
            return
        with ThreadPoolExecutor(max_workers=min(self._part_concurrency, len(parts)),
                                thread_name_prefix="imgbatch-part") as pool:
            futures = [pool.submit(one, part) for part in parts]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                self._cancel_parts(futures)
                raise
        outcome.parts_sent.sort()

    def _cancel_parts(self, futures) -> None:
        for future in futures:
            future.cancel()

    def _send_part(self, task, part: dict, count) -> int:
        """PUT one part, retried on its own; the attempts it took."""
        offset = (part["part_number"] - 1) * task.part_size
        attempt = 0
        while True:
            attempt += 1
            sent = 0

            def read(n: int) -> None:
                nonlocal sent
                sent += n
                count(n)

            status, error, retry_after = None, None, None
            try:
                response = self._http.put(part["url"], content=_PartReader(task.path, offset, part["size"],
                                                                           self._cancel, read),
                                          headers={"Content-Length": str(part["size"])})
                status = response.status_code
                if response.is_success:
                    return attempt
                from imgbatch.upload import describe_s3_error
                error, retryable = describe_s3_error(response), is_transient_status(status)
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            except httpx.HTTPError as exc:
                if isinstance(exc.__cause__, PartsCancelled) or self._cancel.is_set():
                    raise PartsCancelled() from None
                error, retryable = f"{type(exc).__name__}: {exc}", is_transient_error(exc)
            count(-sent)   # these bytes are sent again or never count
            if not retryable or attempt >= self._max_attempts:
                suffix = f" (gave up after {attempt} attempts)" if retryable else ""
                raise _PartFailed(f"part {part['part_number']} of {task.file_name}: {error}{suffix}", status)
            delay = backoff_delay(attempt, self._rand() if self._rand else None)
            if retry_after is not None:
                delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
            self._pause(delay)
            if self._cancel.is_set():
                raise PartsCancelled()

    def _complete(self, task) -> str | None:
        """None once the file is joined; the API's reason when a part is missing or wrong."""
        try:
            self._api.complete_multipart(task.batch_id, task.job_id)
        except ApiError as exc:
            if exc.status == 400:
                return exc.message
            raise
        return None


class _PartFailed(Exception):
    def __init__(self, message: str, status: int | None):
        super().__init__(message)
        self.status = status
