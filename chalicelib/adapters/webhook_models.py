"""PynamoDB models of webhooks and their delivery log: schema only (built by models.build_models)."""
from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute, JSONAttribute, ListAttribute, NumberAttribute, TTLAttribute, UnicodeAttribute,
)
from pynamodb.indexes import AllProjection, LocalSecondaryIndex
from pynamodb.models import Model


def build_webhook_models(meta) -> tuple[type[Model], type[Model]]:
    """`meta(table_key)` gives the Meta class of a table (name, region, host)."""
    Webhook = type("Webhook", (Model,), dict(
        Meta=meta("webhooks"),
        owner=UnicodeAttribute(hash_key=True),   # a webhook is found only under its owner: others' answer 404
        id=UnicodeAttribute(range_key=True),
        url=UnicodeAttribute(),
        events=ListAttribute(of=UnicodeAttribute),
        description=UnicodeAttribute(default=""),
        active=BooleanAttribute(default=True),
        # the signing secret, encrypted with the webhook key (adapters/secrets.py); never in clear
        secret_ciphertext=UnicodeAttribute(),
        created_at=UnicodeAttribute(),
        updated_at=UnicodeAttribute(),
    ))

    class NewestFirst(LocalSecondaryIndex):
        class Meta:
            index_name = "webhook-created"
            projection = AllProjection()
        webhook_id = UnicodeAttribute(hash_key=True)
        created_sk = UnicodeAttribute(range_key=True)

    delivery_meta = meta("deliveries")
    delivery_meta.ttl_attribute = "expires"
    Delivery = type("Delivery", (Model,), dict(
        Meta=delivery_meta,
        webhook_id=UnicodeAttribute(hash_key=True),
        id=UnicodeAttribute(range_key=True),
        owner=UnicodeAttribute(),
        event=JSONAttribute(),                  # the event exactly as delivered (redeliver sends it again)
        event_id=UnicodeAttribute(),
        event_type=UnicodeAttribute(),
        status=UnicodeAttribute(),
        attempts=NumberAttribute(default=0),
        last_status_code=NumberAttribute(null=True),
        last_error=UnicodeAttribute(null=True),
        next_attempt_at=UnicodeAttribute(null=True),
        created_at=UnicodeAttribute(),
        delivered_at=UnicodeAttribute(null=True),
        created_sk=UnicodeAttribute(),          # created_at to the microsecond + id: the log's order
        lease_until=UnicodeAttribute(null=True),  # while an attempt runs; a crashed one may be taken over after
        expires=TTLAttribute(null=True),
        ix_created=NewestFirst(),
    ))
    return Webhook, Delivery
