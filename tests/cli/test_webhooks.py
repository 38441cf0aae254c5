"""`imgbatch webhooks ...`, `submit --metadata` and `imgbatch listen`'s receiver, in-process."""
from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from imgbatch.signatures import sign
from imgbatch.webhook_commands import receiver
from .conftest import parse_json
from .fake_webhooks import FakeWithWebhooks


@pytest.fixture
def fake() -> FakeWithWebhooks:
    return FakeWithWebhooks()


def test_create_shows_the_secret_once_and_sends_the_events(run, fake):
    result = run("webhooks", "create", "--url", "https://hooks.example/imgbatch", "-e", "batch.completed",
                 "-e", "archive.ready", "-d", "dropbox")
    assert result.exit_code == 0, result.output
    assert "whsec_fake_secret" in result.stdout and "imgbatch listen" in result.stdout
    assert fake.last_webhook_body == {"url": "https://hooks.example/imgbatch", "events": ["batch.completed", "archive.ready"],
                                      "description": "dropbox", "active": True}
    assert run("webhooks", "create", "--url", "http://127.0.0.1:8787/").exit_code == 0
    assert fake.last_webhook_body["events"] == ["*"]


def test_create_json_and_api_errors(run, fake):
    created = parse_json(run("--json", "webhooks", "create", "--url", "https://x.example/"))
    assert set(created) == {"webhook", "secret"}
    bad = run("webhooks", "create", "--url", "ftp://x.example/")
    assert bad.exit_code != 0 and "http:// or https://" in bad.output
    assert run("webhooks", "create", "--url", "https://x.example/", "-e", "batch.exploded").exit_code == 2


def test_list_show_ping_deliveries_redeliver_delete(run, fake):
    w = parse_json(run("--json", "webhooks", "create", "--url", "https://x.example/"))["webhook"]
    listed = run("webhooks", "list")
    assert listed.exit_code == 0 and "https://x.example/" in listed.stdout and w["id"] in listed.stdout
    ping = parse_json(run("--json", "webhooks", "ping", w["id"]))["delivery"]
    assert ping["event_type"] == "ping"
    fake.add_delivery(w["id"], status="failed", attempts=8, last_error="no answer within 10 s")
    log = run("webhooks", "deliveries", w["id"])
    assert log.exit_code == 0 and "failed" in log.stdout and "no answer within 10 s" in log.stdout
    shown = run("webhooks", "show", w["id"])
    assert shown.exit_code == 0 and "https://x.example/" in shown.stdout and "ping" in shown.stdout
    again = parse_json(run("--json", "webhooks", "redeliver", w["id"], ping["id"]))["delivery"]
    assert again["event_id"] == ping["event_id"] and again["id"] != ping["id"]
    assert run("webhooks", "delete", w["id"]).exit_code == 0
    missing = run("webhooks", "show", w["id"])
    assert missing.exit_code != 0 and "not found" in missing.output
    assert "No webhooks yet" in run("webhooks", "list").stdout


def test_submit_sends_metadata(run, fake, photo_folder):
    fake.add_pipeline("web")
    result = run("submit", str(photo_folder), "-p", "web", "-m", "order=A-17", "--metadata", "shoot.day=2")
    assert result.exit_code == 0, result.output
    assert fake.last_batch_body["metadata"] == {"order": "A-17", "shoot.day": "2"}
    run("submit", str(photo_folder), "-p", "web")
    assert "metadata" not in fake.last_batch_body


@pytest.mark.parametrize("bad", ["novalue", "bad key=x", "=x"])
def test_submit_refuses_bad_metadata(run, fake, photo_folder, bad):
    fake.add_pipeline("web")
    result = run("submit", str(photo_folder), "-p", "web", "-m", bad)
    assert result.exit_code == 2 and "KEY=VALUE" in result.output


def test_submit_refuses_a_metadata_key_given_twice(run, fake, photo_folder):
    fake.add_pipeline("web")
    result = run("submit", str(photo_folder), "-p", "web", "-m", "a=1", "-m", "a=2")
    assert result.exit_code == 2 and "given twice" in result.output


def _post(url: str, body: bytes, headers: dict) -> int:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_listen_receiver_prints_signed_events_and_refuses_the_rest():
    got, refused = [], []
    server = receiver("whsec_s", got.append, refused.append)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        body = json.dumps({"id": "e1", "type": "ping", "created_at": "x", "data": {}}).encode()
        now = int(time.time())
        assert _post(url, body, {"Imgbatch-Signature": sign("whsec_s", now, body)}) == 204
        assert _post(url, body, {"Imgbatch-Signature": sign("whsec_other", now, body)}) == 401
        assert _post(url, body, {"Imgbatch-Signature": sign("whsec_s", now - 3600, body)}) == 401
        assert _post(url, body, {}) == 401
        assert got == [json.loads(body)] and len(refused) == 3 and server.verified == 1
    finally:
        server.shutdown()
        server.server_close()
