"""MultipartUpload / upload_stream against moto's S3 (which enforces the 5 MiB minimum part)."""
import hashlib
import io
import os
import zipfile
import zlib
from datetime import datetime

import boto3
import pytest
from moto import mock_aws

from chalicelib.adapters import multipart
from chalicelib.adapters.multipart import MIN_PART_SIZE, MultipartUpload, upload_stream
from chalicelib.adapters.storage import Storage
from chalicelib.domain.archive import (
    ArchiveJob, ArchiveOutput, archive_members, manifest_arcname, plan_archive,
)
from chalicelib.domain.zip_layout import layout_zip, stream
from chalicelib.ports import SourceChanged, UploadGone

BUCKET = "archives"
PART = MIN_PART_SIZE  # 5 MiB


@pytest.fixture
def s3(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                        "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def chunks(total: int, size: int = 1_000_003, fail_after: int | None = None):
    """Deterministic, incompressible-looking bytes in odd-sized chunks (parts never line up)."""
    sent = 0
    while sent < total:
        if fail_after is not None and sent >= fail_after:
            raise RuntimeError("source broke")
        n = min(size, total - sent)
        yield hashlib.shake_256(sent.to_bytes(8, "big")).digest(n)
        sent += n


def body(s3, key="a.zip") -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def nothing_left_behind(s3, key="a.zip"):
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=BUCKET)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=key)
    return True


def test_a_40_mb_stream_is_uploaded_in_5_mib_parts(s3):
    total = 40_000_000
    result = upload_stream(s3, BUCKET, "a.zip", chunks(total), part_size=PART)
    expected = b"".join(chunks(total))
    assert body(s3) == expected
    assert result == {"key": "a.zip", "size": total, "parts": -(-total // PART),
                      "etag": s3.head_object(Bucket=BUCKET, Key="a.zip")["ETag"]}
    assert result["etag"].endswith('-8"')  # S3's multipart ETag: md5-of-md5s "-" part count
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=BUCKET)


def test_a_stream_of_whole_parts_has_no_empty_last_part(s3):
    result = upload_stream(s3, BUCKET, "a.zip", chunks(2 * PART, size=777_777), part_size=PART)
    assert result["parts"] == 2 and result["size"] == 2 * PART
    assert body(s3) == b"".join(chunks(2 * PART, size=777_777))


def test_one_large_write_is_split_into_parts(s3):
    data = os.urandom(2 * PART + 10)
    with MultipartUpload(s3, BUCKET, "a.zip", part_size=PART) as upload:
        upload.write(memoryview(data))
        result = upload.complete()
    assert result["parts"] == 3 and body(s3) == data


def test_an_error_in_the_source_aborts_the_upload(s3):
    with pytest.raises(RuntimeError, match="source broke"):
        upload_stream(s3, BUCKET, "a.zip", chunks(40_000_000, fail_after=12_000_000),
                      part_size=PART)
    assert nothing_left_behind(s3)


class FailingPartClient:
    """The real client, except that one upload_part call fails as a network error would."""

    def __init__(self, client, fail_on_part: int):
        self._client, self._fail_on_part = client, fail_on_part

    def __getattr__(self, name):
        return getattr(self._client, name)

    def upload_part(self, **kwargs):
        if kwargs["PartNumber"] == self._fail_on_part:
            raise ConnectionError("connection reset")
        return self._client.upload_part(**kwargs)


@pytest.mark.parametrize("fail_on_part", [1, 2, 3])  # 3 is the last part, sent by complete()
def test_an_s3_error_aborts_the_upload(s3, fail_on_part):
    with pytest.raises(ConnectionError):
        upload_stream(FailingPartClient(s3, fail_on_part), BUCKET, "a.zip",
                      chunks(2 * PART + 1), part_size=PART)
    assert nothing_left_behind(s3)


def test_leaving_without_complete_aborts(s3):
    with MultipartUpload(s3, BUCKET, "a.zip", part_size=PART) as upload:
        upload.write(os.urandom(PART + 1))
        assert "Uploads" in s3.list_multipart_uploads(Bucket=BUCKET)
    assert nothing_left_behind(s3)
    with pytest.raises(ValueError):
        upload.write(b"x")


def test_an_empty_stream_is_stored_as_an_empty_object(s3):
    result = upload_stream(s3, BUCKET, "a.zip", iter([b"", b""]), part_size=PART)
    assert result["size"] == 0 and result["parts"] == 0
    assert body(s3) == b""


def test_a_stream_smaller_than_a_part_uses_a_single_put(s3):
    data = os.urandom(PART - 1)
    result = upload_stream(s3, BUCKET, "a.zip", [data[:10], data[10:]], part_size=PART)
    assert result["parts"] == 0 and result["size"] == len(data)
    assert body(s3) == data
    assert result["etag"] == s3.head_object(Bucket=BUCKET, Key="a.zip")["ETag"]


@pytest.mark.parametrize("total", [10, 2 * PART + 10])  # single PUT and multipart paths
def test_headers_and_metadata_are_stored(s3, total):
    disposition = 'attachment; filename="PL_DXB_2025-11-05_batch-1.zip"'
    upload_stream(s3, BUCKET, "a.zip", chunks(total), part_size=PART,
                  content_disposition=disposition, metadata={"batch-id": "b1"})
    head = s3.head_object(Bucket=BUCKET, Key="a.zip")
    assert head["ContentDisposition"] == disposition
    assert head["ContentType"] == "application/zip"
    assert head["Metadata"] == {"batch-id": "b1"}


def test_parts_below_the_s3_minimum_are_refused(s3):
    with pytest.raises(ValueError, match="part_size"):
        MultipartUpload(s3, BUCKET, "a.zip", part_size=PART - 1)


def test_a_streamed_archive_lands_in_s3_intact(s3):
    images = {f"outputs/{i}.jpg": os.urandom(3_000_000) for i in range(4)}
    for key, data in images.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    jobs = [ArchiveJob(f"img{i}.png", "completed", None, None,
                       (ArchiveOutput("p1", "Web", key, "jpg", len(images[key]), 800, 600,
                                      crc32=zlib.crc32(images[key])),))
            for i, key in enumerate(images)]
    base = "MISC_2025-11-05_batch-1"
    entries, manifest = plan_archive(base, jobs, ["Web"])
    layout = layout_zip(archive_members(entries, manifest, manifest_arcname(base)), datetime(2026, 1, 1))
    storage = Storage(s3, BUCKET)

    def read(source):
        return storage.read_range(source.key, source.start, source.length, source.object_size)

    result = upload_stream(s3, BUCKET, f"archives/{base}.zip", stream(layout.segments, read), part_size=PART)
    assert result["parts"] == 3
    with zipfile.ZipFile(io.BytesIO(body(s3, f"archives/{base}.zip"))) as zf:
        assert zf.testzip() is None
        assert zf.read(manifest_arcname(base)) == manifest
        assert [zf.read(e.arcname) for e in entries] == list(images.values())


# -- one upload, many writers (a parallel archive build) ----------------------------------------

def test_parts_sent_out_of_order_and_twice_complete_in_number_order(s3):
    storage = Storage(s3, BUCKET)
    s3.put_object(Bucket=BUCKET, Key="src", Body=b"S" * (PART + 7))
    upload_id = storage.start_upload("a.zip", "application/zip", "Ünï.zip")
    storage.check_upload("a.zip", upload_id)
    storage.upload_part("a.zip", upload_id, 3, b"tail")
    storage.copy_part("a.zip", upload_id, 2, "src", 3, PART)
    storage.upload_part("a.zip", upload_id, 1, b"x" * PART)
    storage.upload_part("a.zip", upload_id, 1, b"h" * PART)          # a redelivered part replaces itself
    storage.complete_upload("a.zip", upload_id, 3)
    assert body(s3) == b"h" * PART + b"S" * PART + b"tail"
    head = s3.head_object(Bucket=BUCKET, Key="a.zip")
    assert head["ContentType"] == "application/zip" and "UTF-8''%C3%9C" in head["ContentDisposition"]
    with pytest.raises(UploadGone):
        storage.check_upload("a.zip", upload_id)
    with pytest.raises(UploadGone):
        storage.complete_upload("a.zip", upload_id, 3)


def test_complete_refuses_an_upload_with_a_part_missing(s3):
    storage = Storage(s3, BUCKET)
    upload_id = storage.start_upload("a.zip", "application/zip")
    storage.upload_part("a.zip", upload_id, 1, b"x" * PART)
    storage.upload_part("a.zip", upload_id, 3, b"x")
    with pytest.raises(RuntimeError, match="missing e.g. \\[2\\]"):
        storage.complete_upload("a.zip", upload_id, 3)


def test_etags_are_listed_past_one_page_of_parts(s3, monkeypatch):
    import moto.s3.models
    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 1)
    storage = Storage(s3, BUCKET)
    upload_id = storage.start_upload("a.zip", "application/zip")
    for n in range(1, 1206):
        storage.upload_part("a.zip", upload_id, n, n.to_bytes(2, "big"))
    storage.complete_upload("a.zip", upload_id, 1205)
    assert body(s3) == b"".join(n.to_bytes(2, "big") for n in range(1, 1206))


def test_abort_uploads_keeps_only_the_one_named(s3):
    storage = Storage(s3, BUCKET)
    old = [storage.start_upload("a.zip", "application/zip") for _ in range(2)]
    other = storage.start_upload("a.zip.other", "application/zip")
    mine = storage.start_upload("a.zip", "application/zip")
    assert storage.abort_uploads("a.zip", keep=mine) == 2
    left = {u["UploadId"] for u in s3.list_multipart_uploads(Bucket=BUCKET)["Uploads"]}
    assert left == {mine, other} and not set(old) & left
    storage.abort_upload("a.zip", mine)
    storage.abort_upload("a.zip", mine)   # gone already is fine


def test_ranged_reads_check_the_object_is_the_size_planned(s3):
    storage = Storage(s3, BUCKET)
    s3.put_object(Bucket=BUCKET, Key="o", Body=b"0123456789")
    assert b"".join(storage.read_range("o", 2, 5, 10)) == b"23456"
    assert b"".join(storage.read_range("o", 0, 10, 10)) == b"0123456789"
    assert b"".join(storage.read_range("o", 0, 0, 0)) == b""
    with pytest.raises(SourceChanged, match="11"):
        list(storage.read_range("o", 0, 5, 11))
    with pytest.raises(SourceChanged):
        list(storage.read_range("o", 0, 11, 11))
    with pytest.raises(SourceChanged):
        list(storage.read_range("gone", 0, 5, 10))
    upload_id = storage.start_upload("a.zip", "application/zip")
    with pytest.raises(SourceChanged):
        storage.copy_part("a.zip", upload_id, 1, "gone", 0, PART)
    with pytest.raises(ValueError):
        multipart.upload_part(s3, BUCKET, "a.zip", upload_id, 10_001, b"x")
