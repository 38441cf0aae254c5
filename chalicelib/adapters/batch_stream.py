"""The batches table's DynamoDB Stream: records -> changes of batch dicts (the same dicts the
repository returns), and, for the local stack and tests, a reader that polls the stream the way
Lambda's event source mapping does."""
from __future__ import annotations

import datetime
from dataclasses import dataclass

from .models import Models


@dataclass(frozen=True)
class Change:
    sequence: str        # the stream record's sequence number: unique per change, the same on redelivery
    old: dict | None     # the batch before the change (None: created)
    new: dict | None     # after it (None: the item was removed)


def _plain(item) -> dict:
    return {name: getattr(item, name) for name in item.get_attributes()}


class BatchChanges:
    def __init__(self, models: Models):
        self.Batch = models.Batch

    def _batch(self, image: dict | None) -> dict | None:
        return _plain(self.Batch.from_raw_data(image)) if image else None

    def change(self, sequence: str, old_image: dict | None, new_image: dict | None) -> Change:
        return Change(sequence, self._batch(old_image), self._batch(new_image))


class StreamReader:
    """Reads every shard of a table's stream from its start, keeping its place between polls, and
    hands out records shaped as Lambda's DynamoDB event delivers them."""

    def __init__(self, dynamodb, streams, table: str):
        self.dynamodb = dynamodb
        self.streams = streams
        self.table = table
        self.arn: str | None = None
        self.iterators: dict[str, str | None] = {}

    def _refresh(self) -> None:
        if self.arn is None:
            self.arn = self.dynamodb.describe_table(TableName=self.table)["Table"]["LatestStreamArn"]
        for shard in self.streams.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]:
            if shard["ShardId"] not in self.iterators:
                self.iterators[shard["ShardId"]] = self.streams.get_shard_iterator(
                    StreamArn=self.arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]

    def poll(self, limit: int = 100) -> list[dict]:
        self._refresh()
        out = []
        for shard, iterator in list(self.iterators.items()):
            if iterator is None:
                continue
            got = self.streams.get_records(ShardIterator=iterator, Limit=limit)
            self.iterators[shard] = got.get("NextShardIterator")
            out += [self._lambda_record(r) for r in got.get("Records", [])]
        return out

    def _lambda_record(self, record: dict) -> dict:
        dynamodb = dict(record["dynamodb"])
        created = dynamodb.get("ApproximateCreationDateTime")
        if isinstance(created, datetime.datetime):
            dynamodb["ApproximateCreationDateTime"] = created.timestamp()
        return {"eventID": record["eventID"], "eventName": record["eventName"],
                "eventVersion": record.get("eventVersion", "1.1"), "eventSource": "aws:dynamodb",
                "awsRegion": record.get("awsRegion", "us-east-1"), "dynamodb": dynamodb, "eventSourceARN": self.arn}
