"""Webhook delivery attempts on SQS (event_ports.DeliveryQueue and ArchiveRequests' neighbour)."""
from __future__ import annotations

import json

SQS_MAX_DELAY = 900   # SQS caps DelaySeconds at 15 minutes; longer waits are re-queued (services/deliveries.py)


class SqsDeliveryQueue:
    def __init__(self, sqs_client, queue_url: str | None):
        self.sqs = sqs_client
        self.url = queue_url

    def enqueue(self, message: dict, delay_seconds: int = 0) -> None:
        if not self.url:
            raise RuntimeError("DELIVERY_QUEUE_URL is not configured")
        self.sqs.send_message(QueueUrl=self.url, MessageBody=json.dumps(message),
                              DelaySeconds=max(0, min(SQS_MAX_DELAY, int(delay_seconds))))
