"""Manifest chunks made small, so a few hundred files (or a few dozen) cover what a batch of
100,000 does: materialised in the background and on demand, several chunks, paged uploads."""
from __future__ import annotations


def shrink_chunks(mp, size: int = 50) -> None:
    """Patch, through `mp` (a pytest MonkeyPatch), every module that sizes manifest chunks."""
    from chalicelib.adapters import repository as repository_module
    from chalicelib.domain import buckets
    from chalicelib.services import batches as batches_module
    from chalicelib.services import dropfolders
    for module in (buckets, repository_module, dropfolders):
        mp.setattr(module, "CHUNK_SIZE", size)
    mp.setattr(batches_module, "UPLOADS_PER_RESPONSE", size)
    for module in (batches_module, repository_module):
        mp.setattr(module, "chunk_count", lambda n: -(-n // size))
        mp.setattr(module, "chunk_of", lambda p: p // size)
