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

#: Items per Query page when the caller wants every item (a whole partition, a whole index key).
PAGE_SIZE = 500


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
    return dict(_serializer.serialize(_to_dynamo(value)))


def deserialise(raw: dict[str, Any]) -> Item:
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in raw.items()}


#: A transaction action's cancellation code when its ConditionExpression was not met.
CONDITION_FAILED = "ConditionalCheckFailed"
#: Another transaction touched the same items: read again and retry.
CONFLICT = "TransactionConflict"


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


class Cancelled(Exception):
    """A transaction DynamoDB cancelled because a condition failed or another one conflicted.

    ``codes`` holds one reason per action (``"None"`` for the actions that were fine); ``error``
    is the original error, for the caller to raise when it has no answer to the reasons.
    """

    def __init__(self, error: ClientError, codes: list[str]) -> None:
        super().__init__(f"transaction cancelled: {codes}")
        self.error = error
        self.codes = codes

    def condition_failed(self, index: int | None = None) -> bool:
        """Whether the condition of action ``index`` (None: of any action) failed."""
        if index is None:
            return CONDITION_FAILED in self.codes
        return index < len(self.codes) and self.codes[index] == CONDITION_FAILED

    @property
    def conflict(self) -> bool:
        """Another transaction touched the same items (nothing of ours failed as such)."""
        return CONFLICT in self.codes


def _expression_args(values: Item | None, names: dict[str, str] | None) -> Item:
    args: Item = {}
    if names:
        args["ExpressionAttributeNames"] = names
    if values:
        args["ExpressionAttributeValues"] = serialise(values)
    return args


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
        return self.put_if(item, "attribute_not_exists(#k)", names={"#k": key_attr})

    # -- conditional writes: a failed condition is an outcome, not an error ---- #
    def conditional(self, operation: str, **request: Any) -> dict[str, Any] | None:
        """Run ``update_item``/``put_item``/``delete_item`` with ``request`` (``TableName``
        defaults to this table); None when its ConditionExpression failed, else the response."""
        request.setdefault("TableName", self.name)
        try:
            response: dict[str, Any] = getattr(self.client, operation)(**request)
        except ClientError as error:
            if is_condition_failure(error):
                return None
            raise
        return response

    def update_if(
        self,
        key: Item,
        update: str,
        condition: str,
        values: Item | None = None,
        names: dict[str, str] | None = None,
    ) -> bool:
        """UpdateItem ``key`` with ``update`` if ``condition`` holds; False (nothing written) if not.

        ``values`` are plain Python values (serialised here), ``names`` the ``#name`` placeholders.
        """
        request = {"Key": serialise(key), "UpdateExpression": update, "ConditionExpression": condition}
        return self.conditional("update_item", **request, **_expression_args(values, names)) is not None

    def put_if(
        self, item: Item, condition: str, values: Item | None = None, names: dict[str, str] | None = None
    ) -> bool:
        """PutItem ``item`` if ``condition`` holds; False (nothing written) if not."""
        request = {"Item": serialise(item), "ConditionExpression": condition}
        return self.conditional("put_item", **request, **_expression_args(values, names)) is not None

    def transact(self, actions: list[Item]) -> Cancelled | None:
        """TransactWriteItems: None when written; :class:`Cancelled` (why, per action) when a
        condition failed or another transaction conflicted. Every other error is raised."""
        try:
            self.client.transact_write_items(TransactItems=actions)
        except ClientError as error:
            codes = cancellation_codes(error)
            if CONDITION_FAILED in codes or CONFLICT in codes:
                return Cancelled(error, codes)
            raise
        return None

    def query_all(self, limit: int | None = None, page: int = PAGE_SIZE, **kwargs: Any) -> list[Item]:
        """The items of a query, up to ``limit`` (None: every item, following pages).

        Every request passes ``Limit`` (what is still missing, at most ``page``) and the
        pages stop once ``limit`` items are read: a bounded read costs what it returns,
        whatever the size of the partition.
        """
        items: list[Item] = []
        kwargs = {"TableName": self.name, **kwargs}
        while True:
            wanted = page if limit is None else min(page, limit - len(items))
            if wanted <= 0:
                return items
            response = self.client.query(**kwargs, Limit=wanted)
            items.extend(deserialise(raw) for raw in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last or (limit is not None and len(items) >= limit):
                return items if limit is None else items[:limit]
            kwargs["ExclusiveStartKey"] = last
