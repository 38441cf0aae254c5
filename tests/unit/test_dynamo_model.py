"""The DynamoDB limits model (bench/dynamo_model.py) behaves as DynamoDB's documented limits say:
a partition serves at most 1,000 WCU/s sustained, overlapping transactions on an item conflict,
and a simulated batch ends exact with one final status under both designs."""
from __future__ import annotations

from bench.dynamo_model import Dynamo, Req, Touch, simulate, tx_write


def test_a_partition_serves_at_most_its_write_capacity():
    db = Dynamo(hold_s=0.0)
    served = sum(db.serve(t / 1000, Req("update", [Touch("p", wcu=5)]), 0.001) == "ok" for t in range(10_000))
    # 10 s of asking for 5,000 WCU/s: one second of burst plus 1,000 WCU/s, 5 WCU a request
    assert served == (1000 + 10 * 1000) // 5 - 1
    assert db.stats["throttled"] == 10_000 - served


def test_overlapping_transactions_on_one_item_conflict_and_others_do_not():
    db = Dynamo(hold_s=0.005)
    assert db.serve(0.0, Req("tx", [tx_write("p", 1, "a")]), 0.01) == "ok"
    assert db.serve(0.001, Req("tx", [tx_write("p", 1, "a")]), 0.01) == "conflict"
    assert db.serve(0.001, Req("tx", [tx_write("p", 1, "b")]), 0.01) == "ok"
    assert db.serve(0.006, Req("tx", [tx_write("p", 1, "a")]), 0.01) == "ok"


def test_both_designs_end_exact_with_one_final_status_when_unloaded():
    for design in ("today", "buckets"):
        r = simulate(design, files=300, workers=1, seed=3)
        assert r["finished"] and r["exact"] and r["final_writes"] == 1, r


def test_the_bucketed_design_stays_exact_under_load():
    r = simulate("buckets", files=3000, workers=64, seed=5)
    assert r["finished"] and r["exact"] and r["final_writes"] == 1, r
    assert r["requests_per_file"] < 3.5   # 2 transactions + batched reads + conflict retries
