"""Events onto the EventBridge bus (event_ports.EventBus): Source imgbatch, DetailType the type."""
from __future__ import annotations

import json

from ..domain.events import SOURCE

PUT_EVENTS_MAX = 10   # entries per PutEvents call


class BusError(RuntimeError):
    pass


class EventBridgeBus:
    def __init__(self, events_client, bus_name: str):
        self.events = events_client
        self.bus_name = bus_name

    def put(self, events) -> None:
        entries = [{"Source": SOURCE, "DetailType": e.type, "Detail": json.dumps(e.body()),
                    "EventBusName": self.bus_name, "Resources": []} for e in events]
        for start in range(0, len(entries), PUT_EVENTS_MAX):
            chunk = entries[start:start + PUT_EVENTS_MAX]
            result = self.events.put_events(Entries=chunk)
            if result.get("FailedEntryCount"):
                failed = [r for r in result["Entries"] if r.get("ErrorCode")]
                raise BusError(f"EventBridge refused {len(failed)} event(s): {failed[:3]}")
