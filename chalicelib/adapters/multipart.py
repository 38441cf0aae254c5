"""Write a stream of bytes to one S3 object with a fixed memory budget of about one part.

Why not ``upload_fileobj``: on a non-seekable stream it reads far ahead (about 500 MB RSS for a
300 MB archive, ARCHITECTURE.md). Here one ``bytearray`` of ``part_size`` is filled and sent with
``upload_part``, then reused; parts go out one at a time.

An object smaller than one part (including 0 bytes) is stored with a single ``put_object``, so
no multipart upload is ever started for it. Any failure, or leaving the ``with`` block without
``complete()``, aborts the multipart upload: no orphan parts are left to bill. A bucket
lifecycle rule ``AbortIncompleteMultipartUpload`` is still the backstop for a process killed
outright (Lambda timeout).
"""
from __future__ import annotations

import logging
from typing import Iterable

from ..ports import SourceChanged, UploadGone

log = logging.getLogger(__name__)

MIN_PART_SIZE = 5 * 1024 * 1024   # S3 rule for every part but the last (moto enforces it too)
MAX_PART_SIZE = 5 * 1024 ** 3
MAX_PARTS = 10_000


class MultipartUpload:
    def __init__(
        self,
        s3_client,
        bucket: str,
        key: str,
        *,
        part_size: int = 16 * 1024 * 1024,
        content_type: str = "application/zip",
        content_disposition: str | None = None,
        metadata: dict | None = None,
    ):
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes")
        self._s3 = s3_client
        self.bucket = bucket
        self.key = key
        self.part_size = part_size
        self._object_args = {"ContentType": content_type, "Metadata": dict(metadata or {})}
        if content_disposition:
            self._object_args["ContentDisposition"] = content_disposition
        self._buffer: bytearray | None = None   # allocated on the first write
        self._filled = 0
        self._upload_id: str | None = None
        self._parts: list[dict] = []
        self._size = 0
        self._closed = False

    def __enter__(self) -> "MultipartUpload":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._closed:
            return
        if exc_type is None:
            log.warning("s3://%s/%s: left without complete(); aborting", self.bucket, self.key)
        try:
            self.abort()
        except Exception:  # never hide the error that brought us here
            log.exception("s3://%s/%s: abort failed; the lifecycle rule will clean up",
                          self.bucket, self.key)

    def write(self, data: bytes) -> None:
        if self._closed:
            raise ValueError("upload already completed or aborted")
        if self._buffer is None:
            self._buffer = bytearray(self.part_size)
        view = memoryview(data).cast("B")
        while view:
            n = min(len(view), self.part_size - self._filled)
            self._buffer[self._filled:self._filled + n] = view[:n]
            self._filled += n
            self._size += n
            view = view[n:]
            if self._filled == self.part_size:
                self._upload_part(self._buffer)
                self._filled = 0

    def complete(self) -> dict:
        if self._closed:
            raise ValueError("upload already completed or aborted")
        try:
            body = self._buffer or bytearray()
            del body[self._filled:]  # the last part may be small: trim in place, no copy
            if self._upload_id is None:
                response = self._s3.put_object(
                    Bucket=self.bucket, Key=self.key, Body=body, **self._object_args)
            else:
                if body:
                    self._upload_part(body)
                response = self._s3.complete_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts})
        except BaseException:
            self.abort()
            raise
        self._upload_id = None
        self._release()
        return {"key": self.key, "size": self._size, "parts": len(self._parts),
                "etag": response.get("ETag")}

    def abort(self) -> None:
        upload_id, self._upload_id = self._upload_id, None
        self._release()
        if upload_id is not None:
            self._s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=upload_id)

    def _upload_part(self, body: bytearray) -> None:
        if self._upload_id is None:
            response = self._s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, **self._object_args)
            self._upload_id = response["UploadId"]
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise ValueError(f"more than {MAX_PARTS} parts: use a larger part_size")
        response = self._s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
            PartNumber=number, Body=body)
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})

    def _release(self) -> None:
        self._closed = True
        self._buffer = None


def upload_stream(s3_client, bucket: str, key: str, chunks: Iterable[bytes], **kw) -> dict:
    """Write every chunk to s3://bucket/key; on any error nothing is stored and nothing is left."""
    with MultipartUpload(s3_client, bucket, key, **kw) as upload:
        for chunk in chunks:
            upload.write(chunk)
        return upload.complete()


# -- one upload, many writers ------------------------------------------------------------------
# A parallel archive build: the coordinator starts the upload, workers send parts by number (in
# any order, any number of times: a part sent again replaces itself), whoever finishes last
# completes it with the ETags S3 lists. S3 (and moto) answer NoSuchUpload once it is completed
# or aborted; moto answers some calls on a missing upload with a 500 instead, so workers ask
# with ListParts first (check_upload), which answers NoSuchUpload everywhere.

def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _gone(exc: Exception) -> bool:
    return _error_code(exc) in ("NoSuchUpload", "404")


def start_upload(s3_client, bucket: str, key: str, *, content_type: str,
                 content_disposition: str | None = None) -> str:
    args = {"ContentType": content_type}
    if content_disposition:
        args["ContentDisposition"] = content_disposition
    return s3_client.create_multipart_upload(Bucket=bucket, Key=key, **args)["UploadId"]


def check_upload(s3_client, bucket: str, key: str, upload_id: str) -> None:
    try:
        s3_client.list_parts(Bucket=bucket, Key=key, UploadId=upload_id, MaxParts=1)
    except s3_client.exceptions.ClientError as exc:
        if _gone(exc):
            raise UploadGone(f"s3://{bucket}/{key} upload {upload_id[:16]}... is gone") from None
        raise


def _upload_gone(exc: Exception, key: str, upload_id: str) -> UploadGone | None:
    if _error_code(exc) == "NoSuchUpload":
        return UploadGone(f"{key} upload {upload_id[:16]}... is gone")
    return None


def upload_part(s3_client, bucket: str, key: str, upload_id: str, number: int, body) -> None:
    if not 1 <= number <= MAX_PARTS:
        raise ValueError(f"part number {number} is outside 1-{MAX_PARTS}")
    try:
        s3_client.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body)
    except s3_client.exceptions.ClientError as exc:
        raise _upload_gone(exc, key, upload_id) or exc from None


def copy_part(s3_client, bucket: str, key: str, upload_id: str, number: int, source_key: str,
              start: int, length: int) -> None:
    if not 1 <= number <= MAX_PARTS:
        raise ValueError(f"part number {number} is outside 1-{MAX_PARTS}")
    try:
        s3_client.upload_part_copy(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
            CopySource={"Bucket": bucket, "Key": source_key},
            CopySourceRange=f"bytes={start}-{start + length - 1}")
    except s3_client.exceptions.ClientError as exc:
        if _error_code(exc) in ("NoSuchKey", "404", "InvalidRange"):
            raise SourceChanged(f"s3://{bucket}/{source_key} is gone or shorter than planned") from None
        raise _upload_gone(exc, key, upload_id) or exc from None


def list_part_etags(s3_client, bucket: str, key: str, upload_id: str) -> list[dict]:
    parts, marker = [], 0
    while True:
        try:
            page = s3_client.list_parts(Bucket=bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker)
        except s3_client.exceptions.ClientError as exc:
            if _gone(exc):
                raise UploadGone(f"s3://{bucket}/{key} upload {upload_id[:16]}... is gone") from None
            raise
        parts += [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in page.get("Parts", [])]
        if not page.get("IsTruncated"):
            return parts
        marker = int(page["NextPartNumberMarker"])


def complete_upload(s3_client, bucket: str, key: str, upload_id: str, parts: int) -> None:
    """Complete with parts 1..parts; the ETags come from ListParts, so no worker has to report its own."""
    listed = list_part_etags(s3_client, bucket, key, upload_id)
    numbers = [p["PartNumber"] for p in listed]
    if numbers != list(range(1, parts + 1)):
        missing = sorted(set(range(1, parts + 1)) - set(numbers))[:10]
        raise RuntimeError(f"s3://{bucket}/{key}: {len(listed)} parts listed, {parts} expected "
                           f"(missing e.g. {missing}); not completing")
    try:
        s3_client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                            MultipartUpload={"Parts": listed})
    except s3_client.exceptions.ClientError as exc:
        raise _upload_gone(exc, key, upload_id) or exc from None


def abort_upload(s3_client, bucket: str, key: str, upload_id: str) -> None:
    try:
        s3_client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except s3_client.exceptions.ClientError as exc:
        if not _gone(exc):
            raise


def abort_uploads(s3_client, bucket: str, key: str, keep: str | None = None) -> int:
    aborted = 0
    paginator = s3_client.get_paginator("list_multipart_uploads")
    for page in paginator.paginate(Bucket=bucket, Prefix=key):
        for upload in page.get("Uploads", []):
            if upload["Key"] == key and upload["UploadId"] != keep:
                abort_upload(s3_client, bucket, key, upload["UploadId"])
                aborted += 1
    return aborted
