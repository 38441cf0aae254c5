"""Listing batches (ports.BatchStore.list_batches) on both backends: every filter, sort and order,
search, limits and cursors. These tests only read, so they share one catalogue per backend."""
from __future__ import annotations

import pytest

from chalicelib.domain.batches import BATCH_STATUSES, CANCELLED, COMPLETED, FAILED, PROCESSING, BatchQuery
from tests.contract.conftest import batch_fields, build_catalogue, walk

SORTS = {"created_at": lambda b: b["created_at"],
         "total_files": lambda b: (b["total_files"], b["created_at"]),
         "status": lambda b: (BATCH_STATUSES.index(b["status"]), b["created_at"])}


@pytest.fixture(scope="module")
def shared(module_backend):
    return module_backend, build_catalogue(module_backend.repo)


@pytest.fixture
def repo(shared):
    return shared[0].repo


@pytest.fixture
def catalogue(shared):
    return shared[1]


@pytest.mark.parametrize("sort_by", sorted(SORTS))
@pytest.mark.parametrize("ascending", (True, False))
def test_every_sort_and_order_pages_through_every_batch_once(repo, catalogue, sort_by, ascending):
    expected = [b["id"] for b in sorted(catalogue, key=SORTS[sort_by], reverse=not ascending)]
    query = BatchQuery(owner="alice", sort_by=sort_by, ascending=ascending, limit=3)
    items, sizes = walk(lambda start: repo.list_batches(query, start))
    assert [b["id"] for b in items] == expected and sizes == [3, 3, 1]
    assert {b["id"]: batch_fields(b) for b in items} == {b["id"]: batch_fields(b) for b in catalogue}
    whole, sizes = walk(lambda start: repo.list_batches(
        BatchQuery(owner="alice", sort_by=sort_by, ascending=ascending, limit=7), start))
    assert [b["id"] for b in whole] == expected and sizes == [7]


@pytest.mark.parametrize("status, prefix", [(COMPLETED, None), (PROCESSING, None), (None, "pl_dxb"),
                                            (PROCESSING, "PL_DXB"), (None, "PL_ABC"), (CANCELLED, "PL_DXB")])
@pytest.mark.parametrize("sort_by", sorted(SORTS))
@pytest.mark.parametrize("ascending", (True, False))
def test_filters_narrow_to_status_and_prefix_ignoring_the_prefix_case(repo, catalogue, status, prefix, sort_by,
                                                                      ascending):
    def wanted(b):
        return (status is None or b["status"] == status) and (
            prefix is None or b["customer_prefix"].upper() == prefix.upper())

    expected = [b["id"] for b in sorted(filter(wanted, catalogue), key=SORTS[sort_by], reverse=not ascending)]
    query = BatchQuery(owner="alice", status=status, customer_prefix=prefix, sort_by=sort_by, ascending=ascending,
                       limit=2)
    items, sizes = walk(lambda start: repo.list_batches(query, start))
    assert [b["id"] for b in items] == expected and all(n <= 2 for n in sizes)


def test_search_matches_prefix_directory_and_description_ignoring_case(repo, catalogue):
    def ids(search, **kw):
        items, _ = walk(lambda start: repo.list_batches(BatchQuery(owner="alice", search=search, limit=2, **kw), start))
        return [b["id"] for b in items]

    newest_first = sorted(catalogue, key=lambda b: b["created_at"], reverse=True)
    assert ids("lookbook") == [b["id"] for b in newest_first if "Lookbook" in b["description"]]
    assert len(ids("lookbook")) == 3
    assert ids("pl_abc") == [catalogue[1]["id"]]                              # the prefix
    assert ids("_BATCH-4") == [catalogue[3]["id"]]                            # the directory name
    assert ids("xx_yy", status=FAILED) == [catalogue[3]["id"]]
    assert ids("no such thing") == []
    assert ids("PL_DXB", sort_by="total_files", ascending=True) == [
        b["id"] for b in sorted(catalogue, key=SORTS["total_files"]) if b["customer_prefix"] == "PL_DXB"]


def test_a_search_hands_back_a_short_page_when_its_budget_is_spent(shared, repo, catalogue, monkeypatch):
    shared[0].set_search_budget(monkeypatch, 2)   # two index entries per request
    query = BatchQuery(owner="alice", search="xx_yy", limit=5)
    pages = []

    def page_of(start):
        pages.append(repo.list_batches(query, start))
        return pages[-1]

    items, _ = walk(page_of)
    newest_first = sorted(catalogue, key=lambda b: b["created_at"], reverse=True)
    assert [b["id"] for b in items] == [b["id"] for b in newest_first if b["customer_prefix"] == "XX_YY"]
    assert len(pages) == 4 and all(p.index_items_read <= 2 for p in pages)   # 7 entries, 2 a request


def test_lists_are_per_owner(repo, catalogue):
    bob = repo.list_batches(BatchQuery(owner="bob"))
    assert len(bob.items) == 1 and bob.items[0]["total_files"] == 9 and bob.last_key is None
    assert repo.list_batches(BatchQuery(owner="carol")).items == []
