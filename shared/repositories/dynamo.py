"""Small helpers shared by the DynamoDB repositories."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from shared.platform import aws
from shared.platform.config import require_env

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

Item = dict[str, Any]


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    if isinstance(value, set):
        return sorted(_from_dynamo(v) for v in value)
    return value


def serialise(item: Item) -> dict[str, Any]:
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in item.items() if v is not None}


def serialise_value(value: Any) -> dict[str, Any]:
    return _serializer.serialize(_to_dynamo(value))


def deserialise(raw: dict[str, Any]) -> Item:
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in raw.items()}


def is_condition_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def cancellation_codes(error: ClientError) -> list[str]:
    """Per-action reasons of a cancelled transaction ('None' for the actions that were fine)."""
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return []
    reasons = error.response.get("CancellationReasons") or []
    if reasons:
        return [str(r.get("Code", "None")) for r in reasons]
    # Some emulators put the reasons only into the message: "... [ConditionalCheckFailed, None]".
    message = error.response.get("Error", {}).get("Message", "")
    if "[" in message:
        return [part.strip() for part in message[message.rfind("[") + 1 : message.rfind("]")].split(",")]
    return []


class DynamoTable:
    """The low-level client bound to one table whose name comes from the environment."""

    def __init__(self, env_var: str, table_name: str | None = None, client: Any = None) -> None:
        self.env_var = env_var
        self._name = table_name
        self._client = client

    @property
    def name(self) -> str:
        # Read when used, not at import: handlers create repositories at module level.
        return self._name or require_env(self.env_var)

    @property
    def client(self) -> Any:
        # Not cached on the instance: tests swap the endpoint between cases.
        return self._client or aws.client("dynamodb")

    def get(self, key: Item, consistent: bool = True) -> Item | None:
        response = self.client.get_item(TableName=self.name, Key=serialise(key), ConsistentRead=consistent)
        raw = response.get("Item")
        return deserialise(raw) if raw else None

    def put_new(self, item: Item, key_attr: str = "pk") -> bool:
        """Put ``item`` unless an item with its key exists; False when it already did."""
        try:
            self.client.put_item(
                TableName=self.name,
                Item=serialise(item),
                ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": key_attr},
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def query_all(self, limit: int | None = None, **kwargs: Any) -> list[Item]:
        """Every item of a query (following pages), up to ``limit`` items."""
        items: list[Item] = []
        kwargs = {"TableName": self.name, **kwargs}
        while True:
            response = self.client.query(**kwargs)
            items.extend(deserialise(raw) for raw in response.get("Items", []))
            if limit is not None and len(items) >= limit:
                return items[:limit]
            last = response.get("LastEvaluatedKey")
            if not last:
                return items
            kwargs["ExclusiveStartKey"] = last
