"""What one file costs in AWS requests on the happy path (issue 15: at most 3 DynamoDB requests a
file), counted at botocore's door under mock_aws, and what happens when an invocation's forwards,
sent together at its end, cannot be sent."""
from __future__ import annotations

import collections

import botocore.client
import pytest

from tests import images
from tests.functional.test_integrity import queued_keys
from tests.functional.test_processing import Flow, s3_body

FILES = 40


@pytest.fixture
def flow(api, aws):
    web = api.post("/pipelines", {"name": "web", "format": "webp", "width": 32}).data["pipeline"]
    return Flow(api, aws, [web])


@pytest.fixture
def requests_made(monkeypatch):
    counts: collections.Counter = collections.Counter()
    real = botocore.client.BaseClient._make_api_call

    def counting(client, operation, params):
        counts[(client.meta.service_model.service_name, operation)] += 1
        return real(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    return counts


def register(flow, *bodies):
    """One invocation of register_uploads with these SQS message bodies."""
    event = flow.api.client.events.generate_sqs_event(message_bodies=list(bodies), queue_name="imgbatch-arrivals")
    return flow.api.client.lambda_.invoke("register_uploads", event).payload


def of(counts, service: str) -> int:
    return sum(n for (s, _), n in counts.items() if s == service)


def test_a_file_costs_under_three_dynamodb_requests_and_forwards_go_ten_at_a_time(flow, aws, requests_made):
    png = images.png((64, 48))
    created = flow.create({f"PL_REQ{i:04d}_x.png": png for i in range(FILES)})
    for u in created["uploads"]:
        flow.put(u, png)
    requests_made.clear()
    # as S3 and the event source deliver them: one object a message, ten messages an invocation
    keys = [u["fields"]["key"] for u in created["uploads"]]
    for start in range(0, FILES, 10):
        assert register(flow, *[s3_body(k) for k in keys[start:start + 10]]) == {"batchItemFailures": []}
    registering = dict(requests_made)
    assert registering[("sqs", "SendMessageBatch")] == FILES // 10, registering
    requests_made.clear()
    flow.drain_queue()
    processing = dict(requests_made)
    assert flow.batch(created["batch"]["id"])["status"] == "completed"
    dynamodb = (of(registering, "dynamodb") + of(processing, "dynamodb")) / FILES
    assert dynamodb <= 3, (registering, processing)
    assert processing[("s3", "GetObject")] == FILES and processing[("s3", "PutObject")] == 2 * FILES   # output, preview


def test_forwards_that_cannot_be_sent_fail_the_whole_invocation_and_its_redelivery_sends_them(flow, aws,
                                                                                             monkeypatch):
    png = images.png((8, 8))
    created = flow.create({f"PL_FWD{i}_x.png": png for i in range(3)})
    for u in created["uploads"]:
        flow.put(u, png)
    bodies = [s3_body(u["fields"]["key"]) for u in created["uploads"]]
    real = aws.queue.enqueue_keys

    def unreachable(*_args, **_kwargs):
        raise RuntimeError("SQS is unreachable")

    monkeypatch.setattr(aws.queue, "enqueue_keys", unreachable)
    failed = register(flow, *bodies)["batchItemFailures"]
    assert len(failed) == 3   # every message comes back, though each registration counted
    assert flow.batch(created["batch"]["id"])["progress"]["uploaded"] == 3
    monkeypatch.setattr(aws.queue, "enqueue_keys", real)
    assert register(flow, *bodies) == {"batchItemFailures": []}
    assert sorted(queued_keys(aws)) == sorted(u["fields"]["key"] for u in created["uploads"])
    assert flow.batch(created["batch"]["id"])["progress"]["uploaded"] == 3   # counted once


def test_every_table_and_transaction_goes_through_one_dynamodb_client(flow, aws, monkeypatch):
    """PynamoDB would make a botocore client per model (about 35 ms of CPU each at a cold start)."""
    used = set()
    real = botocore.client.BaseClient._make_api_call

    def recording(client, operation, params):
        if client.meta.service_model.service_name == "dynamodb":
            used.add(id(client))
        return real(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    png = images.png((8, 8))
    created = flow.create({"PL_ONE1_x.png": png})   # pipelines, meta counters, batches, manifests
    flow.put(created["uploads"][0], png)
    register(flow, s3_body(created["uploads"][0]["fields"]["key"]))   # jobs, counters, transactions
    flow.drain_queue()
    assert flow.api.get("/batches/stats").status_code == 200
    assert flow.batch(created["batch"]["id"])["status"] == "completed"
    assert used == {id(aws.dynamodb)}


def test_finding_a_big_batchs_few_failures_reads_its_counters_and_their_buckets_only(flow, aws, requests_made):
    """A retry looks for failed files with stored uploads: in a 100,000-file batch with a handful of
    failures that must not read every job (1,100 requests in the API request)."""
    png = images.png((8, 8))
    names = [f"PL_FEW{i:04d}_x.png" for i in range(450)]    # 5 buckets
    created = flow.create({n: png for n in names})
    bid = created["batch"]["id"]
    broken = created["uploads"][:2]
    flow.upload(created, {u["file_name"]: b"\x89PNG\r\n\x1a\n not an image" for u in broken})
    repo = aws.repository
    failed_buckets = {int(j["bucket"]) for j in repo.jobs_with_status(bid, ("failed",))}
    requests_made.clear()
    found = list(repo.jobs_with_status(bid, ("failed",)))
    assert sorted(j["file_name"] for j in found) == sorted(u["file_name"] for u in broken)
    assert dict(requests_made) == {("dynamodb", "BatchGetItem"): 1, ("dynamodb", "Query"): len(failed_buckets)}
