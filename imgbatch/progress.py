"""What a batch's counters mean, in one vocabulary for every command.

"uploaded" is a file storage has accepted; "processed" is a file the service finished with,
either "succeeded" or "failed"; "cancelled" files were never processed. The web UI uses the
same words (web/format.js).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BatchProgress:
    total: int
    uploaded: int
    succeeded: int
    failed: int
    cancelled: int
    percent: float  # the service's own figure: finished (processed or cancelled) files

    @property
    def processed(self) -> int:
        return self.succeeded + self.failed


def progress_of(batch: dict, known_uploaded: int = 0) -> BatchProgress:
    """The batch's counters, with `uploaded` never below what this client knows.

    The service counts a file as uploaded once its storage event has been handled, which can
    lag behind the upload itself; a file this client has just uploaded, or one that succeeded,
    was certainly accepted by storage, so the figure shown is the largest of the three.
    """
    p = batch.get("progress") or {}
    total = int(batch.get("total_files") or 0)
    succeeded, failed, cancelled = (int(p.get(k) or 0) for k in ("succeeded", "failed", "cancelled"))
    uploaded = max(int(p.get("uploaded") or 0), known_uploaded, succeeded)
    if total:
        uploaded = min(uploaded, total)
    return BatchProgress(total=total, uploaded=uploaded, succeeded=succeeded, failed=failed,
                    cancelled=cancelled, percent=float(p.get("percent") or 0))
