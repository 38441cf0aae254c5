"""A page costs reads in proportion to the page, not to the table (no scans)."""
from __future__ import annotations

import uuid

import pytest
from moto import mock_aws

from chalicelib import wiring
from chalicelib.adapters.repository import batch_index_keys
from chalicelib.settings import Settings

STATUSES = ("queued", "processing", "completed", "failed")


def seed(aws, owner: str, n: int) -> None:
    B = aws.models.Batch
    with B.batch_write() as writer:
        for i in range(n):
            bid = str(uuid.uuid4())
            prefix = ("AA_BB", "CC_DD")[i % 2]
            status = STATUSES[i % len(STATUSES)]
            created = f"2025-01-01T00:00:00.{i:06d}Z"
            created_sk = f"{created}#{bid}"
            writer.save(B(
                id=bid, owner=owner, customer_prefix=prefix, batch_date="2025-01-01", batch_counter=i + 1,
                base_directory_name=f"{prefix}_2025-01-01_batch-{i + 1}", description=f"{i % 7 + 1} files",
                search_text=f"{prefix.lower()}\nbatch-{i + 1}", pipeline_ids=["p"], pipelines=[],
                total_pipelines=1, total_files=i % 7 + 1, total_size=100, status=status,
                created_at=created[:19] + "Z", updated_at=created[:19] + "Z", upload_expires_at="2025-01-01T01:00:00Z",
                sample_file_names=["a.png"], owner_prefix=f"{owner}#{prefix}", created_sk=created_sk,
                files_sk=f"{i % 7 + 1:06d}#{created_sk}", **batch_index_keys(owner, prefix, status, created_sk)))


@pytest.fixture(scope="module")
def aws():
    """One seeded table for the module: 5,000 batches for alice, 300 for bob."""
    mp = pytest.MonkeyPatch()
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        mp.setenv(name, value)
    with mock_aws():
        container = wiring.Container(wiring.Container(Settings()).provision())
        seed(container, "alice", 5000)
        seed(container, "bob", 300)
        yield container
    mp.undo()


def reads(aws, params):
    meter = aws.repository.meter
    before = (meter.index_items, meter.items)
    page = aws.batches.list("alice", params)
    return page, (meter.index_items - before[0], meter.items - before[1])


QUERIES = [{}, {"status": "completed"}, {"customer_prefix": "CC_DD"}, {"status": "failed", "customer_prefix": "CC_DD"},
           {"sort_by": "total_files"}, {"sort_by": "status", "sort_order": "asc"}, {"sort_by": "total_files",
                                                                                    "status": "queued"}]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: "&".join(f"{k}={v}" for k, v in q.items()) or "plain")
def test_page_reads_do_not_grow_with_the_table(aws, query):
    params = {**query, "limit": "20"}
    page, (index_items, items) = reads(aws, params)
    assert len(page["batches"]) == 20
    assert index_items <= 20 and items <= 20, (index_items, items)
    second, cost = reads(aws, {**params, "cursor": page["next_cursor"]})
    assert cost[0] <= 20 and cost[1] <= 20
    assert not {b["id"] for b in page["batches"]} & {b["id"] for b in second["batches"]}
    assert all(b["owner"] == "alice" for b in page["batches"] + second["batches"])
    for key, value in query.items():
        if key in ("status", "customer_prefix"):
            assert all(b[key] == value for b in page["batches"])


def test_stats_read_a_constant_number_of_items(aws):
    meter = aws.repository.meter
    before = meter.index_items + meter.items
    aws.batches.stats("alice")
    assert meter.index_items + meter.items - before <= 1  # one index item for the max; the aggregate is a get
