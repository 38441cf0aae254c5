"""Deleting a batch: out of every list and figure at once, then every record and object.

A delete is two steps. The first is one conditional transaction (the repository's
`mark_deleting`): the batch leaves every list index, is subtracted from the owner's figures under
the status it has at that instant, and stops every other transition (they all want a status it no
longer has). The second removes objects, jobs and finally the batch item; it is idempotent, and the
sweep resumes it when a crash interrupted it. Workers that finish a job of a batch being deleted
remove what they wrote (services/processor.py), so nothing is left behind whatever the order.
"""
from __future__ import annotations

from ..errors import Conflict
from ..domain.keys import batch_prefixes, parse_drop_key, upload_prefix
from ..observability import NOOP
from .clock import iso, utcnow
from .ownership import owned_batch

CONTENDED_ATTEMPTS = 20


INLINE_FILES = 1000   # a bigger batch is removed in the background: the DELETE answers at once


class Deleter:
    def __init__(self, repository, storage, clock=utcnow, maintenance=None, obs=NOOP):
        self.repo = repository
        self.storage = storage
        self.clock = clock
        self.maintenance = maintenance
        self.obs = obs

    def delete(self, owner: str, batch_id: str) -> None:
        for _ in range(CONTENDED_ATTEMPTS):
            batch = owned_batch(self.repo, owner, batch_id)  # 404 once another delete got there first
            if self.repo.mark_deleting(batch, iso(self.clock())):
                break
        else:
            raise Conflict(f"batch {batch_id} kept changing while it was being deleted; try again")
        if int(batch["total_files"]) <= INLINE_FILES or self.maintenance is None:
            self.purge(batch_id)
        else:   # gone from every list and figure already; the records and objects follow
            self.maintenance.send({"kind": "purge", "batch_id": batch_id})

    def purge(self, batch_id: str) -> None:
        with self.obs.transition("batch.deleted", batch_id=batch_id) as step:
            self.repo.sync_counters(batch_id)   # before any object goes (see the repository)
            self.storage.abort_multipart_uploads(upload_prefix(batch_id))
            self._purge_drop_folder(batch_id)
            step.fields["objects"] = sum(self.storage.delete_prefix(prefix) for prefix in batch_prefixes(batch_id))
            self.repo.purge_batch(batch_id)
            step.outcome = "deleted"

    def _purge_drop_folder(self, batch_id: str) -> None:
        """A drop-folder batch's files all live in its folder: one job names it. Runs before the
        jobs go, so a purge a crash interrupted still finds it."""
        first = self.repo.list_jobs(batch_id, 1, None).items
        drop = parse_drop_key(first[0]["key"]) if first else None
        if drop is None:
            return
        self.storage.abort_multipart_uploads(drop.folder_prefix)
        self.storage.delete_prefix(drop.folder_prefix)
        self.repo.release_drop_folder(drop.owner, drop.folder, batch_id)

    def resume(self) -> int:
        """Finish deletes a crash interrupted (the sweep calls this)."""
        pending = list(self.repo.interrupted_deletes())
        for batch_id in pending:
            self.purge(batch_id)
        return len(pending)
