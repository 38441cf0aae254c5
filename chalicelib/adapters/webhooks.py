"""DynamoDB storage of webhooks and their delivery log (event_ports.WebhookStore)."""
from __future__ import annotations

from datetime import timedelta

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, UpdateError

from ..ports import Page
from .models import Models

DELIVERY_LOG_DAYS = 30   # deliveries expire from the log (DynamoDB TTL) after this long
WEBHOOK_FIELDS = ("url", "events", "description", "active")


def _conflict(exc: Exception) -> bool:
    return getattr(exc, "cause_response_code", None) == "ConditionalCheckFailedException"


def _plain(item) -> dict:
    out = {name: getattr(item, name) for name in item.get_attributes()}
    out.pop("expires", None)
    for name, value in out.items():
        if isinstance(value, float) and value.is_integer():
            out[name] = int(value)
    return out


class DynamoWebhookStore:
    def __init__(self, models: Models):
        self.W = models.Webhook
        self.D = models.Delivery

    # -- webhooks ------------------------------------------------------------------
    def create_webhook(self, webhook: dict) -> None:
        W = self.W
        W(**webhook).save(condition=W.id.does_not_exist())

    def get_webhook(self, owner: str, webhook_id: str) -> dict | None:
        try:
            return _plain(self.W.get(owner, webhook_id, consistent_read=True))
        except DoesNotExist:
            return None

    def list_webhooks(self, owner: str) -> list[dict]:
        return [_plain(w) for w in self.W.query(owner, consistent_read=True)]

    def replace_webhook(self, owner: str, webhook_id: str, fields: dict) -> dict | None:
        W = self.W
        item = W(owner, webhook_id)
        try:
            item.update(actions=[getattr(W, k).set(v) for k, v in fields.items()], condition=W.id.exists())
        except UpdateError as exc:
            if _conflict(exc):
                return None
            raise
        return self.get_webhook(owner, webhook_id)

    def delete_webhook(self, owner: str, webhook_id: str) -> bool:
        W = self.W
        try:
            W(owner, webhook_id).delete(condition=W.id.exists())
        except DeleteError as exc:
            if _conflict(exc):
                return False
            raise
        return True

    # -- deliveries ----------------------------------------------------------------
    def add_delivery(self, delivery: dict) -> dict | None:
        D = self.D
        item = D(**delivery)
        item.expires = timedelta(days=DELIVERY_LOG_DAYS)
        try:
            item.save(condition=D.id.does_not_exist())
        except PutError as exc:
            if _conflict(exc):
                return None
            raise
        return _plain(item)

    def get_delivery(self, webhook_id: str, delivery_id: str) -> dict | None:
        try:
            return _plain(self.D.get(webhook_id, delivery_id, consistent_read=True))
        except DoesNotExist:
            return None

    def list_deliveries(self, webhook_id: str, limit: int, start: dict | None) -> Page:
        result = self.D.query(webhook_id, index_name="webhook-created", scan_index_forward=False, limit=limit,
                              page_size=limit, last_evaluated_key=start, consistent_read=True)
        items = [_plain(d) for d in result]
        last = result.last_evaluated_key if len(items) == limit else None
        return Page(items, last, len(items), len(items))

    def claim_attempt(self, delivery: dict, attempt: int, now: str, lease_until: str) -> bool:
        D = self.D
        condition = (D.status == "pending") & (
            (D.attempts == attempt - 1) | ((D.attempts == attempt) & (D.lease_until < now)))
        try:
            D(delivery["webhook_id"], delivery["id"]).update(
                actions=[D.attempts.set(attempt), D.lease_until.set(lease_until)], condition=condition)
        except UpdateError as exc:
            if _conflict(exc):
                return False
            raise
        return True

    def finish_attempt(self, delivery: dict, attempt: int, fields: dict) -> bool:
        D = self.D
        actions = [D.lease_until.remove()]
        for name, value in fields.items():
            attr = getattr(D, name)
            actions.append(attr.remove() if value is None else attr.set(value))
        try:
            D(delivery["webhook_id"], delivery["id"]).update(
                actions=actions, condition=(D.status == "pending") & (D.attempts == attempt))
        except UpdateError as exc:
            if _conflict(exc):
                return False
            raise
        return True
