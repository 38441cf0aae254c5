"""The uploader on its own: streaming, retries, progress accounting, concurrency."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from imgbatch.retry import MAX_DELAY, backoff_delay, retry_after_seconds
from imgbatch.upload import UploadInterrupted, Uploader, UploadTask, describe_s3_error


def task(path: Path, name: str | None = None) -> UploadTask:
    return UploadTask(job_id=f"job-{path.name}", file_name=name or path.name, path=path,
                      size=path.stat().st_size, content_type="image/png",
                      url="https://s3.test/bucket", fields={"key": f"k/{path.name}", "policy": "p"})


def file_of(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / name
    path.write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    return path


class Recorder:
    def __init__(self, responses=()):
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []
        self.bodies: list[bytes] = []
        self.sleeps: list[float] = []
        self.lock = threading.Lock()

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        with self.lock:
            self.requests.append(request)
            self.bodies.append(body)
            planned = self.responses.pop(0) if self.responses else httpx.Response(204)
        if isinstance(planned, BaseException):
            raise planned
        return planned

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handler))


def test_streams_the_file_in_chunks_with_a_content_length(tmp_path):
    path = file_of(tmp_path, "big.png", 300 * 1024)
    rec = Recorder()
    chunks: list[int] = []

    (result,) = Uploader(rec.client(), sleep=rec.sleeps.append).run([task(path)], on_bytes=chunks.append)

    assert result.ok and result.attempts == 1
    assert sum(chunks) == path.stat().st_size
    assert len(chunks) >= 5 and max(chunks) <= 64 * 1024  # read piecewise, never whole
    request = rec.requests[0]
    assert int(request.headers["content-length"]) == len(rec.bodies[0])
    assert path.read_bytes() in rec.bodies[0]
    assert rec.bodies[0].index(b'name="policy"') < rec.bodies[0].index(b'name="file"')


def test_retry_after_is_honoured_and_progress_is_not_double_counted(tmp_path):
    path = file_of(tmp_path, "a.png", 1000)
    rec = Recorder([httpx.Response(429, headers={"Retry-After": "4"}), httpx.Response(204)])
    net: list[int] = []

    (result,) = Uploader(rec.client(), sleep=rec.sleeps.append).run([task(path)], on_bytes=net.append)

    assert result.ok and result.attempts == 2
    assert rec.sleeps == [4.0]
    assert sum(net) == 1000


def test_failures_take_their_bytes_back(tmp_path):
    path = file_of(tmp_path, "a.png", 1000)
    rec = Recorder([httpx.Response(403, content=b"<Error><Code>AccessDenied</Code>"
                                               b"<Message>Policy expired</Message></Error>")])
    net: list[int] = []

    (result,) = Uploader(rec.client(), sleep=rec.sleeps.append).run([task(path)], on_bytes=net.append)

    assert not result.ok and result.status == 403 and result.attempts == 1
    assert result.error == "HTTP 403 AccessDenied: Policy expired"
    assert sum(net) == 0 and rec.sleeps == []


@pytest.mark.parametrize("fault", [httpx.ReadTimeout("slow"), httpx.ConnectError("refused"),
                                   httpx.Response(500), httpx.Response(502)])
def test_transient_faults_are_retried(tmp_path, fault):
    path = file_of(tmp_path, "a.png", 10)
    rec = Recorder([fault])
    (result,) = Uploader(rec.client(), sleep=rec.sleeps.append).run([task(path)])
    assert result.ok and result.attempts == 2 and len(rec.sleeps) == 1


@pytest.mark.parametrize("status", [400, 403, 404, 413])
def test_client_errors_are_not_retried(tmp_path, status):
    path = file_of(tmp_path, "a.png", 10)
    rec = Recorder([httpx.Response(status)])
    (result,) = Uploader(rec.client(), sleep=rec.sleeps.append).run([task(path)])
    assert not result.ok and result.attempts == 1 and rec.sleeps == []


def test_backoff_grows_and_is_capped_between_attempts(tmp_path):
    path = file_of(tmp_path, "a.png", 10)
    rec = Recorder([httpx.Response(503)] * 10)
    (result,) = Uploader(rec.client(), sleep=rec.sleeps.append, rand=lambda: 1.0, max_attempts=4).run([task(path)])
    assert not result.ok and "gave up after 4 attempts" in result.error
    assert rec.sleeps == [0.5, 1.0, 2.0]


def test_a_file_that_changed_size_is_not_sent(tmp_path):
    path = file_of(tmp_path, "a.png", 10)
    t = task(path)
    path.write_bytes(b"longer than before")
    rec = Recorder()
    (result,) = Uploader(rec.client(), sleep=rec.sleeps.append).run([t])
    assert not result.ok and "changed since the batch was created" in result.error
    assert rec.requests == []


def test_concurrency_is_bounded(tmp_path):
    tasks = [task(file_of(tmp_path, f"{i}.png", 100)) for i in range(12)]
    active, peak, lock = 0, 0, threading.Lock()

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.02)
        request.read()
        with lock:
            active -= 1
        return httpx.Response(204)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    results = Uploader(client, concurrency=3).run(tasks)
    assert all(r.ok for r in results) and len(results) == 12
    assert peak <= 3


def test_interrupt_reports_what_finished(tmp_path):
    paths = [file_of(tmp_path, f"{i}.png", 10) for i in range(3)]
    rec = Recorder([httpx.Response(204), KeyboardInterrupt()])
    with pytest.raises(UploadInterrupted) as caught:
        Uploader(rec.client(), concurrency=1, sleep=rec.sleeps.append).run([task(p) for p in paths])
    finished = {r.task.file_name for r in caught.value.results}
    # 0.png finished before the interrupt; 2.png may or may not have started before the pool
    # was shut down; 1.png (interrupted) never counts as finished.
    assert "0.png" in finished and "1.png" not in finished
    assert all(r.ok for r in caught.value.results)


def test_backoff_delay_bounds():
    assert backoff_delay(1, rand=0.0) == 0.25 and backoff_delay(1, rand=1.0) == 0.5
    assert backoff_delay(3, rand=1.0) == 2.0
    assert backoff_delay(30, rand=1.0) == MAX_DELAY


def test_retry_after_parsing():
    assert retry_after_seconds("5") == 5.0
    assert retry_after_seconds(None, default=2.0) == 2.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after_seconds("soon", default=1.0) == 1.0


def test_describe_s3_error_without_xml():
    assert describe_s3_error(httpx.Response(503, text="")) == "HTTP 503 Service Unavailable"
