"""Issue 13's "Must show", on the local stack with real HTTP receivers on 127.0.0.1: the batches
stream polled through moto, EventBridge read through a rule targeting an SQS queue, webhook
deliveries through the delivery queue with real retries and timeouts."""
from __future__ import annotations

import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote_plus

import pytest

from chalicelib.domain import webhooks as rules
from tests import images
from tests.e2e.conftest import OTHER_TOKEN, LocalStack, upload, wait_for
from tests.e2e.test_processing_stack import make_pipeline
from tests.receiver import Receiver

pytestmark = pytest.mark.e2e
ATTEMPTS = 3


@pytest.fixture(scope="module")
def estack():
    s = LocalStack(WORKERS=8, WEBHOOK_RETRY_BASE_SECONDS=1, WEBHOOK_MAX_ATTEMPTS=ATTEMPTS,
                   WEBHOOK_TIMEOUT_SECONDS=2).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def bus_tap(estack):
    """Every event on the bus, through an ordinary rule -> SQS target."""
    sqs, events = estack.boto("sqs"), estack.boto("events")
    url = sqs.create_queue(QueueName="e2e-bus-tap")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="e2e-all", EventBusName="imgbatch-events", EventPattern=json.dumps({"source": ["imgbatch"]}))
    events.put_targets(Rule="e2e-all", EventBusName="imgbatch-events", Targets=[{"Id": "tap", "Arn": arn}])
    seen: list[dict] = []

    def read() -> list[dict]:
        while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for m in got:
                seen.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return seen
    return read


def new_hook(http, url, receiver_url, **extra):
    r = http.post(f"{url}/webhooks", json={"url": receiver_url, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def s3_event(key: str) -> str:
    return json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Post",
                                    "s3": {"bucket": {"name": "imgbatch-local"}, "object": {"key": quote_plus(key)}}}]})


def test_each_transition_is_one_signed_event_on_webhooks_and_the_bus(estack, bus_tap):
    http = estack.session()
    p = make_pipeline(http, estack.url, name="events-png", format="png", width=32)
    with Receiver() as receiver:
        created_hook = new_hook(http, estack.url, receiver.url)
        n = 24
        data = images.png((40, 30))
        r = http.post(f"{estack.url}/batches", json={"pipeline_ids": [p["id"]], "metadata": {"order": "7"},
                                                     "files": [{"name": f"PL_DXB{i}_Front.png", "size": len(data)}
                                                               for i in range(n)]})
        assert r.status_code == 201, r.text
        created = r.json()
        bid = created["batch"]["id"]
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(lambda u: upload(u, data).status_code, created["uploads"])) == {204}
        # every S3 event delivered twice more, shuffled, to both queues (8 processing workers)
        sqs = estack.boto("sqs")
        keys = [u["fields"]["key"] for u in created["uploads"]] * 2
        random.Random(13).shuffle(keys)
        for queue in ("imgbatch-arrivals", "imgbatch-uploads"):
            url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
            for start in range(0, len(keys), 10):
                sqs.send_message_batch(QueueUrl=url, Entries=[
                    {"Id": str(i), "MessageBody": s3_event(k)} for i, k in enumerate(keys[start:start + 10])])
        batch = wait_for(lambda: (lambda b: b if b["status"] == "completed" else None)(
            http.get(f"{estack.url}/batches/{bid}").json()["batch"]), timeout=120, what="the batch to complete")
        assert batch["progress"]["succeeded"] == n
        wanted = ["batch.created", "batch.started", "batch.completed", "archive.ready"]
        wait_for(lambda: len(receiver.requests) >= len(wanted), timeout=60, what="four events")
        # prebuilt: the download is at once a redirect to the ZIP
        r = http.get(f"{estack.url}/batches/{bid}/download", allow_redirects=False)
        assert r.status_code == 302, r.text
        assert http.delete(f"{estack.url}/batches/{bid}").status_code == 204
        wanted.append("batch.deleted")
        wait_for(lambda: len(receiver.requests) >= len(wanted), timeout=30, what="batch.deleted")
        time.sleep(2)   # anything extra would have arrived by now
        got = receiver.events()
        assert sorted(e["type"] for e in got) == sorted(wanted), [e["type"] for e in got]
        assert len({e["id"] for e in got}) == len(wanted)
        assert all(e["data"]["batch"]["id"] == bid and e["data"]["batch"]["metadata"] == {"order": "7"} for e in got)
        secret = created_hook["secret"]
        for request in receiver.requests:
            assert rules.verify(secret, request["headers"]["Imgbatch-Signature"], request["body"], int(time.time()))
            assert request["headers"]["Imgbatch-Event-Id"] == json.loads(request["body"])["id"]
        # the bus received the same events
        mine = lambda: {(b["detail-type"], b["detail"]["id"]) for b in bus_tap()   # noqa: E731
                        if b["detail"]["data"].get("batch", {}).get("id") == bid}
        wait_for(lambda: len(mine()) >= len(wanted), timeout=30, what="the bus events")
        assert mine() == {(e["type"], e["id"]) for e in got}
        assert all(b["source"] == "imgbatch" for b in bus_tap())


def test_retried_until_200_then_delivered_with_the_same_event_id(estack):
    http = estack.session()
    with Receiver(script=[500, 500], then=200) as receiver:
        w = new_hook(http, estack.url, receiver.url)["webhook"]
        r = http.post(f"{estack.url}/webhooks/{w['id']}/ping")
        assert r.status_code == 202, r.text
        receiver.wait_for(3, timeout=30)
        ids = {e["id"] for e in receiver.events()}
        assert len(ids) == 1

        def delivered():
            [d] = http.get(f"{estack.url}/webhooks/{w['id']}/deliveries").json()["deliveries"]
            return d if d["status"] == "delivered" else None
        d = wait_for(delivered, timeout=15, what="the delivery to be delivered")
        assert (d["attempts"], d["last_status_code"], d["event_id"]) == (3, 200, ids.pop())


def test_a_receiver_that_never_answers_ends_failed(estack):
    http = estack.session()
    with Receiver(then="hang") as receiver:
        w = new_hook(http, estack.url, receiver.url)["webhook"]
        http.post(f"{estack.url}/webhooks/{w['id']}/ping")

        def failed():
            [d] = http.get(f"{estack.url}/webhooks/{w['id']}/deliveries").json()["deliveries"]
            return d if d["status"] == "failed" else None
        d = wait_for(failed, timeout=60, what="the delivery to fail")
        assert d["attempts"] == ATTEMPTS and len(receiver.requests) == ATTEMPTS
        assert "no answer within 2 s" in d["last_error"]


def test_ping_redeliver_and_owner_scope(estack):
    http, other = estack.session(), estack.session(OTHER_TOKEN)
    with Receiver() as receiver:
        w = new_hook(http, estack.url, receiver.url, events=["batch.completed"])["webhook"]
        first = http.post(f"{estack.url}/webhooks/{w['id']}/ping").json()["delivery"]
        receiver.wait_for(1)
        r = http.post(f"{estack.url}/webhooks/{w['id']}/deliveries/{first['id']}/redeliver")
        assert r.status_code == 202 and r.json()["delivery"]["event_id"] == first["event_id"]
        receiver.wait_for(2)
        assert [e["id"] for e in receiver.events()] == [first["event_id"]] * 2
        assert [e["type"] for e in receiver.events()] == ["ping", "ping"]
        for method, path in (("GET", ""), ("PUT", ""), ("DELETE", ""), ("POST", "/ping"), ("GET", "/deliveries"),
                             ("POST", f"/deliveries/{first['id']}/redeliver")):
            r = other.request(method, f"{estack.url}/webhooks/{w['id']}{path}", json={"url": receiver.url})
            assert r.status_code == 404, (method, path, r.text)
    for bad in ("ftp://example.com/", "http://", "not a url", "https://u:p@example.com/"):
        r = http.post(f"{estack.url}/webhooks", json={"url": bad})
        assert r.status_code == 400, (bad, r.text)


def test_private_addresses_get_400_when_not_allowed():
    stack = LocalStack(WEBHOOK_ALLOW_PRIVATE="false").start()
    try:
        http = stack.session()
        for url in ("http://127.0.0.1:8080/hook", "http://localhost/", "http://10.0.0.8/", "http://169.254.169.254/"):
            r = http.post(f"{stack.url}/webhooks", json={"url": url})
            assert r.status_code == 400 and "only public addresses" in r.json()["Message"], (url, r.text)
    finally:
        stack.stop()
