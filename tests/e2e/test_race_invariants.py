"""A race test that cannot be talked out of a bug: random interleavings of every action a user,
S3 and the sweep can take, over a few dozen batches on the real local stack, then invariants.

Create, upload, duplicate S3 events, cancel, retry, delete and expiry run from many threads in a
seeded random order. Once everything has settled, the books must balance exactly: the stats add up
and agree with the lists, every final batch accounts for every file, the job rows agree with the
counters, nothing is negative, and every stored object belongs to a batch that still exists.
"""
from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote_plus

import pytest

from tests import images
from tests.e2e.conftest import LocalStack, upload, wait_for

pytestmark = pytest.mark.e2e

STATUSES = ("queued", "processing", "completed", "completed_with_errors", "failed", "cancelled")
FINAL = {"completed", "completed_with_errors", "failed", "cancelled"}
SEED = int(os.environ.get("RACE_SEED", "20261201"))  # RACE_SEED explores other interleavings
THREADS = 8
ACTIONS = 260
TTL = 12  # seconds: batches nobody finishes expire during the run


def _s3_event(key: str) -> str:
    return json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Post",
                                    "s3": {"bucket": {"name": "imgbatch-local"},
                                           "object": {"key": quote_plus(key)}}}]})


class World:
    """What the test knows it did; the service is judged against it afterwards."""

    def __init__(self, stack: LocalStack, pipeline_id: str):
        self.stack = stack
        self.http = stack.session()
        self.pipeline_id = pipeline_id
        self.lock = threading.Lock()
        self.batches: dict[str, dict] = {}      # id -> {"uploads": [...], "uploaded": set()}
        self.deleted: set[str] = set()
        self.body = images.png((12, 12))
        self.bad = b"not an image at all, but the declared size"
        self.sqs = stack.boto("sqs")
        self.queue_url = self.sqs.get_queue_url(QueueName="imgbatch-uploads")["QueueUrl"]
        self.outcomes: Counter = Counter()
        self.server_errors: list[str] = []

    def create(self, rng: random.Random, n: int | None = None) -> None:
        n = n or rng.choice((1, 2, 3, 5, 8))
        files = [{"name": f"PL_RACE{i}_{rng.randrange(10**6)}.png", "size": len(self.body)} for i in range(n)]
        r = self.http.post(f"{self.stack.url}/batches", json={"pipeline_id": self.pipeline_id, "files": files})
        assert r.status_code == 201, r.text
        created = r.json()
        uploads = list(created["uploads"])
        cursor = created["uploads_next_cursor"]
        while cursor:
            page = self.http.get(f"{self.stack.url}/batches/{created['batch']['id']}/uploads",
                                 params={"cursor": cursor}).json()
            uploads += page["uploads"]
            cursor = page["next_cursor"]
        with self.lock:
            self.batches[created["batch"]["id"]] = {"uploads": uploads, "uploaded": set()}

    def pick(self, rng: random.Random) -> str | None:
        with self.lock:
            live = sorted(set(self.batches) - self.deleted)
        return rng.choice(live) if live else None

    def upload(self, rng: random.Random, bid: str) -> None:
        entry = self.batches[bid]
        u = rng.choice(entry["uploads"])
        data = self.body if rng.random() < 0.85 else self.bad[:len(self.body)].ljust(len(self.body), b"x")
        if upload(u, data).status_code == 204:
            with self.lock:
                entry["uploaded"].add(u["fields"]["key"])

    def duplicate(self, rng: random.Random, bid: str) -> None:
        keys = sorted(self.batches[bid]["uploaded"])
        if keys:
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=_s3_event(rng.choice(keys)))

    def act(self, rng: random.Random, verb: str, bid: str) -> None:
        if verb == "delete":
            r = self.http.delete(f"{self.stack.url}/batches/{bid}")
            if r.status_code == 204:
                with self.lock:
                    self.deleted.add(bid)
        else:
            r = self.http.post(f"{self.stack.url}/batches/{bid}/{verb}")
        with self.lock:
            self.outcomes[(verb, r.status_code)] += 1
            if r.status_code >= 500:
                self.server_errors.append(f"{verb} {bid}: {r.status_code} {r.text[:200]}")


def _run(world: World, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(ACTIONS // THREADS):
        roll = rng.random()
        if roll < 0.08:
            world.create(rng)
            continue
        bid = world.pick(rng)
        if bid is None:
            continue
        if roll < 0.55:
            world.upload(rng, bid)
        elif roll < 0.70:
            world.duplicate(rng, bid)
        elif roll < 0.78:
            world.act(rng, "cancel", bid)
        elif roll < 0.93:
            world.act(rng, "retry", bid)
        else:
            world.act(rng, "delete", bid)
        time.sleep(rng.random() * 0.05)


def _all_batches(http, url) -> list[dict]:
    out, cursor = [], None
    while True:
        page = http.get(f"{url}/batches", params={"limit": 200, **({"cursor": cursor} if cursor else {})}).json()
        out += page["batches"]
        cursor = page["next_cursor"]
        if not cursor:
            return out


def _all_jobs(http, url, bid) -> list[dict]:
    jobs, cursor = [], None
    while True:
        b = http.get(f"{url}/batches/{bid}", params={"jobs_cursor": cursor} if cursor else {}).json()["batch"]
        jobs += b["jobs"]
        cursor = b["jobs_next_cursor"]
        if not cursor:
            return jobs


def test_random_interleavings_keep_every_invariant():
    stack = LocalStack(UPLOAD_TTL_SECONDS=TTL, EXPIRY_GRACE_SECONDS=1, SWEEP_SECONDS=1, WORKERS=4).start()
    try:
        http = stack.session()
        r = http.post(f"{stack.url}/pipelines", json={"name": "race", "format": "png", "width": 8})
        assert r.status_code == 201, r.text
        world = World(stack, r.json()["pipeline"]["id"])
        seeder = random.Random(SEED)
        for _ in range(24):
            world.create(seeder)
        for _ in range(3):  # big enough that a delete is still running when other actions land
            world.create(seeder, n=400)
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(lambda n: _run(world, SEED + n), range(THREADS)))
        # A second wave once the first batches' uploads have expired: late uploads, retries of
        # final batches (upload_expired jobs whose file came late among them), more of everything.
        time.sleep(TTL + 3)
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(lambda n: _run(world, SEED + 100 + n), range(THREADS)))

        def settled():
            batches = _all_batches(http, stack.url)
            open_ = [b["id"] for b in batches if b["status"] not in FINAL]
            depth = sum(int(world.sqs.get_queue_attributes(QueueUrl=q, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"][a])
                for q in world.sqs.list_queues()["QueueUrls"] if not q.endswith("-dlq")
                for a in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"))
            return batches if not open_ and depth == 0 else None

        batches = wait_for(settled, timeout=TTL + 90, interval=1, what="every batch final and every queue empty")
        _check_invariants(world, http, stack, batches)
    finally:
        stack.stop()


def _check_invariants(world: World, http, stack, batches: list[dict]) -> None:
    problems = [f"server error: {e}" for e in world.server_errors]
    stats = http.get(f"{stack.url}/batches/stats").json()
    listed = {b["id"]: b for b in batches}
    by_status = Counter(b["status"] for b in batches)
    if sum(stats[s] for s in STATUSES) != stats["total_batches"]:
        problems.append(f"stats per status do not sum to total_batches: {stats}")
    problems += [f"stats[{s}] is negative: {stats[s]}" for s in STATUSES if stats[s] < 0]
    if stats["total_batches"] != len(listed):
        problems.append(f"stats say {stats['total_batches']} batches, the list has {len(listed)}")
    problems += [f"stats[{s}] = {stats[s]} but the list has {by_status[s]}"
                 for s in STATUSES if stats[s] != by_status[s]]
    for s in STATUSES:  # the status filter answers from another index: it must agree too
        page = http.get(f"{stack.url}/batches", params={"status": s, "limit": 200}).json()
        if len(page["batches"]) != by_status[s] or page["next_cursor"]:
            problems.append(f"?status={s} lists {len(page['batches'])}, expected {by_status[s]}")
    if stats["total_files_all_time"] != sum(b["total_files"] for b in batches):
        problems.append(f"total_files_all_time {stats['total_files_all_time']} != files of listed batches "
                        f"{sum(b['total_files'] for b in batches)}")
    if listed and stats["max_files_in_batch"] != max(b["total_files"] for b in batches):
        problems.append(f"max_files_in_batch {stats['max_files_in_batch']} disagrees with the list")

    for bid, b in listed.items():
        p = b["progress"]
        if min(p["uploaded"], p["succeeded"], p["failed"], p["cancelled"]) < 0:
            problems.append(f"{bid}: negative counter {p}")
        if p["succeeded"] + p["failed"] + p["cancelled"] != b["total_files"]:
            problems.append(f"{bid} ({b['status']}): {p} does not account for {b['total_files']} files")
        if not p["succeeded"] <= p["uploaded"] <= b["total_files"]:
            problems.append(f"{bid}: uploaded {p['uploaded']} outside [succeeded, total]: {p}")
        jobs = _all_jobs(http, stack.url, bid)
        counts = Counter(j["status"] for j in jobs)
        for job_status, counter in (("completed", "succeeded"), ("failed", "failed"), ("cancelled", "cancelled")):
            if counts[job_status] != p[counter]:
                problems.append(f"{bid}: {counts[job_status]} jobs {job_status} but progress.{counter} = "
                                f"{p[counter]}")
        if counts["awaiting_upload"] or counts["processing"]:
            problems.append(f"{bid} is {b['status']} with unfinished jobs: {dict(counts)}")
        if b["status"] in FINAL and not b["completed_at"]:
            problems.append(f"{bid} is {b['status']} without completed_at")

    for bid in world.deleted:
        if http.get(f"{stack.url}/batches/{bid}").status_code != 404:
            problems.append(f"deleted batch {bid} still answers")
    s3 = stack.boto("s3")
    stray = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="imgbatch-local"):
        for obj in page.get("Contents", []):
            parts = obj["Key"].split("/")
            if len(parts) < 2 or parts[1] not in listed:
                stray.append(obj["Key"])
    if stray:
        problems.append(f"{len(stray)} stored object(s) belong to no live batch, e.g. {stray[:3]}")
    print(f"race: {len(listed)} live, {len(world.deleted)} deleted batches; actions {dict(world.outcomes)}; "
          f"stats {stats}")
    assert not problems, "\n".join([f"{len(problems)} invariant(s) broken "
                                    f"(actions: {dict(world.outcomes)}):"] + problems[:40])
