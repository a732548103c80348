"""The embedded emulator's ``Query`` (omni/local/fast_queries.py).

moto lists and sorts every item of a table for every query; the local stack hands a
query only the partition it names (or, for an index, the items whose index key
matches), so a query's cost no longer grows with the table. The answers must be the
same: order, pages, limits, conditions, filters and projections stay moto's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.dynamodb.models import dynamodb_backends

from omni.local.emulator import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, Emulator

TABLE = "fast-queries-items"


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[Any]:
    with Emulator():
        client = boto3.client("dynamodb")
        client.create_table(
            TableName=TABLE,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
                {"AttributeName": "owner", "AttributeType": "S"},
                {"AttributeName": "at", "AttributeType": "S"},
                {"AttributeName": "score", "AttributeType": "N"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by-owner",
                    "KeySchema": [
                        {"AttributeName": "owner", "KeyType": "HASH"},
                        {"AttributeName": "at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                },
                {
                    "IndexName": "by-score",
                    "KeySchema": [{"AttributeName": "score", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "ALL"},
                },
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for c in range(20):
            for n in range(15):
                item = {"pk": {"S": f"c#{c:02d}"}, "sk": {"S": f"m#{n:03d}"}, "text": {"S": f"hello {n}"}}
                if n % 3 == 0:
                    item |= {"owner": {"S": f"o#{c % 4}"}, "at": {"S": f"2026-12-{n + 1:02d}"}}
                if n % 5 == 0:
                    item["score"] = {"N": "1.0" if c % 2 else "1"}
                client.put_item(TableName=TABLE, Item=item)
        yield client


def _pages(client: Any, **kwargs: Any) -> list[list[dict[str, Any]]]:
    pages, start = [], None
    while True:
        response = client.query(TableName=TABLE, **kwargs, **({"ExclusiveStartKey": start} if start else {}))
        pages.append(response["Items"])
        start = response.get("LastEvaluatedKey")
        if not start:
            return pages


def test_a_partition_query_keeps_order_pages_conditions_and_filters(dynamodb: Any) -> None:
    pages = _pages(
        dynamodb,
        KeyConditionExpression="pk = :p AND begins_with(sk, :m)",
        FilterExpression="#t <> :skip",
        ExpressionAttributeNames={"#t": "text"},
        ExpressionAttributeValues={":p": {"S": "c#07"}, ":m": {"S": "m#01"}, ":skip": {"S": "hello 12"}},
        ScanIndexForward=False,
        Limit=2,
    )
    assert [[i["sk"]["S"] for i in page] for page in pages] == [
        ["m#014", "m#013"],
        ["m#011"],  # m#012 filtered out after the limit, as DynamoDB does
        ["m#010"],
    ]
    everything = _pages(
        dynamodb,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "c#03"}},
        ProjectionExpression="sk",
    )
    assert [i for page in everything for i in page] == [{"sk": {"S": f"m#{n:03d}"}} for n in range(15)]
    missing = dynamodb.query(
        TableName=TABLE, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "c#99"}}
    )
    assert missing["Items"] == []


def test_an_index_query_finds_every_match_in_index_order(dynamodb: Any) -> None:
    pages = _pages(
        dynamodb,
        IndexName="by-owner",
        KeyConditionExpression="#o = :o AND #a >= :from",
        ExpressionAttributeNames={"#o": "owner", "#a": "at"},
        ExpressionAttributeValues={":o": {"S": "o#1"}, ":from": {"S": "2026-12-07"}},
        Limit=4,
    )
    found = [(i["at"]["S"], i["pk"]["S"]) for page in pages for i in page]
    expected = sorted(
        (f"2026-12-{n + 1:02d}", f"c#{c:02d}") for c in range(20) if c % 4 == 1 for n in (6, 9, 12)
    )
    assert found == expected
    assert all(set(i) == {"pk", "sk", "owner", "at"} for page in pages for i in page)  # keys only
    # A number key matches however it was written (1 and 1.0 are the same number).
    scores = _pages(
        dynamodb,
        IndexName="by-score",
        KeyConditionExpression="score = :one",
        ExpressionAttributeValues={":one": {"N": "1"}},
    )
    assert len([i for page in scores for i in page]) == 20 * 3


def test_a_partition_query_never_lists_the_other_partitions(dynamodb: Any) -> None:
    """moto's own query walks (and sorts) every partition: one that cannot be listed breaks it."""

    class Unlistable(dict[Any, Any]):
        def values(self) -> Any:
            raise AssertionError("a query listed another partition")

    items = dynamodb_backends[DEFAULT_ACCOUNT_ID][DEFAULT_REGION].tables[TABLE].items
    poisoned = next(key for key in items if key.value == "c#19")
    saved = items[poisoned]
    items[poisoned] = Unlistable(saved)
    try:
        response = dynamodb.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": "c#05"}},
            Select="COUNT",
        )
        assert response["Count"] == 15
    finally:
        items[poisoned] = saved
