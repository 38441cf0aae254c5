"""Upload events: S3 ObjectCreated (via SQS) -> the job's state machine.

Delivery is at least once and unordered, so every transition is a conditional
write: a duplicate event finds the job already past its state and does nothing.
"""
from __future__ import annotations

import json
import logging
import re
from urllib.parse import unquote_plus

from ..resources import UPLOAD_PREFIX

log = logging.getLogger("imgbatch.processing")
_KEY = re.compile(rf"^{UPLOAD_PREFIX}(?P<batch>[0-9a-f-]{{36}})/(?P<job>[0-9a-f-]{{36}})/[^/]+$")


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


def parse_key(key: str) -> tuple[str, str] | None:
    match = _KEY.match(key)
    return (match.group("batch"), match.group("job")) if match else None


def handle_sqs_records(container, records) -> list[str]:
    """Process each message; return the ids of messages to be redelivered."""
    failures = []
    for _receipt, body, message_id in records:
        try:
            for key in keys_in_message(body):
                container.processor.process_key(key)
        except Exception:  # one bad record must not replay its neighbours
            log.exception("processing message %s failed; SQS will redeliver it", message_id)
            failures.append(message_id)
    return failures
