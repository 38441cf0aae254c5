"""Make moto's DynamoDB behave like DynamoDB under concurrency.

moto 5.2 evaluates a TransactWriteItems condition and applies the write without
any lock, and on a failed condition it restores a deep copy of every touched
table, discarding writes other threads made meanwhile. Real DynamoDB runs each
request atomically and transactions all-or-nothing. The local stack and tests
therefore serialise DynamoDB requests (moto is GIL-bound, so this costs little)
and evaluate transactions as: check every condition, then apply every write,
which is atomic under the lock; if a write still fails, the items already
written are put back (copies of the touched items only, not of whole tables).
Installed by devstack (server mode) and tests/conftest.py (mock_aws). Also the SQS costs that
grow with a queue's depth (_one_clock_per_queue_pass, _cheap_receive_and_delete), one cost
every request pays (_known_services), and S3 listings that failed beside deletes
(_listing_survives_deletes).
"""
from __future__ import annotations

import copy
import threading

_LOCK = threading.RLock()
_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.call_action

    def call_action(self):
        with _LOCK:
            return original(self)

    DynamoHandler.call_action = call_action
    DynamoDBBackend.transact_write_items = _transact_write_items
    _one_clock_per_queue_pass()
    _cheap_receive_and_delete()
    _known_services()
    _listing_survives_deletes()
    _installed = True


def _one_clock_per_queue_pass() -> None:
    """moto 5.2 reads the clock (two datetime conversions) for every message each time it looks at
    a queue, and looks at the whole queue twice on every SendMessage (it builds all the queue's
    attributes, counts included, to read one). With the thousands of S3 notifications a
    10,000-file batch leaves waiting, each upload cost tens of milliseconds of moto's one core
    and the local stack fell under one file a second. One clock reading per pass: same answers."""
    from moto.core.utils import unix_time_millis
    from moto.sqs.models import Queue

    def messages(self):
        now = unix_time_millis()
        return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]

    def not_visible(self):
        now = unix_time_millis()
        return sum(1 for m in self._messages if not now > m.visible_at)

    def delayed(self):
        now = unix_time_millis()
        return sum(1 for m in self._messages if now < m.delayed_until)

    Queue.messages = property(messages)
    Queue.approximate_number_of_messages_not_visible = property(not_visible)
    Queue.approximate_number_of_messages_delayed = property(delayed)


def _cheap_receive_and_delete() -> None:
    """Two more passes over a whole queue per message, found by py-spy in a 10,000-file run once
    the clock reads were gone: a receive checks each message it hands out against the queue's
    retention period by building all the queue's attributes (counts included: passes over every
    message), and a delete looks for its receipt handle in every message twice. A receive now
    reads the one attribute; a delete looks among the messages in flight first (a handle to
    delete almost always belongs to one) and passes over the queue once otherwise."""
    from moto.core.utils import unix_time
    from moto.sqs.exceptions import ReceiptHandleIsInvalid
    from moto.sqs.models import Queue, SQSBackend

    def is_message_valid_based_on_retention_period(self, queue_name, message) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return retention + message.sent_timestamp / 1000 > unix_time()

    def delete_message(self, receipt_handle: str) -> None:
        if receipt_handle in self.deleted_messages:
            return   # deleting twice is fine in SQS
        found = next((m for m in list(self._pending_messages) if m.had_receipt_handle(receipt_handle)), None)
        if found is None:
            found = next((m for m in self._messages if m.had_receipt_handle(receipt_handle)), None)
        if found is None:
            raise ReceiptHandleIsInvalid()
        self._pending_messages.discard(found)
        self.deleted_messages.update(found.all_receipt_handles)
        kept = list(self._messages)   # a new list, as moto does: a receive may be iterating the old one
        kept.remove(found)
        self._messages = kept

    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period
    Queue.delete_message = delete_message


def _known_services() -> None:
    """moto's server lists its own package directory (a stat per entry) on every request to
    route it by host name; the list does not change while it runs."""
    from moto import backends

    known = list(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: known


def _listing_survives_deletes() -> None:
    """moto lists a bucket from a copy of its key table but then looks every key up again in the
    live table, so a key deleted meanwhile (the server is threaded) fails the whole ListObjectsV2
    with a KeyError and HTTP 500: seen purging a 100,000-file batch, whose deletes run beside its
    listings. The copy's own versions are used instead: a listing as of a moment, as S3's is."""
    from moto.s3.utils import _VersionedKeyStore

    def items(self):
        for key, versions in self._self_iterable().items():
            if versions:
                yield key, versions[-1]

    def values(self):
        for _, value in items(self):
            yield value

    def lists(self):
        yield from self._self_iterable().items()

    _VersionedKeyStore.items = _VersionedKeyStore.iteritems = _VersionedKeyStore._iteritems = items
    _VersionedKeyStore.values = _VersionedKeyStore.itervalues = _VersionedKeyStore._itervalues = values
    _VersionedKeyStore.lists = _VersionedKeyStore.iterlists = _VersionedKeyStore._iterlists = lists


def item_key(backend, op_type: str, op: dict) -> dict:
    """The primary key a TransactWriteItems entry touches (a Put carries it inside its Item)."""
    if op_type != "Put":
        return op["Key"]
    table = backend.get_table(op["TableName"])
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return key


def _transact_write_items(self, transact_items):
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        MockValidationException, MultipleTransactionsException, TooManyTransactionsException,
        TransactionCanceledException, TransactWriteSingleOpException,
    )
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    seen, reasons, ops = set(), [], []
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        if op_type not in ("ConditionCheck", "Put", "Delete", "Update"):
            raise ValueError("Unsupported transaction operation")
        table_name = op["TableName"]
        key = item_key(self, op_type, op)
        ident = (table_name, str(dict(sorted(key.items()))))
        if ident in seen:
            raise MultipleTransactionsException()
        seen.add(ident)
        current = self.get_item(table_name, key)
        condition = op.get("ConditionExpression")
        if condition and not get_filter_expression(
                condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")).expr(current):
            old = (current.to_json()["Attributes"]
                   if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current else None)
            reasons.append(("ConditionalCheckFailed", "The conditional request failed", old))
        else:
            reasons.append((None, None, None))
        ops.append((op_type, op, table_name, key, current))
    if any(code for code, _, _ in reasons):
        raise TransactionCanceledException(reasons)
    # A write can still fail once earlier ones are applied (moto validates some update
    # expressions only while applying them; it cannot store a lone surrogate): put every
    # touched item back as it was, so the transaction stays all-or-nothing.
    before = [(table_name, key, copy.deepcopy(current))
              for op_type, _, table_name, key, current in ops if op_type != "ConditionCheck"]
    for index, (op_type, op, table_name, key, _) in enumerate(ops):
        try:
            _apply(self, op_type, op, table_name, key)
        except Exception as exc:
            _restore(self, before)
            if isinstance(exc, MockValidationException):
                raise
            # what moto itself answers for any other failure inside a transaction
            failed = [(None, None, None)] * len(ops)
            failed[index] = (type(exc).__name__, str(exc), None)
            raise TransactionCanceledException(failed) from exc


def _apply(backend, op_type: str, op: dict, table_name: str, key: dict) -> None:
    names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
    if op_type == "Put":
        backend.put_item(table_name, op["Item"], expression_attribute_names=names, expression_attribute_values=values)
    elif op_type == "Delete":
        backend.delete_item(table_name, key, expression_attribute_names=names, expression_attribute_values=values)
    elif op_type == "Update":
        backend.update_item(table_name, key, update_expression=op["UpdateExpression"],
                            expression_attribute_names=names, expression_attribute_values=values)


def _restore(backend, items: list) -> None:
    """Put the items back as they were before the transaction (absent ones: deleted)."""
    for table_name, key, item in items:
        if item is None:
            backend.delete_item(table_name, key)
        else:
            backend.put_item(table_name, item.to_json()["Attributes"])
