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


def keys_in_message(body: str) -> list[str]:
    """Object keys of an SQS message body holding an S3 notification; test events give none."""
    try:
        message = json.loads(body)
    except ValueError:
        log.warning("ignoring a message that is not JSON: %.200r", body)
        return []
    if not isinstance(message, dict):
        return []
    if message.get("Event") == "s3:TestEvent":
        return []
    keys = []
    for record in message.get("Records") or []:
        try:
            keys.append(unquote_plus(record["s3"]["object"]["key"]))
        except (KeyError, TypeError):
            log.warning("ignoring a record without an object key: %.200r", record)
    return keys


def handle_sqs_records(handle_key, records, obs=NOOP) -> list[str]:
    """Hand every object key of every message to `handle_key`; return the ids of messages
    to be redelivered. Each message's id is the `event_id` of every line logged for it."""
    failures = []
    for _receipt, body, message_id in records:
        with obs.bind(event_id=message_id):
            try:
                for key in keys_in_message(body):
                    handle_key(key)
            except Exception:  # one bad record must not replay its neighbours
                log.exception("processing message %s failed; SQS will redeliver it", message_id)
                failures.append(message_id)
    return failures
