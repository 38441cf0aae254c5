"""Batch lifecycle events: derived from each committed change of a batch (the batches table's
stream), published to the EventBridge bus and to every matching webhook of the batch's owner.

The per-file path never waits for any of this: it only writes the batch as it always did.
Publishing is idempotent by event id (webhook deliveries are keyed by it), so a stream record
delivered again, or a batch of records retried after a failure, publishes nothing twice to a
webhook; EventBridge consumers get the same event id again and dedupe on it.
"""
from __future__ import annotations

import logging

from ..domain import events as ev
from .clock import iso, utcnow
from .views import batch_view

log = logging.getLogger("imgbatch.events")


def event_batch(batch: dict) -> dict:
    """B without jobs (API.md "Events"), as it was at the change."""
    return batch_view(batch)


class EventService:
    def __init__(self, store, bus, deliveries, archives, settings, clock=utcnow):
        self.store = store
        self.bus = bus
        self.deliveries = deliveries
        self.archives = archives     # event_ports.ArchiveRequests
        self.settings = settings
        self.clock = clock

    def events_of(self, change) -> list[ev.Event]:
        """The events one change of a batch means (stream adapter's Change: sequence, old, new)."""
        kinds = ev.transitions(change.old, change.new)
        if not kinds:
            return []
        batch = change.new
        if kinds == [ev.DELETED]:
            # the batch as its owner last saw it; `deleting` is an internal status
            batch = {**change.old, "updated_at": change.new.get("updated_at")}
        view = event_batch(batch)
        return [ev.batch_event(kind, view["id"], change.sequence, change.new.get("updated_at") or view["updated_at"],
                               view, view["owner"]) for kind in kinds]

    def on_changes(self, changes) -> list[str]:
        """Publish every change's events in order; returns the sequence numbers of the changes that
        failed, so the event source retries from the first of them (ReportBatchItemFailures)."""
        for n, change in enumerate(changes):
            try:
                events = self.events_of(change)
                self.publish(events)
                if self.settings.prebuild_archives and any(ev.final_with_outputs(e.type, change.new) for e in events):
                    self.archives.request_prebuild(change.new["id"])
            except Exception:
                log.exception("publishing the events of change %s failed; it will be retried", change.sequence)
                # order per batch matters: everything from here on is retried
                return [change.sequence]
        return []

    def publish(self, events: list[ev.Event]) -> None:
        if not events:
            return
        self.bus.put(events)
        by_owner: dict[str, list[dict]] = {}
        for event in events:
            if event.owner not in by_owner:
                by_owner[event.owner] = [w for w in self.store.list_webhooks(event.owner) if w.get("active", True)]
            for webhook in by_owner[event.owner]:
                if ev.matches(webhook["events"], event.type):
                    self.deliveries.start(webhook, event)

    def archive_ready(self, batch: dict, archive_key: str) -> None:
        """A batch's whole ZIP has been built (services/archives.py calls this)."""
        view = event_batch(batch)
        self.publish([ev.archive_ready(view, archive_key, iso(self.clock()), view["owner"])])
