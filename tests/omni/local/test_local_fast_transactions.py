"""The embedded emulator's ``TransactWriteItems`` (omni/local/fast_transactions.py).

moto deep-copies every table a transaction touches, to roll back a cancelled one; the
local stack copies only the items the transaction names. A cancelled transaction must
still leave nothing of itself behind, and the items it does not name are not copied.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.models import dynamodb_backends

from omni.local.emulator import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, Emulator

TABLE = "fast-transactions-items"
OTHER = "fast-transactions-keys"


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with Emulator():
        client = boto3.client("dynamodb")
        client.create_table(
            TableName=TABLE,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        client.create_table(
            TableName=OTHER,
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for n in range(50):
            client.put_item(TableName=TABLE, Item={"pk": {"S": "c#1"}, "sk": {"S": f"m#{n:03d}"}})
        client.put_item(TableName=TABLE, Item={"pk": {"S": "c#1"}, "sk": {"S": "meta"}, "v": {"N": "1"}})
        client.put_item(TableName=OTHER, Item={"id": {"S": "k#1"}, "owner": {"S": "a"}})
        yield client


def _backend_items(table: str) -> Any:
    return dynamodb_backends[DEFAULT_ACCOUNT_ID][DEFAULT_REGION].tables[table].items


def _cancelled(client: Any) -> None:
    """Three writes over two tables; the last one's condition fails: nothing may stay."""
    with pytest.raises(ClientError) as caught:
        client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": {"pk": {"S": "c#1"}, "sk": {"S": "meta"}},
                        "UpdateExpression": "SET v = :two, added = :x",
                        "ExpressionAttributeValues": {":two": {"N": "2"}, ":x": {"S": "partial"}},
                    }
                },
                {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "c#1"}, "sk": {"S": "m#new"}}}},
                {"Put": {"TableName": OTHER, "Item": {"id": {"S": "k#2"}, "owner": {"S": "b"}}}},
                {
                    "Update": {
                        "TableName": OTHER,
                        "Key": {"id": {"S": "k#1"}},
                        "UpdateExpression": "SET #o = :b",
                        "ConditionExpression": "#o = :nobody",
                        "ExpressionAttributeNames": {"#o": "owner"},
                        "ExpressionAttributeValues": {":b": {"S": "b"}, ":nobody": {"S": "nobody"}},
                    }
                },
            ]
        )
    assert caught.value.response["Error"]["Code"] == "TransactionCanceledException"


def test_a_cancelled_transaction_leaves_no_partial_write(dynamodb: Any) -> None:
    _cancelled(dynamodb)
    meta = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "c#1"}, "sk": {"S": "meta"}})["Item"]
    assert meta == {"pk": {"S": "c#1"}, "sk": {"S": "meta"}, "v": {"N": "1"}}
    assert "Item" not in dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "c#1"}, "sk": {"S": "m#new"}})
    assert "Item" not in dynamodb.get_item(TableName=OTHER, Key={"id": {"S": "k#2"}})
    assert dynamodb.get_item(TableName=OTHER, Key={"id": {"S": "k#1"}})["Item"]["owner"] == {"S": "a"}
    count = dynamodb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "c#1"}},
        Select="COUNT",
    )["Count"]
    assert count == 51
    # The same transaction with a condition that holds applies every write.
    dynamodb.put_item(TableName=OTHER, Item={"id": {"S": "k#1"}, "owner": {"S": "nobody"}})
    _ = dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "c#1"}, "sk": {"S": "m#new"}}}},
            {
                "Update": {
                    "TableName": OTHER,
                    "Key": {"id": {"S": "k#1"}},
                    "UpdateExpression": "SET #o = :b",
                    "ConditionExpression": "#o = :nobody",
                    "ExpressionAttributeNames": {"#o": "owner"},
                    "ExpressionAttributeValues": {":b": {"S": "b"}, ":nobody": {"S": "nobody"}},
                }
            },
        ]
    )
    assert "Item" in dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "c#1"}, "sk": {"S": "m#new"}})
    assert dynamodb.get_item(TableName=OTHER, Key={"id": {"S": "k#1"}})["Item"]["owner"] == {"S": "b"}


def test_a_transaction_copies_only_the_items_it_names(dynamodb: Any) -> None:
    """moto's own snapshot deep-copies whole tables, so after a rollback every item would be a copy."""
    before = {sk: item for sk, item in _backend_items(TABLE)[next(iter(_backend_items(TABLE)))].items()}
    _cancelled(dynamodb)
    after = _backend_items(TABLE)[next(iter(_backend_items(TABLE)))]
    untouched = [sk for sk in before if sk.value.startswith("m#")]
    assert len(untouched) == 50
    assert all(after[sk] is before[sk] for sk in untouched)
