"""devstack/moto_patches.py keeps TransactWriteItems all-or-nothing when a write fails after the
ones before it were applied: every condition held, then moto refused the second write."""
from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

TABLE = "tx"


@pytest.fixture
def ddb():
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(TableName=TABLE, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                            BillingMode="PAY_PER_REQUEST")
        client.put_item(TableName=TABLE, Item={"id": {"S": "counter"}, "n": {"N": "1"}, "label": {"S": "text"}})
        yield client


def items(ddb) -> dict:
    return {i["id"]["S"]: i for i in ddb.scan(TableName=TABLE)["Items"]}


# Each second write passes its (absent) condition and fails only while moto applies it.
FAILING_SECOND_WRITES = {
    "ADD to a string": ({"Update": {"TableName": TABLE, "Key": {"id": {"S": "counter"}},
                                    "UpdateExpression": "ADD label :one",
                                    "ExpressionAttributeValues": {":one": {"N": "1"}}}}, "ValidationException"),
    "a path into a missing map": ({"Update": {"TableName": TABLE, "Key": {"id": {"S": "counter"}},
                                              "UpdateExpression": "SET missing.x = :one",
                                              "ExpressionAttributeValues": {":one": {"N": "1"}}}},
                                  "ValidationException"),
    "a key with a lone surrogate": ({"Put": {"TableName": TABLE, "Item": {"id": {"S": "guard\ud800"}}}},
                                    "TransactionCanceledException"),
}


@pytest.mark.parametrize("second", FAILING_SECOND_WRITES, ids=list(FAILING_SECOND_WRITES))
@pytest.mark.parametrize("first", ["put a new item", "update an existing one"])
def test_a_write_failing_mid_transaction_leaves_nothing_behind(ddb, first, second):
    before = items(ddb)
    write, code = FAILING_SECOND_WRITES[second]
    if first == "put a new item":
        earlier = {"Put": {"TableName": TABLE, "Item": {"id": {"S": "new"}}, "ConditionExpression": "attribute_not_exists(id)"}}
    else:
        earlier = {"Update": {"TableName": TABLE, "Key": {"id": {"S": "counter"}}, "UpdateExpression": "ADD n :one",
                              "ExpressionAttributeValues": {":one": {"N": "1"}}}}
        if "Update" in write:  # one item per transaction; fail on a second item instead
            ddb.put_item(TableName=TABLE, Item={"id": {"S": "other"}, "label": {"S": "text"}})
            before = items(ddb)
            write = {"Update": {**write["Update"], "Key": {"id": {"S": "other"}}}}
    with pytest.raises(ClientError) as raised:
        ddb.transact_write_items(TransactItems=[earlier, write])
    assert raised.value.response["Error"]["Code"] == code
    assert items(ddb) == before


def test_the_same_transaction_without_the_failing_write_commits(ddb):
    ddb.transact_write_items(TransactItems=[{"Put": {"TableName": TABLE, "Item": {"id": {"S": "new"}}}}])
    assert set(items(ddb)) == {"counter", "new"}
