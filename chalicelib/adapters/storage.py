"""S3 store: presigned uploads and downloads, reads, writes and prefix deletes.

Takes injected clients; wiring.py creates them (SigV4, region, endpoint).
"""
from __future__ import annotations

from typing import Iterator
from urllib.parse import urlsplit

from ..ports import SourceChanged
from . import multipart


class Storage:
    def __init__(self, s3_client, bucket: str):
        self.s3 = s3_client
        self.bucket = bucket

    def presign_upload(self, key: str, size: int, content_type: str, expires_in: int) -> dict:
        """A POST policy pinning the exact key, the exact size and the content type."""
        fields = {"Content-Type": content_type}
        conditions = [
            {"Content-Type": content_type},
            ["content-length-range", size, size],
        ]
        return self.s3.generate_presigned_post(
            Bucket=self.bucket, Key=key, Fields=fields, Conditions=conditions, ExpiresIn=expires_in)

    def presign_download(self, key: str, expires_in: int, file_name: str | None = None) -> str:
        params = {"Bucket": self.bucket, "Key": key}
        if file_name:
            params["ResponseContentDisposition"] = content_disposition(file_name)
        return self.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)

    def browser_origins(self, probe_key: str) -> list[str]:
        """Origins of the presigned upload and download URLs this store hands to browsers.
        Presigning happens locally: nothing is sent and the probe key is never used."""
        urls = [self.s3.generate_presigned_post(Bucket=self.bucket, Key=probe_key, ExpiresIn=1)["url"],
                self.s3.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": probe_key},
                                               ExpiresIn=1)]
        return sorted({f"{u.scheme}://{u.netloc}" for u in map(urlsplit, urls)})

    def head(self, key: str) -> dict | None:
        try:
            return self.s3.head_object(Bucket=self.bucket, Key=key)
        except self.s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def fetch(self, key: str) -> tuple[int, object] | None:
        """(size, streaming body) of an object, or None when it is gone: one request, not HEAD + GET."""
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=key)
        except self.s3.exceptions.NoSuchKey:
            return None
        return int(response["ContentLength"]), response["Body"]

    def open(self, key: str):
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]

    def read_chunks(self, key: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        body = self.open(key)
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def write_stream(self, key: str, chunks, content_type: str, file_name: str | None = None) -> dict:
        """Store a stream of unknown length in constant memory (a multipart upload written part by
        part); on any error nothing is stored and nothing is left. {"size", "parts"}."""
        extra = {"content_disposition": content_disposition(file_name)} if file_name else {}
        return multipart.upload_stream(self.s3, self.bucket, key, chunks, content_type=content_type, **extra)

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=key)

    # -- ports.MultipartStore: one object written in parts by several workers ----------------
    def read_range(self, key: str, start: int, length: int, object_size: int,
                   chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """A ranged GET (a plain GET for the whole object) that checks the object is still the
        size it was planned with: ZIP headers written from that size would otherwise lie."""
        args = {} if (start, length) == (0, object_size) else {"Range": f"bytes={start}-{start + length - 1}"}
        if length == 0:
            return
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=key, **args)
        except self.s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "InvalidRange"):
                raise SourceChanged(f"{key} is gone or shorter than the {object_size} bytes planned") from None
            raise
        # Content-Range: "bytes 0-9/1234": the total after the slash
        total = int(response["ContentRange"].rsplit("/", 1)[1]) if args else int(response["ContentLength"])
        if total != object_size or int(response["ContentLength"]) != length:
            response["Body"].close()
            raise SourceChanged(f"{key} is {total} bytes now, planned as {object_size}")
        body = response["Body"]
        try:
            yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def start_upload(self, key: str, content_type: str, file_name: str | None = None) -> str:
        return multipart.start_upload(self.s3, self.bucket, key, content_type=content_type,
                                      content_disposition=content_disposition(file_name) if file_name else None)

    def check_upload(self, key: str, upload_id: str) -> None:
        multipart.check_upload(self.s3, self.bucket, key, upload_id)

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> None:
        multipart.upload_part(self.s3, self.bucket, key, upload_id, number, body)

    def copy_part(self, key: str, upload_id: str, number: int, source_key: str, start: int, length: int) -> None:
        multipart.copy_part(self.s3, self.bucket, key, upload_id, number, source_key, start, length)

    def complete_upload(self, key: str, upload_id: str, parts: int) -> None:
        multipart.complete_upload(self.s3, self.bucket, key, upload_id, parts)

    def abort_upload(self, key: str, upload_id: str) -> None:
        multipart.abort_upload(self.s3, self.bucket, key, upload_id)

    def abort_uploads(self, key: str, keep: str | None = None) -> int:
        return multipart.abort_uploads(self.s3, self.bucket, key, keep)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under prefix; returns how many were deleted."""
        deleted = 0
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                deleted += len(keys)
        return deleted

    def count_prefix(self, prefix: str) -> int:
        page = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        return page.get("KeyCount", 0)

    def list_objects(self, prefix: str) -> Iterator[tuple[str, int]]:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"], int(item["Size"])

    # -- multipart uploads that clients fill through presigned part URLs (ports.PresignedMultipart) --
    def start_multipart(self, key: str, content_type: str) -> str:
        return self.s3.create_multipart_upload(Bucket=self.bucket, Key=key, ContentType=content_type)["UploadId"]

    def multipart_uploads(self, prefix: str) -> list[dict]:
        found = []
        for page in self.s3.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix):
            found += [{"key": u["Key"], "upload_id": u["UploadId"], "initiated": u["Initiated"]}
                      for u in page.get("Uploads", [])]
        return sorted(found, key=lambda u: (u["initiated"], u["upload_id"]))

    def list_parts(self, key: str, upload_id: str) -> dict[int, dict] | None:
        parts = {}
        try:
            for page in self.s3.get_paginator("list_parts").paginate(Bucket=self.bucket, Key=key, UploadId=upload_id):
                for part in page.get("Parts", []):
                    parts[int(part["PartNumber"])] = {"size": int(part["Size"]), "etag": part["ETag"]}
        except self.s3.exceptions.NoSuchUpload:
            return None
        return parts

    def presign_part(self, key: str, upload_id: str, number: int, size: int, expires_in: int) -> str:
        # ContentLength becomes a signed header: S3 refuses a part of any other size.
        return self.s3.generate_presigned_url("upload_part", ExpiresIn=expires_in, Params={
            "Bucket": self.bucket, "Key": key, "UploadId": upload_id, "PartNumber": number, "ContentLength": size})

    def complete_multipart(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        self.s3.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={
            "Parts": [{"PartNumber": n, "ETag": etag} for n, etag in parts]})

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except self.s3.exceptions.NoSuchUpload:
            pass

    def abort_multipart_uploads(self, prefix: str) -> int:
        uploads = self.multipart_uploads(prefix)
        for upload in uploads:
            self.abort_multipart(upload["key"], upload["upload_id"])
        return len(uploads)


def content_disposition(file_name: str) -> str:
    """attachment with an ASCII fallback and the exact UTF-8 name (RFC 6266 / 5987)."""
    from urllib.parse import quote
    ascii_name = file_name.encode("ascii", "replace").decode("ascii").replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(file_name, safe='')}"
