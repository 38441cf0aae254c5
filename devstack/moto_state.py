"""moto's DynamoDB, S3 and SQS state as a pickle, with every S3 object body in a file of its own.

`dump` pickles the backends (and what their BackendDicts keep across accounts), writing each body
that is not yet in the body directory; `load` puts them back into moto. moto's objects are pickled
as they are, except three that would not survive it: an S3 object's body buffer (replaced by the
id of its file), an SQS queue's lock, and S3's versioned key store (whose items() hides older
versions).
"""
from __future__ import annotations

import copyreg
import io
import os
import pickle
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

SERVICES = ("dynamodb", "s3", "sqs")
_BODY_ID = "_devstack_body"   # attribute naming the file of a moto S3 object's body


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


def dump(file, blobs: Path, write_body) -> "_BodyWriter":
    """Pickle every service's state into `file`; bodies not yet in `blobs` are passed to
    `write_body(path, body)` as they are met. Returns what was written and what is referenced."""
    writer = _BodyWriter(blobs, write_body)
    _Pickler(file, writer).dump({service: _service_state(service) for service in SERVICES})
    return writer


def load(file, blobs: Path) -> set[str]:
    """Load what `dump` wrote into moto; returns the ids of the bodies it uses."""
    loader = _Unpickler(file, blobs)
    state = loader.load()
    for service, saved in state.items():
        _load_service_state(service, saved)
    return loader.body_ids


def preload() -> None:
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


def contents(make_in_flight_visible: bool = False) -> Contents:
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


def name_bodies() -> None:
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


class _BodyWriter:
    """Stands in for S3 object bodies while pickling: the pickle holds a body's id, and the body
    is written to blobs/<id> unless an earlier dump wrote it already."""

    def __init__(self, blobs: Path, write_body):
        self.blobs, self.write_body = blobs, write_body
        self.on_disk = {name for name in os.listdir(blobs) if not name.startswith(".")}
        self.referenced: set[str] = set()
        self.new = 0
        self.new_bytes = 0

    def reduce_key(self, key):
        body_id = key.__dict__.get(_BODY_ID) or uuid.uuid4().hex   # unnamed: reached only through pickle
        if body_id not in self.on_disk and body_id not in self.referenced:
            body = _body(key)
            self.write_body(self.blobs / body_id, body)
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
