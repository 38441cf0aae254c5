"""Transaction conflicts on the hot batch item are retried inside the repository."""
from __future__ import annotations

import pytest
from pynamodb import transactions
from pynamodb.exceptions import CancellationReason, TransactWriteError, VerboseClientError

from tests import images
from tests.functional.test_processing import Flow


def cancelled(*codes):
    cause = VerboseClientError({"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"}},
                               "TransactWriteItems",
                               cancellation_reasons=[CancellationReason(code=c) if c else None for c in codes])
    return TransactWriteError("Failed to write transaction items", cause=cause)


@pytest.fixture
def conflicts(monkeypatch):
    """Make the next N transaction commits fail as DynamoDB does under contention."""
    state = {"left": 0, "codes": ("TransactionConflict", None)}
    real_commit = transactions.TransactWrite._commit

    def commit(self):
        if state["left"]:
            state["left"] -= 1
            raise cancelled(*state["codes"])
        return real_commit(self)

    monkeypatch.setattr(transactions.TransactWrite, "_commit", commit)
    monkeypatch.setattr("chalicelib.adapters.repository.time.sleep", lambda s: None)
    return state


def test_conflicts_are_retried_and_counted_once(api, aws, conflicts):
    web = api.post("/pipelines", {"name": "web", "format": "jpeg", "width": 40}).data["pipeline"]
    flow = Flow(api, aws, [web])
    data = {"a.png": images.png()}
    created = flow.create(data)
    conflicts["left"] = 3  # the claim conflicts three times, then commits
    flow.upload(created, data)
    b = flow.batch(created["batch"]["id"])
    assert b["status"] == "completed" and b["progress"]["uploaded"] == 1 and b["progress"]["succeeded"] == 1


def test_a_lost_condition_is_not_retried(aws, conflicts):
    conflicts["left"], conflicts["codes"] = 1, ("ConditionalCheckFailed", "TransactionConflict")
    M = aws.models.Meta
    assert aws.repository._transact(("update", M("x"), {"actions": [M.value.add(1)]})) is False
    assert conflicts["left"] == 0


def test_endless_conflicts_surface_after_the_last_attempt(aws, conflicts):
    conflicts["left"] = 100
    M = aws.models.Meta
    with pytest.raises(TransactWriteError):
        aws.repository._transact(("update", M("x"), {"actions": [M.value.add(1)]}))
    assert conflicts["left"] == 90  # ten attempts
