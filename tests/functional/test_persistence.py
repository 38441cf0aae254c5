"""devstack/persistence.py against moto's in-process backends: what a snapshot saves comes back
after moto is emptied, bodies are written once, a failed or interrupted snapshot leaves the
previous one whole, and a data directory is never shared or misread."""
from __future__ import annotations

import json
import threading
import time
from urllib.parse import unquote_plus

import boto3
import pytest
from moto import mock_aws
from moto.core.base_backend import BackendDict

from devstack import persistence
from devstack.gate import Gate
from devstack.persistence import DataDirError, Persistence, SnapshotError

BUCKET = "persist-bucket"
TABLE = "persist-table"
BIG = 6 * 1024 * 1024   # above moto's 5 MB in-memory limit: the body lives in a temporary file


@pytest.fixture
def aws():
    with mock_aws():
        yield {name: boto3.client(name, region_name="us-east-1") for name in ("s3", "sqs", "dynamodb")}


def _setup(aws) -> str:
    s3, sqs, ddb = aws["s3"], aws["sqs"], aws["dynamodb"]
    s3.create_bucket(Bucket=BUCKET)
    queue = sqs.create_queue(QueueName="persist-queue")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={"QueueConfigurations": [
        {"QueueArn": arn, "Events": ["s3:ObjectCreated:*"], "Filter": {"Key": {"FilterRules": [
            {"Name": "prefix", "Value": "uploads/"}]}}}]})
    ddb.create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "owner")],
        GlobalSecondaryIndexes=[{"IndexName": "by-owner", "KeySchema": [{"AttributeName": "owner", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}])
    _drain(aws, queue)   # the s3:TestEvent
    return queue


def _drain(aws, queue) -> list[dict]:
    got = aws["sqs"].receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=0).get("Messages", [])
    for m in got:
        aws["sqs"].delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    return got


def _event_keys(messages) -> list[str]:
    return sorted(unquote_plus(json.loads(m["Body"])["Records"][0]["s3"]["object"]["key"]) for m in messages)


def _restart(data_dir) -> Persistence:
    """What a stack restart does to moto: everything in memory is gone, then the snapshot loads."""
    BackendDict.reset()
    store = Persistence(data_dir)
    store.open()
    return store


def test_a_snapshot_brings_back_tables_objects_and_queued_messages(aws, tmp_path):
    s3, sqs, ddb = aws["s3"], aws["sqs"], aws["dynamodb"]
    queue = _setup(aws)
    for n in range(3):
        ddb.put_item(TableName=TABLE, Item={"pk": {"S": f"b{n}"}, "sk": {"S": "meta"}, "owner": {"S": "studio"},
                                           "count": {"N": str(n)}, "tags": {"SS": ["a", "b"]}})
    s3.put_object(Bucket=BUCKET, Key="uploads/small.png", Body=b"small body", ContentType="image/png",
                  Metadata={"declared": "10"})
    big = bytes(range(256)) * (BIG // 256)
    s3.put_object(Bucket=BUCKET, Key="uploads/big.jpg", Body=big)
    part = b"p" * (5 * 1024 * 1024)
    mp = s3.create_multipart_upload(Bucket=BUCKET, Key="archives/done.zip")
    etags = [s3.upload_part(Bucket=BUCKET, Key="archives/done.zip", UploadId=mp["UploadId"], PartNumber=n,
                            Body=body)["ETag"] for n, body in ((1, part), (2, b"tail"))]
    s3.complete_multipart_upload(Bucket=BUCKET, Key="archives/done.zip", UploadId=mp["UploadId"], MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2), etags)]})
    open_mp = s3.create_multipart_upload(Bucket=BUCKET, Key="archives/open.zip")["UploadId"]
    s3.upload_part(Bucket=BUCKET, Key="archives/open.zip", UploadId=open_mp, PartNumber=1, Body=b"half")
    # one of the two S3 events is taken by a consumer that will die with the process
    in_flight = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1, VisibilityTimeout=900)["Messages"]
    etag_big = s3.head_object(Bucket=BUCKET, Key="uploads/big.jpg")["ETag"]

    store = Persistence(tmp_path)
    assert store.open() is None
    stats = store.snapshot()
    assert stats.contents.items == 3 and stats.contents.objects == 3 and stats.contents.in_flight == 1
    assert stats.new_bodies == 6   # 3 objects, the done upload's 2 parts, the open upload's part
    store.close()

    restored = _restart(tmp_path).restored
    assert (restored.items, restored.objects, restored.messages, restored.in_flight) == (3, 3, 2, 1)
    # what every stack start does next (resources.create_all): it must find the bucket, not replace it
    s3.create_bucket(Bucket=BUCKET)
    item = ddb.get_item(TableName=TABLE, Key={"pk": {"S": "b2"}, "sk": {"S": "meta"}})["Item"]
    assert item["count"] == {"N": "2"} and item["tags"] == {"SS": ["a", "b"]}
    assert ddb.query(TableName=TABLE, IndexName="by-owner", KeyConditionExpression="#o = :o",
                     ExpressionAttributeNames={"#o": "owner"},
                     ExpressionAttributeValues={":o": {"S": "studio"}})["Count"] == 3
    small = s3.get_object(Bucket=BUCKET, Key="uploads/small.png")
    assert small["Body"].read() == b"small body" and small["ContentType"] == "image/png"
    assert small["Metadata"] == {"declared": "10"}
    got_big = s3.get_object(Bucket=BUCKET, Key="uploads/big.jpg")
    assert got_big["Body"].read() == big and got_big["ETag"] == etag_big
    assert s3.get_object(Bucket=BUCKET, Key="archives/done.zip")["Body"].read() == part + b"tail"
    parts = s3.list_parts(Bucket=BUCKET, Key="archives/open.zip", UploadId=open_mp)["Parts"]
    assert [p["Size"] for p in parts] == [4]
    # the message a dead consumer held is delivered again, with the other one, at once
    keys = _event_keys(_drain(aws, queue))
    assert keys == ["uploads/big.jpg", "uploads/small.png"]
    assert _event_keys(in_flight)[0] in keys
    # the bucket still sends its events to the queue
    s3.put_object(Bucket=BUCKET, Key="uploads/after.png", Body=b"x")
    assert _event_keys(_drain(aws, queue)) == ["uploads/after.png"]


def test_each_body_is_written_once_and_deleted_with_its_object(aws, tmp_path):
    s3 = aws["s3"]
    _setup(aws)
    s3.put_object(Bucket=BUCKET, Key="a", Body=b"a" * 1000)
    s3.put_object(Bucket=BUCKET, Key="b", Body=b"b" * 1000)
    store = Persistence(tmp_path)
    store.open()
    assert store.snapshot().new_bodies == 2
    again = store.snapshot()
    assert (again.new_bodies, again.removed_bodies) == (0, 0)
    s3.delete_object(Bucket=BUCKET, Key="a")
    s3.put_object(Bucket=BUCKET, Key="b", Body=b"new b")   # a new object: a new body
    after = store.snapshot()
    assert (after.new_bodies, after.removed_bodies) == (1, 2)
    assert len(list((tmp_path / "blobs").iterdir())) == 1
    store.close()
    _restart(tmp_path)
    assert s3.get_object(Bucket=BUCKET, Key="b")["Body"].read() == b"new b"
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="a")


def test_the_final_snapshot_runs_in_process_and_closes_the_gate(aws, tmp_path):
    _setup(aws)
    store = Persistence(tmp_path)
    store.open()
    aws["s3"].put_object(Bucket=BUCKET, Key="k", Body=b"last words")
    store._dirty.set()   # what the middleware does for a write
    stats = store.close()
    assert stats is not None and stats.new_bodies == 1
    entered = threading.Event()

    def request():
        with store.gate.shared():
            entered.set()

    threading.Thread(target=request, daemon=True).start()
    assert not entered.wait(0.5), "a request got past the gate after the final snapshot"
    _restart(tmp_path)
    assert aws["s3"].get_object(Bucket=BUCKET, Key="k")["Body"].read() == b"last words"


@pytest.mark.parametrize("where", ["body", "state", "rename"])
def test_a_failed_snapshot_keeps_the_previous_one(aws, tmp_path, monkeypatch, where):
    s3 = aws["s3"]
    _setup(aws)
    s3.put_object(Bucket=BUCKET, Key="kept", Body=b"kept")
    store = Persistence(tmp_path)
    store.open()
    store.snapshot()
    s3.put_object(Bucket=BUCKET, Key="lost", Body=b"lost")
    s3.delete_object(Bucket=BUCKET, Key="kept")
    real_write, real_replace = persistence._write_durably, persistence.os.replace

    def failing_write(path, *chunks):
        if (where == "body" and path.parent.name == "blobs") or (where == "state" and path.name == "state.bin"):
            with open(path.with_name(f".{path.name}.partial.tmp"), "wb") as f:
                f.write(b"half")   # as a crash mid-write leaves it
            raise OSError(28, "No space left on device")
        return real_write(path, *chunks)

    def failing_replace(src, dst):
        if str(dst).endswith("state.bin"):
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    if where == "rename":
        monkeypatch.setattr(persistence.os, "replace", failing_replace)
    else:
        monkeypatch.setattr(persistence, "_write_durably", failing_write)
    with pytest.raises(SnapshotError, match="No space left|Input/output"):
        store.snapshot()   # the forked child fails; its report names why
    assert store._dirty.is_set(), "the change must be saved by a later snapshot"
    with pytest.raises(OSError):
        store.snapshot(final=True)   # the in-process path fails the same way
    monkeypatch.undo()
    store._release()
    _restart(tmp_path)
    assert s3.get_object(Bucket=BUCKET, Key="kept")["Body"].read() == b"kept"
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="lost")
    assert not [p for p in tmp_path.rglob(".*.tmp")], "leftovers of the failed write are cleaned on open"


def test_a_child_that_hangs_is_killed(aws, tmp_path, monkeypatch):
    _setup(aws)
    store = Persistence(tmp_path)
    store.open()
    monkeypatch.setattr(persistence, "_save", lambda *a: time.sleep(3600))
    monkeypatch.setattr(persistence, "CHILD_TIMEOUT", 1.0)
    with pytest.raises(SnapshotError, match="killed"):
        store.snapshot()
    monkeypatch.undo()
    assert store.close().contents.tables == 1   # the change is still to be saved, and is


def test_snapshots_from_other_versions_are_refused_with_what_to_do(aws, tmp_path):
    _setup(aws)
    store = Persistence(tmp_path)
    store.open()
    store.snapshot()
    store.close()
    state = tmp_path / "state.bin"
    header, _, rest = state.read_bytes().partition(b"\n")
    state.write_bytes(json.dumps({**json.loads(header), "moto": "4.0.0"}).encode() + b"\n" + rest)
    with pytest.raises(DataDirError, match=r"moto 4\.0\.0.*make clean-data"):
        _restart(tmp_path)
    state.write_bytes(b"not a snapshot\n")
    with pytest.raises(DataDirError, match="not a snapshot"):
        _restart(tmp_path)


def test_a_missing_body_is_a_clear_error(aws, tmp_path):
    _setup(aws)
    aws["s3"].put_object(Bucket=BUCKET, Key="k", Body=b"body")
    store = Persistence(tmp_path)
    store.open()
    store.snapshot()
    store.close()
    for blob in (tmp_path / "blobs").iterdir():
        blob.unlink()
    with pytest.raises(DataDirError, match="cannot load.*make clean-data"):
        _restart(tmp_path)


def test_a_data_directory_serves_one_stack(aws, tmp_path):
    first = Persistence(tmp_path)
    first.open()
    with pytest.raises(DataDirError, match=r"in use by another local stack \(pid \d+\)"):
        Persistence(tmp_path, lock_wait=60).open()   # the holder is alive: no waiting
    with pytest.raises(DataDirError, match="in use"):
        persistence.clean(tmp_path)
    first.close()
    assert persistence.clean(tmp_path) and not tmp_path.exists()
    assert persistence.clean(tmp_path) is False


def test_clean_refuses_a_directory_that_is_not_a_data_directory(tmp_path):
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(DataDirError, match="does not look like"):
        persistence.clean(tmp_path)
    assert (tmp_path / "thesis.tex").exists()


def test_writes_mark_the_state_changed_and_reads_do_not(tmp_path):
    store = Persistence(tmp_path)
    app = store.middleware(lambda environ, start_response: [b"ok"])
    cases = [
        ({"REQUEST_METHOD": "GET"}, False),
        ({"REQUEST_METHOD": "HEAD"}, False),
        ({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "DynamoDB_20120810.Query"}, False),
        ({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "AmazonSQS.ReceiveMessage"}, False),
        ({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "DynamoDB_20120810.TransactWriteItems"}, True),
        ({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "AmazonSQS.DeleteMessageBatch"}, True),
        ({"REQUEST_METHOD": "POST"}, True),   # a presigned POST upload
        ({"REQUEST_METHOD": "PUT"}, True),
        ({"REQUEST_METHOD": "DELETE"}, True),
    ]
    for environ, changes in cases:
        store._dirty.clear()
        assert app(environ, None) == [b"ok"]
        assert store._dirty.is_set() == changes, environ


def test_the_gate_lets_requests_finish_before_a_snapshot_and_holds_new_ones():
    gate = Gate()
    inside, leave, closed, second_in = (threading.Event() for _ in range(4))

    def request(entered, release):
        with gate.shared():
            entered.set()
            release.wait()

    threading.Thread(target=request, args=(inside, leave), daemon=True).start()
    assert inside.wait(5)
    snapshot = threading.Thread(target=lambda: (gate.close(), closed.set()), daemon=True)
    snapshot.start()
    assert not closed.wait(0.3), "the snapshot must wait for the request in progress"
    threading.Thread(target=request, args=(second_in, threading.Event()), daemon=True).start()
    assert not second_in.wait(0.3), "a new request must wait behind a waiting snapshot"
    leave.set()
    assert closed.wait(5)
    assert not second_in.wait(0.3)
    gate.reopen()
    assert second_in.wait(5)


def test_a_long_poll_does_not_hold_up_a_snapshot(aws, tmp_path):
    """The stack's pollers long-poll their queues all the time; a snapshot must not wait for a
    poll to run out (nor must every request queued behind the snapshot)."""
    sqs = aws["sqs"]
    queue = sqs.create_queue(QueueName="long-poll")["QueueUrl"]
    store = Persistence(tmp_path)
    store.middleware(lambda environ, start_response: [])   # installs what the stack's moto runs with
    polling, got = threading.Event(), []

    def poll():
        with store.gate.shared():   # as the middleware holds it for the request
            polling.set()
            got.extend(sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=20).get("Messages", []))

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    assert polling.wait(5)
    closed = threading.Event()
    threading.Thread(target=lambda: (store.gate.close(), closed.set()), daemon=True).start()
    assert closed.wait(10), "the snapshot waited for a long poll"
    store.gate.reopen()
    sqs.send_message(QueueUrl=queue, MessageBody="after the snapshot")
    poller.join(20)
    assert [m["Body"] for m in got] == ["after the snapshot"]
