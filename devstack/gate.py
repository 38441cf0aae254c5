"""The gate around the local stack's moto: a consistent cut for each snapshot (devstack/persistence.py).

Every request moto serves passes the gate (`middleware`); a snapshot closes it, which waits for the
requests in progress and holds new ones until it reopens. Writes mark the state as changed, so an
idle stack takes no snapshot.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

# Requests that change nothing worth a snapshot. Anything else (every S3 or DynamoDB write, SQS
# send, delete and visibility change, actions not listed) marks the state as changed.
# ReceiveMessage is here although it counts a receive: idle pollers call it every second, and a
# restore makes messages in flight visible anyway.
_READ_ONLY_METHODS = {"GET", "HEAD", "OPTIONS"}
_READ_ONLY_ACTIONS = {
    "DynamoDB_20120810." + a for a in (
        "GetItem", "BatchGetItem", "Query", "Scan", "DescribeTable", "ListTables", "DescribeTimeToLive",
        "DescribeContinuousBackups", "ListTagsOfResource", "DescribeEndpoints")
} | {"AmazonSQS." + a for a in ("ReceiveMessage", "GetQueueUrl", "GetQueueAttributes", "ListQueues",
                                "ListQueueTags", "ListDeadLetterSourceQueues")}


def middleware(gate: "Gate", changed: threading.Event, app):
    """WSGI middleware for moto: every request passes `gate`; writes set `changed`."""
    _install_long_poll_patch()

    def gated(environ, start_response):
        with gate.shared():
            if not read_only(environ):
                changed.set()
            return app(environ, start_response)
    return gated


def read_only(environ) -> bool:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target in _READ_ONLY_ACTIONS
    return environ.get("REQUEST_METHOD") in _READ_ONLY_METHODS


class Gate:
    """A readers-writer lock around moto: requests share it, a snapshot takes it alone.

    A waiting snapshot goes first (new requests queue behind it), so a steady stream of requests
    cannot starve it. A long-polling ReceiveMessage steps out while it waits for messages
    (`_wait_outside_the_gate`): the stack's pollers long-poll all the time, and a snapshot (and
    every request queued behind it) would otherwise wait for their polls to run out."""

    def __init__(self):
        self._cond = threading.Condition()
        self._active = 0
        self._exclusive = False

    @contextmanager
    def shared(self):
        self._enter()
        _held.gates = getattr(_held, "gates", ()) + (self,)
        try:
            yield
        finally:
            _held.gates = _held.gates[:-1]
            self._leave()

    def _enter(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._active += 1

    def _leave(self) -> None:
        with self._cond:
            self._active -= 1
            if not self._active:
                self._cond.notify_all()

    def close(self) -> None:
        """Wait for the requests in progress, then let no request through until `reopen`."""
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._exclusive = True
            self._cond.wait_for(lambda: not self._active)

    def reopen(self) -> None:
        with self._cond:
            self._exclusive = False
            self._cond.notify_all()


_held = threading.local()   # .gates: the gates the current thread's request holds


def _wait_outside_the_gate(original):
    """moto's Queue.wait_for_messages (the one place a ReceiveMessage waits), run with the
    request's gate released: the wait changes nothing, and the receive re-enters the gate before
    it takes any message."""
    def wait_for_messages(queue, timeout):
        gates = getattr(_held, "gates", ())
        for gate in gates:
            gate._leave()
        try:
            return original(queue, timeout)
        finally:
            for gate in gates:
                gate._enter()
    wait_for_messages.devstack_original = original
    return wait_for_messages


def _install_long_poll_patch() -> None:
    from moto.sqs.models import Queue
    if not hasattr(Queue.wait_for_messages, "devstack_original"):
        Queue.wait_for_messages = _wait_outside_the_gate(Queue.wait_for_messages)
