"""A representative run of every Lambda function, against the resources a stack created.

Drives the app as AWS would: API requests through Chalice's test client (authorizer first,
then the route), SQS batches to process_upload and build_archive, the scheduled sweep to
expire_uploads. Covers create/upload/process (good, bad, missing upload), list/read/stats,
downloads (inline and via the archive queue), retry, cancel (and an upload arriving after
it, and a cancel racing a processing worker), upload expiry, delete, and the archive
writer's multipart and abort paths, uploads in parts (start, resume, complete, abort, and their
abort on cancel, delete and expiry), and drop folders (markers valid, invalid, repeated, second
and empty; their files through arrivals and processing; a drop batch deleted, also by the sweep).
Events and webhooks: the webhook API, PATCH, the batches stream handed to publish_batch_events
(and handed again, as a redelivery), prebuilt archives and archive.ready, delivery attempts
against a receiver on 127.0.0.1, ping and redeliver. Every AWS call is recorded with the
function it ran in.
"""
from __future__ import annotations

import io
import json
import time
from dataclasses import replace
from urllib.parse import quote_plus

from iam_calls import Recorder

OWNER = "studio"
MIB = 1024 * 1024
CHUNK = 20   # manifest chunk size in the workload (1,000 in production): see Workload._run


def _image(fmt: str, size=(64, 48)) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(buf, fmt)
    return buf.getvalue()


def _s3_event(bucket: str, key: str) -> str:
    return json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Post",
                                    "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key)}}}]})


class Workload:
    def __init__(self, recorder: Recorder, settings, client_factory):
        self.rec = recorder
        self.settings = settings
        self.client_factory = client_factory

    # -- plumbing ----------------------------------------------------------------------
    def http(self, method: str, path: str, body=None, token: str | None = None, expect: int | None = None):
        headers = {"content-type": "application/json", "accept": "*/*"}
        token = self.token if token is None else token
        if token:
            headers["authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else b""
        with self.rec.function("api_handler"):
            response = self.client.http.request(method, path, headers=headers, body=data)
        payload = json.loads(response.body) if response.body and response.body[:1] in (b"{", b"[") else None
        if expect is not None:
            assert response.status_code == expect, (method, path, response.status_code, response.body[:500])
        return response.status_code, payload

    def sqs_invoke(self, function: str, queue: str, bodies: list[str]):
        event = self.client.events.generate_sqs_event(message_bodies=bodies, queue_name=queue)
        with self.rec.function(function):
            return self.client.lambda_.invoke(function, event).payload

    def process(self, *keys: str):
        """S3's notifications through the arrival queue, then what register_uploads queued for processing."""
        result = self.sqs_invoke("register_uploads", "imgbatch-arrivals",
                                 [_s3_event(self.settings.bucket, k) for k in keys])
        self.drain_processing()
        return result

    def drain_processing(self) -> None:
        """What the processing queue's event source mapping does: receive, invoke process_upload."""
        url = self.settings.queue_url("uploads")
        while messages := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            payload = self.sqs_invoke("process_upload", "imgbatch-uploads", [m["Body"] for m in messages])
            assert payload == {"batchItemFailures": []}, payload
            for m in messages:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    def upload(self, upload: dict, data: bytes) -> None:
        # The browser's presigned POST; moto does not enforce the policy, the size check is the app's.
        self.s3.put_object(Bucket=self.settings.bucket, Key=upload["fields"]["key"], Body=data)

    def drain_maintenance(self) -> int:
        """What the maintenance queue's event source mapping does: one message per invocation."""
        url, done = self.settings.queue_url("maintenance"), 0
        while messages := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for m in messages:
                self.sqs_invoke("run_maintenance", "imgbatch-maintenance", [m["Body"]])
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                done += 1
        return done

    def put_parts(self, start: dict, data: bytes, only=None) -> None:
        """A client's PUTs to presigned part URLs (mock_aws answers them)."""
        import requests
        for part in start["upload"]["parts"]:
            if only is None or part["part_number"] in only:
                begin = (part["part_number"] - 1) * start["upload"]["part_size"]
                assert requests.put(part["url"], data=data[begin:begin + part["size"]], timeout=30).status_code == 200

    def drain_arrivals(self) -> None:
        """What the arrivals queue's event source mapping does (drop folders' files come this way)."""
        url = self.settings.queue_url("arrivals")
        while messages := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            payload = self.sqs_invoke("register_uploads", "imgbatch-arrivals", [m["Body"] for m in messages])
            assert payload == {"batchItemFailures": []}, payload
            for m in messages:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        self.drain_processing()

    def discard_arrivals(self) -> None:
        # moto looks at every message of a queue on each receive: taking a thousand ten at a time
        # took tens of seconds, a purge takes none (moto's setting lifts SQS's one purge a minute)
        import os
        from unittest import mock
        with mock.patch.dict(os.environ, {"MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR": "false"}):
            self.sqs.purge_queue(QueueUrl=self.settings.queue_url("arrivals"))

    def marker(self, folder: str, body: bytes) -> None:
        """A studio writes a drop folder's marker; S3 announces it to register_drop."""
        key = f"drop/{OWNER}/{folder}/_READY"
        self.s3.put_object(Bucket=self.settings.bucket, Key=key, Body=body)
        assert self.sqs_invoke("register_drop", "imgbatch-drops", [_s3_event(self.settings.bucket, key)]) == \
            {"batchItemFailures": []}

    def sweep(self):
        event = self.client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                                     resources=[], region=self.settings.region)
        with self.rec.function("expire_uploads"):
            return self.client.lambda_.invoke("expire_uploads", event).payload

    def build_archives(self) -> int:
        """What the archive queue's event source mapping does: receive, invoke build_archive."""
        got = self.sqs.receive_message(QueueUrl=self.settings.queue_url("archives"), MaxNumberOfMessages=10)
        messages = got.get("Messages", [])
        for m in messages:
            self.sqs_invoke("build_archive", "imgbatch-archives", [m["Body"]])
            self.sqs.delete_message(QueueUrl=self.settings.queue_url("archives"), ReceiptHandle=m["ReceiptHandle"])
        return len(messages)

    def deliver_webhooks(self) -> int:
        """What the delivery queue's event source mapping does: receive, invoke deliver_webhooks."""
        url, done = self.settings.queue_url("deliveries"), 0
        while messages := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            payload = self.sqs_invoke("deliver_webhooks", "imgbatch-deliveries", [m["Body"] for m in messages])
            assert payload == {"batchItemFailures": []}, payload
            for m in messages:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            done += len(messages)
        return done

    def publish_events(self, records: list[dict] | None = None) -> list[dict]:
        """What the batches stream's event source mapping does: read the stream, invoke
        publish_batch_events (the reading itself is Lambda's, recorded as nobody's)."""
        if records is None:
            records = self.stream.poll(1000)
        if records:
            with self.rec.function("publish_batch_events"):
                payload = self.client.lambda_.invoke("publish_batch_events", {"Records": records}).payload
            assert payload == {"batchItemFailures": []}, payload
        return records

    def new_batch(self, pipeline_ids, files) -> tuple[dict, list[dict]]:
        _, data = self.http("POST", "/batches", {"pipeline_ids": pipeline_ids, "files": files}, expect=201)
        return data["batch"], data["uploads"]

    # -- the run -------------------------------------------------------------------------
    def run(self) -> None:
        import app as app_module
        from chalicelib import wiring
        from deploy.tokens import create_token

        import boto3
        self.s3 = boto3.client("s3", region_name=self.settings.region)
        self.sqs = boto3.client("sqs", region_name=self.settings.region)
        authorizer = app_module.token_auth
        original = authorizer.func

        def token_auth(request):
            with self.rec.function("token_auth"):
                return original(request)

        authorizer.func = token_auth
        # the workload's receiver listens on 127.0.0.1 (deployed stacks refuse private addresses)
        # and its failed first answer is tried again at once (the backoff is the app's business);
        # small files in parts keep the run quick; drop folders on for the workload's owner
        self.settings = replace(self.settings, webhook_allow_private=True, webhook_retry_base_seconds=0.01,
                                multipart_threshold=6 * MIB, multipart_part_size=5 * MIB,
                                drop_folder_owners=frozenset({OWNER}))
        try:
            container = wiring.reset(self.settings)
            self.stream = container.batch_stream_reader()
            self.token = create_token(container.repository, OWNER)   # the admin command's code path
            with self.client_factory(app_module.app) as self.client:
                self._run(container)
        finally:
            authorizer.func = original
            wiring.reset()

    def _run(self, container) -> None:
        import pytest

        from chalicelib.services import deletion, processor
        from tests.chunks import shrink_chunks
        from tests.receiver import Receiver
        # Manifest chunks of CHUNK files, and "big" past one chunk: the same calls as a batch of
        # 100,000 makes, with a few dozen files (a thousand took moto most of a minute).
        with Receiver(script=[500]) as receiver, pytest.MonkeyPatch.context() as mp:
            shrink_chunks(mp, CHUNK)
            mp.setattr(deletion, "INLINE_FILES", CHUNK)
            mp.setattr(processor, "INLINE_JOBS", CHUNK)
            self._run_all(container, receiver)

    def _webhooks(self, receiver) -> dict:
        _, created = self.http("POST", "/webhooks", {"url": receiver.url, "events": ["*"]}, expect=201)
        hook = created["webhook"]
        self.http("GET", "/webhooks", expect=200)
        self.http("GET", f"/webhooks/{hook['id']}", expect=200)
        self.http("PUT", f"/webhooks/{hook['id']}", {"url": receiver.url, "description": "workload"}, expect=200)
        _, ping = self.http("POST", f"/webhooks/{hook['id']}/ping", expect=202)
        assert self.deliver_webhooks() == 2   # answered 500, then retried: delivered
        self.http("POST", f"/webhooks/{hook['id']}/deliveries/{ping['delivery']['id']}/redeliver", expect=202)
        self.deliver_webhooks()
        self.http("GET", f"/webhooks/{hook['id']}/deliveries?limit=1", expect=200)
        return hook

    def _run_all(self, container, receiver) -> None:
        # auth: no token, an unknown token
        self.http("GET", "/batches", token="", expect=401)
        self.http("GET", "/batches", token="not-a-token", expect=401)
        self.http("GET", "/health", expect=200)

        # pipelines
        _, web = self.http("POST", "/pipelines", {"name": "web", "format": "jpeg", "width": 32}, expect=201)
        _, thumb = self.http("POST", "/pipelines", {"name": "thumb", "format": "png", "width": 16}, expect=201)
        _, spare = self.http("POST", "/pipelines", {"name": "spare", "format": "webp"}, expect=201)
        web, thumb, spare = web["pipeline"], thumb["pipeline"], spare["pipeline"]
        self.http("GET", "/pipelines", expect=200)
        self.http("GET", f"/pipelines/{web['id']}", expect=200)
        self.http("PUT", f"/pipelines/{spare['id']}", {"name": "spare2", "format": "webp"}, expect=200)
        self.http("POST", "/pipelines", {"name": "web", "format": "png"}, expect=409)
        self.http("DELETE", f"/pipelines/{spare['id']}", expect=204)

        # webhooks: created before any batch, so every event of the run is delivered
        hook = self._webhooks(receiver)

        # a batch: two good images, one that is not an image, one never uploaded
        batch, uploads = self.new_batch([web["id"], thumb["id"]], [
            {"name": "PL_DXB1_Front.png", "size": len(_image("PNG")), "content_type": "image/png"},
            {"name": "PL_DXB1_Back.jpg", "size": len(_image("JPEG")), "content_type": "image/jpeg"},
            {"name": "PL_DXB1_Side.png", "size": 9, "content_type": "image/png"},
            {"name": "PL_DXB1_Top.png", "size": 100, "content_type": "image/png"},
        ])
        by_name = {u["file_name"]: u for u in uploads}
        self.upload(by_name["PL_DXB1_Front.png"], _image("PNG"))
        self.upload(by_name["PL_DXB1_Back.jpg"], _image("JPEG"))
        self.upload(by_name["PL_DXB1_Side.png"], b"not image")
        keys = [by_name[n]["fields"]["key"] for n in ("PL_DXB1_Front.png", "PL_DXB1_Back.jpg", "PL_DXB1_Side.png",
                                                         "PL_DXB1_Top.png")]
        result = self.process(*keys)
        assert result == {"batchItemFailures": []}, result
        self.process(keys[0])  # a duplicate delivery
        bid = batch["id"]
        _, got = self.http("GET", f"/batches/{bid}", expect=200)
        assert got["batch"]["status"] == "completed_with_errors", got["batch"]
        self.http("PATCH", f"/batches/{bid}", {"monday_item_id": "42", "metadata": {"order": "A-1"}}, expect=200)

        # reads
        for query in ("", "?status=completed_with_errors", "?customer_prefix=PL_DXB", "?search=dxb",
                      "?sort_by=total_files", "?sort_by=status&sort_order=asc", "?limit=1"):
            self.http("GET", f"/batches{query}", expect=200)
        self.http("GET", "/batches/stats", expect=200)
        self.http("GET", f"/batches/{bid}/uploads", expect=200)
        self.http("GET", f"/batches/{bid}?jobs_limit=1", expect=200)
        job_id = got["batch"]["jobs"][0]["id"]
        self.http("GET", f"/jobs/{job_id}", expect=200)
        self.http("GET", "/jobs?status=failed", expect=200)
        self.http("GET", "/jobs?grouped=true", expect=200)
        self.http("GET", f"/jobs/{job_id}/download?redirect=false&pipeline_id={web['id']}", expect=200)
        self.http("GET", f"/batches/{bid}/download?redirect=false", expect=200)   # built inline
        self.http("GET", f"/batches/{bid}/download", expect=302)                  # cached now
        self.http("GET", f"/batches/{bid}/results?format=xlsx&redirect=false", expect=200)   # staged in S3
        self.http("GET", f"/batches/{bid}/results?format=csv", expect=302)
        self.http("GET", f"/batches/{bid}/contact-sheet?redirect=false", expect=200)        # reads the previews

        # retry: the bad file is stored, so it goes round again (and fails again)
        self.http("POST", f"/batches/{bid}/retry", expect=200)
        self.drain_processing()
        _, got = self.http("GET", f"/batches/{bid}", expect=200)
        assert got["batch"]["status"] == "completed_with_errors", got["batch"]

        # a large archive: built by build_archive after the API queued it (202)
        from chalicelib import wiring
        wiring.reset(replace(self.settings, archive_sync_max_bytes=0))
        status, body = self.http("GET", f"/batches/{bid}/download?redirect=false")
        assert status == 202, (status, body)
        assert self.build_archives() == 1
        wiring.reset(self.settings)
        self.http("GET", f"/batches/{bid}/download?redirect=false", expect=200)

        # the archive writer's multipart path and its abort path (archives over one 16 MiB part)
        self._multipart(bid)

        # archives built in parallel parts: one to the end (a task delivered twice), one whose batch
        # is deleted while its parts are built
        self._parallel_archives([web["id"], thumb["id"]])

        # cancel: one file processed, then cancel; a late upload is discarded
        batch2, uploads2 = self.new_batch([web["id"]], [
            {"name": "a.png", "size": len(_image("PNG")), "content_type": "image/png"},
            {"name": "b.png", "size": len(_image("PNG")), "content_type": "image/png"},
            {"name": "c.png", "size": len(_image("PNG")), "content_type": "image/png"}])
        self.upload(uploads2[0], _image("PNG"))
        self.process(uploads2[0]["fields"]["key"])
        self._cancel_racing_worker(batch2, uploads2[1])
        self.http("POST", f"/batches/{batch2['id']}/cancel", expect=409)
        self.upload(uploads2[2], _image("PNG"))
        self.process(uploads2[2]["fields"]["key"])   # after cancel: deleted, not processed
        # a processing message queued before the cancel (a retry's, say) discards its upload too
        self.sqs_invoke("process_upload", "imgbatch-uploads", [_s3_event(self.settings.bucket,
                                                                          uploads2[2]["fields"]["key"])])

        # expiry: one upload never comes; S3 has the other, whose notification is still queued
        # links are presigned only while time is left: warm clients and a few seconds to spare, under load
        warm = wiring.reset(replace(self.settings, upload_ttl_seconds=6, expiry_grace_seconds=0))
        warm.storage, warm.repository   # noqa: B018  (cached: built now, not inside the request)
        batch3, uploads3 = self.new_batch([web["id"]], [
            {"name": "late.png", "size": 10, "content_type": "image/png"},
            {"name": "stored.png", "size": len(_image("PNG")), "content_type": "image/png"},
            {"name": "late-big.png", "size": 7 * MIB, "content_type": "image/png"}])
        assert len(uploads3) == 3, (batch3, uploads3, time.time())
        self.upload(uploads3[1], _image("PNG"))
        self.put_parts(self.http("POST", f"/batches/{batch3['id']}/jobs/{uploads3[2]['job_id']}/multipart",
                                 expect=200)[1], b"\0" * (7 * MIB), only={1})
        # a drop folder whose files' announcements were lost: the sweep registers them
        self.s3.put_object(Bucket=self.settings.bucket, Key=f"drop/{OWNER}/lost/a.png", Body=_image("PNG"))
        self.discard_arrivals()
        self.marker("lost", json.dumps({"pipeline_ids": [web["id"]]}).encode())
        self.discard_arrivals()
        time.sleep(6.2)
        assert self.sweep() == {"expired": 2, "deletes_resumed": 0}   # and its parts are aborted
        wiring.reset(self.settings)
        self.drain_processing()
        _, got = self.http("GET", f"/batches/{batch3['id']}", expect=200)
        assert got["batch"]["status"] == "completed_with_errors", got["batch"]

        self._uploads_in_parts(web)
        drop_batch = self._drop_folders(web)

        # a cancel and a delete that a crash cut short: the sweep finishes both
        from chalicelib.services.clock import iso, utcnow
        repo = wiring.get().repository
        batch4, _ = self.new_batch([web["id"]], [{"name": "x.png", "size": 10, "content_type": "image/png"}])
        assert repo.finalize(repo.get_batch(batch4["id"]), "cancelled", iso(utcnow()))   # jobs never reached
        batch5, uploads5 = self.new_batch([web["id"]], [
            {"name": "y.png", "size": len(_image("PNG")), "content_type": "image/png"}])
        self.upload(uploads5[0], _image("PNG"))
        self.process(uploads5[0]["fields"]["key"])
        self.http("GET", f"/batches/{batch5['id']}/download?redirect=false", expect=200)   # an archive too
        assert repo.mark_deleting(repo.get_batch(batch5["id"]), iso(utcnow()))          # objects never removed
        assert repo.mark_deleting(repo.get_batch(drop_batch), iso(utcnow()))             # a drop folder's too
        assert self.sweep() == {"expired": 0, "deletes_resumed": 2}
        _, got = self.http("GET", f"/batches/{batch4['id']}", expect=200)
        assert got["batch"]["progress"]["cancelled"] == 1, got["batch"]
        self.http("GET", f"/batches/{batch5['id']}", expect=404)

        # a batch over one manifest chunk: its other jobs materialised in the background, its cancel
        # and its delete finished there too
        files = [{"name": f"PL_BIG{i}_x.png", "size": 10, "content_type": "image/png"} for i in range(CHUNK - 1)]
        big, big_uploads = self.new_batch([web["id"]], [
            {"name": "PL_BIG_first.png", "size": len(_image("PNG")), "content_type": "image/png"},
            {"name": "PL_BIG_parts.png", "size": 7 * MIB, "content_type": "image/png"}] + files)
        assert self.drain_maintenance() == 1                                   # materialise the second chunk
        self.upload(big_uploads[0], _image("PNG"))
        self.process(big_uploads[0]["fields"]["key"])                          # an upload and its outputs
        self.upload(big_uploads[2], b"not image!")                             # one that fails...
        self.process(big_uploads[2]["fields"]["key"])
        self.http("POST", f"/batches/{big['id']}/retry", expect=200)           # ...retried in the background
        assert self.drain_maintenance() == 1
        self.drain_processing()
        _, got = self.http("GET", f"/batches/{big['id']}", expect=200)
        assert got["batch"]["progress"]["failed"] == 1, got["batch"]["progress"]
        # an upload in parts begun, never finished: the background cancel aborts it
        self.http("POST", f"/batches/{big['id']}/jobs/{big_uploads[1]['job_id']}/multipart", expect=200)
        self.http("GET", f"/batches/{big['id']}/download?partial=true&redirect=false", expect=200)   # an archive
        self.http("POST", f"/batches/{big['id']}/cancel", expect=200)
        assert self.drain_maintenance() == 1                                   # cancel its jobs
        _, got = self.http("GET", f"/batches/{big['id']}", expect=200)
        assert got["batch"]["progress"]["cancelled"] == CHUNK - 1, got["batch"]["progress"]
        assert not self.s3.list_multipart_uploads(Bucket=self.settings.bucket,
                                                  Prefix=f"uploads/{big['id']}/").get("Uploads")
        self.http("DELETE", f"/batches/{big['id']}", expect=204)
        assert self.drain_maintenance() == 1                                   # purge it
        self.http("GET", f"/batches/{big['id']}", expect=404)
        self._big_drop_folder(web)

        # the events of everything so far; finished batches with outputs get their ZIP prebuilt
        records = self.publish_events()
        assert self.build_archives() >= 1
        self.publish_events(records)   # the stream delivers these records again: nothing is sent twice
        self.deliver_webhooks()

        # delete everything of the first batches
        for b in (bid, batch2["id"], batch3["id"], batch4["id"]):
            self.http("DELETE", f"/batches/{b}", expect=204)
        self.http("GET", f"/batches/{bid}", expect=404)
        self.publish_events()
        self.deliver_webhooks()
        types = {e["type"] for e in receiver.events()}
        assert {"ping", "batch.created", "batch.started", "batch.completed_with_errors", "batch.cancelled",
                "batch.deleted", "archive.ready"} <= types, types
        self.http("DELETE", f"/webhooks/{hook['id']}", expect=204)

    def _uploads_in_parts(self, web: dict) -> None:
        """A file in parts: started, resumed, refused with a part missing, completed, processed;
        another aborted; a batch cancelled and one deleted with uploads in parts unfinished."""
        big = _image("PNG") + b"\0" * (11 * MIB)   # trailing bytes: still a PNG to the decoder
        batch, uploads = self.new_batch([web["id"]], [
            {"name": "big.png", "size": len(big), "content_type": "image/png"},
            {"name": "big2.png", "size": len(big), "content_type": "image/png"}])
        path = f"/batches/{batch['id']}/jobs/{uploads[0]['job_id']}/multipart"
        self.put_parts(self.http("POST", path, expect=200)[1], big, only={1, 3})
        _, resumed = self.http("POST", path + "?limit=1", expect=200)
        assert resumed["upload"]["parts_uploaded"] == [1, 3]
        self.http("POST", path + "/complete", expect=400)                 # part 2 is missing
        self.put_parts(resumed, big)
        self.http("POST", path + "/complete", expect=200)
        self.process(f"uploads/{batch['id']}/{uploads[0]['job_id']}/big.png")   # S3's announcement
        self.http("POST", path + "/complete", expect=200)                 # again: already complete
        path2 = f"/batches/{batch['id']}/jobs/{uploads[1]['job_id']}/multipart"
        self.put_parts(self.http("POST", path2, expect=200)[1], big, only={2})
        self.http("DELETE", path2, expect=204)
        self.put_parts(self.http("POST", path2, expect=200)[1], big, only={1})
        self.http("POST", f"/batches/{batch['id']}/cancel", expect=200)    # aborts it
        batch2, uploads2 = self.new_batch([web["id"]], [{"name": "big.png", "size": len(big),
                                                          "content_type": "image/png"}])
        self.put_parts(self.http("POST", f"/batches/{batch2['id']}/jobs/{uploads2[0]['job_id']}/multipart",
                                 expect=200)[1], big, only={1})
        self.http("DELETE", f"/batches/{batch2['id']}", expect=204)         # aborts it
        assert not self.s3.list_multipart_uploads(Bucket=self.settings.bucket).get("Uploads")

    def _drop_folders(self, web: dict) -> str:
        """Markers that make no batch, one that does (files registered and processed where they
        are), the same marker again, a second marker; a drop batch deleted. Returns another drop
        batch, left for the sweep's interrupted delete."""
        bucket = self.settings.bucket
        for name, data in (("PL_DXB9_Front.png", _image("PNG")), ("notes.txt", b"not an image")):
            self.s3.put_object(Bucket=bucket, Key=f"drop/{OWNER}/shoot/{name}", Body=data)
        self.discard_arrivals()   # earlier uploads' announcements, handled long ago
        self.marker("shoot", json.dumps({"pipeline_ids": ["00000000-0000-4000-8000-000000000000"]}).encode())
        self.marker("shoot", b"{not json")
        self.marker("empty", json.dumps({"pipeline_ids": [web["id"]]}).encode())
        self.marker("shoot", json.dumps({"pipeline_ids": [web["id"]], "description": "dropped"}).encode())
        self.drain_arrivals()
        _, listed = self.http("GET", "/batches?search=dropped", expect=200)
        [made] = listed["batches"]
        assert made["status"] == "completed_with_errors", made
        self.sqs_invoke("register_drop", "imgbatch-drops", [_s3_event(bucket, f"drop/{OWNER}/shoot/_READY")])
        self.marker("shoot", json.dumps({"pipeline_ids": [web["id"]], "description": "second"}).encode())
        self.http("POST", f"/batches/{made['id']}/retry", expect=200)    # the non-image, from its folder
        self.drain_processing()
        self.http("DELETE", f"/batches/{made['id']}", expect=204)
        assert not self.s3.list_objects_v2(Bucket=bucket, Prefix=f"drop/{OWNER}/shoot/").get("Contents")
        self.s3.put_object(Bucket=bucket, Key=f"drop/{OWNER}/later/a.png", Body=_image("PNG"))
        self.marker("later", json.dumps({"pipeline_ids": [web["id"]], "description": "later"}).encode())
        self.drain_arrivals()
        _, listed = self.http("GET", "/batches?search=later", expect=200)
        return listed["batches"][0]["id"]

    def _big_drop_folder(self, web: dict) -> None:
        """A drop folder over one manifest chunk: the maintenance queue stores the second chunk's
        jobs and announces their files; deleting it purges the folder in the background."""
        bucket, folder = self.settings.bucket, f"drop/{OWNER}/big/"
        for i in range(CHUNK + 1):
            self.s3.put_object(Bucket=bucket, Key=f"{folder}PL_DRP{i}_x.png", Body=b"not an image")
        self.marker("big", json.dumps({"pipeline_ids": [web["id"]], "description": "big drop"}).encode())
        self.discard_arrivals()   # the first chunk's announcements: processing them is covered above
        assert self.drain_maintenance() == 1                                   # the second chunk, announced
        url = self.settings.queue_url("arrivals")
        announced = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        assert announced, "the second chunk's file was not announced"
        self.sqs_invoke("register_uploads", "imgbatch-arrivals", [announced[0]["Body"]])
        self.discard_arrivals()
        self.drain_processing()                                                # it fails: not an image
        _, listed = self.http("GET", "/batches?search=big%20drop", expect=200)
        self.http("POST", f"/batches/{listed['batches'][0]['id']}/retry", expect=200)   # its file is in the folder
        assert self.drain_maintenance() == 1                                   # retried in the background
        self.drain_processing()
        self.http("DELETE", f"/batches/{listed['batches'][0]['id']}", expect=204)
        assert self.drain_maintenance() == 1                                   # purge it, and its folder
        assert not self.s3.list_objects_v2(Bucket=bucket, Prefix=folder).get("Contents")

    def _cancel_racing_worker(self, batch: dict, upload: dict) -> None:
        """The user cancels while a worker renders: the worker's commit loses and it removes its outputs."""
        from chalicelib import wiring
        from chalicelib.domain import imaging

        self.upload(upload, _image("PNG"))
        render = imaging.render

        def render_then_cancel(*args, **kwargs):
            out = render(*args, **kwargs)
            with self.rec.function("api_handler"):
                wiring.get().processor.cancel(OWNER, batch["id"])
            return out

        imaging.render = render_then_cancel
        try:
            self.process(upload["fields"]["key"])
        finally:
            imaging.render = render
        job = wiring.get().repository.get_job(batch["id"], upload["job_id"])
        assert job["status"] == "cancelled", job

    def build_parts(self, limit: int | None = None) -> int:
        """What the parts queue's event source mapping does: receive, invoke build_archive_part."""
        url, done = self.settings.queue_url("archive_parts"), 0
        while limit is None or done < limit:
            got = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1).get("Messages", [])
            if not got:
                break
            self.sqs_invoke("build_archive_part", "imgbatch-archive-parts", [got[0]["Body"]])
            if done == 0:   # SQS delivers a message twice now and then
                self.sqs_invoke("build_archive_part", "imgbatch-archive-parts", [got[0]["Body"]])
            self.sqs.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])
            done += 1
        return done

    def _parallel_archives(self, pipeline_ids: list[str]) -> None:
        import moto.s3.models
        from chalicelib import wiring
        small = replace(self.settings, archive_sync_max_bytes=0, archive_min_part_size=256, archive_part_size=512,
                        archive_task_bytes=1024)
        s3_minimum = moto.s3.models.S3_UPLOAD_PART_MIN_SIZE
        moto.s3.models.S3_UPLOAD_PART_MIN_SIZE = 256   # S3's 5 MiB, scaled like the settings above
        wiring.reset(small)
        try:
            batches = []
            for n in range(2):
                files = [{"name": f"PL_PAR{n}_{i}.png", "size": len(_image("PNG", (48 + i, 40))),
                          "content_type": "image/png"} for i in range(3)]
                batch, uploads = self.new_batch(pipeline_ids, files)
                for u, f in zip(uploads, files):
                    self.upload(u, _image("PNG", (48 + int(f["name"][-5]), 40)))
                self.process(*[u["fields"]["key"] for u in uploads])
                self.http("GET", f"/batches/{batch['id']}/download?redirect=false", expect=202)
                assert self.build_archives() == 1
                batches.append(batch["id"])
            assert self.build_parts(limit=1) == 1   # the first batch's first task...
            self.http("DELETE", f"/batches/{batches[0]}", expect=204)   # ...then the batch goes
            assert self.build_parts() > 2
            assert "Uploads" not in self.s3.list_multipart_uploads(Bucket=self.settings.bucket)
            self.http("GET", f"/batches/{batches[1]}/download?redirect=false", expect=200)
        finally:
            moto.s3.models.S3_UPLOAD_PART_MIN_SIZE = s3_minimum
            wiring.reset(self.settings)

    def _multipart(self, batch_id: str) -> None:
        from chalicelib import wiring
        from chalicelib.adapters.multipart import MIN_PART_SIZE, MultipartUpload

        s3 = wiring.get().s3
        for function in ("api_handler", "build_archive"):
            with self.rec.function(function):
                key = f"archives/{batch_id}/probe/{function}.zip"
                with MultipartUpload(s3, self.settings.bucket, key, part_size=MIN_PART_SIZE) as upload:
                    upload.write(b"\0" * (MIN_PART_SIZE + 10))
                    upload.complete()
                try:
                    with MultipartUpload(s3, self.settings.bucket, key + ".failed", part_size=MIN_PART_SIZE) as upload:
                        upload.write(b"\0" * (MIN_PART_SIZE + 10))
                        raise RuntimeError("source object vanished")
                except RuntimeError:
                    pass
