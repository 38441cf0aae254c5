"""Keep the local stack's AWS state (moto's DynamoDB, S3 and SQS) in a data directory across restarts.

moto keeps everything in memory and has no persistence of its own; its recorder replays every
request ever made, so a replay grows without bound and re-runs receives and deletes with stale
receipt handles. This module does what moto's maintainers suggest instead (getmoto/moto#1069): it
pickles moto's backends, and loads them before moto starts.

A snapshot is taken after state has changed, at most every `interval` seconds, and once more at
shutdown. It is a consistent cut: requests moto is serving finish and new ones wait (`Gate`) while
the process forks; the child process pickles its frozen copy of memory and writes it, so moto
waits for the fork, not for the pickling (0.12 s instead of 0.6 s with 1,000 batches and 5,000
objects: bench/bench_persistence.py).

    DATA_DIR/state.bin      one JSON header line (format, moto and Python versions, contents),
                            then the pickled backends, every S3 object body replaced by its id
    DATA_DIR/blobs/<id>     S3 object bodies, each written once (moto never changes a body: a PUT
                            makes a new object), deleted once no saved state refers to them
    DATA_DIR/lock           flock'ed by the stack using the directory (and its snapshot child)

Writes are crash-safe: bodies and the state go to temporary files that are fsynced and renamed
into place, and a body is deleted only after a state that no longer needs it is durable, so a crash
at any point leaves the previous snapshot whole. A hard kill loses what changed after the last
snapshot began (README). Messages in flight (received, not yet deleted) become visible again on
restore: their consumers were threads of the stopped process, and SQS too redelivers them once
their visibility timeout runs out.
"""
from __future__ import annotations

import copyreg
import fcntl
import gc
import io
import json
import logging
import os
import pickle
import select
import signal
import stat
import sys
import threading
import time
import traceback
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger("devstack.persistence")

SERVICES = ("dynamodb", "s3", "sqs")
FORMAT = 1
STATE_FILE = "state.bin"
BLOBS_DIR = "blobs"
LOCK_FILE = "lock"
_BODY_ID = "_devstack_body"   # attribute naming the file of a moto S3 object's body
CHILD_TIMEOUT = 300.0         # a snapshot child that takes longer is killed (and retried)

# Requests that change nothing worth a snapshot. Anything else (every S3 or DynamoDB write, SQS
# send, delete and visibility change, actions not listed) marks the state as changed.
# ReceiveMessage is here although it counts a receive: idle pollers call it every second, and a
# restore makes messages in flight visible anyway.
_READ_ONLY_METHODS = {"GET", "HEAD", "OPTIONS"}
_READ_ONLY_ACTIONS = {
    "DynamoDB_20120810." + a for a in (
        "GetItem", "BatchGetItem", "Query", "Scan", "DescribeTable", "ListTables", "DescribeTimeToLive",
        "DescribeContinuousBackups", "ListTagsOfResource", "DescribeEndpoints")
} | {"AmazonSQS." + a for a in ("ReceiveMessage", "GetQueueUrl", "GetQueueAttributes", "ListQueues",
                                "ListQueueTags", "ListDeadLetterSourceQueues")}


class DataDirError(RuntimeError):
    """The data directory cannot be used: in use by another stack, or unreadable by this one."""


class SnapshotError(RuntimeError):
    """A snapshot failed; the previous one is intact."""


@dataclass
class Contents:
    tables: int = 0
    items: int = 0
    buckets: int = 0
    objects: int = 0
    object_bytes: int = 0
    queues: int = 0
    messages: int = 0
    in_flight: int = 0

    def describe(self) -> str:
        text = (f"{self.items:,} items in {self.tables} tables, {self.objects:,} objects "
                f"({self.object_bytes / 1e6:,.1f} MB), {self.messages:,} queued messages")
        return text + (f" ({self.in_flight} in flight)" if self.in_flight else "")


@dataclass
class SnapshotStats:
    paused_seconds: float = 0.0   # how long moto held still (requests waited)
    seconds: float = 0.0          # the whole snapshot: fork, pickle, writes, fsyncs
    state_bytes: int = 0
    new_bodies: int = 0
    new_body_bytes: int = 0
    removed_bodies: int = 0
    contents: Contents = field(default_factory=Contents)


class Gate:
    """A readers-writer lock around moto: requests share it, a snapshot takes it alone.

    A waiting snapshot goes first (new requests queue behind it), so a steady stream of requests
    cannot starve it. A long-polling ReceiveMessage steps out while it waits for messages
    (`_wait_outside_the_gate`): the stack's pollers long-poll all the time, and a snapshot (and
    every request queued behind it) would otherwise wait for their polls to run out."""

    def __init__(self):
        self._cond = threading.Condition()
        self._active = 0
        self._exclusive = False

    @contextmanager
    def shared(self):
        self._enter()
        _held.gates = getattr(_held, "gates", ()) + (self,)
        try:
            yield
        finally:
            _held.gates = _held.gates[:-1]
            self._leave()

    def _enter(self) -> None:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._active += 1

    def _leave(self) -> None:
        with self._cond:
            self._active -= 1
            if not self._active:
                self._cond.notify_all()

    def close(self) -> None:
        """Wait for the requests in progress, then let no request through until `reopen`."""
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive)
            self._exclusive = True
            self._cond.wait_for(lambda: not self._active)

    def reopen(self) -> None:
        with self._cond:
            self._exclusive = False
            self._cond.notify_all()


_held = threading.local()   # .gates: the gates the current thread's request holds


def _wait_outside_the_gate(original):
    """moto's Queue.wait_for_messages (the one place a ReceiveMessage waits), run with the
    request's gate released: the wait changes nothing, and the receive re-enters the gate before
    it takes any message."""
    def wait_for_messages(queue, timeout):
        gates = getattr(_held, "gates", ())
        for gate in gates:
            gate._leave()
        try:
            return original(queue, timeout)
        finally:
            for gate in gates:
                gate._enter()
    wait_for_messages.devstack_original = original
    return wait_for_messages


def _install_long_poll_patch() -> None:
    from moto.sqs.models import Queue
    if not hasattr(Queue.wait_for_messages, "devstack_original"):
        Queue.wait_for_messages = _wait_outside_the_gate(Queue.wait_for_messages)


class Persistence:
    """Snapshots of moto's backends in `data_dir`; see the module docstring.

    `open()` (lock the directory, load the last snapshot) before moto serves; wrap moto's WSGI app
    with `middleware`; `start()` the snapshot timer; `close()` at shutdown (a last snapshot, after
    which the gate stays closed, so nothing is acknowledged that would not be saved)."""

    def __init__(self, data_dir: Path | str, interval: float = 2.0, lock_wait: float = 30.0):
        self.data_dir = Path(data_dir).resolve()
        self.interval = interval
        self.lock_wait = lock_wait
        self.gate = Gate()
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._snapshot_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._lock_file = None
        self.restored: Contents | None = None
        self.last: SnapshotStats | None = None
        self._sealed = False   # the final snapshot closed the gate for good

    @property
    def blobs(self) -> Path:
        return self.data_dir / BLOBS_DIR

    # -- start ---------------------------------------------------------------
    def open(self) -> Contents | None:
        """Lock the directory and load its snapshot into moto; None when it holds none yet."""
        self.blobs.mkdir(parents=True, exist_ok=True)
        self._lock_file = self._lock()
        try:
            self.restored = self._restore()
        except BaseException:
            self._release()
            raise
        return self.restored

    def _lock(self):
        lock_file = open(self.data_dir / LOCK_FILE, "a+")
        deadline = time.monotonic() + self.lock_wait
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                lock_file.seek(0)
                holder = lock_file.read().strip()
                # A stack killed while its snapshot child was writing leaves that child holding
                # the lock for the moment it needs to finish: wait for it; fail at once when the
                # stack that wrote its pid into the file is alive.
                if _alive(holder) or time.monotonic() >= deadline:
                    lock_file.close()
                    raise DataDirError(
                        f"data directory {self.data_dir} is in use by another local stack "
                        f"({holder or 'pid unknown'}); stop that stack, or set DATA_DIR to another directory") from None
                time.sleep(0.1)
        lock_file.seek(0)
        lock_file.truncate()
        lock_file.write(f"pid {os.getpid()}\n")
        lock_file.flush()
        return lock_file

    def _release(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _restore(self) -> Contents | None:
        path = self.data_dir / STATE_FILE
        for leftover in self.data_dir.glob(f".{STATE_FILE}.*.tmp"):   # a snapshot cut short by a crash
            leftover.unlink()
        if not path.exists():
            _collect_garbage(self.blobs, keep=set())
            return None
        with open(path, "rb") as f:
            try:
                header = json.loads(f.readline())
            except ValueError as exc:
                raise DataDirError(f"{path} is not a snapshot ({exc}); {_RESET}") from None
            versions = {"format": FORMAT, "moto": _moto_version(), "python": _python_version()}
            written = {name: header.get(name) for name in versions}
            if written != versions:
                raise DataDirError(
                    f"{path} was written by {_describe(written)}; this stack runs {_describe(versions)}, and "
                    f"moto's objects do not carry over between versions. {_RESET}, or run the versions "
                    "that wrote it.")
            loader = _Unpickler(f, self.blobs)
            try:
                state = loader.load()
            except Exception as exc:
                raise DataDirError(f"cannot load {path}: {exc!r}. {_RESET}.") from exc
        for service, saved in state.items():
            _load_service_state(service, saved)
        contents = _contents(make_in_flight_visible=True)
        _collect_garbage(self.blobs, keep=loader.body_ids)
        log.info("restored %s from %s", contents.describe(), self.data_dir)
        return contents

    # -- serve ---------------------------------------------------------------
    def middleware(self, app):
        """WSGI middleware for moto: every request passes the gate; writes mark the state changed."""
        _install_long_poll_patch()

        def gated(environ, start_response):
            with self.gate.shared():
                if not _read_only(environ):
                    self._dirty.set()
                return app(environ, start_response)
        return gated

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="persistence", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if not self._dirty.is_set():
                continue
            try:
                self.snapshot()
            except Exception:
                log.exception("snapshot to %s failed; the previous one is intact, retrying in %s s",
                              self.data_dir, self.interval)

    # -- save ----------------------------------------------------------------
    def snapshot(self, *, final: bool = False) -> SnapshotStats:
        """Save the backends as they are now. A forked child pickles and writes while moto serves
        on; with `final` the pickling happens here and the gate stays closed afterwards."""
        _preload()
        with self._snapshot_lock:
            if self._sealed:
                raise SnapshotError("the final snapshot was taken; moto accepts nothing more")
            started = time.perf_counter()
            self.gate.close()
            self._sealed = final
            reopen = not final
            try:
                self._dirty.clear()
                _name_bodies()
                if final:
                    stats = _save(self.data_dir)
                    paused = time.perf_counter() - started
                else:
                    child = _Child.fork(self.data_dir)
                    paused = time.perf_counter() - started
                    self.gate.reopen()
                    reopen = False
                    stats = child.wait(CHILD_TIMEOUT)
            except BaseException:
                self._dirty.set()
                raise
            finally:
                if reopen:
                    self.gate.reopen()
            stats.paused_seconds = paused
            stats.seconds = time.perf_counter() - started
            self.last = stats
            log.debug("snapshot: %s", stats)
            return stats

    # -- stop ----------------------------------------------------------------
    def close(self) -> SnapshotStats | None:
        """A last snapshot if anything changed, leaving the gate closed; then unlock the directory."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            if self._sealed:
                return None
            if self._dirty.is_set():
                return self.snapshot(final=True)
            self.gate.close()
            self._sealed = True
            return None
        finally:
            self._release()


def _alive(holder: str) -> bool:
    """Whether the process named in the lock file ("pid N") exists."""
    try:
        pid = int(holder.split()[-1])
    except (IndexError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_RESET = "Run `make clean-data` to start empty (this deletes the local stack's data)"


def _describe(versions: dict) -> str:
    return f"snapshot format {versions['format']}, moto {versions['moto']} and Python {versions['python']}"


# -- what moto holds -----------------------------------------------------------
def _preload() -> None:
    """Import here what a snapshot child uses: a child must not import (another thread of the
    stack could have held an import lock at the fork)."""
    import moto.backends  # noqa: F401
    import moto.s3.models  # noqa: F401
    import moto.s3.utils  # noqa: F401
    import moto.sqs.models  # noqa: F401
    for service in SERVICES:
        _backend_dict(service)


def _backend_dict(service: str):
    from moto.backends import get_backend
    return get_backend(service)


def _service_state(service: str) -> dict:
    """A service's backends ({account: {region: backend}}) and what its BackendDict keeps across
    accounts (S3: which account owns each bucket name, without which CreateBucket at the next
    start would replace the restored bucket with an empty one)."""
    backend_dict = _backend_dict(service)
    shared = {k: v for k, v in vars(backend_dict).items() if k not in _BACKEND_DICT_OWN}
    return {"backends": {account: dict(regions) for account, regions in backend_dict.items()}, "shared": shared}


def _load_service_state(service: str, saved: dict) -> None:
    backend_dict = _backend_dict(service)
    for account, regions in saved["backends"].items():
        for region, backend in regions.items():
            backend_dict[account][region] = backend
    vars(backend_dict).update(saved["shared"])


# BackendDict's own attributes (the backend class, names, an id): made by moto at import, not state
_BACKEND_DICT_OWN = {"backend", "service_name", "_use_boto3_regions", "_additional_regions", "_id"}


def _backends(service: str):
    for _, regions in _backend_dict(service).items():
        yield from regions.values()


def _contents(make_in_flight_visible: bool = False) -> Contents:
    c = Contents()
    for backend in _backends("dynamodb"):
        c.tables += len(backend.tables)
        c.items += sum(len(t) for t in backend.tables.values())
    for backend in _backends("s3"):
        c.buckets += len(backend.buckets)
        for bucket in backend.buckets.values():
            for versions in dict.values(bucket.keys):
                for key in versions:
                    c.objects += 1
                    c.object_bytes += getattr(key, "contentsize", 0) or 0
    now_ms = time.time() * 1000
    for backend in _backends("sqs"):
        c.queues += len(backend.queues)
        for queue in backend.queues.values():
            for message in queue._messages:
                c.messages += 1
                if message.visible_at > now_ms:
                    c.in_flight += 1
                    if make_in_flight_visible:
                        message.visible_at = 0.0
    return c


def _name_bodies() -> None:
    """Give every S3 object (and multipart part) a body id, here in the stack's process, so later
    snapshots find the body already written instead of writing it again."""
    from moto.s3.models import FakeKey

    def name(key) -> None:
        if isinstance(key, FakeKey) and _BODY_ID not in key.__dict__:
            key.__dict__[_BODY_ID] = uuid.uuid4().hex

    for backend in _backends("s3"):
        for bucket in backend.buckets.values():
            for versions in dict.values(bucket.keys):
                for key in versions:
                    name(key)
                    for part in getattr(getattr(key, "multipart", None), "parts", {}).values():
                        name(part)
            for multipart in bucket.multiparts.values():
                for part in multipart.parts.values():
                    name(part)


def _read_only(environ) -> bool:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target in _READ_ONLY_ACTIONS
    return environ.get("REQUEST_METHOD") in _READ_ONLY_METHODS


# -- saving --------------------------------------------------------------------
def _save(data_dir: Path) -> SnapshotStats:
    """Pickle the backends, writing each body not yet on disk; then the state, durably; then
    delete the bodies the new state does not use."""
    contents = _contents()
    blobs = data_dir / BLOBS_DIR
    writer = _BodyWriter(blobs)
    buffer = io.BytesIO()
    _Pickler(buffer, writer).dump({service: _service_state(service) for service in SERVICES})
    if writer.new:
        _fsync_dir(blobs)
    header = {"format": FORMAT, "moto": _moto_version(), "python": _python_version(),
              "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "contents": asdict(contents)}
    pickled = buffer.getbuffer()
    _write_durably(data_dir / STATE_FILE, json.dumps(header).encode() + b"\n", pickled)
    _fsync_dir(data_dir)
    removed = _collect_garbage(blobs, keep=writer.referenced)
    return SnapshotStats(state_bytes=len(pickled), new_bodies=writer.new, new_body_bytes=writer.new_bytes,
                         removed_bodies=removed, contents=contents)


class _Child:
    """`_save` in a forked child: it pickles its copy-on-write view of memory as it was at the
    fork, while this process serves on."""

    def __init__(self, pid: int, fd: int):
        self.pid, self.fd = pid, fd

    @classmethod
    def fork(cls, data_dir: Path) -> "_Child":
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:   # the child: only this thread exists; take no lock another thread could hold
            os.close(read_end)
            _child_main(data_dir, write_end)
        os.close(write_end)
        return cls(pid, read_end)

    def wait(self, timeout: float) -> SnapshotStats:
        chunks, deadline = [], time.monotonic() + timeout
        try:
            while True:
                ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    os.kill(self.pid, signal.SIGKILL)
                    raise SnapshotError(f"snapshot child {self.pid} took over {timeout:.0f} s and was killed")
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(self.fd)
            _, status = os.waitpid(self.pid, 0)
        report = json.loads(b"".join(chunks) or b"{}")
        if status != 0 or "error" in report:
            raise SnapshotError(f"snapshot child {self.pid} failed (wait status {status}): "
                                f"{report.get('error', 'no report')}")
        report["contents"] = Contents(**report["contents"])
        return SnapshotStats(**report)


def _child_main(data_dir: Path, write_end: int) -> None:
    status = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C is for the stack, which saves at exit
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        gc.disable()    # nothing to collect in a short-lived copy; scanning would copy every page
        _close_sockets()
        report = asdict(_save(data_dir))
        status = 0
    except BaseException:
        report = {"error": traceback.format_exc()}
    try:
        payload = json.dumps(report).encode()
        while payload:
            payload = payload[os.write(write_end, payload):]
    finally:
        os._exit(status)


def _close_sockets() -> None:
    """Close the child's copies of the stack's sockets: if the stack is killed while the child
    writes, its ports must be free at once for the next start."""
    for name in os.listdir("/dev/fd"):
        fd = int(name)
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.close(fd)
        except OSError:
            pass


class _BodyWriter:
    """Stands in for S3 object bodies while pickling: the pickle holds a body's id, and the body
    is written to blobs/<id> unless a previous snapshot wrote it already."""

    def __init__(self, blobs: Path):
        self.blobs = blobs
        self.on_disk = {name for name in os.listdir(blobs) if not name.startswith(".")}
        self.referenced: set[str] = set()
        self.new = 0
        self.new_bytes = 0

    def reduce_key(self, key):
        body_id = key.__dict__.get(_BODY_ID) or uuid.uuid4().hex   # unnamed: reached only through pickle
        if body_id not in self.on_disk and body_id not in self.referenced:
            body = _body(key)
            _write_durably(self.blobs / body_id, body)
            self.new += 1
            self.new_bytes += len(body)
        self.referenced.add(body_id)
        state = {k: v for k, v in key.__dict__.items() if k not in ("_value_buffer", "lock", "value")}
        state[_BODY_ID] = body_id
        return copyreg.__newobj__, (type(key),), state, None, None, _set_key_state


def _body(key) -> bytes:
    """An object's body, read without its lock and without moving its file position: in a forked
    child the stack's process shares that position for bodies moto spilled to disk (over 5 MB)."""
    buffer = key._value_buffer
    inner = getattr(buffer, "_file", buffer)   # SpooledTemporaryFile: BytesIO, or a file once rolled over
    try:
        if isinstance(inner, io.BytesIO):
            return inner.getvalue()
        fd = inner.fileno()
        size, chunks, offset = os.fstat(fd).st_size, [], 0
        while offset < size:
            chunk = os.pread(fd, min(size - offset, 1 << 24), offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)
    except ValueError:   # moto closed the body of a deleted object still referenced somewhere
        return b""


def _set_key_state(key, state, blobs: Path | None = None):
    import tempfile
    key.__dict__.update(state)
    key.lock = threading.Lock()
    key._value_buffer = tempfile.SpooledTemporaryFile(max_size=key._max_buffer_size)
    key.value = (blobs / state[_BODY_ID]).read_bytes()


def _reduce_queue(queue):
    state = {k: v for k, v in queue.__dict__.items() if k != "_messages_lock"}
    return copyreg.__newobj__, (type(queue),), state, None, None, _set_queue_state


def _set_queue_state(queue, state):
    queue.__dict__.update(state)
    queue._messages_lock = threading.Condition()


def _reduce_key_store(store):
    # moto's _VersionedKeyStore is a dict of version lists whose items() yields only the latest
    # version, so pickling it as a dict would drop the older versions.
    return copyreg.__newobj__, (type(store),), dict(dict.items(store)), None, None, _set_key_store_state


def _set_key_store_state(store, state):
    dict.update(store, state)


class _Pickler(pickle.Pickler):
    def __init__(self, file, writer: _BodyWriter):
        super().__init__(file, protocol=5)
        from moto.s3.models import FakeKey
        from moto.s3.utils import _VersionedKeyStore
        from moto.sqs.models import Queue
        self.dispatch_table = copyreg.dispatch_table.copy()
        self.dispatch_table[FakeKey] = writer.reduce_key
        self.dispatch_table[Queue] = _reduce_queue
        self.dispatch_table[_VersionedKeyStore] = _reduce_key_store


class _Unpickler(pickle.Unpickler):
    """Hands `_set_key_state` the blob directory (pickle passes reducers no context) and records
    which bodies the state uses."""

    def __init__(self, file, blobs: Path):
        super().__init__(file)
        self.blobs = blobs
        self.body_ids: set[str] = set()

    def find_class(self, module, name):
        if module == __name__ and name == "_set_key_state":
            def set_state(key, state):
                self.body_ids.add(state[_BODY_ID])
                _set_key_state(key, state, self.blobs)
            return set_state
        return super().find_class(module, name)


# -- files -----------------------------------------------------------------------
def _write_durably(path: Path, *chunks) -> None:
    """Write to a temporary file beside `path`, fsync it, rename it over `path` (the caller
    fsyncs the directory)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        for chunk in chunks:
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _collect_garbage(blobs: Path, keep: set[str]) -> int:
    """Delete the bodies (and temporary files of interrupted writes) that `keep` does not name."""
    removed = 0
    for path in blobs.iterdir():
        if path.name not in keep:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _moto_version() -> str:
    import moto
    return moto.__version__


def _python_version() -> str:
    return "%d.%d" % sys.version_info[:2]


def clean(data_dir: Path | str) -> bool:
    """Delete a data directory (`make clean-data`); refuse one a running stack holds or one that
    is not a data directory. False when there was nothing to delete."""
    import shutil
    path = Path(data_dir).resolve()
    if not path.exists():
        return False
    if not (path / LOCK_FILE).exists() and any(path.iterdir()):
        raise DataDirError(f"{path} does not look like a local stack's data directory (no {LOCK_FILE} file); "
                           "not deleting it")
    store = Persistence(path, lock_wait=0)
    store._lock_file = store._lock()
    try:
        shutil.rmtree(path)
    finally:
        store._release()
    return True


if __name__ == "__main__":   # python -m devstack.persistence clean DIR
    if sys.argv[1:2] != ["clean"] or len(sys.argv) != 3:
        sys.exit("usage: python -m devstack.persistence clean DATA_DIR")
    try:
        print(f"deleted {sys.argv[2]}" if clean(sys.argv[2]) else f"{sys.argv[2]} does not exist")
    except DataDirError as exc:
        sys.exit(str(exc))
