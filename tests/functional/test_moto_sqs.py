"""devstack/moto_patches.py reads the clock once per pass over an SQS queue: the same answers as
moto's own per-message reads (visible, in flight, delayed), so the local stack's queues behave as
before, only without a cost that grew with the queue's depth."""
from __future__ import annotations

import time

import boto3
from moto import mock_aws
from moto.sqs.models import Queue

COUNTS = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
          "ApproximateNumberOfMessagesDelayed"]


def counts(sqs, url) -> tuple[int, int, int]:
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=COUNTS)["Attributes"]
    return tuple(int(got[name]) for name in COUNTS)


def test_the_patch_is_installed_for_the_suite_and_the_local_stack():
    import devstack.moto_patches as patches
    assert patches._installed
    assert Queue.messages.fget.__module__ == patches.__name__


def test_visible_in_flight_and_delayed_messages_are_counted_and_handed_out_as_sqs_does():
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(6)])
        sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=1)
        assert counts(sqs, url) == (6, 0, 1)
        taken = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=4, VisibilityTimeout=1)["Messages"]
        assert len(taken) == 4 and "later" not in {m["Body"] for m in taken}
        assert counts(sqs, url) == (2, 4, 1)
        time.sleep(1.2)   # the delay and the visibility timeout are over
        assert counts(sqs, url) == (7, 0, 0)
        again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert sorted(m["Body"] for m in again) == sorted([f"m{i}" for i in range(6)] + ["later"])
