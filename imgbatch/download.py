"""Fetch a batch's ZIP: ask the API until it redirects, then stream the file from storage."""

from __future__ import annotations

import email.message
import os
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

import httpx

from imgbatch.client import ApiClient, ApiError
from imgbatch.upload import describe_s3_error

# Retry-After is the server's estimate; cap each wait so a bogus value cannot stall us for hours,
# and give up overall after an hour (the archive build has failed by then).
MAX_SINGLE_WAIT = 30.0
MIN_SINGLE_WAIT = 1.0
MAX_TOTAL_WAIT = 3600.0
CHUNK = 1024 * 1024
MANIFEST = "manifest.csv"  # every archive has one; outputs are images (.jpg/.png/.webp), never .csv


@dataclass(frozen=True)
class SavedArchive:
    path: Path
    size: int
    images: int | None = None  # output images in it (manifest.csv aside); None: not a readable ZIP


def count_images(path: Path) -> int | None:
    """Output files in a saved archive: a failed or cancelled batch gives a ZIP of only the manifest."""
    try:
        with zipfile.ZipFile(path) as archive:
            return sum(1 for info in archive.infolist()
                       if not info.is_dir() and PurePosixPath(info.filename).name != MANIFEST)
    except (zipfile.BadZipFile, OSError):
        return None


@dataclass
class DownloadHooks:
    """How the caller shows progress; every hook is optional."""

    on_wait: Callable[[float], None] = lambda seconds: None
    on_start: Callable[[str, int | None], None] = lambda name, total: None
    on_bytes: Callable[[int], None] = lambda n: None


def safe_filename(name: str | None) -> str | None:
    """Reduce a server-supplied name to a plain file name, or None if nothing usable is left.

    The name decides where we write, so "../../.bashrc" must become "bashrc", not a path.
    """
    if not name:
        return None
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip().lstrip(".")
    return name or None


def filename_from_disposition(value: str | None) -> str | None:
    if not value:
        return None
    # email.message knows both filename="..." and RFC 2231/5987 filename*=UTF-8''...
    message = email.message.Message()
    message["content-disposition"] = value
    return safe_filename(message.get_filename())


def wait_for_archive_url(
    api: ApiClient,
    batch_id: str,
    *,
    partial: bool,
    sleep: Callable[[float], None],
    on_wait: Callable[[float], None],
) -> str:
    waited = 0.0
    while True:
        ticket = api.request_archive(batch_id, partial=partial)
        if ticket.url:
            return ticket.url
        delay = min(MAX_SINGLE_WAIT, max(MIN_SINGLE_WAIT, ticket.retry_after or 0.0))
        if waited + delay > MAX_TOTAL_WAIT:
            raise ApiError(
                202,
                "ArchiveNotReady",
                f"the archive was still being prepared after {int(waited)} s; "
                f"try again later with `imgbatch download {batch_id}`",
            )
        on_wait(delay)
        sleep(delay)
        waited += delay


def fetch_archive(
    api: ApiClient,
    storage: httpx.Client,
    batch_id: str,
    dest_dir: Path,
    *,
    partial: bool,
    fallback_name: Callable[[], str],
    sleep: Callable[[float], None],
    hooks: DownloadHooks | None = None,
) -> SavedArchive:
    hooks = hooks or DownloadHooks()
    url = wait_for_archive_url(api, batch_id, partial=partial, sleep=sleep, on_wait=hooks.on_wait)
    try:
        # No Authorization header here: the presigned URL is its own credential, and our
        # token has no business travelling to the storage host.
        with storage.stream("GET", url) as response:
            if response.status_code >= 400:
                response.read()
                raise ApiError(
                    response.status_code,
                    "StorageError",
                    f"downloading the archive from storage failed: {describe_s3_error(response)}",
                )
            name = filename_from_disposition(response.headers.get("content-disposition"))
            name = name or safe_filename(fallback_name()) or f"{batch_id}.zip"
            total = response.headers.get("content-length")
            hooks.on_start(name, int(total) if total and total.isdigit() else None)
            return _save(response, dest_dir, name, hooks.on_bytes)
    except httpx.HTTPError as exc:
        raise ApiError(None, "NetworkError", f"downloading the archive failed: {exc}") from exc


def fetch_file(storage: httpx.Client, url: str, dest_dir: Path, *, name: str, what: str) -> SavedArchive:
    """Save a presigned URL's object into dest_dir, named by its Content-Disposition, else `name`."""
    try:
        with storage.stream("GET", url) as response:
            if response.status_code >= 400:
                response.read()
                raise ApiError(response.status_code, "StorageError",
                               f"downloading the {what} from storage failed: {describe_s3_error(response)}")
            chosen = filename_from_disposition(response.headers.get("content-disposition")) or safe_filename(name)
            saved = _save(response, dest_dir, chosen or "download", lambda n: None)
            return SavedArchive(path=saved.path, size=saved.size)
    except httpx.HTTPError as exc:
        raise ApiError(None, "NetworkError", f"downloading the {what} failed: {exc}") from exc


def _save(response: httpx.Response, dest_dir: Path, name: str, on_bytes: Callable[[int], None]) -> SavedArchive:
    dest_dir.mkdir(parents=True, exist_ok=True)
    # Write next to the target and rename: a half-written ZIP never carries the final name.
    fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{name}.", suffix=".part")
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in response.iter_bytes(CHUNK):
                out.write(chunk)
                size += len(chunk)
                on_bytes(len(chunk))
        target = dest_dir / name
        # mkstemp makes the file private (0600); give it the mode any new file would get
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, target)
    except BaseException:
        # Ctrl-C or a dropped connection: leave nothing half-written behind.
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return SavedArchive(path=target, size=size, images=count_images(target))
