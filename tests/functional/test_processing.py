"""The per-file handler under mock_aws: real images, real pipelines, every state transition."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from urllib.parse import quote_plus

import pytest

from tests import images


def s3_body(*keys) -> str:
    return json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Post",
                                    "s3": {"bucket": {"name": "imgbatch-local"}, "object": {"key": quote_plus(k)}}}
                                   for k in keys]})


class Flow:
    def __init__(self, api, aws, pipelines):
        self.api, self.aws, self.pipelines = api, aws, pipelines

    def create(self, named_bytes: dict, **extra):
        body = {"pipeline_ids": [p["id"] for p in self.pipelines],
                "files": [{"name": n, "size": len(b), "content_type": "image/png"} for n, b in named_bytes.items()],
                **extra}
        r = self.api.post("/batches", body)
        assert r.status_code == 201, r.data
        return r.data

    def put(self, upload, data: bytes):
        self.aws.s3.put_object(Bucket=self.aws.settings.bucket, Key=upload["fields"]["key"], Body=data)

    def deliver(self, *bodies: str):
        event = self.api.client.events.generate_sqs_event(message_bodies=list(bodies), queue_name="imgbatch-uploads")
        return self.api.client.lambda_.invoke("process_upload", event).payload

    def upload(self, created, data_by_name: dict, deliver=True):
        for u in created["uploads"]:
            if u["file_name"] in data_by_name:
                self.put(u, data_by_name[u["file_name"]])
                if deliver:
                    self.deliver(s3_body(u["fields"]["key"]))

    def batch(self, bid):
        return self.api.get(f"/batches/{bid}").data["batch"]

    def drain_queue(self):
        """Deliver what retry enqueued, as the event source mapping would."""
        sqs, url = self.aws.sqs, self.aws.settings.queue_url("uploads")
        while True:
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not got:
                return
            self.deliver(*[m["Body"] for m in got])
            for m in got:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


@pytest.fixture
def flow(api, aws):
    web = api.post("/pipelines", {"name": "web", "format": "jpeg", "width": 40}).data["pipeline"]
    return Flow(api, aws, [web])


def test_batch_of_real_images_completes(flow, aws, api):
    thumb = api.post("/pipelines", {"name": "thumb", "format": "webp", "width": 16, "height": 16,
                                    "fit": "cover"}).data["pipeline"]
    flow.pipelines.append(thumb)
    data = {"PL_DXB1_Front.png": images.png((80, 60)), "PL_DXB1_Back.png": images.png((80, 60), mode="RGBA"),
            "PL_DXB1_Side.png": images.jpeg((60, 120), orientation=6)}
    created = flow.create(data)
    bid = created["batch"]["id"]
    flow.upload(created, data)
    b = flow.batch(bid)
    assert b["status"] == "completed", b
    assert b["progress"] == {"uploaded": 3, "succeeded": 3, "failed": 0, "cancelled": 0, "percent": 100}
    assert b["started_at"] and b["completed_at"]
    for job in b["jobs"]:
        assert job["status"] == "completed" and job["error"] is None and job["completed_at"]
        web_out, thumb_out = job["outputs"]
        assert web_out["pipeline_id"] == flow.pipelines[0]["id"] and web_out["format"] == "jpeg"
        body = aws.s3.get_object(Bucket=aws.settings.bucket, Key=web_out["key"])["Body"].read()
        im = images.decode(body)
        assert im.format == "JPEG" and im.width == 40 == web_out["width"] and len(body) == web_out["size"]
        t = images.decode(aws.s3.get_object(Bucket=aws.settings.bucket, Key=thumb_out["key"])["Body"].read())
        assert t.format == "WEBP" and t.size == (16, 16)
    side = next(j for j in b["jobs"] if j["file_name"] == "PL_DXB1_Side.png")
    # EXIF orientation 6: a 60x120 landscape-stored image is displayed 120 wide... rotated to portrait
    assert side["outputs"][0]["height"] < side["outputs"][0]["width"]
    stats = api.get("/batches/stats").data
    assert stats["completed"] == 1 and stats["queued"] == 0 and stats["processing"] == 0


def test_first_upload_moves_queued_to_processing(flow):
    data = {"a.png": images.png(), "b.png": images.png()}
    created = flow.create(data)
    flow.upload(created, {"a.png": data["a.png"]})
    b = flow.batch(created["batch"]["id"])
    assert b["status"] == "processing" and b["started_at"] and b["completed_at"] is None
    assert b["progress"]["uploaded"] == 1 and b["progress"]["succeeded"] == 1 and b["progress"]["percent"] == 50


def test_duplicate_and_late_events_count_once(flow, api):
    data = {"a.png": images.png(), "b.png": images.png()}
    created = flow.create(data)
    flow.upload(created, data)
    first = flow.batch(created["batch"]["id"])
    keys = [u["fields"]["key"] for u in created["uploads"]]
    flow.deliver(s3_body(*keys), s3_body(keys[0]))
    # re-upload after completion: ignored
    flow.put(created["uploads"][0], images.png((10, 10)))
    flow.deliver(s3_body(keys[0]))
    again = flow.batch(created["batch"]["id"])
    assert again["progress"] == first["progress"] and again["completed_at"] == first["completed_at"]
    assert again["status"] == "completed"
    assert api.get("/batches/stats").data["completed"] == 1


def test_bad_files_fail_their_own_job_with_a_code(flow):
    good = images.png()
    data = {"good.png": good, "corrupt.png": good[:40], "text.png": b"hello, not an image at all",
            "short.png": images.png((30, 30))}
    created = flow.create(data)
    for u in created["uploads"]:
        payload = data[u["file_name"]] if u["file_name"] != "short.png" else data["short.png"][:-10]
        flow.put(u, payload)
    flow.deliver(s3_body(*[u["fields"]["key"] for u in created["uploads"]]))
    b = flow.batch(created["batch"]["id"])
    by_name = {j["file_name"]: j for j in b["jobs"]}
    assert by_name["good.png"]["status"] == "completed"
    assert by_name["corrupt.png"]["error"]["code"] == "corrupt_image"
    assert by_name["text.png"]["error"]["code"] == "not_an_image"
    assert by_name["short.png"]["error"]["code"] == "size_mismatch"
    assert "declared" in by_name["short.png"]["error"]["message"]
    assert all(j["outputs"] == [] for n, j in by_name.items() if n != "good.png")
    assert b["status"] == "completed_with_errors" and b["progress"]["failed"] == 3


def test_all_failed_is_failed_and_lying_extension_is_judged_by_content(flow):
    created = flow.create({"x.png": b"GIF89a-not-really" + b"\0" * 20})
    flow.upload(created, {"x.png": b"GIF89a-not-really" + b"\0" * 20})
    assert flow.batch(created["batch"]["id"])["status"] == "failed"
    webp = images.webp()
    created = flow.create({"photo.jpg": webp})
    flow.upload(created, {"photo.jpg": webp})
    assert flow.batch(created["batch"]["id"])["status"] == "completed"


def test_test_events_junk_and_foreign_keys_are_ignored(flow):
    assert flow.deliver(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"}), "not json",
                        s3_body("uploads/not-a-batch/x.png", "elsewhere/file.png")) == {"batchItemFailures": []}


def test_one_bad_record_does_not_replay_its_neighbours(flow, aws, monkeypatch):
    data = {"a.png": images.png(), "b.png": images.png()}
    created = flow.create(data)
    flow.upload(created, data, deliver=False)
    key_a, key_b = (u["fields"]["key"] for u in created["uploads"])
    real_fetch = aws.storage.fetch
    monkeypatch.setattr(aws.storage, "fetch", lambda key: (_ for _ in ()).throw(ConnectionError("S3 down"))
                        if key == key_b else real_fetch(key))
    event = flow.api.client.events.generate_sqs_event(message_bodies=[s3_body(key_a), s3_body(key_b)],
                                                      queue_name="imgbatch-uploads")
    result = flow.api.client.lambda_.invoke("process_upload", event).payload
    ids = [r["messageId"] for r in event["Records"]]
    assert result == {"batchItemFailures": [{"itemIdentifier": ids[1]}]}
    monkeypatch.setattr(aws.storage, "fetch", real_fetch)
    flow.deliver(s3_body(key_b))  # redelivery
    b = flow.batch(created["batch"]["id"])
    assert b["status"] == "completed" and b["progress"]["succeeded"] == 2


def test_crash_between_outputs_and_commit_is_safe_to_redeliver(flow, aws, monkeypatch, api):
    data = {"a.png": images.png()}
    created = flow.create(data)
    flow.upload(created, data, deliver=False)
    key = created["uploads"][0]["fields"]["key"]
    real = aws.repository.finish_job
    monkeypatch.setattr(aws.repository, "finish_job", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("killed")))
    assert flow.deliver(s3_body(key))["batchItemFailures"]
    outputs = aws.s3.list_objects_v2(Bucket=aws.settings.bucket, Prefix="outputs/").get("KeyCount")
    assert outputs == 2  # the output and its preview: written, not committed
    mid = flow.batch(created["batch"]["id"])
    assert mid["status"] == "processing" and mid["progress"]["succeeded"] == 0
    monkeypatch.setattr(aws.repository, "finish_job", real)
    flow.deliver(s3_body(key))
    flow.deliver(s3_body(key))
    b = flow.batch(created["batch"]["id"])
    assert b["status"] == "completed" and b["progress"]["succeeded"] == 1 and b["progress"]["uploaded"] == 1
    assert aws.s3.list_objects_v2(Bucket=aws.settings.bucket, Prefix="outputs/").get("KeyCount") == 2
    assert api.get("/batches/stats").data["completed"] == 1


def test_crash_before_final_status_is_healed_by_redelivery(flow, aws, monkeypatch):
    data = {"a.png": images.png()}
    created = flow.create(data)
    flow.upload(created, data, deliver=False)
    key = created["uploads"][0]["fields"]["key"]
    monkeypatch.setattr(aws.repository, "finalize", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("killed")))
    assert flow.deliver(s3_body(key))["batchItemFailures"]
    assert flow.batch(created["batch"]["id"])["progress"]["succeeded"] == 1
    monkeypatch.undo()
    flow.deliver(s3_body(key))
    b = flow.batch(created["batch"]["id"])
    assert b["status"] == "completed" and b["progress"]["succeeded"] == 1


def test_cancel_then_late_upload_is_not_processed(flow, aws, api):
    data = {"a.png": images.png(), "b.png": images.png(), "c.png": images.png()}
    created = flow.create(data)
    bid = created["batch"]["id"]
    flow.upload(created, {"a.png": data["a.png"]})
    r = api.post(f"/batches/{bid}/cancel")
    assert r.status_code == 200
    b = r.data["batch"]
    assert b["status"] == "cancelled" and b["completed_at"]
    assert b["progress"]["cancelled"] == 2 and b["progress"]["succeeded"] == 1 and b["progress"]["percent"] == 100
    flow.upload(created, {"b.png": data["b.png"]})
    after = flow.batch(bid)
    assert after["progress"] == b["progress"]
    assert {j["file_name"]: j["status"] for j in after["jobs"]} == {"a.png": "completed", "b.png": "cancelled",
                                                                     "c.png": "cancelled"}
    late_key = next(u["fields"]["key"] for u in created["uploads"] if u["file_name"] == "b.png")
    assert aws.storage.head(late_key) is None
    assert api.post(f"/batches/{bid}/cancel").status_code == 409
    assert api.post(f"/batches/{bid}/retry").status_code == 409
    assert api.post(f"/batches/{bid}/cancel", token="token-bob").status_code == 404
    stats = api.get("/batches/stats").data
    assert stats["cancelled"] == 1 and stats["processing"] == 0


def test_retry_reprocesses_failed_files_and_counters_move_back(flow, aws, api, monkeypatch):
    data = {"a.png": images.png(), "b.png": images.png()}
    created = flow.create(data)
    bid = created["batch"]["id"]
    from chalicelib.domain import imaging
    real_render = imaging.render
    calls = {"n": 0}

    def flaky(source, specs, limits=imaging.Limits(), **options):
        calls["n"] += 1
        if calls["n"] == 2:
            raise imaging.ImageError("corrupt_image", "injected failure")
        return real_render(source, specs, limits, **options)

    monkeypatch.setattr(imaging, "render", flaky)
    flow.upload(created, data)
    before = flow.batch(bid)
    assert before["status"] == "completed_with_errors" and before["progress"]["failed"] == 1
    assert api.get("/batches/stats").data["completed_with_errors"] == 1
    r = api.post(f"/batches/{bid}/retry")
    assert r.status_code == 200
    assert r.data["batch"]["status"] == "processing" and r.data["batch"]["completed_at"] is None
    assert r.data["batch"]["progress"]["failed"] == 0
    flow.drain_queue()
    after = flow.batch(bid)
    assert after["status"] == "completed" and after["progress"]["succeeded"] == 2 and after["completed_at"]
    assert all(j["error"] is None for j in after["jobs"])
    stats = api.get("/batches/stats").data
    assert stats["completed"] == 1 and stats["completed_with_errors"] == 0 and stats["processing"] == 0
    r = api.post(f"/batches/{bid}/retry")
    assert r.status_code == 409 and "no failed files" in r.data["Message"]


def test_uploads_that_never_arrive_expire(flow, aws, api):
    data = {"a.png": images.png(), "b.png": images.png()}
    created = flow.create(data)
    bid = created["batch"]["id"]
    flow.upload(created, {"a.png": data["a.png"]})
    processor = aws.processor
    assert processor.expire_uploads() == 0  # not yet due
    processor.clock = lambda: datetime.now(timezone.utc) + timedelta(seconds=3600 + 60)
    assert processor.expire_uploads() == 1
    b = flow.batch(bid)
    assert b["status"] == "completed_with_errors" and b["completed_at"]
    job = next(j for j in b["jobs"] if j["file_name"] == "b.png")
    assert job["status"] == "failed" and job["error"]["code"] == "upload_expired"
    assert processor.expire_uploads() == 0
    # nothing stored for it, so nothing to retry
    assert api.post(f"/batches/{bid}/retry").status_code == 409
    # the scheduled function runs the same sweep
    event = api.client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                                resources=[])
    assert api.client.lambda_.invoke("expire_uploads", event).payload == {"expired": 0, "deletes_resumed": 0}


def test_processing_that_died_for_good_is_failed_by_the_sweep(flow, aws, monkeypatch):
    data = {"a.png": images.png(), "b.png": images.png()}
    created = flow.create(data)
    flow.upload(created, {"a.png": data["a.png"]})
    flow.upload(created, {"b.png": data["b.png"]}, deliver=False)
    key_b = next(u["fields"]["key"] for u in created["uploads"] if u["file_name"] == "b.png")
    # the handler claims b, then every attempt crashes (its message ends in the DLQ)
    monkeypatch.setattr(aws.storage, "fetch", lambda key: (_ for _ in ()).throw(RuntimeError("crash")))
    assert flow.deliver(s3_body(key_b))["batchItemFailures"]
    monkeypatch.undo()
    processor = aws.processor
    processor.clock = lambda: datetime.now(timezone.utc) + timedelta(seconds=3600 + 60)
    assert processor.expire_uploads() == 0  # processing, but not stale yet
    processor.clock = lambda: datetime.now(timezone.utc) + timedelta(seconds=91 * 60)
    assert processor.expire_uploads() == 1
    b = flow.batch(created["batch"]["id"])
    assert b["status"] == "completed_with_errors"
    job = next(j for j in b["jobs"] if j["file_name"] == "b.png")
    assert job["error"]["code"] == "processing_failed"
    # its input is stored, so it can be retried
    assert flow.api.post(f"/batches/{created['batch']['id']}/retry").status_code == 200
    flow.drain_queue()
    assert flow.batch(created["batch"]["id"])["status"] == "completed"
