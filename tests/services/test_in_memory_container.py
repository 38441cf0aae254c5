"""wiring.Container.in_memory(): the real services on the fakes, with no AWS client ever made."""
from __future__ import annotations

import boto3.session
import pytest

from chalicelib import wiring
from chalicelib.adapters.memory import MemoryProcessingQueue, MemoryRepository, MemoryStorage
from chalicelib.settings import Settings
from tests import images


def no_aws(*args, **kwargs):
    raise AssertionError("an AWS session or client was created")


def test_the_in_memory_container_runs_a_batch_without_making_an_aws_client(monkeypatch):
    monkeypatch.setattr(boto3.session.Session, "__init__", no_aws)
    monkeypatch.setattr(boto3.session.Session, "client", no_aws)
    container = wiring.Container.in_memory(Settings(local_api_tokens={"t": "alice"}))
    assert container.provision() is container.settings
    assert isinstance(container.repository, MemoryRepository) and isinstance(container.storage, MemoryStorage)
    assert isinstance(container.queue, MemoryProcessingQueue)
    web = container.pipelines.create("alice", {"name": "web", "format": "png", "width": 8})
    data = images.png()
    created = container.batches.create("alice", {"pipeline_id": web["id"], "files": [
        {"name": "a.png", "size": len(data), "content_type": "image/png"}]})
    key = created["uploads"][0]["fields"]["key"]
    container.storage.put(key, data, "image/png")
    assert container.processor.register_key(key) == "registered"
    assert [container.processor.process_key(k) for k in container.queue.take()] == ["completed"]
    assert container.archives.request("alice", created["batch"]["id"], partial=False)["status"] == "ready"
    assert container.sweep.run() == {"expired": 0, "deletes_resumed": 0}
    assert container.auth.owner_for("t") == "alice"
    assert container.storage.browser_origins("uploads/probe")[0] in container.web.headers["Content-Security-Policy"]
    hook = container.webhooks.create("alice", {"url": "https://hooks.example.com/in"})["webhook"]
    container.webhooks.ping("alice", hook["id"])
    assert container.events.on_changes(container.repository.take_changes()) == []
    assert [container.deliveries.attempt(m) for m in container.delivery_queue.take()] == ["delivered"] * 4
    assert [e["type"] for e in container.webhook_sender.events()] == [
        "ping", "batch.created", "batch.started", "batch.completed"]
    container.deleter.delete("alice", created["batch"]["id"])
    assert container.storage.keys() == []
    for name in ("s3", "sqs", "dynamodb", "models", "events_client", "kms"):
        with pytest.raises(RuntimeError, match="in-memory container"):
            getattr(container, name)
