"""How a batch's files are spread for write capacity (issue 15). Pure.

A batch's per-file bookkeeping must not funnel through one DynamoDB item or partition (about
1,000 WCU/s each: ~125 files/s when every file's two transitions touched the batch item). So the
files are spread over K *buckets* of about BUCKET_SIZE files, by a hash of the job id: each bucket
has its own small counter item and its own job partition, and every per-file transaction touches
one job and its bucket's counter. A bucket sees only its own files, so its load is the batch's
divided by K. The manifest (the file list in upload order) is kept in chunks of CHUNK_SIZE
positions, each its own item, so listing, materialising and deleting work a chunk at a time.
See docs/benchmarks.md ("Scale") for the model that chose these numbers.
"""
from __future__ import annotations

import math
import uuid
from collections import Counter
from typing import Iterable

BUCKET_SIZE = 100      # files per bucket: conflicts on a counter stay rare at thousands of files/s
MAX_BUCKETS = 1000     # a 100,000-file batch: reading every counter is 10 BatchGetItem requests
CHUNK_SIZE = 1000      # manifest positions per item, and jobs materialised per step
# Counters a finisher's first look at its batch reads (settled_batch): at the end of a big batch
# most finishers meet a bucket with a file left among the first few, and each item read costs.
SETTLED_FIRST_LOOK = 10


def bucket_count(total_files: int) -> int:
    return max(1, min(MAX_BUCKETS, math.ceil(total_files / BUCKET_SIZE)))


def bucket_of(job_id: str, buckets: int) -> int:
    """Stable and uniform: the job id is a random UUID."""
    return uuid.UUID(job_id).int % buckets


def bucket_totals(job_ids: Iterable[str], buckets: int) -> dict[int, int]:
    return dict(Counter(bucket_of(j, buckets) for j in job_ids))


def chunk_count(total_files: int) -> int:
    return max(1, math.ceil(total_files / CHUNK_SIZE))


def chunk_of(position: int) -> int:
    return position // CHUNK_SIZE
