"""Archive download details: file naming and never leaving half-written files."""

from __future__ import annotations

import httpx
import pytest

from imgbatch.client import ApiClient, ApiError
from imgbatch.download import fetch_archive, filename_from_disposition, safe_filename


@pytest.mark.parametrize(
    "header, expected",
    [
        ('attachment; filename="PL_DXB_2025-11-05_batch-1.zip"', "PL_DXB_2025-11-05_batch-1.zip"),
        ("attachment; filename*=UTF-8''Caf%C3%A9_batch-1.zip", "Café_batch-1.zip"),
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename="..\\\\..\\\\x.zip"', "x.zip"),
        ('attachment; filename="..."', None),
        ("attachment", None),
        (None, None),
    ],
)
def test_filename_from_disposition(header, expected):
    assert filename_from_disposition(header) == expected


def test_safe_filename_strips_control_characters():
    assert safe_filename("a\x00b\nc.zip") == "abc.zip"


def api_redirecting_to(url: str) -> ApiClient:
    return ApiClient("http://api.test", "t", transport=httpx.MockTransport(
        lambda request: httpx.Response(302, headers={"Location": url})))


def test_broken_stream_leaves_no_partial_file(tmp_path):
    class Broken(httpx.SyncByteStream):
        def __iter__(self):
            yield b"PK\x03\x04 first bytes"
            raise httpx.ReadError("connection reset")

    storage = httpx.Client(transport=httpx.MockTransport(
        lambda request: httpx.Response(200, stream=Broken(), headers={"Content-Disposition": 'attachment; filename="a.zip"'})))

    with pytest.raises(ApiError) as caught:
        fetch_archive(api_redirecting_to("https://s3.test/a.zip"), storage, "b1", tmp_path,
                      partial=False, fallback_name=lambda: "x.zip", sleep=lambda s: None)

    assert caught.value.status is None and "connection reset" in caught.value.message
    assert list(tmp_path.iterdir()) == []


def test_storage_error_is_reported_with_its_code(tmp_path):
    storage = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(
        403, content=b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>")))

    with pytest.raises(ApiError) as caught:
        fetch_archive(api_redirecting_to("https://s3.test/a.zip"), storage, "b1", tmp_path,
                      partial=False, fallback_name=lambda: "x.zip", sleep=lambda s: None)

    assert caught.value.status == 403
    assert "AccessDenied: Request has expired" in caught.value.message


def test_retry_after_is_capped(tmp_path):
    answers = [httpx.Response(202, headers={"Retry-After": "86400"}),
               httpx.Response(302, headers={"Location": "/files/a.zip"})]
    api = ApiClient("http://api.test", "t", transport=httpx.MockTransport(lambda r: answers.pop(0)))
    storage = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, content=b"zip")))
    sleeps: list[float] = []

    saved = fetch_archive(api, storage, "b1", tmp_path, partial=False,
                          fallback_name=lambda: "Fallback.zip", sleep=sleeps.append)

    assert sleeps == [30.0]
    assert saved.path == tmp_path / "Fallback.zip" and saved.path.read_bytes() == b"zip"
