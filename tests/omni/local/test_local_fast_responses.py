"""The embedded emulator's response serializer and action lookup (omni/local/fast_responses.py).

moto asked six alias providers, for every member of every structure it wrote, which keys
the value may be stored under, and listed a response class's functions on every request.
The bodies moto writes must stay byte for byte the same; the repeated work must go.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from moto.core import serialize as moto_serialize
from moto.core import utils as moto_utils
from moto.core.serialize import XFormedAttributePicker, get_serializer_class
from moto.core.utils import get_service_model
from moto.dynamodb.responses import DynamoHandler
from moto.sqs.responses import SQSResponse

from omni.local import fast_responses


class MotoPicker(XFormedAttributePicker):
    """moto's own picker, whatever is patched on the class."""

    get_possible_keys = fast_responses.MOTO_GET_POSSIBLE_KEYS  # type: ignore[assignment]


class Model:
    """A moto-style model object (not a dict): its keys come from moto's providers."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


@pytest.fixture
def patched() -> Iterator[None]:
    undo = fast_responses.install()
    yield
    undo()


def serialize(service: str, protocol: str, operation: str, result: Any, picker: Any) -> Any:
    model = get_service_model(service).operation_model(operation)
    serializer = get_serializer_class(service, protocol)(
        operation_model=model, pretty_print=False, value_picker=picker
    )
    return serializer.serialize(result)["body"]


ITEM = {
    "pk": {"S": "conv#1"},
    "sk": {"N": "12"},
    "blob": {"B": b"\x00\x01binary"},
    "flags": {"BOOL": False},
    "nothing": {"NULL": True},
    "tags": {"SS": ["a", "b"]},
    "scores": {"NS": ["1", "2.5"]},
    "nested": {"M": {"list": {"L": [{"S": "x"}, {"M": {"deep": {"N": "3"}}}]}}},
}

CASES: list[tuple[str, str, str, Any]] = [
    ("dynamodb", "json", "GetItem", {"Item": ITEM}),
    ("dynamodb", "json", "GetItem", {}),
    (
        "dynamodb",
        "json",
        "Query",
        {
            "Items": [ITEM, {"pk": {"S": "conv#2"}}],
            "Count": 2,
            "ScannedCount": 3,
            "LastEvaluatedKey": {"pk": {"S": "x"}},
        },
    ),
    (
        "dynamodb",
        "json",
        "UpdateItem",
        {"Attributes": ITEM, "ConsumedCapacity": {"TableName": "t", "CapacityUnits": 1.0}},
    ),
    (
        "sqs",
        "json",
        "ReceiveMessage",
        {
            "Messages": [
                {
                    "MessageId": "m-1",
                    "ReceiptHandle": "r-1",
                    "MD5OfBody": "abc",
                    "Body": '{"a": 1}',
                    "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"},
                    "MessageAttributes": {"kind": {"StringValue": "x", "DataType": "String"}},
                }
            ]
        },
    ),
    (
        "sqs",
        "query",
        "ReceiveMessage",
        {"Messages": [{"MessageId": "m-1", "Body": "b", "Attributes": {"A": "1"}}]},
    ),
    ("sqs", "json", "SendMessage", Model(message_id="m-2", md5_of_message_body="abc", sequence_number=None)),
    (
        "sqs",
        "json",
        "DeleteMessageBatch",
        {
            "Successful": [{"Id": "0"}],
            "Failed": [{"Id": "1", "SenderFault": True, "Code": "X", "Message": "m"}],
        },
    ),
]


@pytest.mark.parametrize(("service", "protocol", "operation", "result"), CASES)
def test_bodies_are_the_same_as_moto_writes(
    patched: None, service: str, protocol: str, operation: str, result: Any
) -> None:
    expected = serialize(service, protocol, operation, result, MotoPicker())
    assert serialize(service, protocol, operation, result, XFormedAttributePicker()) == expected
    # Again, from the remembered keys.
    assert serialize(service, protocol, operation, result, XFormedAttributePicker()) == expected


def test_the_alias_providers_are_asked_once_per_member(
    patched: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    original = moto_serialize.NoAlias.has_alias

    def has_alias(self: Any, key: str) -> bool:
        asked.append(key)
        return original(self, key)

    monkeypatch.setattr(moto_serialize.NoAlias, "has_alias", has_alias)
    result = {"Items": [ITEM] * 20, "Count": 20, "ScannedCount": 20}
    serialize("dynamodb", "json", "Query", result, XFormedAttributePicker())
    first = len(asked)
    serialize("dynamodb", "json", "Query", result, XFormedAttributePicker())
    assert len(asked) == first  # remembered: moto asked again for every item and attribute
    asked.clear()
    serialize("dynamodb", "json", "Query", result, MotoPicker())
    assert len(asked) > 20 * len(ITEM)


def test_model_objects_still_go_through_motos_providers(patched: None) -> None:
    class Meta:
        serialization_aliases = {"MessageId": "custom_id"}

    aliased = Model(custom_id="from-meta", message_id="ignored", md5_of_message_body="abc")
    aliased.Meta = Meta  # type: ignore[attr-defined]
    expected = serialize("sqs", "json", "SendMessage", aliased, MotoPicker())
    assert serialize("sqs", "json", "SendMessage", aliased, XFormedAttributePicker()) == expected
    assert "from-meta" in expected


def test_action_names_are_listed_once_per_class(patched: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for response_class in (DynamoHandler, SQSResponse):
        assert moto_utils.method_names_from_class(response_class) == [
            name for name, _ in inspect.getmembers(response_class, predicate=inspect.isfunction)
        ]
    listed: list[object] = []
    original = inspect.getmembers

    def getmembers(*args: Any, **kwargs: Any) -> Any:
        listed.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(inspect, "getmembers", getmembers)
    names = moto_utils.method_names_from_class(DynamoHandler)
    names.append("mutated by a caller")
    assert "mutated by a caller" not in moto_utils.method_names_from_class(DynamoHandler)
    assert listed == []


def test_undo_restores_what_was_there() -> None:
    before = (XFormedAttributePicker.get_possible_keys, moto_utils.method_names_from_class)
    undo = fast_responses.install()
    assert (XFormedAttributePicker.get_possible_keys, moto_utils.method_names_from_class) != before
    undo()
    assert (XFormedAttributePicker.get_possible_keys, moto_utils.method_names_from_class) == before
