"""Owner scoping: another owner's batch answers exactly like a missing one."""
from __future__ import annotations

import uuid

from ..errors import NotFound


def is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except (ValueError, AttributeError, TypeError):
        return False


def owned_batch(repo, owner: str, batch_id: str, counts: bool = True) -> dict:
    batch = repo.get_batch(batch_id, counts) if is_uuid(batch_id) else None
    if batch is None or batch["owner"] != owner:
        raise NotFound(f"batch {batch_id} not found")
    return batch
