"""List cursors (services/paging.py): opaque, signed with the settings' key, bound to their query."""
from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.errors import BadRequest
from chalicelib.services.paging import Cursors
from chalicelib.settings import DEV_CURSOR_SIGNING_KEY, Settings

KEY = {"owner": {"S": "alice"}, "created_sk": {"S": "2026-11-23T18:00:00.000000Z#b1"}, "id": {"S": "b1"}}
cursors = Cursors("k" * 32)


def test_a_cursor_round_trips_for_its_own_query():
    cursor = cursors.encode("batches|owner|alice", KEY)
    assert cursors.decode(cursor, "batches|owner|alice") == KEY
    assert cursors.encode("anything", None) is None and cursors.decode(None, "anything") is None
    assert cursors.decode("", "anything") is None


@pytest.mark.parametrize("use", [
    lambda c: Cursors("k" * 32).decode(c, "batches|owner|bob"),          # another query
    lambda c: Cursors("x" * 32).decode(c, "batches|owner|alice"),        # another key
    lambda c: cursors.decode(c.split(".")[0], "batches|owner|alice"),    # signature dropped
    lambda c: cursors.decode(c + "A", "batches|owner|alice"),            # signature changed
    lambda c: cursors.decode("A" + c, "batches|owner|alice"),            # payload changed
])
def test_a_cursor_does_not_work_anywhere_else(use):
    with pytest.raises(BadRequest, match="cursor is not valid for this query; start again without it"):
        use(cursors.encode("batches|owner|alice", KEY))


def test_a_start_key_cannot_be_forged_without_the_key():
    payload = json.dumps({**KEY, "created_sk": {"N": "NaN"}}, separators=(",", ":"), sort_keys=True).encode()
    body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    signature = cursors.encode("batches|owner|alice", KEY).split(".")[1]
    with pytest.raises(BadRequest):
        cursors.decode(f"{body}.{signature}", "batches|owner|alice")


@given(st.text(max_size=200))
def test_any_text_is_a_400_never_a_crash(text):
    try:
        cursors.decode(text, "scope", "jobs_cursor")
    except BadRequest as exc:
        assert exc.message.startswith("jobs_cursor is not valid")


def test_the_key_comes_from_the_settings():
    assert Settings.from_env({}).cursor_signing_key == DEV_CURSOR_SIGNING_KEY
    assert Settings.from_env({"CURSOR_SIGNING_KEY": "s" * 40}).cursor_signing_key == "s" * 40
    with pytest.raises(ValueError, match="CURSOR_SIGNING_KEY must be at least 32 characters"):
        Settings.from_env({"CURSOR_SIGNING_KEY": "short"})
    assert "s" * 40 not in repr(Settings.from_env({"CURSOR_SIGNING_KEY": "s" * 40}))
