"""Batch lifecycle events (API.md "Events"), derived from a batch's state before and after one
committed change. Pure: the stream adapter hands in the two images, the services publish.

A change is one DynamoDB Stream record of the batches table, so every transition (whoever made
it: a worker, the sweep, a cancel, a retry) is seen once per change, in order per batch. The
event id is derived from the batch, the event type and the change's sequence number: a stream
record delivered again gives the same ids, and a batch that finishes a second time (after a
retry) is a new change, so a new id.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from .batches import DELETING, FINAL_STATUSES

CREATED, STARTED, DELETED = "batch.created", "batch.started", "batch.deleted"
COMPLETED, COMPLETED_WITH_ERRORS = "batch.completed", "batch.completed_with_errors"
FAILED, CANCELLED = "batch.failed", "batch.cancelled"
ARCHIVE_READY, PING = "archive.ready", "ping"
BATCH_EVENTS = (CREATED, STARTED, COMPLETED, COMPLETED_WITH_ERRORS, FAILED, CANCELLED, DELETED)
# What a webhook may subscribe to ("*": all of them). A ping goes to the webhook that asked for it.
SUBSCRIBABLE = BATCH_EVENTS + (ARCHIVE_READY,)
ALL = "*"
SOURCE = "imgbatch"   # EventBridge Source of every event
# Fixed forever: changing it would change every event id ever derived.
NAMESPACE = uuid.UUID("6f1c2e57-3c7e-4c55-9a1e-3f2a9a0d5e13")


@dataclass(frozen=True)
class Event:
    id: str
    type: str
    created_at: str
    data: dict = field(compare=False)
    owner: str = field(default="", compare=False)   # whose webhooks receive it; never sent

    def body(self) -> dict:
        return {"id": self.id, "type": self.type, "created_at": self.created_at, "data": self.data}


def transitions(old: dict | None, new: dict | None) -> list[str]:
    """The event types one change of a batch item means, in the order they happened.

    `batch.deleted` is the moment the delete is marked (the batch leaves every list), once;
    the later removal of the item is not an event. `batch.started` is the first file's start
    (started_at appears); a final status is an event each time the batch reaches it."""
    if new is None:
        return []
    old_status = old.get("status") if old else None
    status = new.get("status")
    if status == DELETING:
        return [DELETED] if old is not None and old_status != DELETING else []
    out = []
    if old is None:
        out.append(CREATED)
    if new.get("started_at") and not (old or {}).get("started_at"):
        out.append(STARTED)
    if status in FINAL_STATUSES and status != old_status:
        out.append(f"batch.{status}")
    return out


def event_id(*parts: str) -> str:
    """A UUID that the same parts always give (uuid5 in our namespace)."""
    return str(uuid.uuid5(NAMESPACE, "|".join(parts)))


def batch_event(kind: str, batch_id: str, change: str, created_at: str, batch_view: dict, owner: str) -> Event:
    return Event(event_id(batch_id, kind, change), kind, created_at, {"batch": batch_view}, owner)


def archive_ready(batch_view: dict, archive_key: str, created_at: str, owner: str) -> Event:
    """One id per archive content: the key holds the content's fingerprint."""
    return Event(event_id(batch_view["id"], ARCHIVE_READY, archive_key), ARCHIVE_READY, created_at,
                 {"batch": batch_view}, owner)


def ping(webhook_id: str, new_id: str, created_at: str, owner: str) -> Event:
    return Event(new_id, PING, created_at, {"webhook_id": webhook_id}, owner)


def matches(subscribed, kind: str) -> bool:
    return ALL in subscribed or kind in subscribed


def final_with_outputs(kind: str, batch: dict) -> bool:
    """A final status that has something to put in a ZIP."""
    return kind in (COMPLETED, COMPLETED_WITH_ERRORS, CANCELLED, FAILED) and int(batch.get("succeeded") or 0) > 0
