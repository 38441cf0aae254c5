"""Logs, metrics and traces behind one small port, so services and adapters stay free of AWS.

Services get an `Observability` and call `info`, `transition`, `metric` and `span` on it. The base
class is the no-op that unit and service tests get; `PowertoolsObservability` (wired in wiring.py)
is Powertools for AWS Lambda underneath: Logger (JSON lines, or readable text locally), CloudWatch
embedded metric format documents, and X-Ray subsegments through Tracer when tracing is on.

Correlation keys (batch_id, job_id, owner, event_id, request_id, function) are bound with
`bind()` in a context variable: every line logged inside, by the facade or by any `imgbatch.*`
standard logger, carries them, and threads never see each other's keys (the local stack serves
many requests and pollers in one process).

Nothing secret reaches a log line: values under secret-sounding keys, bearer tokens, presigned URL
signatures and credentials are replaced before formatting, and bytes are logged as their length.

METRICS is the catalogue of every metric the service emits; the deploy template's dashboard and
alarms are built from it (deploy/template.py), so a metric is named in one place.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import IO, Any, Iterator

SERVICE = "imgbatch"
NAMESPACE = "imgbatch"


@dataclass(frozen=True)
class MetricSpec:
    name: str
    unit: str                       # a CloudWatch unit: Count, Milliseconds, Seconds, Bytes
    dimension: str | None = None    # one extra dimension beside `service`, e.g. ErrorCode
    help: str = ""


FILES_PROCESSED = MetricSpec("FilesProcessed", "Count", help="files the processing function finished, completed or failed (counted once)")
FILES_SUCCEEDED = MetricSpec("FilesSucceeded", "Count", help="files completed")
FILES_FAILED = MetricSpec("FilesFailed", "Count", "ErrorCode", help="files failed, by stable error code")
PIPELINE_DURATION = MetricSpec("PipelineDuration", "Milliseconds",
                               help="one file: fetch, decode, render every pipeline, store the outputs")
BYTES_IN = MetricSpec("BytesIn", "Bytes", help="upload bytes read by processing")
BYTES_OUT = MetricSpec("BytesOut", "Bytes", help="output and preview bytes written by processing")
BATCHES_FINISHED = MetricSpec("BatchesFinished", "Count", "Status", help="batches that reached a final status")
ARCHIVE_BUILD_DURATION = MetricSpec("ArchiveBuildDuration", "Seconds", help="one ZIP streamed into S3")
ARCHIVE_BYTES = MetricSpec("ArchiveBytes", "Bytes", help="size of each ZIP built")
ARCHIVE_BUILDS_FAILED = MetricSpec("ArchiveBuildsFailed", "Count", help="ZIP builds that raised")
WRITES_RETRIED = MetricSpec("WritesRetried", "Count", "Reason",
                            help="DynamoDB transactions retried: Reason conflict or throttle")
# The hook for webhook deliveries: the deliveries function calls
# obs.metric(WEBHOOK_DELIVERIES, dimension=<outcome>) once per attempt (delivered, failed, gave_up).
WEBHOOK_DELIVERIES = MetricSpec("WebhookDeliveries", "Count", "Outcome", help="webhook delivery attempts by outcome")

METRICS = (FILES_PROCESSED, FILES_SUCCEEDED, FILES_FAILED, PIPELINE_DURATION, BYTES_IN, BYTES_OUT, BATCHES_FINISHED,
           ARCHIVE_BUILD_DURATION, ARCHIVE_BYTES, ARCHIVE_BUILDS_FAILED, WRITES_RETRIED, WEBHOOK_DELIVERIES)


# -- keeping secrets out ----------------------------------------------------------------------

REDACTED = "[redacted]"
_SECRET_KEY = re.compile(r"token|secret|password|signature|credential|authorization|policy|cookie", re.I)
_SECRET_TEXT = [
    # presigned URLs (SigV4 and SigV2), STS session tokens in URLs
    (re.compile(r"((?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|AWSAccessKeyId)=)[^&\s\"'<>]+",
                re.I), r"\1" + REDACTED),
    (re.compile(r"(Bearer\s+)[^\s\"',]+", re.I), r"\1" + REDACTED),
    # a presigned POST's fields, if a dict of them is ever formatted into a message
    (re.compile(r"""(['"](?:x-amz-signature|x-amz-credential|x-amz-security-token|policy|signature)['"]\s*:\s*)"""
                r"""(['"])[^'"]*\2""", re.I), r"\1'" + REDACTED + "'"),
]


def scrub_text(text: str) -> str:
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


def scrub(value: Any, key: str = "") -> Any:
    """The value as it may be logged: secrets replaced, bytes as their length, containers walked."""
    if key and _SECRET_KEY.search(key) and value not in (None, "", 0):
        return REDACTED
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {k: scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [scrub(v) for v in value]
    return value


# -- correlation keys ----------------------------------------------------------------------------

_BOUND: ContextVar[dict] = ContextVar("imgbatch_log_keys", default={})


def bound_keys() -> dict:
    return dict(_BOUND.get())


@contextmanager
def _binding(keys: dict) -> Iterator[None]:
    token = _BOUND.set({**_BOUND.get(), **{k: v for k, v in keys.items() if v is not None}})
    try:
        yield
    finally:
        _BOUND.reset(token)


@dataclass
class Transition:
    """What a timed state transition logs when it ends: set `outcome` and any fields inside."""
    event: str
    outcome: str = "ok"
    fields: dict = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 1)


class Observability:
    """The port, and the no-op it defaults to: binds keys (cheap, and tests may read them), drops
    lines and metrics, opens no spans."""

    def bind(self, **keys):
        return _binding(keys)

    def info(self, event: str, **fields) -> None:
        pass

    def warning(self, event: str, **fields) -> None:
        pass

    def error(self, event: str, exc_info: bool = False, **fields) -> None:
        pass

    def metric(self, spec: MetricSpec, value: float = 1, dimension: str | None = None) -> None:
        pass

    def span(self, name: str):
        """A trace subsegment around a piece of work (X-Ray when tracing is on)."""
        return nullcontext()

    @contextmanager
    def transition(self, event: str, **keys) -> Iterator[Transition]:
        """One line when the block ends, with its outcome and duration; keys are bound inside.
        An exception ends it with outcome "error" unless the block set one (and goes on)."""
        step = Transition(event)
        with self.bind(**keys):
            try:
                yield step
            except Exception as exc:
                if step.outcome == "ok":   # nobody said what happened: it failed
                    step.outcome = "error"
                    step.fields.setdefault("error", type(exc).__name__)
                log = self.error if step.outcome == "error" else self.info
                log(event, outcome=step.outcome, duration_ms=step.elapsed_ms(), **step.fields)
                raise
            log = self.warning if step.outcome == "error" else self.info
            log(event, outcome=step.outcome, duration_ms=step.elapsed_ms(), **step.fields)

    @contextmanager
    def invocation(self, function: str, request_id: str | None = None, **keys) -> Iterator[None]:
        """One Lambda invocation (or one local delivery): keys bound, metrics flushed at the end."""
        with self.bind(function=function, request_id=request_id, **keys):
            yield


NOOP = Observability()


# -- Powertools ----------------------------------------------------------------------------------

class _ContextFilter(logging.Filter):
    """Adds the bound keys to every record and scrubs it; runs on our handler, so lines from any
    `imgbatch.*` logger (the facade's and plain `logging` calls alike) are covered."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage() if record.args else str(record.msg)
        record.msg, record.args = scrub_text(message), ()
        for key, value in _BOUND.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_RECORD_ATTRS:
                setattr(record, key, scrub(value, key))
        return True


_STANDARD_RECORD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
# read first in a text line: what a developer greps for
_TEXT_FIRST = ("function", "batch_id", "job_id", "owner", "outcome", "duration_ms")
_TEXT_SKIP = {"level", "message", "timestamp", "service", "location", "sampling_rate", "exception", "exception_name",
              "stack_trace", "exception_notes", "xray_trace_id"}


def _powertools_formatter(text: bool, service: str):
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    class TextFormatter(LambdaPowertoolsFormatter):
        """The same record as a readable line: `12:00:01.234 INFO  job.processed batch_id=... k=v`."""

        def serialize(self, log: dict) -> str:
            stamp = str(log.get("timestamp", ""))
            clock = stamp[11:23] if len(stamp) >= 23 else stamp
            keys = [k for k in _TEXT_FIRST if k in log] + sorted(k for k in log if k not in _TEXT_FIRST
                                                               and k not in _TEXT_SKIP)
            pairs = " ".join(f"{k}={_text_value(log[k])}" for k in keys)
            line = f"{clock} {str(log.get('level', '')):<5} {log.get('message', '')}" + (f" {pairs}" if pairs else "")
            if log.get("exception"):
                line += "\n" + str(log["exception"])
            return line

    if text:
        return TextFormatter(utc=True, use_rfc3339=True)
    return LambdaPowertoolsFormatter(utc=True, use_rfc3339=True, json_default=str, service=service)


def _text_value(value: Any) -> str:
    if isinstance(value, str) and value and not re.search(r"[\s\"'=]", value):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


class _Stdout:
    """Writes to whatever sys.stdout is at the time (pytest and Lambda both swap it)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


_configure_lock = threading.Lock()


class PowertoolsObservability(Observability):
    """Powertools Logger, EMF metrics and (optionally) Tracer.

    The `imgbatch` logger is process-wide; building another instance reconfigures it (format,
    level, stream), which is what a new Container with new settings means. Metrics are collected
    per invocation (context variable: concurrent invocations in one local process do not mix) and
    written as EMF documents at its end; outside an invocation each metric is written at once."""

    def __init__(self, service: str = SERVICE, namespace: str = NAMESPACE, log_format: str = "json",
                 log_level: str = "INFO", metrics: bool = True, tracing: bool = False,
                 stream: IO[str] | None = None, metrics_stream: IO[str] | None = None):
        from aws_lambda_powertools import Logger

        self.service, self.namespace = service, namespace
        self.metrics_enabled = metrics
        self.metrics_stream = metrics_stream
        with _configure_lock:
            self.logger = Logger(service=service, level=log_level, stream=stream or _Stdout())
            handler = self.logger.registered_handler
            handler.setFormatter(_powertools_formatter(text=log_format == "text", service=service))
            if stream is not None or not isinstance(getattr(handler, "stream", None), _Stdout):
                handler.setStream(stream or _Stdout())
            handler.filters = [f for f in handler.filters if not isinstance(f, _ContextFilter)] + [_ContextFilter()]
            self.logger.setLevel(log_level)
        self._collector: ContextVar[dict | None] = ContextVar(f"imgbatch_metrics_{id(self)}", default=None)
        self.tracer = None
        if tracing:
            from aws_lambda_powertools import Tracer
            # auto_patch: botocore (so every S3, SQS and DynamoDB call, PynamoDB's too) becomes a subsegment
            self.tracer = Tracer(service=service, disabled=False, auto_patch=True)

    # -- logs
    def _log(self, level: int, event: str, exc_info: bool = False, **fields) -> None:
        # a field named like a LogRecord attribute (name, module, ...) would be refused: suffix it
        extra = {(f"{k}_" if k in _STANDARD_RECORD_ATTRS else k): v for k, v in fields.items()}
        self.logger.log(level, event, exc_info=exc_info, extra=extra, stacklevel=3)

    def info(self, event: str, **fields) -> None:
        self._log(logging.INFO, event, **fields)

    def warning(self, event: str, **fields) -> None:
        self._log(logging.WARNING, event, **fields)

    def error(self, event: str, exc_info: bool = False, **fields) -> None:
        self._log(logging.ERROR, event, exc_info=exc_info, **fields)

    # -- metrics
    def metric(self, spec: MetricSpec, value: float = 1, dimension: str | None = None) -> None:
        if not self.metrics_enabled:
            return
        if (spec.dimension is None) != (dimension is None):
            raise ValueError(f"metric {spec.name} takes {'dimension ' + spec.dimension if spec.dimension else 'none'}")
        collected = self._collector.get()
        if collected is None:
            self._write({(spec.dimension, dimension): [(spec, value)]})
            return
        collected.setdefault((spec.dimension, dimension), []).append((spec, value))

    def _write(self, collected: dict) -> None:
        """One EMF document per dimension set, validated and serialized by Powertools."""
        from aws_lambda_powertools.metrics import EphemeralMetrics

        stream = self.metrics_stream or sys.stdout
        for (dim_name, dim_value), values in collected.items():
            metrics = EphemeralMetrics(namespace=self.namespace, service=self.service)
            if dim_name:
                metrics.add_dimension(name=dim_name, value=str(dim_value))
            for n, (spec, value) in enumerate(values, 1):
                metrics.add_metric(name=spec.name, unit=spec.unit, value=value)
                # EMF holds at most 100 values per metric per document: write before the cap
                if n % 99 == 0:
                    self._emit(stream, metrics)
            if metrics.metric_set:
                self._emit(stream, metrics)

    @staticmethod
    def _emit(stream, metrics) -> None:
        document = metrics.serialize_metric_set()
        metrics.metric_set.clear()
        stream.write(json.dumps(document, separators=(",", ":")) + "\n")
        stream.flush()

    # -- traces
    def span(self, name: str):
        if self.tracer is None:
            return nullcontext()
        return self._span(name)

    @contextmanager
    def _span(self, name: str):
        with self.tracer.provider.in_subsegment(name=name) as subsegment:
            # None when no segment is open (tracing on outside Lambda): trace nothing, fail nothing
            for key in ("batch_id", "job_id") if subsegment is not None else ():
                if key in _BOUND.get():   # searchable in X-Ray: annotation.batch_id = "..."
                    subsegment.put_annotation(key=key, value=str(_BOUND.get()[key]))
            yield subsegment

    # -- invocations
    @contextmanager
    def invocation(self, function: str, request_id: str | None = None, **keys) -> Iterator[None]:
        token = self._collector.set({})
        try:
            with self.bind(function=function, request_id=request_id, **keys):
                if self.tracer is None:
                    yield
                else:
                    # Lambda's own segment cannot be annotated: one subsegment per invocation, as
                    # Powertools' capture_lambda_handler makes
                    with self.tracer.provider.in_subsegment(name=f"## {function}") as subsegment:
                        for key in ("event_id", "request_id") if subsegment is not None else ():
                            if _BOUND.get().get(key):
                                subsegment.put_annotation(key=key, value=str(_BOUND.get()[key]))
                        yield
        finally:
            collected = self._collector.get()
            self._collector.reset(token)
            if collected:
                self._write(collected)
