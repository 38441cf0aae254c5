"""HTTP access to the image-batch API, and the plain client used for S3.

Two separate httpx clients on purpose: the API client carries the bearer token and never follows
redirects (a 302 from /download is an answer, not a detour); the storage client talks to presigned
S3 URLs, which carry their own signature and must never see our token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import httpx

from imgbatch import __version__
from imgbatch.retry import backoff_delay, is_transient_status, retry_after_seconds

USER_AGENT = f"imgbatch/{__version__}"
API_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# Uploads and downloads move large bodies; a generous read/write timeout per chunk, not per file.
STORAGE_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
GET_ATTEMPTS = 3


class ApiError(Exception):
    """An error answer from the API, or no answer at all (status None)."""

    def __init__(self, status: int | None, code: str, message: str, errors: list[dict] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or []  # every problem, [{"field", "message"}], where the API checked input whole

    def __str__(self) -> str:
        if self.status is None:
            return self.message
        return f"{self.message} (HTTP {self.status} {self.code})"


def error_from_response(response: httpx.Response) -> ApiError:
    code, message, errors = "", "", []
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = str(body.get("Code") or body.get("code") or "")
        message = str(body.get("Message") or body.get("message") or "")
        raw = body.get("Errors")
        if isinstance(raw, list):
            errors = [{"field": str(e.get("field", "")), "message": str(e.get("message", ""))}
                      for e in raw if isinstance(e, dict)]
    if not message:
        text = response.text.strip()
        message = text[:300] if text else response.reason_phrase or "no details given"
    return ApiError(response.status_code, code or response.reason_phrase or "Error", message, errors)


@dataclass(frozen=True)
class ArchiveTicket:
    """Answer of GET /batches/{id}/download: either a URL to fetch or a time to wait."""

    url: str | None = None
    retry_after: float | None = None


class ApiClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
            transport=transport,
            timeout=API_TIMEOUT,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------

    def _send(self, method: str, path: str, *, idempotent: bool = False, **kwargs: Any) -> httpx.Response:
        # Only GETs and calls marked idempotent are retried: a repeated POST /batches would
        # create a second batch, while starting or completing an upload in parts twice is harmless.
        attempts = GET_ATTEMPTS if method == "GET" or idempotent else 1
        for attempt in range(1, attempts + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if attempt == attempts:
                    raise ApiError(
                        None, "NetworkError", f"cannot reach the API at {self.base_url}: {exc}"
                    ) from exc
                self._sleep(backoff_delay(attempt))
                continue
            if attempt < attempts and is_transient_status(response.status_code):
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                self._sleep(min(wait, 30.0) if wait is not None else backoff_delay(attempt))
                continue
            return response
        raise AssertionError("unreachable")

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        if response.status_code >= 400:
            raise error_from_response(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(
                response.status_code,
                "InvalidResponse",
                f"the API answered {method} {path} with something that is not JSON",
            ) from exc

    # -- pipelines ------------------------------------------------------------------------

    def list_pipelines(self) -> list[dict]:
        return self._json("GET", "/pipelines")["pipelines"]

    def get_pipeline(self, pipeline_id: str) -> dict:
        return self._json("GET", f"/pipelines/{pipeline_id}")["pipeline"]

    def create_pipeline(self, fields: Mapping[str, Any]) -> dict:
        return self._json("POST", "/pipelines", json=dict(fields))["pipeline"]

    def replace_pipeline(self, pipeline_id: str, fields: Mapping[str, Any]) -> dict:
        return self._json("PUT", f"/pipelines/{pipeline_id}", json=dict(fields))["pipeline"]

    def delete_pipeline(self, pipeline_id: str) -> None:
        self._json("DELETE", f"/pipelines/{pipeline_id}")

    # -- batches --------------------------------------------------------------------------

    def create_batch(self, body: Mapping[str, Any]) -> dict:
        """POST /batches; returns {"batch": B, "uploads": [U...]}."""
        return self._json("POST", "/batches", json=dict(body))

    def pending_uploads(self, batch_id: str, *, cursor: str | None = None,
                        on_page: Callable[[int], None] | None = None) -> list[dict]:
        """Fresh upload links for the files a batch still waits for, every page.

        GET /batches/{id}/uploads is not in the written contract; the service adds it because
        POST /batches returns at most one page of links (10,000 presigned POSTs would not fit a
        Lambda response) and so that an interrupted upload can be resumed.
        """
        uploads: list[dict] = []
        for page in self.upload_pages(batch_id, cursor=cursor):
            uploads.extend(page)
            if on_page is not None:
                on_page(len(uploads))
        return uploads

    def upload_pages(self, batch_id: str, *, cursor: str | None = None) -> Iterator[list[dict]]:
        """The same links a page (1,000) at a time, each page fetched when the one before is used up."""
        while True:
            page = self._json("GET", f"/batches/{batch_id}/uploads", params=_drop_none({"cursor": cursor}))
            yield list(page.get("uploads") or [])
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def start_multipart(self, batch_id: str, job_id: str, *, after: int | None = None) -> dict:
        """Start or resume a file's upload in parts: {"upload": {"parts_uploaded", "parts", ...}}."""
        return self._json("POST", f"/batches/{batch_id}/jobs/{job_id}/multipart",
                          params=_drop_none({"after": after, "limit": 1000}), idempotent=True)

    def complete_multipart(self, batch_id: str, job_id: str) -> dict:
        return self._json("POST", f"/batches/{batch_id}/jobs/{job_id}/multipart/complete", idempotent=True)

    def get_batch(
        self, batch_id: str, *, jobs_limit: int | None = None, jobs_cursor: str | None = None
    ) -> dict:
        params = {"jobs_limit": jobs_limit, "jobs_cursor": jobs_cursor}
        return self._json("GET", f"/batches/{batch_id}", params=_drop_none(params))["batch"]

    def get_batch_with_all_jobs(self, batch_id: str) -> dict:
        batch = self.get_batch(batch_id)
        jobs = list(batch.get("jobs") or [])
        cursor = batch.get("jobs_next_cursor")
        while cursor:
            page = self.get_batch(batch_id, jobs_cursor=cursor)
            jobs.extend(page.get("jobs") or [])
            cursor = page.get("jobs_next_cursor")
        return {**batch, "jobs": jobs, "jobs_next_cursor": None}

    def list_batches(self, **params: Any) -> dict:
        """One page: {"batches": [...], "next_cursor": ...}."""
        return self._json("GET", "/batches", params=_drop_none(params))

    def iter_batches(self, **params: Any) -> Iterator[dict]:
        cursor = params.pop("cursor", None)
        while True:
            page = self.list_batches(**params, cursor=cursor)
            yield from page.get("batches") or []
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def stats(self) -> dict:
        return self._json("GET", "/batches/stats")

    def cancel_batch(self, batch_id: str) -> dict:
        return self._json("POST", f"/batches/{batch_id}/cancel")["batch"]

    def retry_batch(self, batch_id: str) -> dict:
        return self._json("POST", f"/batches/{batch_id}/retry")["batch"]

    def delete_batch(self, batch_id: str) -> None:
        self._json("DELETE", f"/batches/{batch_id}")

    def results_file(self, batch_id: str, fmt: str) -> dict:
        """The batch's results export, stored by the service: {"url", "file_name", "expires_at", "size"}."""
        return self._json("GET", f"/batches/{batch_id}/results", params={"format": fmt, "redirect": "false"})

    def contact_sheet(self, batch_id: str, part: int = 1) -> dict:
        """One part of the batch's contact sheet (PDF): {"url", "file_name", ..., "part", "parts"}."""
        return self._json("GET", f"/batches/{batch_id}/contact-sheet", params={"part": part, "redirect": "false"})
    # -- webhooks ---------------------------------------------------------------------------

    def create_webhook(self, body: Mapping[str, Any]) -> dict:
        return self._json("POST", "/webhooks", json=dict(body))

    def list_webhooks(self) -> list[dict]:
        return self._json("GET", "/webhooks")["webhooks"]

    def get_webhook(self, webhook_id: str) -> dict:
        return self._json("GET", f"/webhooks/{webhook_id}")["webhook"]

    def delete_webhook(self, webhook_id: str) -> None:
        self._json("DELETE", f"/webhooks/{webhook_id}")

    def ping_webhook(self, webhook_id: str) -> dict:
        return self._json("POST", f"/webhooks/{webhook_id}/ping")["delivery"]

    def list_deliveries(self, webhook_id: str, *, limit: int = 50, cursor: str | None = None) -> dict:
        params = _drop_none({"limit": limit, "cursor": cursor})
        return self._json("GET", f"/webhooks/{webhook_id}/deliveries", params=params)

    def redeliver(self, webhook_id: str, delivery_id: str) -> dict:
        return self._json("POST", f"/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver")["delivery"]

    def request_archive(self, batch_id: str, *, partial: bool = False) -> ArchiveTicket:
        params = {"partial": "true"} if partial else {}
        response = self._send("GET", f"/batches/{batch_id}/download", params=params)
        if response.status_code == 202:
            return ArchiveTicket(
                retry_after=retry_after_seconds(response.headers.get("Retry-After"), default=2.0)
            )
        if response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers:
            # Location may be relative in principle; resolve it against the API URL.
            return ArchiveTicket(url=str(response.url.join(response.headers["location"])))
        if response.status_code >= 400:
            raise error_from_response(response)
        raise ApiError(
            response.status_code,
            "UnexpectedResponse",
            f"expected a redirect to the archive, got HTTP {response.status_code}",
        )


def make_storage_client(transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """A client for presigned S3 URLs: no auth header, no base URL."""
    return httpx.Client(
        transport=transport,
        timeout=STORAGE_TIMEOUT,
        headers={"User-Agent": USER_AGENT},
        follow_redirects=True,
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
    )


def _drop_none(params: Mapping[str, Any]) -> dict:
    return {key: value for key, value in params.items() if value is not None}
