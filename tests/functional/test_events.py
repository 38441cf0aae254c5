"""Batch lifecycle events and webhooks under mock_aws: the batches table's stream read as Lambda's
event source would hand it to publish_batch_events, deliveries run by deliver_webhooks against a
real HTTP receiver on 127.0.0.1, and the EventBridge bus read through a rule targeting SQS."""
from __future__ import annotations

import json
import time

import pytest

from chalicelib.domain import webhooks as rules
from chalicelib.settings import Settings
from tests import images
from tests.functional.conftest import TOKENS
from tests.functional.test_processing import s3_body
from tests.receiver import Receiver


@pytest.fixture
def settings():
    return Settings(local_api_tokens=TOKENS, webhook_allow_private=True, webhook_retry_base_seconds=0.01,
                    webhook_max_attempts=3, webhook_timeout_seconds=1.0)


class Events:
    """Plays the event source mappings: the stream -> publish_batch_events, the delivery queue ->
    deliver_webhooks; and taps the bus through a rule -> SQS queue."""

    def __init__(self, api, aws):
        self.api, self.aws = api, aws
        self.reader = aws.batch_stream_reader()
        self.records: list[dict] = []
        sqs, events = aws.sqs, aws.events_client
        self.tap = sqs.create_queue(QueueName="bus-tap")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.tap, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="all-imgbatch", EventBusName=aws.settings.event_bus_name,
                        EventPattern=json.dumps({"source": ["imgbatch"]}))
        events.put_targets(Rule="all-imgbatch", EventBusName=aws.settings.event_bus_name,
                           Targets=[{"Id": "tap", "Arn": arn}])
        self.bus: list[dict] = []

    def stream(self, records=None) -> dict:
        if records is None:
            records = self.reader.poll(1000)
            self.records += records
        if not records:
            return {"batchItemFailures": []}
        return self.api.client.lambda_.invoke("publish_batch_events", {"Records": records}).payload

    def deliver(self, rounds: int = 50) -> None:
        """Run queued delivery attempts until none is left (delayed ones are waited for)."""
        sqs, url = self.aws.sqs, self.aws.settings.queue_url("deliveries")
        idle = 0
        for _ in range(rounds):
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                left = int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
                    "ApproximateNumberOfMessagesDelayed"])["Attributes"].get("ApproximateNumberOfMessagesDelayed", 0))
                idle += 1
                if not left and idle > 1:
                    return
                time.sleep(0.2)
                continue
            event = self.api.client.events.generate_sqs_event([m["Body"] for m in got], "imgbatch-deliveries")
            payload = self.api.client.lambda_.invoke("deliver_webhooks", event).payload
            assert payload == {"batchItemFailures": []}, payload
            for m in got:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    def bus_events(self) -> list[dict]:
        while got := self.aws.sqs.receive_message(QueueUrl=self.tap, MaxNumberOfMessages=10).get("Messages", []):
            for m in got:
                self.bus.append(json.loads(m["Body"]))
                self.aws.sqs.delete_message(QueueUrl=self.tap, ReceiptHandle=m["ReceiptHandle"])
        return self.bus


@pytest.fixture
def events(api, aws):
    return Events(api, aws)


def create(api, pipeline, names=("PL_DXB1_Front.png",), **extra):
    body = {"pipeline_ids": [pipeline["id"]], "files": [
        {"name": n, "size": len(images.png()), "content_type": "image/png"} for n in names], **extra}
    r = api.post("/batches", body)
    assert r.status_code == 201, r.data
    return r.data


def process(api, aws, created, data=None):
    for u in created["uploads"]:
        aws.s3.put_object(Bucket=aws.settings.bucket, Key=u["fields"]["key"], Body=data or images.png())
        event = api.client.events.generate_sqs_event([s3_body(u["fields"]["key"])], "imgbatch-uploads")
        api.client.lambda_.invoke("process_upload", event)


def hook(api, url, events=("*",), token="token-alice", **extra):
    r = api.post("/webhooks", {"url": url, "events": list(events), **extra}, token=token)
    assert r.status_code == 201, r.data
    return r.data


# -- integration fields ----------------------------------------------------------------------

def test_integration_fields_on_create_and_patch(api, pipeline):
    created = create(api, pipeline, metadata={"order": "A-17", "shoot.day": "2"}, dropbox_directory_id="id:abc",
                     auto_upload_enabled=True)
    b = created["batch"]
    assert b["metadata"] == {"order": "A-17", "shoot.day": "2"}
    assert (b["dropbox_directory_id"], b["monday_item_id"]) == ("id:abc", None)
    assert (b["auto_upload_enabled"], b["monday_sync_enabled"]) == (True, False)
    r = api.call("PATCH", f"/batches/{b['id']}", {"monday_item_id": "123456", "monday_sync_enabled": True,
                                                   "description": "Spring shoot", "dropbox_directory_id": None})
    assert r.status_code == 200, r.data
    patched = r.data["batch"]
    assert (patched["monday_item_id"], patched["monday_sync_enabled"], patched["dropbox_directory_id"]) == \
        ("123456", True, None)
    assert patched["description"] == "Spring shoot" and patched["metadata"] == b["metadata"]
    assert api.get(f"/batches/{b['id']}").data["batch"]["monday_item_id"] == "123456"
    # the new description is searchable
    assert [x["id"] for x in api.get("/batches?search=spring").data["batches"]] == [b["id"]]


@pytest.mark.parametrize("body, needle", [
    ({"metadata": {"bad key": "x"}}, "metadata key"),
    ({"metadata": {f"k{i}": "v" for i in range(21)}}, "at most 20"),
    ({"metadata": {"k": "x" * 513}}, "metadata.k must be at most 512"),
    ({"metadata": {"k": 5}}, "metadata.k must be a string"),
    ({"metadata": ["a"]}, "metadata must be an object"),
    ({"monday_item_id": "x" * 256}, "monday_item_id must be at most 255"),
    ({"dropbox_directory_id": 12}, "dropbox_directory_id must be a string or null"),
    ({"auto_upload_enabled": "yes"}, "auto_upload_enabled must be true or false"),
    ({"status": "completed"}, "unknown field(s): status"),
    ({}, "give at least one field"),
    ({"description": "  "}, "description must not be empty"),
])
def test_patch_refuses_bad_fields(api, pipeline, body, needle):
    bid = create(api, pipeline)["batch"]["id"]
    r = api.call("PATCH", f"/batches/{bid}", body)
    assert r.status_code == 400 and needle in r.data["Message"], r.data


def test_create_refuses_bad_integration_fields(api, pipeline):
    r = api.post("/batches", {"pipeline_ids": [pipeline["id"]], "files": [
        {"name": "a.png", "size": 10, "content_type": "image/png"}], "metadata": {"k": 1}})
    assert r.status_code == 400 and "metadata.k" in r.data["Message"]


def test_patch_is_owner_scoped_and_works_in_a_final_status(api, pipeline):
    bid = create(api, pipeline)["batch"]["id"]
    assert api.call("PATCH", f"/batches/{bid}", {"metadata": {}}, token="token-bob").status_code == 404
    assert api.post(f"/batches/{bid}/cancel").status_code == 200
    r = api.call("PATCH", f"/batches/{bid}", {"monday_item_id": "9"})
    assert r.status_code == 200 and r.data["batch"]["status"] == "cancelled"


# -- events ------------------------------------------------------------------------------------

def test_a_batch_life_gives_one_event_per_transition_on_the_bus_and_the_webhook(api, aws, pipeline, events):
    with Receiver() as receiver:
        created_hook = hook(api, receiver.url)
        created = create(api, pipeline, names=("a.png", "b.png"), metadata={"job": "7"})
        bid = created["batch"]["id"]
        process(api, aws, created)
        # a duplicated S3 event changes nothing, so it announces nothing
        process(api, aws, {"uploads": created["uploads"][:1]})
        assert events.stream() == {"batchItemFailures": []}
        events.deliver()
        assert api.delete(f"/batches/{bid}").status_code == 204
        events.stream()
        events.deliver()
        # the same stream records delivered again: same ids, nothing sent twice
        assert events.stream(events.records) == {"batchItemFailures": []}
        events.deliver()
        got = receiver.events()
        wanted = ["batch.created", "batch.started", "batch.completed", "batch.deleted"]
        # attempts run in parallel from a standard queue: deliveries are not ordered (docs/events.md)
        assert sorted(e["type"] for e in got) == sorted(wanted)
        assert len({e["id"] for e in got}) == len(got)
        assert all(e["data"]["batch"]["id"] == bid and e["data"]["batch"]["metadata"] == {"job": "7"} for e in got)
        by_type = {e["type"]: e["data"]["batch"] for e in got}
        completed = by_type["batch.completed"]
        assert completed["status"] == "completed" and completed["progress"]["succeeded"] == 2
        assert "jobs" not in completed
        assert by_type["batch.deleted"]["status"] == "completed"   # as its owner last saw it
        # signed as the contract says
        secret = created_hook["secret"]
        for request in receiver.requests:
            h = request["headers"]
            assert rules.verify(secret, h["Imgbatch-Signature"], request["body"], int(time.time()))
            assert h["Imgbatch-Event-Id"] == json.loads(request["body"])["id"]
            assert h["Imgbatch-Event-Type"] == json.loads(request["body"])["type"]
            assert not rules.verify("whsec_other", h["Imgbatch-Signature"], request["body"], int(time.time()))
        # the bus got the same events (the redelivered records put them again, with the same ids)
        bus = events.bus_events()
        assert {(b["detail-type"], b["detail"]["id"]) for b in bus} == {(e["type"], e["id"]) for e in got}
        assert all(b["source"] == "imgbatch" for b in bus)
        log = api.get(f"/webhooks/{created_hook['webhook']['id']}/deliveries").data["deliveries"]
        assert [d["event_type"] for d in log] == list(reversed(wanted))   # newest first
        assert all(d["status"] == "delivered" and d["attempts"] == 1 and d["last_status_code"] == 200 for d in log)


def test_prebuilt_archive_makes_the_download_immediate(api, aws, pipeline, events):
    created = create(api, pipeline)
    bid = created["batch"]["id"]
    process(api, aws, created)
    events.stream()
    got = aws.sqs.receive_message(QueueUrl=aws.settings.queue_url("archives"), MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"]) for m in got] == [{"batch_id": bid, "partial": False, "prebuild": True}]
    event = api.client.events.generate_sqs_event([got[0]["Body"]], "imgbatch-archives")
    api.client.lambda_.invoke("build_archive", event)
    keys = [o["Key"] for o in aws.s3.list_objects_v2(Bucket=aws.settings.bucket, Prefix="archives/").get("Contents", [])]
    assert len(keys) == 1
    r = api.get(f"/batches/{bid}/download")
    assert r.status_code == 302 and keys[0].split("/")[-1] in r.headers["Location"].split("?")[0]
    assert [b["detail-type"] for b in events.bus_events()][-1] == "archive.ready"


def test_prebuild_can_be_turned_off(api, aws, pipeline, events, monkeypatch):
    from dataclasses import replace
    from chalicelib import wiring
    wiring.reset(replace(aws.settings, prebuild_archives=False))
    created = create(api, pipeline)
    process(api, aws, created)
    events.stream()
    assert not aws.sqs.receive_message(QueueUrl=aws.settings.queue_url("archives")).get("Messages")


def test_retry_finishing_again_is_a_new_event(api, aws, pipeline, events):
    created = create(api, pipeline)
    process(api, aws, created, data=b"not an image at all, but stored")
    assert api.post(f"/batches/{created['batch']['id']}/retry").status_code == 200
    sqs, url = aws.sqs, aws.settings.queue_url("uploads")
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    api.client.lambda_.invoke("process_upload", api.client.events.generate_sqs_event(
        [m["Body"] for m in got], "imgbatch-uploads"))
    events.stream()
    failed = [b["detail"] for b in events.bus_events() if b["detail-type"] == "batch.failed"]
    assert len(failed) == 2 and failed[0]["id"] != failed[1]["id"]


def test_cancel_and_expiry_are_events(api, aws, pipeline, events):
    a = create(api, pipeline)["batch"]["id"]
    assert api.post(f"/batches/{a}/cancel").status_code == 200
    from dataclasses import replace
    from chalicelib import wiring
    wiring.reset(replace(aws.settings, upload_ttl_seconds=1, expiry_grace_seconds=0))
    b = create(api, pipeline)["batch"]["id"]
    time.sleep(1.5)
    wiring.get().sweep.run()
    events.stream()
    kinds = {(b_["detail"]["data"]["batch"]["id"], b_["detail-type"]) for b_ in events.bus_events()}
    assert (a, "batch.cancelled") in kinds and (b, "batch.failed") in kinds
    assert (a, "batch.started") not in kinds


# -- webhooks API ----------------------------------------------------------------------------

def test_webhook_crud_is_owner_scoped_and_the_secret_is_shown_once(api, aws):
    created = hook(api, "http://127.0.0.1:9/x", events=["batch.completed"], description="dropbox")
    w, secret = created["webhook"], created["secret"]
    assert secret.startswith("whsec_") and len(secret) > 30
    assert set(w) == {"id", "url", "events", "description", "active", "created_at", "updated_at"}
    assert api.get(f"/webhooks/{w['id']}").data == {"webhook": w}
    assert api.get("/webhooks").data == {"webhooks": [w]}
    for method in ("GET", "DELETE"):
        assert api.call(method, f"/webhooks/{w['id']}", token="token-bob").status_code == 404
    assert api.put(f"/webhooks/{w['id']}", {"url": "http://127.0.0.1:9/y"}, token="token-bob").status_code == 404
    assert api.post(f"/webhooks/{w['id']}/ping", token="token-bob").status_code == 404
    assert api.get(f"/webhooks/{w['id']}/deliveries", token="token-bob").status_code == 404
    assert api.get("/webhooks", token="token-bob").data == {"webhooks": []}
    r = api.put(f"/webhooks/{w['id']}", {"url": "http://127.0.0.1:9/z", "events": ["*"], "active": False})
    assert r.status_code == 200 and r.data["webhook"]["active"] is False and r.data["webhook"]["description"] == ""
    assert "secret" not in r.data
    # stored encrypted: the raw item holds no secret in clear
    raw = aws.dynamodb.scan(TableName=aws.settings.table("webhooks"))["Items"]
    assert secret not in json.dumps(raw) and secret[6:] not in json.dumps(raw)
    assert api.delete(f"/webhooks/{w['id']}").status_code == 204
    assert api.get(f"/webhooks/{w['id']}").status_code == 404
    assert api.delete(f"/webhooks/{w['id']}").status_code == 404


@pytest.mark.parametrize("body, needle", [
    ({"url": "ftp://example.com/x"}, "http:// or https://"),
    ({"url": "http:///nohost"}, "no host"),
    ({"url": "https://user:pw@example.com/"}, "user name or password"),
    ({"url": "http://example.com:99999/"}, "not a valid URL"),
    ({}, "url is required"),
    ({"url": "http://127.0.0.1/", "events": ["batch.exploded"]}, "not an event type"),
    ({"url": "http://127.0.0.1/", "events": []}, "non-empty array"),
    ({"url": "http://127.0.0.1/", "events": ["*", "batch.completed"]}, "alone"),
    ({"url": "http://127.0.0.1/", "events": ["batch.failed", "batch.failed"]}, "more than once"),
    ({"url": "http://127.0.0.1/", "active": "yes"}, "active must be true or false"),
    ({"url": "http://127.0.0.1/", "secret": "mine"}, "unknown field(s): secret"),
    ({"url": "http://no-such-host.invalid/"}, "does not resolve"),
])
def test_bad_webhooks_are_refused(api, body, needle):
    r = api.post("/webhooks", body)
    assert r.status_code == 400 and needle in r.data["Message"], r.data


@pytest.mark.parametrize("settings", [Settings(local_api_tokens=TOKENS)], ids=["private-refused"])
@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/", "http://localhost/", "http://10.1.2.3/",
                                 "http://192.168.0.10/", "http://169.254.169.254/latest", "http://[::1]/",
                                 "http://[::ffff:10.0.0.1]/", "http://100.64.0.1/", "http://0.0.0.0/"])
def test_private_addresses_are_refused_unless_allowed(api, url, settings):
    r = api.post("/webhooks", {"url": url})
    assert r.status_code == 400 and "only public addresses" in r.data["Message"], r.data


def test_a_delivery_is_retried_until_a_2xx_with_the_same_event_id(api, aws, events):
    with Receiver(script=[500, 500], then=200) as receiver:
        w = hook(api, receiver.url)["webhook"]
        r = api.post(f"/webhooks/{w['id']}/ping")
        assert r.status_code == 202 and r.data["delivery"]["status"] == "pending"
        events.deliver()
        got = receiver.events()
        assert len(got) == 3 and len({e["id"] for e in got}) == 1 and got[0]["type"] == "ping"
        assert got[0]["data"] == {"webhook_id": w["id"]}
        [d] = api.get(f"/webhooks/{w['id']}/deliveries").data["deliveries"]
        assert (d["status"], d["attempts"], d["last_status_code"], d["event_id"]) == ("delivered", 3, 200, got[0]["id"])
        assert d["delivered_at"] and d["next_attempt_at"] is None


def test_a_receiver_that_never_answers_ends_failed(api, aws, events):
    with Receiver(then="hang") as receiver:
        w = hook(api, receiver.url)["webhook"]
        api.post(f"/webhooks/{w['id']}/ping")
        events.deliver()
        assert len(receiver.requests) == 3   # WEBHOOK_MAX_ATTEMPTS
        [d] = api.get(f"/webhooks/{w['id']}/deliveries").data["deliveries"]
        assert (d["status"], d["attempts"], d["last_status_code"]) == ("failed", 3, None)
        assert "no answer within 1 s" in d["last_error"]


def test_the_status_decides_even_when_the_body_stalls(api, aws, events):
    with Receiver(then="stall") as receiver:
        w = hook(api, receiver.url)["webhook"]
        api.post(f"/webhooks/{w['id']}/ping")
        events.deliver()
        [d] = api.get(f"/webhooks/{w['id']}/deliveries").data["deliveries"]
        assert (d["status"], d["attempts"], d["last_status_code"]) == ("delivered", 1, 200)


def test_redirects_are_not_followed(api, aws, events):
    with Receiver(script=[302], then=500) as receiver:
        w = hook(api, receiver.url)["webhook"]
        api.post(f"/webhooks/{w['id']}/ping")
        events.deliver()
        [d] = api.get(f"/webhooks/{w['id']}/deliveries").data["deliveries"]
        assert d["status"] == "failed" and len(receiver.requests) == 3


def test_redeliver_sends_the_same_event_as_a_new_delivery(api, aws, events):
    with Receiver() as receiver:
        w = hook(api, receiver.url)["webhook"]
        first = api.post(f"/webhooks/{w['id']}/ping").data["delivery"]
        events.deliver()
        r = api.post(f"/webhooks/{w['id']}/deliveries/{first['id']}/redeliver")
        assert r.status_code == 202
        again = r.data["delivery"]
        assert again["id"] != first["id"] and again["event_id"] == first["event_id"]
        events.deliver()
        got = receiver.events()
        assert [e["id"] for e in got] == [first["event_id"]] * 2
        assert api.post(f"/webhooks/{w['id']}/deliveries/{first['id']}/redeliver",
                        token="token-bob").status_code == 404
        missing = "00000000-0000-4000-8000-000000000000"
        assert api.post(f"/webhooks/{w['id']}/deliveries/{missing}/redeliver").status_code == 404


def test_an_owner_has_a_bounded_number_of_webhooks(api, aws, monkeypatch):
    from chalicelib.services import webhooks
    monkeypatch.setattr(webhooks, "MAX_WEBHOOKS_PER_OWNER", 2)
    hook(api, "http://127.0.0.1:9/a")
    hook(api, "http://127.0.0.1:9/b")
    r = api.post("/webhooks", {"url": "http://127.0.0.1:9/c"})
    assert r.status_code == 413 and "at most 2 webhooks" in r.data["Message"]
    assert api.post("/webhooks", {"url": "http://127.0.0.1:9/c"}, token="token-bob").status_code == 201


def test_delivery_log_pages_with_signed_cursors(api, aws):
    w = hook(api, "http://127.0.0.1:9/x")["webhook"]
    ids = [api.post(f"/webhooks/{w['id']}/ping").data["delivery"]["id"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        r = api.get(f"/webhooks/{w['id']}/deliveries?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert r.status_code == 200, r.data
        seen += [d["id"] for d in r.data["deliveries"]]
        cursor = r.data["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    other = hook(api, "http://127.0.0.1:9/y")["webhook"]
    first = api.get(f"/webhooks/{w['id']}/deliveries?limit=2").data["next_cursor"]
    assert api.get(f"/webhooks/{other['id']}/deliveries?cursor={first}").status_code == 400


def test_only_matching_active_webhooks_get_an_event(api, aws, pipeline, events):
    with Receiver() as completed_only, Receiver() as everything, Receiver() as inactive:
        hook(api, completed_only.url, events=["batch.completed"])
        hook(api, everything.url)
        hook(api, inactive.url, active=False)
        hook(api, everything.url.replace("/hook", "/bob"), token="token-bob")   # another owner's
        created = create(api, pipeline)
        process(api, aws, created)
        events.stream()
        events.deliver()
        assert [e["type"] for e in completed_only.events()] == ["batch.completed"]
        assert sorted(e["type"] for e in everything.events()) == ["batch.completed", "batch.created", "batch.started"]
        assert inactive.events() == []
        assert all(r["path"] == "/hook" for r in everything.requests)
