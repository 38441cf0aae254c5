"""devstack/moto_patches.py reads the clock once per pass over an SQS queue, checks retention from
the one attribute and finds a receipt handle among the messages in flight first: the same answers
as moto's own code (visible, in flight, delayed, expired, deleted by a current or an old handle, an
unknown handle refused), so the local stack's queues behave as before, only without costs that grew
with the queue's depth."""
from __future__ import annotations

import time

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sqs.models import Queue, sqs_backends

COUNTS = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
          "ApproximateNumberOfMessagesDelayed"]


def counts(sqs, url) -> tuple[int, int, int]:
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=COUNTS)["Attributes"]
    return tuple(int(got[name]) for name in COUNTS)


def test_the_patch_is_installed_for_the_suite_and_the_local_stack():
    import devstack.moto_patches as patches
    assert patches._installed
    assert Queue.messages.fget.__module__ == patches.__name__
    assert Queue.delete_message.__module__ == patches.__name__


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


def test_messages_are_deleted_by_their_current_or_an_earlier_handle_and_only_once():
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q")["QueueUrl"]
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(5)])
        first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=1)["Messages"]
        sqs.delete_message(QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"])   # in flight
        time.sleep(1.2)   # first[1] is visible again: no longer in flight, its handle an old one
        assert counts(sqs, url) == (4, 0, 0)
        again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)["Messages"]
        assert first[1]["Body"] in {m["Body"] for m in again}
        done = sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": "old", "ReceiptHandle": first[1]["ReceiptHandle"]},
            {"Id": "twice", "ReceiptHandle": first[0]["ReceiptHandle"]}])
        assert sorted(e["Id"] for e in done["Successful"]) == ["old", "twice"]
        assert counts(sqs, url) == (0, 3, 0)
        assert {m["Body"] for m in again} - {first[1]["Body"]} == {f"m{i}" for i in range(5)} - {
            first[0]["Body"], first[1]["Body"]}
        with pytest.raises(ClientError) as e:
            sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")
        assert e.value.response["Error"]["Code"] == "ReceiptHandleIsInvalid"


def test_a_message_past_its_retention_period_is_not_handed_out():
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="old")
        queue = sqs_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].queues["q"]
        queue._messages[0].sent_timestamp -= 61_000
        assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []
        sqs.send_message(QueueUrl=url, MessageBody="new")
        queue._messages.pop(0)   # what SQS would have dropped
        assert [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]] == ["new"]
