"""The pure rules of events and webhooks: which events a change means, their ids, which addresses
may receive, URL checks, backoff, and the integration fields."""
from __future__ import annotations

import pytest

from chalicelib.domain import events as ev
from chalicelib.domain import integrations, webhooks as rules
from chalicelib.domain.validation import Invalid


def b(status, started=None, **extra):
    return {"id": "b1", "status": status, "started_at": started, **extra}


@pytest.mark.parametrize("old, new, wanted", [
    (None, b("queued"), ["batch.created"]),
    (b("queued"), b("queued", uploaded=1), []),                        # a counter moved: no event
    (b("queued"), b("processing", "t1"), ["batch.started"]),
    (b("processing", "t1"), b("processing", "t1", succeeded=3), []),
    (b("processing", "t1"), b("completed", "t1"), ["batch.completed"]),
    (b("processing", "t1"), b("completed_with_errors", "t1"), ["batch.completed_with_errors"]),
    (b("queued"), b("failed"), ["batch.failed"]),                       # expired before any upload
    (b("queued"), b("cancelled"), ["batch.cancelled"]),                 # cancelled before it started
    (b("completed_with_errors", "t1"), b("processing", "t1"), []),      # a retry reopens it: no event
    (b("processing", "t1"), b("completed_with_errors", "t1"), ["batch.completed_with_errors"]),  # ...and again
    (b("cancelled"), b("cancelled", cancelled=2), []),                  # cancel settling its jobs
    (b("completed", "t1"), b("deleting", "t1"), ["batch.deleted"]),
    (b("deleting", "t1"), b("deleting", "t1", cancelled=1), []),
    (b("deleting", "t1"), None, []),                                    # the item removed later
    (b("completed", "t1"), b("completed", "t1", monday_item_id="7"), []),   # PATCH
])
def test_transitions(old, new, wanted):
    assert ev.transitions(old, new) == wanted


def test_event_ids_are_stable_per_change_and_distinct_across_changes():
    first = ev.batch_event("batch.failed", "b1", "100", "t", {"id": "b1"}, "o")
    again = ev.batch_event("batch.failed", "b1", "100", "t", {"id": "b1"}, "o")
    later = ev.batch_event("batch.failed", "b1", "250", "t", {"id": "b1"}, "o")
    assert first.id == again.id != later.id
    assert first.body() == {"id": first.id, "type": "batch.failed", "created_at": "t", "data": {"batch": {"id": "b1"}}}
    assert ev.archive_ready({"id": "b1"}, "k1", "t", "o").id != ev.archive_ready({"id": "b1"}, "k2", "t", "o").id


def test_matching():
    assert ev.matches(["*"], "batch.created") and ev.matches(["batch.created"], "batch.created")
    assert not ev.matches(["batch.completed"], "batch.created")


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "224.0.0.1", "240.0.0.1", "::1", "fe80::1%eth0",
                                     "fc00::1", "::ffff:127.0.0.1", "::", "198.18.0.1"])
def test_non_public_addresses_are_refused(address):
    assert rules.refused_address(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address):
    assert rules.refused_address(address) is None


@pytest.mark.parametrize("url, host", [("https://Hooks.Example.com:8443/x?y=1", "hooks.example.com"),
                                       ("http://[::1]:8080/", "::1"), ("http://127.0.0.1/", "127.0.0.1")])
def test_url_host(url, host):
    assert rules.url_host(url) == host


@pytest.mark.parametrize("url", ["ftp://x/", "x.example.com", "http://", "https://u@x.example/", "http://x:0/",
                                 "http://x:70000/", "http://x/ y", "javascript:alert(1)"])
def test_bad_urls(url):
    with pytest.raises(Invalid):
        rules.url_host(url)


def test_backoff_doubles_with_the_upper_half_random():
    assert [rules.backoff_seconds(n, 60, 0.0) for n in (1, 2, 3)] == [30, 60, 120]
    assert [rules.backoff_seconds(n, 60, 0.999999) for n in (1, 2, 3)] == pytest.approx([60, 120, 240])
    # with the defaults the 8th attempt comes about 2 hours after the first at most
    assert sum(rules.backoff_seconds(n, 60, 1.0) for n in range(1, 8)) == 60 * (2 ** 7 - 1)


def test_integration_defaults_fill_what_older_batches_lack():
    assert integrations.with_defaults({}) == {"metadata": {}, "dropbox_directory_id": None, "monday_item_id": None,
                                             "auto_upload_enabled": False, "monday_sync_enabled": False}
    assert integrations.with_defaults({"metadata": {"a": "1"}, "auto_upload_enabled": True})["auto_upload_enabled"]


def test_patch_parses_only_what_is_given():
    assert integrations.parse_patch({"monday_item_id": None, "metadata": {"a.b-c_1": ""}}) == {
        "monday_item_id": None, "metadata": {"a.b-c_1": ""}}
    with pytest.raises(Invalid, match="surrogate"):
        integrations.parse_patch({"metadata": {"k": "\ud800"}})
