"""A batch's upload window grows with what there is to upload (domain.batches.upload_window)."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.batches import MAX_UPLOAD_WINDOW_SECONDS, upload_window

HOUR, GB = 3600, 1000 ** 3


def test_an_hour_per_10000_files_or_50_gb_begun():
    assert upload_window(HOUR, 1, 1) == HOUR
    assert upload_window(HOUR, 10_000, 50 * GB) == HOUR
    assert upload_window(HOUR, 10_001, 1) == 2 * HOUR
    assert upload_window(HOUR, 100_000, 100_000 * 90) == 10 * HOUR     # 100,000 tiny files
    assert upload_window(HOUR, 3, 50 * GB + 1) == 2 * HOUR
    assert upload_window(HOUR, 100_000, 1024 ** 4) == 22 * HOUR        # 1 TiB: 21.99 windows


def test_never_past_what_a_presigned_request_can_live_unless_configured_longer():
    assert upload_window(HOUR, 100_000, 10 * 1024 ** 4) == MAX_UPLOAD_WINDOW_SECONDS   # 220 windows
    assert upload_window(10 * 24 * HOUR, 1, 1) == 10 * 24 * HOUR


@given(ttl=st.integers(1, 30 * 24 * HOUR), files=st.integers(1, 200_000), size=st.integers(0, 2 * 1024 ** 4),
       more_files=st.integers(0, 50_000), more_bytes=st.integers(0, 10 ** 12))
def test_at_least_the_configured_window_and_never_shorter_for_more(ttl, files, size, more_files, more_bytes):
    window = upload_window(ttl, files, size)
    assert ttl <= window <= max(ttl, MAX_UPLOAD_WINDOW_SECONDS)
    assert window % ttl == 0 or window == MAX_UPLOAD_WINDOW_SECONDS
    assert upload_window(ttl, files + more_files, size + more_bytes) >= window
