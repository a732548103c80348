"""DynamoTable's conditional writes on moto: a failed condition is an outcome, not an error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from shared.repositories.dynamo import DynamoTable, serialise


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoTable]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        client.create_table(
            TableName="things",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoTable("THINGS_TABLE", table_name="things", client=client)


KEY = {"pk": "A", "sk": "X"}


def _put(table: DynamoTable, item: dict[str, Any]) -> None:
    table.client.put_item(TableName=table.name, Item=serialise(item))


def test_update_if_writes_when_the_condition_holds_and_reports_false_when_not(table: DynamoTable) -> None:
    _put(table, {**KEY, "version": 1, "status": "open"})
    assert table.update_if(
        KEY,
        "SET #status = :s, version = :next",
        "version = :v",
        {":s": "queued", ":v": 1, ":next": 2},
        {"#status": "status"},
    )
    assert table.get(KEY) == {**KEY, "version": 2, "status": "queued"}
    # The version moved on: nothing is written, and nothing is raised.
    assert not table.update_if(
        KEY, "SET #status = :s", "version = :v", {":s": "active", ":v": 1}, {"#status": "status"}
    )
    assert table.get(KEY) == {**KEY, "version": 2, "status": "queued"}


def test_put_if_and_put_new(table: DynamoTable) -> None:
    assert table.put_new({**KEY, "n": 1})
    assert not table.put_new({**KEY, "n": 2})
    assert not table.put_if({**KEY, "n": 3}, "n = :n", {":n": 2})
    assert table.put_if({**KEY, "n": 3}, "n = :n", {":n": 1})
    assert table.get(KEY) == {**KEY, "n": 3}


def test_conditional_returns_the_response_or_none(table: DynamoTable) -> None:
    _put(table, {**KEY, "n": 1})
    response = table.conditional(
        "update_item",
        Key=serialise(KEY),
        UpdateExpression="SET n = n + :one",
        ConditionExpression="attribute_exists(pk)",
        ExpressionAttributeValues=serialise({":one": 1}),
        ReturnValues="ALL_NEW",
    )
    assert response is not None
    assert response["Attributes"]["n"] == {"N": "2"}
    assert (
        table.conditional(
            "delete_item", Key=serialise({"pk": "B", "sk": "X"}), ConditionExpression="attribute_exists(pk)"
        )
        is None
    )


def test_other_errors_are_raised(table: DynamoTable) -> None:
    with pytest.raises(ClientError) as raised:
        table.update_if(KEY, "SET n = :n", "attribute_exists(pk)", {":n": 1, ":unused": 2})
    assert raised.value.response["Error"]["Code"] == "ValidationException"


def test_transact_reports_which_action_failed(table: DynamoTable) -> None:
    _put(table, {**KEY, "version": 1})
    other = {"pk": "B", "sk": "X"}

    def actions(version: int) -> list[dict[str, Any]]:
        return [
            {"Put": {"TableName": "things", "Item": serialise({**other, "n": 1})}},
            {
                "Update": {
                    "TableName": "things",
                    "Key": serialise(KEY),
                    "UpdateExpression": "SET version = :next",
                    "ConditionExpression": "version = :v",
                    "ExpressionAttributeValues": serialise({":v": version, ":next": version + 1}),
                }
            },
        ]

    cancelled = table.transact(actions(0))
    assert cancelled is not None
    assert cancelled.condition_failed()
    assert cancelled.condition_failed(1)
    assert not cancelled.condition_failed(0)
    assert not cancelled.condition_failed(5)
    assert not cancelled.conflict
    assert cancelled.error.response["Error"]["Code"] == "TransactionCanceledException"
    assert table.get(other) is None
    assert table.transact(actions(1)) is None
    assert table.get(KEY) == {**KEY, "version": 2}
    assert table.get(other) == {**other, "n": 1}
