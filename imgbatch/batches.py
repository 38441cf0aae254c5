"""Batch-level steps shared by several commands: naming, matching, waiting."""

from __future__ import annotations

import itertools
import re
from typing import Callable, Iterable, Iterator, Sequence

from imgbatch.client import ApiClient, ApiError
from imgbatch.files import ImageFile
from imgbatch.upload import UploadTask

FINAL_STATUSES = ("completed", "completed_with_errors", "failed", "cancelled")
BATCH_STATUSES = ("queued", "processing", *FINAL_STATUSES)
SUCCESS_STATUS = "completed"

POLL_START = 1.0
POLL_MAX = 5.0

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class LookupFailed(LookupError):
    """A name the user typed matches nothing (or too much); the message lists the options."""


def resolve_pipeline_ids(wanted: Iterable[str], pipelines: Sequence[dict]) -> list[str]:
    """Map each --pipeline value to an id: an exact id wins, then a case-insensitive name."""
    by_id = {p["id"]: p for p in pipelines}
    ids: list[str] = []
    for value in wanted:
        if value in by_id:
            match = value
        else:
            named = [p for p in pipelines if p.get("name", "").casefold() == value.casefold()]
            exact = [p for p in named if p.get("name") == value]
            if len(named) == 1 or len(exact) == 1:
                match = (exact or named)[0]["id"]
            elif named:
                raise LookupFailed(f"pipeline name '{value}' is ambiguous; use one of the ids: "
                                   + ", ".join(p["id"] for p in named))
            else:
                raise LookupFailed(f"unknown pipeline '{value}'. {describe_available(pipelines)}")
        if match not in ids:
            ids.append(match)
    return ids


def describe_available(pipelines: Sequence[dict]) -> str:
    if not pipelines:
        return "There are no pipelines yet; create one with `imgbatch pipelines create`."
    listed = ", ".join(f"{p.get('name')} ({p['id']})" for p in pipelines)
    return f"Available pipelines: {listed}"


def batch_request(images: Sequence[ImageFile], pipeline_ids: list[str], *,
                  description: str | None = None, customer_prefix: str | None = None,
                  metadata: dict | None = None) -> dict:
    """Body of POST /batches; optional fields are left out so the API derives them."""
    body: dict = {
        "pipeline_ids": pipeline_ids,
        "files": [{"name": i.name, "size": i.size, "content_type": i.content_type} for i in images],
    }
    if description:
        body["description"] = description
    if customer_prefix:
        body["customer_prefix"] = customer_prefix
    if metadata:
        body["metadata"] = dict(metadata)
    return body


def upload_tasks(images: Sequence[ImageFile], uploads: Sequence[dict], batch_id: str | None = None, *,
                 offset: int = 0, positional: bool | None = None) -> list[UploadTask]:
    """Pair each presigned upload with its local file.

    Pairs by file name; when the API has made a name safe (so it differs from ours) the upload
    at the same position is used, since the API answers in the order the files were sent
    (`positional`: the uploads are every file's, from position `offset`; by default when there
    are as many as files).
    """
    by_name = {image.name: image for image in images}
    if positional is None:
        positional = offset == 0 and len(uploads) == len(images)
    tasks = []
    for index, upload in enumerate(uploads):
        image = by_name.get(upload["file_name"])
        if image is None and positional and offset + index < len(images):
            image = images[offset + index]
        if image is None:
            raise ApiError(201, "UnexpectedResponse",
                           f"the API returned an upload for a file we did not send: {upload['file_name']!r}")
        tasks.append(
            UploadTask(
                job_id=upload["job_id"],
                file_name=upload["file_name"],
                path=image.path,
                size=image.size,
                content_type=image.content_type,
                url=upload.get("url"),
                fields=upload.get("fields") or {},
                method=upload.get("method") or "POST",
                batch_id=batch_id,
                part_size=upload.get("part_size"),
            )
        )
    return tasks


class PagedUploads:
    """A new batch's upload tasks as its pages of links come (1,000 a page): uploading starts with
    the first page, and each page is fetched when the uploads have nearly used up the one before,
    so no link waits long before it is used (a 100,000-file batch's last page came before its
    first upload, and links are signed with temporary credentials). Sized for progress displays;
    `not_sent` is known once it has been iterated."""

    def __init__(self, api: ApiClient, batch_id: str, images: Sequence[ImageFile], first: Sequence[dict],
                 cursor: str | None) -> None:
        self._api, self._batch_id, self._images = api, batch_id, images
        self._first, self._cursor = list(first), cursor
        self.total_size = sum(image.size for image in images)
        self.received = 0

    def __len__(self) -> int:
        return len(self._images)

    def __iter__(self) -> Iterator[UploadTask]:
        pages = itertools.chain([self._first], self._api.upload_pages(self._batch_id, cursor=self._cursor)
                                if self._cursor else [])
        for page in pages:
            yield from upload_tasks(self._images, page, self._batch_id, offset=self.received, positional=True)
            self.received += len(page)

    @property
    def not_sent(self) -> int:
        return max(0, len(self._images) - self.received)


def wait_until_final(
    api: ApiClient,
    batch_id: str,
    *,
    sleep: Callable[[float], None],
    on_update: Callable[[dict], None] = lambda batch: None,
) -> dict:
    """Poll until the batch reaches a final status; returns the final batch (without jobs)."""
    interval = POLL_START
    while True:
        # jobs_limit=1: the counters are all we need, not a page of 1,000 jobs per poll.
        batch = api.get_batch(batch_id, jobs_limit=1)
        on_update(batch)
        if batch.get("status") in FINAL_STATUSES:
            return without_jobs(batch)
        sleep(interval)
        interval = min(POLL_MAX, interval * 1.5)


def without_jobs(batch: dict) -> dict:
    """The batch alone, for places that report counters (the one page of jobs would mislead)."""
    return {key: value for key, value in batch.items() if key not in ("jobs", "jobs_next_cursor")}


def resolve_batch_ref(api: ApiClient, ref: str) -> str:
    """Accept a batch id or its base_directory_name (what `imgbatch list` shows)."""
    if _UUID.match(ref):
        return ref
    matches = [
        b for b in api.iter_batches(search=ref, limit=200)
        if b.get("base_directory_name", "").casefold() == ref.casefold()
    ]
    if len(matches) == 1:
        return matches[0]["id"]
    if not matches:
        raise LookupFailed(f"no batch with id or name '{ref}'; see `imgbatch list`")
    raise LookupFailed(f"several batches are named '{ref}': " + ", ".join(b["id"] for b in matches))
