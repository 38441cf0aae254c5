"""What the state machine tells the people on call: one log line per transition with its outcome
and duration, and EMF metrics that count each file once, whatever the deliveries.

The services run on the in-memory container with the Powertools adapter writing to buffers; the
lines are parsed as JSON and the metrics as EMF documents (tests/emf.py)."""
from __future__ import annotations

import io

import pytest

from chalicelib import observability as o
from chalicelib import wiring
from chalicelib.settings import Settings
from tests import images
from tests.emf import emf_documents, log_records, totals
from tests.services.conftest import START, FakeClock, System


@pytest.fixture
def watched():
    logs, metrics = io.StringIO(), io.StringIO()
    container = wiring.Container.in_memory(Settings())
    container.observability = o.PowertoolsObservability(stream=logs, metrics_stream=metrics)
    system = System(container, FakeClock(START))
    system._set_clocks()
    yield system, logs, metrics
    o.PowertoolsObservability()


def by_message(lines: list[dict], message: str) -> list[dict]:
    return [r for r in lines if r["message"] == message]


def test_a_batch_is_followed_by_its_id_through_every_transition(watched):
    system, logs, metrics = watched
    data = {"a.png": images.png(), "b.png": images.png(), "broken.png": b"\x89PNG\r\n\x1a\nnot really"}
    created = system.create(data)
    bid = created["batch"]["id"]
    keys = system.upload(created, data)
    with system.container.observability.invocation("register_uploads", "req-r"):
        system.arrive(*keys)
        system.arrive(keys[0])                                   # S3 announces one twice
    with system.container.observability.invocation("process_upload", "req-p"):
        outcomes = system.drain()
        system.processor.process_key(keys[1])                    # a redelivery after the fact
    assert sorted(outcomes) == ["completed", "completed", "duplicate", "failed"]  # keys[0] was forwarded twice

    lines = [r for r in log_records(logs.getvalue()) if r.get("batch_id") == bid]
    created_line, = by_message(lines, "batch.created")
    assert (created_line["owner"], created_line["files"], created_line["outcome"]) == ("alice", 3, "queued")
    assert created_line["bytes"] == sum(len(b) for b in data.values())
    registered = by_message(lines, "upload.registered")
    assert sorted(r["outcome"] for r in registered) == ["registered"] * 4
    assert all(r["function"] == "register_uploads" and r["request_id"] == "req-r" for r in registered)
    started, = by_message(lines, "batch.started")
    assert started["outcome"] == "processing"
    processed = by_message(lines, "job.processed")
    assert sorted(r["outcome"] for r in processed) == ["completed", "completed", "duplicate", "duplicate", "failed"]
    failed, = [r for r in processed if r["outcome"] == "failed"]
    assert failed["error_code"] == "corrupt_image" and failed["job_id"] == keys[2].split("/")[2]
    for r in processed:
        assert r["function"] == "process_upload" and isinstance(r["duration_ms"], float)
        assert r["job_id"] in {k.split("/")[2] for k in keys}
    done = [r for r in processed if r["outcome"] == "completed"]
    assert all(r["bytes_in"] == len(data["a.png"]) and r["bytes_out"] > 0 and r["pipeline_ms"] >= 0 for r in done)
    finished, = by_message(lines, "batch.finished")
    assert (finished["outcome"], finished["succeeded"], finished["failed"], finished["total_files"]) == \
        ("completed_with_errors", 2, 1, 3)
    order = [r["message"] for r in lines]
    assert order.index("batch.created") < order.index("batch.started") < order.index("batch.finished")

    # counted once per file, as the batch's counters are, whatever the duplicates
    sums = totals(emf_documents(metrics.getvalue()))
    out_bytes = sum(r["bytes_out"] for r in done)
    assert sums == {
        ("FilesProcessed", ()): 3, ("FilesSucceeded", ()): 2,
        ("FilesFailed", (("ErrorCode", "corrupt_image"),)): 1,
        ("BytesIn", ()): sum(len(b) for b in data.values()), ("BytesOut", ()): out_bytes,
        ("PipelineDuration", ()): pytest.approx(sum(r["pipeline_ms"] for r in processed if "pipeline_ms" in r
                                                    and r["outcome"] != "duplicate")),
        ("BatchesFinished", (("Status", "completed_with_errors"),)): 1,
    }


def test_cancel_retry_expiry_and_delete_are_logged_and_counted(watched, monkeypatch):
    system, logs, metrics = watched
    data = {"a.png": images.png(), "b.png": images.png()}
    first = system.create(data)
    system.processor.cancel("alice", first["batch"]["id"])
    second = system.create({"late.png": images.png()})
    system.clock.advance(seconds=system.container.settings.upload_ttl_seconds + 60)
    assert system.sweep.run()["expired"] == 1
    system.deleter.delete("alice", second["batch"]["id"])

    lines = log_records(logs.getvalue())
    cancelled, failed_batch = by_message(lines, "batch.finished")
    assert (cancelled["batch_id"], cancelled["outcome"]) == (first["batch"]["id"], "cancelled")
    assert (failed_batch["batch_id"], failed_batch["outcome"]) == (second["batch"]["id"], "failed")
    expired, = by_message(lines, "job.expired")
    assert (expired["batch_id"], expired["error_code"], expired["outcome"]) == \
        (second["batch"]["id"], "upload_expired", "failed")
    deleted, = by_message(lines, "batch.deleted")
    assert (deleted["batch_id"], deleted["outcome"]) == (second["batch"]["id"], "deleted")
    assert totals(emf_documents(metrics.getvalue())) == {
        ("BatchesFinished", (("Status", "cancelled"),)): 1, ("BatchesFinished", (("Status", "failed"),)): 1,
        ("FilesFailed", (("ErrorCode", "upload_expired"),)): 1}


def test_archive_builds_are_timed_and_measured_and_failures_counted(watched, monkeypatch):
    system, logs, metrics = watched
    data = {"a.png": images.png()}
    created = system.create(data)
    system.deliver(created, data)
    ready = system.archives.request("alice", created["batch"]["id"], partial=False)
    assert ready["status"] == "ready"
    built, = by_message(log_records(logs.getvalue()), "archive.built")
    assert (built["outcome"], built["bytes"], built["batch_id"]) == ("built", ready["size"], created["batch"]["id"])
    sums = totals(emf_documents(metrics.getvalue()))
    assert sums[("ArchiveBytes", ())] == ready["size"] and 0 <= sums[("ArchiveBuildDuration", ())] < 60

    def broken(*args, **kwargs):
        raise OSError("S3 went away")
    monkeypatch.setattr(system.storage, "write_stream", broken)
    other = system.create({"b.png": images.png()})
    system.deliver(other, {"b.png": images.png()})
    with pytest.raises(OSError):
        system.archives.request("alice", other["batch"]["id"], partial=False)
    failed = [r for r in by_message(log_records(logs.getvalue()), "archive.built") if r["outcome"] == "error"]
    assert failed and failed[0]["error"] == "OSError" and failed[0]["level"] == "ERROR"
    assert totals(emf_documents(metrics.getvalue()))[("ArchiveBuildsFailed", ())] == 1
