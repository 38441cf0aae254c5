"""Keep the local stack's AWS state (moto's DynamoDB, S3 and SQS) in a data directory across restarts.

moto keeps everything in memory and has no persistence of its own; its recorder replays every
request ever made, so a replay grows without bound and re-runs receives and deletes with stale
receipt handles. This module does what moto's maintainers suggest instead (getmoto/moto#1069): it
pickles moto's backends, and loads them before moto starts.

A snapshot is taken after state has changed, at most every `interval` seconds, and once more at
shutdown. It is a consistent cut: requests moto is serving finish and new ones wait (devstack/gate.py)
while the process forks; the child process pickles its frozen copy of memory and writes it, so moto
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

import fcntl
import gc
import io
import json
import logging
import os
import select
import signal
import stat
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import gate, moto_state
from .moto_state import Contents

log = logging.getLogger("devstack.persistence")

FORMAT = 1
STATE_FILE = "state.bin"
BLOBS_DIR = "blobs"
LOCK_FILE = "lock"
CHILD_TIMEOUT = 300.0         # a snapshot child that takes longer is killed (and retried)


class DataDirError(RuntimeError):
    """The data directory cannot be used: in use by another stack, or unreadable by this one."""


class SnapshotError(RuntimeError):
    """A snapshot failed; the previous one is intact."""


@dataclass
class SnapshotStats:
    paused_seconds: float = 0.0   # how long moto held still (requests waited)
    seconds: float = 0.0          # the whole snapshot: fork, pickle, writes, fsyncs
    state_bytes: int = 0
    new_bodies: int = 0
    new_body_bytes: int = 0
    removed_bodies: int = 0
    contents: Contents = field(default_factory=Contents)


class Persistence:
    """Snapshots of moto's backends in `data_dir`; see the module docstring.

    `open()` (lock the directory, load the last snapshot) before moto serves; wrap moto's WSGI app
    with `middleware`; `start()` the snapshot timer; `close()` at shutdown (a last snapshot, after
    which the gate stays closed, so nothing is acknowledged that would not be saved)."""

    def __init__(self, data_dir: Path | str, interval: float = 2.0, lock_wait: float = 30.0):
        self.data_dir = Path(data_dir).resolve()
        self.interval = interval
        self.lock_wait = lock_wait
        self.gate = gate.Gate()
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
            try:
                body_ids = moto_state.load(f, self.blobs)
            except Exception as exc:
                raise DataDirError(f"cannot load {path}: {exc!r}. {_RESET}.") from exc
        contents = moto_state.contents(make_in_flight_visible=True)
        _collect_garbage(self.blobs, keep=body_ids)
        log.info("restored %s from %s", contents.describe(), self.data_dir)
        return contents

    # -- serve ---------------------------------------------------------------
    def middleware(self, app):
        """WSGI middleware for moto: every request passes the gate; writes mark the state changed."""
        return gate.middleware(self.gate, self._dirty, app)

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
        moto_state.preload()   # a snapshot child must not import
        with self._snapshot_lock:
            if self._sealed:
                raise SnapshotError("the final snapshot was taken; moto accepts nothing more")
            started = time.perf_counter()
            self.gate.close()
            self._sealed = final
            reopen = not final
            try:
                self._dirty.clear()
                moto_state.name_bodies()
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


# -- saving --------------------------------------------------------------------
def _save(data_dir: Path) -> SnapshotStats:
    """Pickle the backends, writing each body not yet on disk; then the state, durably; then
    delete the bodies the new state does not use."""
    contents = moto_state.contents()
    blobs = data_dir / BLOBS_DIR
    buffer = io.BytesIO()
    writer = moto_state.dump(buffer, blobs, _write_durably)
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
