"""Every way files arrive, through the HTTP routes and the event handlers under mock_aws, with S3's
own notifications: uploads in parts (start, resume, complete, abort and their errors), and drop
folders (the notification on drop/ with suffix _READY, the handler, the arrivals path)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from chalicelib.resources import ARRIVALS, DROPS, MAINTENANCE, UPLOADS
from tests import images
from tests.functional.conftest import TOKENS
from tests.large_files import layered_tiff

MIB = 1024 * 1024


@pytest.fixture
def settings():
    from chalicelib.settings import Settings
    return Settings(local_api_tokens=TOKENS, multipart_threshold=6 * MIB, multipart_part_size=5 * MIB,
                    drop_folder_owners=frozenset({"alice", "bob"}))


@pytest.fixture
def big(tmp_path) -> bytes:
    return layered_tiff(Path(tmp_path) / "big.tif", 11 * MIB).read_bytes()


class Pump:
    """What the event source mappings do: receive from a queue, invoke its function."""

    def __init__(self, api, aws):
        self.api, self.aws = api, aws

    def messages(self, spec) -> list[dict]:
        url = self.aws.settings.queue_url(spec.key)
        got = self.aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        for m in got:
            self.aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return got

    def run(self, specs=(DROPS, ARRIVALS, UPLOADS)) -> dict[str, int]:
        """Deliver until every queue is empty; how many messages each function got."""
        counts = {spec.handler: 0 for spec in specs}
        while True:
            moved = 0
            for spec in specs:
                got = self.messages(spec)
                if got:
                    event = self.api.client.events.generate_sqs_event(message_bodies=[m["Body"] for m in got],
                                                                      queue_name=spec.name)
                    payload = self.api.client.lambda_.invoke(spec.handler, event).payload
                    assert payload == ({"batchItemFailures": []} if spec.report_failures else None), payload
                    counts[spec.handler] += len(got)
                    moved += len(got)
            if not moved:
                return counts


@pytest.fixture
def pump(api, aws):
    pump = Pump(api, aws)
    pump.run()   # S3's s3:TestEvent, one per notification configured
    return pump


@pytest.fixture
def web(api):
    return api.post("/pipelines", {"name": "web", "format": "jpeg", "width": 40}).data["pipeline"]


def create(api, web, named: dict[str, bytes], token="token-alice"):
    r = api.post("/batches", {"pipeline_ids": [web["id"]], "files": [
        {"name": n, "size": len(b), "content_type": "image/tiff" if n.endswith(".tif") else "image/png"}
        for n, b in named.items()]}, token=token)
    assert r.status_code == 201, r.data
    return r.data["batch"]["id"], {u["file_name"]: u for u in r.data["uploads"]}


def put_parts(start: dict, data: bytes, only=None) -> list[int]:
    sent = []
    for part in start["upload"]["parts"]:
        n = part["part_number"]
        if only is None or n in only:
            begin = (n - 1) * start["upload"]["part_size"]
            response = requests.put(part["url"], data=data[begin:begin + part["size"]], timeout=30)
            assert response.status_code == 200, response.text
            sent.append(n)
    return sent


def test_a_file_uploaded_in_parts_resumes_completes_and_is_processed(api, aws, pump, web, big):
    bid, uploads = create(api, web, {"big.tif": big, "small.png": images.png()})
    u = uploads["big.tif"]
    assert (u["method"], u["url"], u["parts_total"], u["part_size"]) == ("MULTIPART", None, 3, 5 * MIB)
    path = f"/batches/{bid}/jobs/{u['job_id']}/multipart"
    first = api.post(path)
    assert first.status_code == 200, first.data
    assert put_parts(first.data, big, only={1, 3}) == [1, 3]
    resumed = api.post(path).data["upload"]
    assert resumed["upload_id"] == first.data["upload"]["upload_id"] and resumed["parts_uploaded"] == [1, 3]
    assert [p["part_number"] for p in resumed["parts"]] == [2]
    refused = api.post(path + "/complete")
    assert refused.status_code == 400 and "big.tif" in refused.data["Message"] and \
        "part 2 is missing" in refused.data["Message"]
    put_parts({"upload": resumed}, big)
    done = api.post(path + "/complete")
    assert done.status_code == 200 and done.data["job"]["file_name"] == "big.tif"
    requests.post(uploads["small.png"]["url"], data=uploads["small.png"]["fields"],
                  files={"file": ("small.png", images.png())}, timeout=30)
    # S3 announced both to the arrivals queue; moto announces a completed upload in parts twice
    # (ObjectCreated:Put and :CompleteMultipartUpload, AWS only the latter): counted once anyway
    assert pump.run() == {"register_drop": 0, "register_uploads": 3, "process_upload": 3}
    batch = api.get(f"/batches/{bid}").data["batch"]
    assert batch["status"] == "completed", batch
    assert batch["progress"] == {"uploaded": 2, "succeeded": 2, "failed": 0, "cancelled": 0, "percent": 100}
    assert api.post(path + "/complete").status_code == 200          # asked again: the same answer
    assert api.post(path).status_code == 409                         # nothing left to upload


def test_a_part_of_the_wrong_size_is_named(api, aws, web, big):
    bid, uploads = create(api, web, {"big.tif": big})
    path = f"/batches/{bid}/jobs/{uploads['big.tif']['job_id']}/multipart"
    start = api.post(path).data
    part2 = start["upload"]["parts"][1]
    requests.put(part2["url"], data=b"x" * 1000, timeout=30)   # S3 refuses this (signed length); moto does not
    put_parts(start, big, only={1, 3})
    refused = api.post(path + "/complete")
    assert refused.status_code == 400
    assert "part 2 is 1000 bytes, expected 5242880" in refused.data["Message"]
    assert api.post(path).data["upload"]["parts_wrong"] == [{"part_number": 2, "size": 1000, "expected": 5 * MIB}]


def test_part_urls_sign_each_parts_exact_length(api, aws, web, big):
    bid, uploads = create(api, web, {"big.tif": big})
    parts = api.post(f"/batches/{bid}/jobs/{uploads['big.tif']['job_id']}/multipart").data["upload"]["parts"]
    for part in parts:
        assert "X-Amz-SignedHeaders=content-length%3Bhost" in part["url"], part["url"]
    # the signature covers the length: another length is another signature
    s3 = aws.s3
    upload_id = parts[0]["url"].split("uploadId=")[1].split("&")[0]
    other = s3.generate_presigned_url("upload_part", Params={"Bucket": aws.settings.bucket, "Key": "k",
                                                             "UploadId": upload_id, "PartNumber": 1,
                                                             "ContentLength": 1}, ExpiresIn=60)
    assert "content-length" in other


def test_abort_cancel_and_delete_leave_no_parts(api, aws, web, big):
    s3, bucket = aws.s3, aws.settings.bucket

    def in_progress():
        return s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])

    bid, uploads = create(api, web, {"big.tif": big})
    path = f"/batches/{bid}/jobs/{uploads['big.tif']['job_id']}/multipart"
    put_parts(api.post(path).data, big, only={1})
    assert api.delete(path).status_code == 204 and in_progress() == []
    put_parts(api.post(path).data, big, only={1})
    assert api.post(f"/batches/{bid}/cancel").status_code == 200 and in_progress() == []
    refused = api.post(path)
    assert refused.status_code == 409 and "cancelled" in refused.data["Message"]
    bid2, uploads2 = create(api, web, {"big.tif": big})
    put_parts(api.post(f"/batches/{bid2}/jobs/{uploads2['big.tif']['job_id']}/multipart").data, big, only={2})
    assert len(in_progress()) == 1
    assert api.delete(f"/batches/{bid2}").status_code == 204 and in_progress() == []


def test_multipart_routes_answer_clearly(api, web, big):
    bid, uploads = create(api, web, {"big.tif": big, "small.png": images.png()})
    small = api.post(f"/batches/{bid}/jobs/{uploads['small.png']['job_id']}/multipart")
    assert small.status_code == 400 and "not above the multipart threshold" in small.data["Message"]
    path = f"/batches/{bid}/jobs/{uploads['big.tif']['job_id']}/multipart"
    assert api.post(path, token="token-bob").status_code == 404
    assert api.post(path, token=None).status_code == 401
    assert api.post(f"/batches/{bid}/jobs/not-a-job/multipart").status_code == 404
    assert api.post(path + "?limit=0").status_code == 400
    assert api.post(path + "/complete").status_code == 409          # nothing started yet


def drop(aws, owner: str, folder: str, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        aws.s3.put_object(Bucket=aws.settings.bucket, Key=f"drop/{owner}/{folder}/{name}", Body=data)


def test_a_drop_folder_and_its_marker_become_a_batch_through_s3s_notifications(api, aws, pump, web):
    drop(aws, "alice", "shoot", {"PL_DXB7_Front.png": images.png(), "notes.txt": b"not an image"})
    assert pump.run() == {"register_drop": 0, "register_uploads": 0, "process_upload": 0}   # files announce nothing
    drop(aws, "alice", "shoot", {"_READY": json.dumps({"pipeline_ids": [web["id"]]}).encode()})
    assert pump.run() == {"register_drop": 1, "register_uploads": 2, "process_upload": 2}
    listed = api.get("/batches").data["batches"]
    assert len(listed) == 1 and listed[0]["status"] == "completed_with_errors"
    batch = api.get(f"/batches/{listed[0]['id']}").data["batch"]
    assert {j["file_name"]: j["status"] for j in batch["jobs"]} == {"PL_DXB7_Front.png": "completed",
                                                                    "notes.txt": "failed"}
    assert api.get(f"/batches/{batch['id']}/download?redirect=false").status_code == 200
    assert api.get("/batches", token="token-bob").data["batches"] == []
    assert api.delete(f"/batches/{batch['id']}").status_code == 204
    assert aws.s3.list_objects_v2(Bucket=aws.settings.bucket, Prefix="drop/").get("KeyCount") == 0


def test_a_marker_that_makes_no_batch_changes_nothing(api, aws, pump, web, caplog):
    drop(aws, "alice", "bad", {"a.png": images.png(), "_READY": b'{"pipeline_ids": []}'})
    drop(aws, "mallory", "x", {"a.png": images.png(), "_READY": json.dumps({"pipeline_ids": [web["id"]]}).encode()})
    assert pump.run() == {"register_drop": 2, "register_uploads": 0, "process_upload": 0}
    assert api.get("/batches").data["batches"] == []
    assert "pipeline_ids must list at least one pipeline id" in caplog.text
    assert "'mallory' is not an owner with drop folders" in caplog.text
    assert aws.s3.list_objects_v2(Bucket=aws.settings.bucket, Prefix="drop/")["KeyCount"] == 4   # nothing removed


def test_a_drop_folder_over_several_manifest_chunks_arrives_whole(api, aws, pump, web, small_chunks):
    """Only the first chunk's jobs are stored with the batch; the maintenance queue stores the
    others and announces their files, which are in S3 already (nobody uploads them)."""
    names = [f"PL_DRP{i:03d}_x.png" for i in range(70)]
    drop(aws, "alice", "many", {name: images.png() for name in names})
    drop(aws, "alice", "many", {"_READY": json.dumps({"pipeline_ids": [web["id"]]}).encode()})
    counts = pump.run((DROPS, MAINTENANCE, ARRIVALS, UPLOADS))
    assert counts == {"register_drop": 1, "run_maintenance": 1, "register_uploads": 70, "process_upload": 70}
    [listed] = api.get("/batches").data["batches"]
    assert listed["status"] == "completed" and listed["progress"]["succeeded"] == 70
    # the marker delivered again announces nothing twice: every job has moved on
    marker = "drop/alice/many/_READY"
    event = api.client.events.generate_sqs_event(message_bodies=[json.dumps(
        {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": aws.settings.bucket},
                                                               "object": {"key": marker}}}]})],
        queue_name=DROPS.name)
    assert api.client.lambda_.invoke(DROPS.handler, event).payload == {"batchItemFailures": []}
    assert pump.run((DROPS, MAINTENANCE, ARRIVALS, UPLOADS))["register_uploads"] == 0
