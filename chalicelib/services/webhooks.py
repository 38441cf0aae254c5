"""Webhook use cases (API.md "Webhooks"): create (the secret is shown once), list, read, replace,
delete, ping, the delivery log and redeliver. Owner-scoped: another owner's webhook is not found."""
from __future__ import annotations

import secrets as random_secrets
import uuid

from ..domain import events as ev
from ..domain.validation import Invalid
from ..domain.webhooks import parse_webhook
from ..errors import BadRequest, NotFound, TooLarge
from .clock import iso, utcnow
from .deliveries import delivery_view, secret_context
from .ownership import is_uuid
from .paging import Cursors, limit_param

SECRET_PREFIX = "whsec_"
# Every event fans out to each matching webhook of its owner: a bound keeps one batch's events cheap.
MAX_WEBHOOKS_PER_OWNER = 25


def webhook_view(w: dict) -> dict:
    """W (API.md)."""
    return {"id": w["id"], "url": w["url"], "events": list(w["events"]), "description": w.get("description") or "",
            "active": bool(w.get("active", True)), "created_at": w["created_at"], "updated_at": w["updated_at"]}


class WebhookService:
    def __init__(self, store, secrets, sender, deliveries, settings, clock=utcnow,
                 new_id=lambda: str(uuid.uuid4()), new_secret=lambda: SECRET_PREFIX + random_secrets.token_urlsafe(32)):
        self.store = store
        self.secrets = secrets
        self.sender = sender
        self.deliveries = deliveries
        self.clock = clock
        self.new_id = new_id
        self.new_secret = new_secret
        self.cursors = Cursors(settings.cursor_signing_key)

    def _spec(self, payload):
        try:
            spec = parse_webhook(payload)
            self.sender.check(spec.url)   # DNS now; checked again before every delivery
        except Invalid as exc:
            raise BadRequest(exc.message) from None
        return spec

    def create(self, owner: str, payload) -> dict:
        spec = self._spec(payload)
        if len(self.store.list_webhooks(owner)) >= MAX_WEBHOOKS_PER_OWNER:
            raise TooLarge(f"an owner has at most {MAX_WEBHOOKS_PER_OWNER} webhooks; delete one first "
                           "(one webhook may subscribe to several event types)")
        now = iso(self.clock())
        webhook = {"owner": owner, "id": self.new_id(), "url": spec.url, "events": list(spec.events),
                   "description": spec.description, "active": spec.active, "created_at": now, "updated_at": now}
        secret = self.new_secret()
        webhook["secret_ciphertext"] = self.secrets.seal(secret, secret_context(webhook))
        self.store.create_webhook(webhook)
        return {"webhook": webhook_view(webhook), "secret": secret}

    def list(self, owner: str) -> dict:
        found = sorted(self.store.list_webhooks(owner), key=lambda w: (w["created_at"], w["id"]))
        return {"webhooks": [webhook_view(w) for w in found]}

    def _owned(self, owner: str, webhook_id: str) -> dict:
        webhook = self.store.get_webhook(owner, webhook_id) if is_uuid(webhook_id) else None
        if webhook is None:
            raise NotFound(f"webhook {webhook_id} not found")
        return webhook

    def get(self, owner: str, webhook_id: str) -> dict:
        return {"webhook": webhook_view(self._owned(owner, webhook_id))}

    def replace(self, owner: str, webhook_id: str, payload) -> dict:
        self._owned(owner, webhook_id)
        spec = self._spec(payload)
        updated = self.store.replace_webhook(owner, webhook_id, {
            "url": spec.url, "events": list(spec.events), "description": spec.description, "active": spec.active,
            "updated_at": iso(self.clock())})
        if updated is None:
            raise NotFound(f"webhook {webhook_id} not found")
        return {"webhook": webhook_view(updated)}

    def delete(self, owner: str, webhook_id: str) -> None:
        if not is_uuid(webhook_id) or not self.store.delete_webhook(owner, webhook_id):
            raise NotFound(f"webhook {webhook_id} not found")

    def ping(self, owner: str, webhook_id: str) -> dict:
        webhook = self._owned(owner, webhook_id)
        event = ev.ping(webhook_id, self.new_id(), iso(self.clock()), owner)
        return {"delivery": delivery_view(self.deliveries.start(webhook, event, delivery_id=self.new_id()))}

    def deliveries_page(self, owner: str, webhook_id: str, params: dict) -> dict:
        self._owned(owner, webhook_id)
        scope = f"deliveries|{owner}|{webhook_id}"
        start = self.cursors.decode(params.get("cursor"), scope)
        page = self.store.list_deliveries(webhook_id, limit_param(params), start)
        return {"deliveries": [delivery_view(d) for d in page.items],
                "next_cursor": self.cursors.encode(scope, page.last_key)}

    def redeliver(self, owner: str, webhook_id: str, delivery_id: str) -> dict:
        webhook = self._owned(owner, webhook_id)
        original = self.store.get_delivery(webhook_id, delivery_id) if is_uuid(delivery_id) else None
        if original is None:
            raise NotFound(f"delivery {delivery_id} of webhook {webhook_id} not found")
        body = original["event"]
        event = ev.Event(body["id"], body["type"], body["created_at"], body["data"], owner)
        return {"delivery": delivery_view(self.deliveries.start(webhook, event, delivery_id=self.new_id()))}
