"""chalicelib/observability.py: Powertools underneath, read back from what it prints.

Log lines are parsed as JSON (or read as text), metrics as EMF documents (tests/emf.py checks
them against the format's specification); nothing in Powertools is mocked."""
from __future__ import annotations

import io
import json
import logging
import threading

import pytest

from chalicelib import observability as o
from tests.emf import emf_documents, log_records, totals, units


@pytest.fixture
def out():
    logs, metrics = io.StringIO(), io.StringIO()
    obs = o.PowertoolsObservability(log_format="json", stream=logs, metrics_stream=metrics)
    yield obs, logs, metrics
    # later tests (and wiring) get the logger back on stdout
    o.PowertoolsObservability(log_format="json")


def test_every_line_carries_the_bound_keys_as_json(out):
    obs, logs, _ = out
    with obs.invocation("process_upload", "req-1", event_id="msg-1"):
        with obs.bind(batch_id="b-1", job_id="j-1"):
            obs.info("job.processed", outcome="completed", bytes_in=10)
            logging.getLogger("imgbatch.processing").warning("plain %s line", "stdlib")
        obs.info("after")
    obs.info("outside")
    lines = log_records(logs.getvalue())
    assert [r["message"] for r in lines] == ["job.processed", "plain stdlib line", "after", "outside"]
    for r in lines[:2]:
        assert (r["function"], r["request_id"], r["event_id"], r["batch_id"], r["job_id"]) == \
            ("process_upload", "req-1", "msg-1", "b-1", "j-1")
        assert r["service"] == "imgbatch" and r["timestamp"].endswith("+00:00")
    assert lines[0]["outcome"] == "completed" and lines[0]["bytes_in"] == 10 and lines[0]["level"] == "INFO"
    assert "batch_id" not in lines[2] and lines[2]["request_id"] == "req-1"
    assert "request_id" not in lines[3] and "function" not in lines[3]


def test_threads_never_see_each_others_keys(out):
    """The local stack runs pollers and API requests in one process: keys are per thread."""
    obs, logs, _ = out
    barrier = threading.Barrier(8)

    def work(n):
        with obs.bind(batch_id=f"batch-{n}"):
            barrier.wait(5)
            for _ in range(20):
                obs.info("tick", n=n)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    lines = log_records(logs.getvalue())
    assert len(lines) == 160
    assert all(r["batch_id"] == f"batch-{r['n']}" for r in lines)


def test_a_transition_logs_its_outcome_and_duration_once(out):
    obs, logs, _ = out
    with obs.transition("batch.deleted", batch_id="b") as step:
        step.outcome = "deleted"
        step.fields["objects"] = 3
    with pytest.raises(ValueError):
        with obs.transition("archive.built", batch_id="b"):
            raise ValueError("boom")
    with pytest.raises(KeyError):
        with obs.transition("archive.built", batch_id="c") as step:
            step.outcome = "deleted_meanwhile"
            raise KeyError("gone")
    first, failed, told = log_records(logs.getvalue())
    assert (first["message"], first["outcome"], first["objects"], first["batch_id"]) == ("batch.deleted", "deleted", 3, "b")
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] >= 0
    assert (failed["outcome"], failed["error"], failed["level"]) == ("error", "ValueError", "ERROR")
    assert (told["outcome"], told["level"]) == ("deleted_meanwhile", "INFO")


SIGNED_URL = ("https://imgbatch.s3.amazonaws.com/outputs/b/j/web.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256"
              "&X-Amz-Credential=ASIAEXAMPLE%2F20261201%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261201T000000Z"
              "&X-Amz-Expires=900&X-Amz-SignedHeaders=host&X-Amz-Security-Token=FwoGZXIvYXdzEXAMPLETOKEN"
              "&X-Amz-Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
SECRETS = ("0123456789abcdef0123456789abcdef", "ASIAEXAMPLE", "FwoGZXIvYXdzEXAMPLETOKEN", "s3cr3t-token-value",
           "whsec_abcdef123456", "c2lnbmVkIHBvbGljeQ==", "AKIDLEGACY", "legacysig")


def test_no_token_secret_signature_or_file_bytes_reaches_a_line(out):
    obs, logs, _ = out
    with obs.bind(batch_id="b"):
        obs.info("download", url=SIGNED_URL, authorization="Bearer s3cr3t-token-value")
        obs.info("webhook", secret="whsec_abcdef123456", signature="sha256=whsec_abcdef123456",
                 upload={"url": "https://x", "fields": {"key": "uploads/b/j/a.png", "policy": "c2lnbmVkIHBvbGljeQ==",
                                                        "x-amz-signature": "0123456789abcdef0123456789abcdef"}},
                 body=b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
        logging.getLogger("imgbatch.processing").warning("redirecting to %s with Authorization: Bearer %s",
                                                         SIGNED_URL, "s3cr3t-token-value")
        obs.info("sigv2", url="https://b.s3.amazonaws.com/k?AWSAccessKeyId=AKIDLEGACY&Expires=1&Signature=legacysig")
        obs.info("fields", text=str({"policy": "c2lnbmVkIHBvbGljeQ==", "x-amz-signature": "legacysig"}))
    text = logs.getvalue()
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, leaked
    lines = log_records(text)
    assert len(lines) == 5
    assert "X-Amz-Signature=[redacted]" in lines[0]["url"] and "X-Amz-Expires=900" in lines[0]["url"]
    assert lines[1]["body"] == "<108 bytes>" and lines[1]["upload"]["fields"]["key"] == "uploads/b/j/a.png"
    assert lines[2]["batch_id"] == "b" and "Bearer [redacted]" in lines[2]["message"]


def test_text_lines_are_readable_and_greppable(out):
    obs, _, _ = out
    logs = io.StringIO()
    obs = o.PowertoolsObservability(log_format="text", stream=logs)
    with obs.invocation("process_upload", "req-9"), obs.bind(batch_id="b-9", job_id="j-9"):
        obs.info("job.processed", outcome="failed", error_code="corrupt_image", note="two words")
    [line] = logs.getvalue().splitlines()
    assert not line.startswith("{")
    assert " INFO  job.processed function=process_upload batch_id=b-9 job_id=j-9 outcome=failed " in line
    assert 'note="two words"' in line and "error_code=corrupt_image" in line and "request_id=req-9" in line


def test_metrics_are_emf_documents_written_when_the_invocation_ends(out):
    obs, _, metrics = out
    with obs.invocation("process_upload", "req-1"):
        obs.metric(o.FILES_PROCESSED)
        obs.metric(o.FILES_SUCCEEDED)
        obs.metric(o.PIPELINE_DURATION, 41.5)
        obs.metric(o.BYTES_IN, 1000)
        obs.metric(o.FILES_FAILED, dimension="corrupt_image")
        obs.metric(o.FILES_FAILED, dimension="corrupt_image")
        obs.metric(o.FILES_FAILED, dimension="too_many_pixels")
        obs.metric(o.BATCHES_FINISHED, dimension="completed_with_errors")
        assert metrics.getvalue() == ""   # nothing before the end of the invocation
    docs = emf_documents(metrics.getvalue())
    assert {d["_aws"]["CloudWatchMetrics"][0]["Namespace"] for d in docs} == {"imgbatch"}
    assert all(d["service"] == "imgbatch" for d in docs)
    assert totals(docs) == {
        ("FilesProcessed", ()): 1, ("FilesSucceeded", ()): 1, ("PipelineDuration", ()): 41.5, ("BytesIn", ()): 1000,
        ("FilesFailed", (("ErrorCode", "corrupt_image"),)): 2, ("FilesFailed", (("ErrorCode", "too_many_pixels"),)): 1,
        ("BatchesFinished", (("Status", "completed_with_errors"),)): 1}
    assert units(docs) == {"FilesProcessed": "Count", "FilesSucceeded": "Count", "PipelineDuration": "Milliseconds",
                           "BytesIn": "Bytes", "FilesFailed": "Count", "BatchesFinished": "Count"}


def test_outside_an_invocation_a_metric_is_written_at_once(out):
    obs, _, metrics = out
    obs.metric(o.ARCHIVE_BYTES, 5_000_000)
    assert totals(emf_documents(metrics.getvalue())) == {("ArchiveBytes", ()): 5_000_000}


def test_more_than_a_hundred_values_of_a_metric_are_split_into_valid_documents(out):
    obs, _, metrics = out
    with obs.invocation("process_upload"):
        for n in range(250):
            obs.metric(o.PIPELINE_DURATION, n)
    docs = emf_documents(metrics.getvalue())   # each document is checked: at most 100 values a metric
    assert len(docs) == 3 and totals(docs) == {("PipelineDuration", ()): sum(range(250))}


def test_a_metric_with_the_wrong_dimension_is_refused(out):
    obs, _, _ = out
    with pytest.raises(ValueError, match="ErrorCode"):
        obs.metric(o.FILES_FAILED)
    with pytest.raises(ValueError, match="none"):
        obs.metric(o.FILES_PROCESSED, dimension="x")


def test_metrics_off_writes_nothing():
    metrics = io.StringIO()
    obs = o.PowertoolsObservability(metrics=False, metrics_stream=metrics, stream=io.StringIO())
    with obs.invocation("f"):
        obs.metric(o.FILES_PROCESSED)
    obs.metric(o.FILES_PROCESSED)
    assert metrics.getvalue() == ""
    o.PowertoolsObservability()


def test_the_catalogue_names_each_metric_once_with_a_cloudwatch_unit():
    from tests.emf import UNITS
    names = [m.name for m in o.METRICS]
    assert len(names) == len(set(names))
    assert all(m.unit in UNITS and m.help for m in o.METRICS)
    assert o.WEBHOOK_DELIVERIES in o.METRICS and o.WEBHOOK_DELIVERIES.dimension == "Outcome"


def test_the_noop_binds_but_writes_nothing(capsys):
    with o.NOOP.invocation("f", "r"), o.NOOP.transition("x", batch_id="b") as step:
        assert o.bound_keys() == {"function": "f", "request_id": "r", "batch_id": "b"}
        o.NOOP.metric(o.FILES_PROCESSED)
        step.outcome = "done"
    assert o.bound_keys() == {}
    assert capsys.readouterr().out == ""


def test_settings_read_the_observability_switches():
    from chalicelib.settings import Settings
    lam = Settings.from_env({"AWS_LAMBDA_FUNCTION_NAME": "imgbatch-prod-process-upload"})
    assert (lam.log_format, lam.metrics, lam.tracing, lam.log_level) == ("json", True, True, "INFO")
    local = Settings.from_env({"LOG_FORMAT": "text", "METRICS": "off", "LOG_LEVEL": "debug"})
    assert (local.log_format, local.metrics, local.tracing, local.log_level) == ("text", False, False, "DEBUG")
    assert Settings.from_env({"AWS_LAMBDA_FUNCTION_NAME": "f", "TRACING": "off"}).tracing is False
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        Settings.from_env({"LOG_FORMAT": "xml"})
    with pytest.raises(ValueError, match="METRICS"):
        Settings.from_env({"METRICS": "maybe"})
    json.dumps(o.bound_keys())
