"""The fake API with the webhook routes (API.md "Webhooks"), for the webhook commands' tests."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from .fake_api import FakeService, error


@dataclass
class FakeWithWebhooks(FakeService):
    webhooks: dict[str, dict] = field(default_factory=dict)
    deliveries: dict[str, list[dict]] = field(default_factory=dict)
    last_webhook_body: dict | None = None

    ROUTES = FakeService.ROUTES + [
        ("POST", r"/webhooks", "create_webhook"),
        ("GET", r"/webhooks", "list_webhooks"),
        ("GET", r"/webhooks/(?P<wid>[^/]+)", "get_webhook"),
        ("DELETE", r"/webhooks/(?P<wid>[^/]+)", "delete_webhook"),
        ("POST", r"/webhooks/(?P<wid>[^/]+)/ping", "ping"),
        ("GET", r"/webhooks/(?P<wid>[^/]+)/deliveries", "list_deliveries"),
        ("POST", r"/webhooks/(?P<wid>[^/]+)/deliveries/(?P<did>[^/]+)/redeliver", "redeliver"),
    ]

    def add_delivery(self, wid: str, event_type: str = "batch.completed", **fields) -> dict:
        d = {"id": str(uuid.uuid4()), "event_id": str(uuid.uuid4()), "event_type": event_type, "status": "pending",
             "attempts": 0, "last_status_code": None, "last_error": None, "next_attempt_at": self._now(),
             "created_at": self._now(), "delivered_at": None, **fields}
        self.deliveries.setdefault(wid, []).insert(0, d)
        return d

    def _json(self, status: int, body: dict):
        import httpx
        return httpx.Response(status, json=body)

    def _create_webhook(self, request, query):
        body = json.loads(request.content)
        self.last_webhook_body = body
        if not str(body.get("url", "")).startswith(("http://", "https://")):
            return error(400, "BadRequestError", "url must start with http:// or https://")
        w = {"id": str(uuid.uuid4()), "url": body["url"], "events": body.get("events") or ["*"],
             "description": body.get("description") or "", "active": body.get("active", True),
             "created_at": self._now(), "updated_at": self._now()}
        self.webhooks[w["id"]] = w
        return self._json(201, {"webhook": w, "secret": "whsec_fake_secret"})

    def _list_webhooks(self, request, query):
        return self._json(200, {"webhooks": list(self.webhooks.values())})

    def _owned(self, wid):
        return self.webhooks.get(wid)

    def _get_webhook(self, request, query, wid):
        w = self._owned(wid)
        return self._json(200, {"webhook": w}) if w else error(404, "NotFoundError", f"webhook {wid} not found")

    def _delete_webhook(self, request, query, wid):
        import httpx
        if self.webhooks.pop(wid, None) is None:
            return error(404, "NotFoundError", f"webhook {wid} not found")
        return httpx.Response(204)

    def _ping(self, request, query, wid):
        if not self._owned(wid):
            return error(404, "NotFoundError", f"webhook {wid} not found")
        return self._json(202, {"delivery": self.add_delivery(wid, "ping")})

    def _list_deliveries(self, request, query, wid):
        if not self._owned(wid):
            return error(404, "NotFoundError", f"webhook {wid} not found")
        limit = int(query.get("limit", 50))
        return self._json(200, {"deliveries": self.deliveries.get(wid, [])[:limit], "next_cursor": None})

    def _redeliver(self, request, query, wid, did):
        original = next((d for d in self.deliveries.get(wid, []) if d["id"] == did), None)
        if not self._owned(wid) or original is None:
            return error(404, "NotFoundError", f"delivery {did} not found")
        return self._json(202, {"delivery": self.add_delivery(wid, original["event_type"],
                                                              event_id=original["event_id"])})
