"""A discrete-event model of DynamoDB's limits, driven by the service's per-file request pattern.

moto cannot show DynamoDB's ceilings (it serialises requests and has no capacity limits), and a
thousand real Lambdas are not on this machine, so the question "how many files per second can one
batch take at N concurrent functions?" is answered by simulation, in virtual time:

- Every partition key is its own partition with DynamoDB's published per-partition limits:
  1,000 WCU/s and 3,000 RCU/s (token buckets holding one second of capacity, so short bursts pass
  and sustained overload throttles). A request that finds a partition it touches out of capacity is
  throttled and retried by the client with botocore's backoff (exponential with full jitter, 8
  attempts, then the SQS record fails and comes back after the visibility timeout).
- Transactional writes cost 2 WCU per KB per item; plain writes 1 WCU per KB; index maintenance
  (LSI rows, GSI rows when a key changes) 1 WCU per KB on the index's partition; strongly
  consistent reads 1 RCU per 4 KB.
- Item-level transaction isolation: an item is held while a transaction on it runs inside DynamoDB
  (`hold_s`, 5 ms by default: not published; the client sees ~12 ms with the network); another
  transaction touching a held item is cancelled with
  TransactionConflict and retried by the repository (jittered exponential backoff, 10 attempts,
  repository._transact).
- Functions: `workers` concurrent processing functions and up to `arrival_workers` arrival
  functions, each taking SQS batches of 10 records; rendering a file costs `render_s`.

A design is the sequence of requests each function makes per invocation and per record (below:
`today` is main's design before sharding, `sharded` the new one; the request counts per file were
checked against the real code on moto by bench_contention). The model also keeps the logical state
(job status, counters, final-status writes) so a run proves the design stays exact under retries,
conflicts and 10% duplicate deliveries: counters equal the number of files, one final status.
"""
from __future__ import annotations

import heapq
import math
import random
from collections import Counter, deque
from dataclasses import dataclass, field

from chalicelib.domain.buckets import SETTLED_FIRST_LOOK

PARTITION_WCU, PARTITION_RCU = 1000.0, 3000.0
LATENCY = {"get": 0.004, "batch_get": 0.006, "tx": 0.012, "update": 0.006}   # as a client sees them
TX_HOLD_S = 0.005   # how long a transaction holds its items inside DynamoDB (not published; see hold_s)
THROTTLE_ATTEMPTS, CONFLICT_ATTEMPTS = 8, 10
VISIBILITY_TIMEOUT = 960.0


# --------------------------------------------------------------------------- requests

@dataclass
class Touch:
    """One item (or index row) a request reads or writes, with its cost."""
    partition: str
    wcu: float = 0.0
    rcu: float = 0.0
    item: str | None = None    # transactional items: held while the transaction runs


@dataclass
class Req:
    kind: str                  # get | batch_get | tx | update
    touches: list[Touch]
    apply: object = None       # callable run at commit; returns False when a condition fails


@dataclass
class Sleep:
    seconds: float


class Failed(Exception):
    """Retries exhausted: the SQS record fails and is redelivered later."""


def tx_write(partition: str, kb: float, item: str) -> Touch:
    return Touch(partition, wcu=2 * math.ceil(kb), item=item)


def index_write(partition: str, kb: float = 0.25) -> Touch:
    return Touch(partition, wcu=math.ceil(kb))


def read(partition: str, kb: float) -> Touch:
    return Touch(partition, rcu=math.ceil(kb / 4))


# --------------------------------------------------------------------------- the database

class Partition:
    __slots__ = ("w", "r", "t")

    def __init__(self):
        self.w, self.r, self.t = PARTITION_WCU, PARTITION_RCU, 0.0

    def refill(self, now: float) -> None:
        dt = now - self.t
        if dt > 0:
            self.w = min(PARTITION_WCU, self.w + dt * PARTITION_WCU)
            self.r = min(PARTITION_RCU, self.r + dt * PARTITION_RCU)
            self.t = now


class Dynamo:
    def __init__(self, hold_s: float):
        self.parts: dict[str, Partition] = {}
        self.held: dict[str, float] = {}
        self.hold_s = hold_s
        self.stats = Counter()
        self.throttled_by = Counter()   # partition (kind) -> throttled requests

    def serve(self, now: float, req: Req, latency: float) -> str:
        """'ok', 'throttled' or 'conflict' for a request arriving now (the outcome is known at once;
        the caller sees it after the request's latency)."""
        self.stats[f"requests_{req.kind}"] += 1
        need: dict[str, list[float]] = {}
        for t in req.touches:
            w_r = need.setdefault(t.partition, [0.0, 0.0])
            w_r[0] += t.wcu
            w_r[1] += t.rcu
        for key, (w, r) in need.items():
            part = self.parts.get(key)
            if part is None:
                part = self.parts[key] = Partition()
            part.refill(now)
            if part.w < w or part.r < r:
                self.stats["throttled"] += 1
                self.throttled_by[key.split("#")[0] if not key.startswith("gsi") else key.rsplit("#", 1)[0]] += 1
                return "throttled"
        if req.kind == "tx":
            items = [t.item for t in req.touches if t.item]
            if any(self.held.get(i, 0.0) > now for i in items):
                self.stats["conflicts"] += 1
                return "conflict"
            until = now + self.hold_s   # held while it runs inside DynamoDB
            for i in items:
                self.held[i] = until
        for key, (w, r) in need.items():
            part = self.parts[key]
            part.w -= w
            part.r -= r
            self.stats["wcu"] += w
            self.stats["rcu"] += r
        return "ok"


# --------------------------------------------------------------------------- the simulator

class Sim:
    def __init__(self, db: Dynamo, seed: int):
        self.db = db
        self.now = 0.0
        self.rng = random.Random(seed)
        self.events: list = []
        self.seq = 0

    def at(self, t: float, fn) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, fn))

    def spawn(self, gen) -> None:
        self.at(self.now, lambda: self._step(gen, None))

    def _step(self, gen, value) -> None:
        try:
            op = gen.send(value)
        except StopIteration:
            return
        if isinstance(op, Sleep):
            self.at(self.now + op.seconds, lambda: self._step(gen, None))
            return
        latency = LATENCY[op.kind] * self.rng.uniform(0.7, 1.5)
        outcome = self.db.serve(self.now, op, latency)
        if outcome == "ok" and op.apply is not None:
            outcome = "ok" if op.apply() is not False else "condition"
        self.at(self.now + latency, lambda: self._step(gen, outcome))

    def run(self, until: float) -> None:
        while self.events and self.events[0][0] <= until:
            self.now, _, fn = heapq.heappop(self.events)
            fn()


def call(sim: Sim, req: Req):
    """One request with the client's retries: botocore's for throttling, the repository's for
    TransactionConflict. Returns 'ok' or 'condition'; raises Failed when retries run out."""
    throttles = conflicts = 0
    while True:
        outcome = yield req
        if outcome in ("ok", "condition"):
            return outcome
        if outcome == "throttled":
            throttles += 1
            if throttles >= THROTTLE_ATTEMPTS:
                raise Failed("throttled")
            yield Sleep(sim.rng.uniform(0, min(20.0, 0.05 * 2 ** throttles)))
        else:
            conflicts += 1
            if conflicts >= CONFLICT_ATTEMPTS:
                raise Failed("conflict")
            yield Sleep(sim.rng.uniform(0, min(1.0, 0.01 * 2 ** conflicts)))


# --------------------------------------------------------------------------- the service, logically

@dataclass
class World:
    files: int
    shards: int
    job_partitions: int
    jobs: list = field(default_factory=list)       # 0 awaiting, 1 processing, 2 done
    attempt: list = field(default_factory=list)
    counters: Counter = field(default_factory=Counter)
    shard_done: list = field(default_factory=list)
    status: str = "queued"
    bucket_left: list = field(default_factory=list)
    buckets_done: int = 0
    final_writes: int = 0
    finished_at: float | None = None

    def __post_init__(self):
        self.jobs = [0] * self.files
        self.attempt = [0] * self.files
        self.shard_done = [0] * self.shards
        self.bucket_left = [0] * self.shards


class Design:
    """The requests one design makes; `today` and `buckets` below."""
    name = ""

    def bucket(self, j: int) -> int:
        return 0

    def __init__(self, world: World, sim: Sim, owner_status_keys: int = 1):
        self.w, self.sim = world, sim
        self.owner_status_keys = owner_status_keys

    def gsi_moves(self, job: int, old: str, new: str) -> list[Touch]:
        """The job-by-owner-and-status index row moves from one key to another."""
        shard = job % self.owner_status_keys
        return [index_write(f"gsi:owner#{old}#{shard}"), index_write(f"gsi:owner#{new}#{shard}")]

    # logical transitions (conditions as in the repository)
    def claim(self, j: int):
        def apply():
            if self.w.jobs[j] != 0 or self.w.status not in ("queued", "processing"):
                return False
            self.w.jobs[j], self.w.attempt[j] = 1, self.w.attempt[j] + 1
            self.w.counters["uploaded"] += 1
        return apply

    def finish(self, j: int, attempt: int):
        def apply():
            if self.w.jobs[j] != 1 or self.w.attempt[j] != attempt or self.w.status != "processing":
                return False
            self.w.jobs[j] = 2
            self.w.counters["succeeded"] += 1
            b = self.bucket(j)
            self.w.shard_done[b] += 1
            self.w.bucket_left[b] -= 1
            if self.w.bucket_left[b] == 0:
                self.w.buckets_done += 1
        return apply

    def start(self):
        def apply():
            if self.w.status != "queued":
                return False
            self.w.status = "processing"
        return apply

    def finalize(self):
        def apply():
            if self.w.status != "processing" or sum(self.w.shard_done) < self.w.files:
                return False
            self.w.status = "completed"
            self.w.final_writes += 1
            self.w.finished_at = self.sim.now
        return apply


class Today(Design):
    """main before sharding: every transition touches the one batch item (2 KB with a pipeline
    snapshot), jobs share the partition key batch_id (with the batch-position LSI), and the
    owner-status GSI has one key per status."""
    name = "today (one batch item)"
    BATCH_KB, JOB_KB = 2, 1

    def arrival(self, records):
        sim = self.sim
        for j in records:
            yield from call(sim, Req("get", [read("jobs:B", self.JOB_KB)]))
            yield from call(sim, Req("get", [read("batch:B", self.BATCH_KB)]))
            got = yield from call(sim, Req("tx", [tx_write("jobs:B", self.JOB_KB, f"job{j}"), index_write("jobs:B", 1),
                                                  tx_write("batch:B", self.BATCH_KB, "batch")]
                                           + self.gsi_moves(j, "awaiting", "processing"), self.claim(j)))
            if got == "ok" and self.w.status == "queued":
                yield from call(sim, Req("tx", [tx_write("batch:B", self.BATCH_KB, "batch"),
                                                tx_write("meta:stats", 1, "stats")], self.start()))

    def process(self, records):
        sim = self.sim
        for j in records:
            yield from call(sim, Req("get", [read("jobs:B", self.JOB_KB)]))
            yield from call(sim, Req("get", [read("batch:B", self.BATCH_KB)]))
            if self.w.jobs[j] != 1:
                continue
            attempt = self.w.attempt[j]
            yield Sleep(self.render_s)
            yield from call(sim, Req("tx", [tx_write("jobs:B", self.JOB_KB, f"job{j}"), index_write("jobs:B", 1),
                                            tx_write("batch:B", self.BATCH_KB, "batch")]
                                     + self.gsi_moves(j, "processing", "completed"), self.finish(j, attempt)))
            yield from call(sim, Req("get", [read("batch:B", self.BATCH_KB)]))
            if self.w.counters["succeeded"] >= self.w.files and self.w.status == "processing":
                yield from call(sim, Req("tx", [tx_write("batch:B", self.BATCH_KB, "batch"),
                                                tx_write("meta:stats", 1, "stats")], self.finalize()))


class Buckets(Design):
    """The new design: a batch's files are spread over K buckets of about `bucket_size` files (by
    a hash of the job id). A bucket is one partition key holding its jobs and a small counter item,
    so every per-file transaction touches two items of one small partition, and each partition
    sees only its bucket's files. The last file of a bucket (found by a condition on the counter,
    not by a read) reads the buckets' counters from its own on until one has a file left; the one
    that finds them all complete writes the final status (conditionally: exactly one does). The owner-status index key is spread over 32 suffixes; the arrival reads its jobs with
    one BatchGetItem per invocation, and the processing message carries the job's state."""
    name = "bucketed counters"
    BATCH_KB, JOB_KB, COUNTER_KB = 2, 1, 0.2

    def bucket(self, j: int) -> int:
        return (j * 2654435761) % self.w.shards

    def part(self, j: int) -> str:
        return f"jobs:B#{self.bucket(j)}"

    def counter(self, j: int) -> Touch:
        b = self.bucket(j)
        return tx_write(f"jobs:B#{b}", self.COUNTER_KB, f"counter{b}")

    def arrival(self, records):
        sim = self.sim
        yield from call(sim, Req("batch_get", [read(self.part(j), self.JOB_KB) for j in records]))
        yield from self.batch_once()
        for j in records:
            got = yield from call(sim, Req("tx", [tx_write(self.part(j), self.JOB_KB, f"job{j}"), self.counter(j)]
                                           + self.gsi_moves(j, "awaiting", "processing"), self.claim(j)))
            if got == "ok" and self.w.status == "queued":
                yield from call(sim, Req("tx", [tx_write("batch:B", self.BATCH_KB, "batch"),
                                                tx_write("meta:stats", 1, "stats")], self.start()))

    def batch_once(self):
        """The batch's immutable parts (pipelines, bucket count) are read once per function
        instance and kept: its status never gates a transition (the conditions do)."""
        if self.sim.rng.random() < self.cold:
            yield from call(self.sim, Req("get", [read("batch:B", self.BATCH_KB)]))

    def process(self, records):
        sim = self.sim
        yield from self.batch_once()
        for j in records:
            if self.w.jobs[j] != 1:
                continue
            attempt = self.w.attempt[j]
            yield Sleep(self.render_s)
            b = self.bucket(j)
            last = self.w.bucket_left[b] == 1        # the counter's condition says so (no read)
            touches = [tx_write(self.part(j), self.JOB_KB, f"job{j}"), self.counter(j)] + \
                self.gsi_moves(j, "processing", "completed")
            if not last:
                yield from call(sim, Req("tx", touches, self.finish(j, attempt)))
                continue
            # The bucket's last file: its first attempt is cancelled by the counter's condition
            # (a cancelled transaction still costs its writes), so it knows it is last without a
            # read; it commits, then reads the buckets' counters from its own on (BatchGetItem,
            # ten keys, then 100 a request), stops at the first with a file left, and when it
            # reads them all complete writes the final status once (repository.settled_batch).
            yield from call(sim, Req("tx", touches))
            yield from call(sim, Req("tx", touches, self.finish(j, attempt)))
            order = [(b + 1 + i) % self.w.shards for i in range(self.w.shards)]
            start, size, settled = 0, SETTLED_FIRST_LOOK, True
            while settled and start < len(order):
                group = order[start:start + size]
                yield from call(sim, Req("batch_get", [read(f"jobs:B#{k}", self.COUNTER_KB) for k in group]))
                settled = all(self.w.bucket_left[k] == 0 for k in group)
                start, size = start + size, 100
            if settled and self.w.status == "processing":
                yield from call(sim, Req("tx", [tx_write("batch:B", self.BATCH_KB, "batch"),
                                                tx_write("meta:stats", 1, "stats")], self.finalize()))


DESIGNS = {"today": Today, "buckets": Buckets}


def simulate(design: str, files: int, workers: int, render_s: float = 0.1, hold_s: float = TX_HOLD_S,
             bucket_size: int = 100, duplicates: float = 0.1, seed: int = 1, limit_s: float = 3600.0,
             arrival_workers: int = 100) -> dict:
    """Run one batch of `files` through `workers` processing functions, fed by at most
    `arrival_workers` arrival functions (their event source's MaximumConcurrency: an arrival is a
    few milliseconds of work, so a hundred keep up with thousands of files per second)."""
    db = Dynamo(hold_s)
    sim = Sim(db, seed)
    buckets = max(1, math.ceil(files / bucket_size)) if design == "buckets" else 1
    world = World(files, buckets, buckets)
    impl = DESIGNS[design](world, sim, owner_status_keys=32 if design == "buckets" else 1)
    for j in range(files):
        world.bucket_left[impl.bucket(j)] += 1
    impl.render_s = render_s
    impl.cold = min(1.0, 2 * workers / max(1, files / 10))   # share of invocations on a fresh instance
    arrivals = deque(range(files))
    extra = [j for j in range(files) if sim.rng.random() < duplicates]   # S3 delivers these twice
    arrivals.extend(extra)
    processing: deque = deque()
    outcome = Counter()

    def function(queue: deque, handler, forward: deque | None):
        while True:
            if not queue:
                if not (arrivals or processing) and world.status == "completed":
                    return
                yield Sleep(0.02)  # long poll
                continue
            records = [queue.popleft() for _ in range(min(10, len(queue)))]
            try:
                yield Sleep(0.002)  # invocation overhead
                yield from handler(records)
                if forward is not None:
                    forward.extend(j for j in records if world.jobs[j] == 1)
                outcome["batches_ok"] += 1
            except Failed as exc:
                outcome[f"failed_{exc}"] += 1
                sim.at(sim.now + VISIBILITY_TIMEOUT, lambda rs=records: queue.extend(rs))

    for _ in range(min(workers, arrival_workers)):
        sim.spawn(function(arrivals, impl.arrival, processing))
    for _ in range(workers):
        sim.spawn(function(processing, impl.process, None))
    sim.run(limit_s)
    done = world.counters["succeeded"]
    elapsed = world.finished_at or sim.now
    requests = sum(v for k, v in db.stats.items() if k.startswith("requests_"))
    return {
        "design": design, "files": files, "workers": workers, "elapsed_s": elapsed,
        "files_per_s": done / elapsed if elapsed else 0.0, "finished": world.status == "completed",
        # never counted twice; and once finished, every file counted
        "exact": max(world.counters["uploaded"], world.counters["succeeded"]) <= files and (
            world.status != "completed" or (world.counters["uploaded"], world.counters["succeeded"]) == (files, files)),
        "final_writes": world.final_writes, "conflicts": db.stats["conflicts"], "throttled": db.stats["throttled"],
        "requests_per_file": requests / files, "read_units_per_file": db.stats["rcu"] / files, "redeliveries": sum(v for k, v in outcome.items() if k.startswith("failed")),
        "ideal_files_per_s": workers / render_s, "throttled_by": dict(db.throttled_by.most_common(4)),
    }
