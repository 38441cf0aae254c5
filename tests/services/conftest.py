"""Service tier: the use cases and the processing state machine on the in-memory adapters
(wiring.Container.in_memory()). No HTTP, no moto, no boto3 client: each test runs in
milliseconds, so races are replayed at the exact point where the other actor gets in."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import wiring
from chalicelib.domain import imaging
from chalicelib.settings import Settings


class FakeClock:
    """Every service reads time from here; tests move it."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@dataclass
class System:
    """The services wired on fakes, and what the outside world does to them: clients upload,
    S3 announces arrivals, the event source mapping drains the processing queue."""
    container: wiring.InMemoryContainer
    clock: FakeClock
    owner: str = "alice"

    def __getattr__(self, name):   # repo, storage, queue, batches, processor, archives, deleter, sweep, ...
        if name == "repo":
            return self.container.repository
        return getattr(self.container, name)

    def pipeline(self, owner: str | None = None, **spec) -> dict:
        return self.container.pipelines.create(owner or self.owner, {"name": "web", "format": "jpeg", "width": 40,
                                                                    **spec})

    def create(self, files: dict[str, bytes], pipelines: list[dict] | None = None, owner: str | None = None,
               **extra) -> dict:
        owner = owner or self.owner
        if pipelines is None:   # the owner's "web" pipeline, made the first time
            pipelines = [next((p for p in self.pipelines.list(owner) if p["name"] == "web"), None)
                         or self.pipeline(owner)]
        body = {"pipeline_ids": [p["id"] for p in pipelines],
                "files": [{"name": n, "size": len(b), "content_type": "image/png"} for n, b in files.items()], **extra}
        return self.batches.create(owner, body)

    def key(self, created: dict, name: str) -> str:
        """Where the client uploads `name` (the created batch may hold only the first page of uploads)."""
        signed = [u["fields"]["key"] for u in created["uploads"] if u["file_name"] == name and u["method"] == "POST"]
        return signed[0] if signed else next(
            j["key"] for j in self.repo.all_jobs(created["batch"]["id"]) if j["file_name"] == name)

    def upload(self, created: dict, files: dict[str, bytes]) -> list[str]:
        """The client's presigned POSTs: the objects are stored, nothing is announced yet."""
        keys = []
        for name, data in files.items():
            keys.append(self.key(created, name))
            self.storage.put(keys[-1], data, "image/png")
        return keys

    def arrive(self, *keys: str) -> list[str]:
        """S3's notifications, through the arrivals queue to register_uploads."""
        return [self.processor.register_key(k) for k in keys]

    def drain(self) -> list[str]:
        """Process everything the processing queue holds (and what processing queues meanwhile)."""
        outcomes = []
        while keys := self.queue.take():
            outcomes += [self.processor.process_key(k) for k in keys]
        return outcomes

    def deliver(self, created: dict, files: dict[str, bytes]) -> list[str]:
        """Upload, announce and process: the whole way of a file through the service."""
        self.arrive(*self.upload(created, files))
        return self.drain()

    def batch(self, batch_id: str, owner: str | None = None) -> dict:
        return self.batches.get(owner or self.owner, batch_id, {})["batch"]

    def jobs(self, batch_id: str) -> dict[str, dict]:
        return {j["file_name"]: j for j in self.batch(batch_id)["jobs"]}

    def stats(self, owner: str | None = None) -> dict:
        return self.batches.stats(owner or self.owner)

    def with_settings(self, **changes) -> None:
        """Settings the services were built with, changed (rebuilds the services, keeps the stores)."""
        self.container.settings = replace(self.container.settings, **changes)
        for name in ("batches", "processor", "archives", "deleter", "sweep", "pipelines", "multipart", "dropfolders"):
            self.container.__dict__.pop(name, None)
        self._set_clocks()

    def _set_clocks(self) -> None:
        for name in ("batches", "processor", "archives", "deleter", "pipelines", "multipart", "dropfolders"):
            getattr(self.container, name).clock = self.clock


START = datetime(2026, 5, 4, 10, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def system() -> System:
    built = System(wiring.Container.in_memory(Settings()), FakeClock(START))
    built._set_clocks()
    return built


STATUSES = ("queued", "processing", "completed", "completed_with_errors", "failed", "cancelled")


def assert_books_balance(system: System, expected_batches: int, owner: str = "alice") -> dict:
    """The owner's figures agree with the batches the owner can list."""
    stats = system.stats(owner)
    assert all(stats[s] >= 0 for s in STATUSES), stats
    assert sum(stats[s] for s in STATUSES) == stats["total_batches"] == expected_batches, stats
    listed = system.batches.list(owner, {"limit": "200"})["batches"]
    assert len(listed) == expected_batches
    for s in STATUSES:
        assert stats[s] == sum(b["status"] == s for b in listed), (s, stats)
    assert stats["total_files_all_time"] == sum(b["total_files"] for b in listed)
    return stats


def killed(*args, **kwargs):
    """Stands in for a step during which the process dies."""
    raise RuntimeError("killed")


def flaky_render(monkeypatch, failing_calls: set[int]):
    """Rendering fails on these calls (1-based) with corrupt_image, and works on the others."""
    real = imaging.render
    calls = {"n": 0}

    def render(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] in failing_calls:
            raise imaging.ImageError("corrupt_image", "injected failure")
        return real(*args, **kwargs)

    monkeypatch.setattr(imaging, "render", render)
