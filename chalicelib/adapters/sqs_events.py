"""SQS records -> object keys: S3 ObjectCreated notifications (and our own retry messages in their
shape) as the arrival and processing functions receive them. Adapter code: the services get keys.

Delivery is at least once and unordered, so every transition is a conditional
write: a duplicate event finds the job already past its state and does nothing.
"""
from __future__ import annotations

import json
import logging
from urllib.parse import unquote_plus

from ..observability import NOOP

log = logging.getLogger("imgbatch.processing")


JOB_FIELD = "imgbatchJob"   # our forwarded records carry the job's state (S3's never do)


def records_in_message(body: str) -> list[tuple[str, dict | None]]:
    """(object key, job state or None) of each record of an SQS message body holding an S3
    notification (or our own forward in its shape); test events give none."""
    try:
        message = json.loads(body)
    except ValueError:
        log.warning("ignoring a message that is not JSON: %.200r", body)
        return []
    if not isinstance(message, dict):
        return []
    if message.get("Event") == "s3:TestEvent":
        return []
    found = []
    for record in message.get("Records") or []:
        try:
            job = record.get(JOB_FIELD)
            found.append((unquote_plus(record["s3"]["object"]["key"]), job if isinstance(job, dict) else None))
        except (KeyError, TypeError, AttributeError):
            log.warning("ignoring a record without an object key: %.200r", record)
    return found


def keys_in_message(body: str) -> list[str]:
    """Object keys of an SQS message body holding an S3 notification; test events give none."""
    return [key for key, _ in records_in_message(body)]


def handle_sqs_records(handle_key, records, prefetch=None, obs=NOOP, flush=None) -> list[str]:
    """Hand every object key of every message (and its job state, if the record carries it) to
    `handle_key`; `prefetch` first sees every key of the invocation (to read their jobs together),
    and `flush` runs after the last (to send what the records left to send together; when it
    fails, every message is redelivered). Returns the ids of messages to be redelivered. Each
    message's id is the `event_id` of every line logged for it."""
    parsed = [(message_id, records_in_message(body)) for _receipt, body, message_id in records]
    if prefetch is not None:
        try:
            prefetch([key for _, found in parsed for key, _ in found])
        except Exception:   # only an optimisation: each record reads its own job then
            log.exception("prefetch failed; reading jobs one by one")
    failures = []
    for message_id, found in parsed:
        with obs.bind(event_id=message_id):
            try:
                for key, job in found:
                    handle_key(key, job)
            except Exception:  # one bad record must not replay its neighbours
                log.exception("processing message %s failed; SQS will redeliver it", message_id)
                failures.append(message_id)
    if flush is not None:
        try:
            flush()
        except Exception:
            log.exception("finishing the invocation failed; SQS will redeliver every message of it")
            return [message_id for message_id, _ in parsed]
    return failures
