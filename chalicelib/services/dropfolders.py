"""Drop folders: a folder of objects written straight into the bucket becomes a batch when its
marker `drop/{owner}/{folder}/_READY` appears (API.md "Drop folders"; README "Drop folders" for
every decision). S3 announces only markers (a notification on prefix `drop/`, suffix `_READY`),
to register_drop, which calls `marker_arrived`.

The batch's jobs point at the folder's objects themselves (nothing is copied) and are handed to
the arrivals queue as S3 announces uploads, so each file is counted and processed exactly like an
uploaded one. One folder makes one batch at a time: the folder is claimed in the repository (a
lease while the batch is made, so two deliveries of one marker never both write it), and freed
when the batch is deleted, which removes the folder's objects. A marker that makes no batch says
why in one log line (logger `imgbatch.drops`) and changes nothing, so writing it again after a
fix is all it takes.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

from ..domain.batches import JOB_AWAITING
from ..domain.buckets import CHUNK_SIZE, chunk_count
from ..domain.dropfolders import MAX_MARKER_BYTES, drop_batch_id, drop_job_id, list_folder, parse_marker
from ..domain.keys import DropKey, parse_drop_key
from ..domain.validation import Invalid
from ..errors import BadRequest, TooLarge
from ..ports import ConditionFailed
from .clock import iso, utcnow

log = logging.getLogger("imgbatch.drops")
# Longer than register_drop may run (its timeout), shorter than its queue's visibility timeout:
# when the function that claimed a folder dies, the redelivered marker finds the lease stale.
CLAIM_LEASE_SECONDS = 900


class DropFolderService:
    def __init__(self, repository, storage, settings, batches, arrivals, clock=utcnow):
        self.repo = repository
        self.storage = storage
        self.settings = settings
        self.batches = batches
        self.arrivals = arrivals
        self.clock = clock

    def marker_arrived(self, key: str) -> str:
        """Make the folder's batch; returns what happened (for logs and tests): created,
        duplicate, refused, invalid, empty, taken or ignored."""
        drop = parse_drop_key(key)
        if drop is None or not drop.is_marker:
            log.warning("%r is not a drop folder marker (drop/{owner}/{folder}/_READY): ignored", key)
            return "ignored"
        where = f"drop folder {drop.folder_prefix}"
        if drop.owner not in self.settings.drop_folder_owners:
            log.warning("%s: no batch: %r is not an owner with drop folders (DROP_FOLDER_OWNERS)", where, drop.owner)
            return "refused"
        marker = self._read_marker(key)
        if marker is None:
            log.warning("%s: no batch: the marker is gone", where)
            return "ignored"
        raw, version = marker
        try:
            request = parse_marker(raw, self.settings.limits)
            listing = list_folder(self.storage.list_objects(drop.folder_prefix), drop.folder_prefix,
                                  self.settings.limits)
        except Invalid as exc:
            log.warning("%s: no batch: invalid marker or folder: %s", where, exc.message)
            return "invalid"
        for skipped, reason in listing.skipped:
            log.warning("%s: %r is not a file of the batch: %s", where, skipped, reason)
        if not listing.files:
            log.warning("%s: no batch: the folder holds no files besides the marker (write the marker last, "
                        "after every file)", where)
            return "empty"
        batch_id = drop_batch_id(drop.owner, drop.folder, version)
        now = self.clock()
        if not self.repo.claim_drop_folder(drop.owner, drop.folder, batch_id, iso(now),
                                           iso(now - timedelta(seconds=CLAIM_LEASE_SECONDS))):
            return self._claimed_already(drop, batch_id, where)
        if self.repo.get_batch(batch_id) is None:
            keys = {f.spec.name: f.key for f in listing.files}
            request = replace(request, files=tuple(f.spec for f in listing.files))
            try:
                self.batches.open(drop.owner, request, batch_id,
                                  place=lambda bid, spec: (drop_job_id(bid, keys[spec.name]), keys[spec.name]))
            except (BadRequest, TooLarge) as exc:
                self.repo.release_drop_folder(drop.owner, drop.folder, batch_id)
                log.warning("%s: no batch: %s", where, exc.message)
                return "invalid"
            except ConditionFailed:
                pass   # the batch exists: made before a crash took the rest of this step
        self.repo.drop_folder_created(drop.owner, drop.folder, batch_id, iso(self.clock()))
        announced = self.announce_chunk(batch_id, 0)   # the maintenance queue announces the other chunks
        log.info("%s became batch %s: %d files announced now", where, batch_id, announced)
        return "created"

    def _read_marker(self, key: str) -> tuple[bytes, str] | None:
        head = self.storage.head(key)
        stored = self.storage.fetch(key) if head else None
        if stored is None:
            return None
        _, body = stored
        with body:
            raw = body.read(MAX_MARKER_BYTES + 1)
        # The version names the batch: the same for every delivery of this marker, another
        # when the marker is written again.
        return raw, f"{head.get('ETag')}|{head.get('LastModified')}"

    def _claimed_already(self, drop: DropKey, batch_id: str, where: str) -> str:
        held = self.repo.drop_folder(drop.owner, drop.folder)
        if held is not None and held["batch_id"] == batch_id:
            if held["state"] == "created":
                self._announce(batch_id)   # this marker delivered again: hand on what a crash held back
            return "duplicate"
        log.warning("%s: no batch: the folder already became batch %s; a second marker makes no batch "
                    "(delete that batch first, or use a new folder)", where, held["batch_id"] if held else "?")
        return "taken"

    def _announce(self, batch_id: str) -> int:
        """Hand the files still awaiting arrival to the arrivals queue, as S3 announces uploads:
        each is counted as uploaded there and queued for processing. For a marker delivered again,
        whose first delivery may have crashed before the maintenance queue heard of the other
        chunks: each is stored here if it is not yet (idempotent, and cheap when it is)."""
        batch = self.repo.get_batch(batch_id, counts=False)
        if batch is None:
            return 0
        announced = 0
        for chunk in range(chunk_count(int(batch["total_files"]))):
            if chunk:
                self.batches.materialize(batch_id, chunk)
            announced += self.announce_chunk(batch_id, chunk)
        return announced

    def announce_chunk(self, batch_id: str, chunk: int) -> int:
        """Announce the awaiting drop-folder files of one manifest chunk (after it is stored);
        an uploaded batch's jobs have nothing to announce (their clients upload them)."""
        page = self.repo.list_jobs(batch_id, CHUNK_SIZE, {"position": chunk * CHUNK_SIZE})
        keys = [j["key"] for j in page.items
                if j["status"] == JOB_AWAITING and parse_drop_key(j["key"]) is not None]
        if keys:
            self.arrivals.enqueue_keys(keys)
        return len(keys)
