"""The embedded emulator's EventBridge deliveries (omni/local/fast_events.py).

moto built a new JSONPath parser for every path of a target's input map, for every event
it delivered. The delivered events must stay the same; the parser is built once per path.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import jsonpath_ng.ext
import pytest
from moto.events.utils import EventTemplateParser

from omni.local import fast_events


def parse_event(*args: Any, **kwargs: Any) -> Any:
    """moto's ``EventTemplateParser.parse`` as installed now (its annotations want a TypedDict)."""
    parse: Any = EventTemplateParser.parse
    return parse(*args, **kwargs)


EVENT: dict[str, Any] = {
    "version": "0",
    "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
    "detail-type": "message.recorded",
    "source": "omni.inbound",
    "account": "123456789012",
    "time": 1796616000,  # moto keeps it as a number until it delivers
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:event-bus/omni"],
    "detail": {"message_id": "sms#SM1", "text": "Where is my parcel?", "n": 3, "tags": ["a", "b"]},
    "ingestion-time": 1796616000.0,
}

TRANSFORMERS: list[tuple[str | None, dict[str, str]]] = [
    (None, {}),  # no InputTransformer: moto's default map and template
    (
        '{"who": "<who>", "n": <n>, "tags": <tags>, "missing": "<nope>"}',
        {
            "who": "$.detail.message_id",
            "n": "$.detail.n",
            "tags": "$.detail.tags",
            "nope": "$.detail.absent",
        },
    ),
    ('"<text>"', {"text": "$.detail.text"}),
]


@pytest.fixture
def patched() -> Iterator[None]:
    undo = fast_events.install()
    yield
    undo()


@pytest.mark.parametrize(("template", "paths"), TRANSFORMERS)
def test_delivered_events_are_the_same(patched: None, template: str | None, paths: dict[str, str]) -> None:
    expected = fast_events.MOTO_TEMPLATE_PARSE(template, paths, EVENT)
    for _ in range(3):
        assert parse_event(input_template=template, input_paths_map=paths, event=EVENT) == expected
    other = {**EVENT, "id": "another", "detail": {"message_id": "sms#SM2", "n": 4, "tags": [], "text": "hi"}}
    assert parse_event(template, paths, other) == fast_events.MOTO_TEMPLATE_PARSE(template, paths, other)


def test_each_path_is_compiled_once(patched: None, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []
    real = jsonpath_ng.ext.parser.ExtendedJsonPathParser.parse

    def parse(self: Any, path: str, *args: Any, **kwargs: Any) -> Any:
        compiled.append(path)
        return real(self, path, *args, **kwargs)

    monkeypatch.setattr(jsonpath_ng.ext.parser.ExtendedJsonPathParser, "parse", parse)
    # Paths of this test only: the process's own patch (the embedded emulator's) may have
    # compiled the other tests' paths already.
    who, n = (f"k{uuid.uuid4().hex}" for _ in range(2))
    event = {**EVENT, "detail": {who: "sms#SM1", n: 3}}
    paths = {"who": f"$.detail.{who}", "n": f"$.detail.{n}"}
    for _ in range(5):
        assert parse_event('{"who": "<who>", "n": <n>}', paths, event) == {"who": "sms#SM1", "n": 3}
    assert sorted(compiled) == sorted(paths.values())  # moto's own: 10


def test_other_callers_of_jsonpath_get_a_new_expression(patched: None) -> None:
    assert jsonpath_ng.ext.parse("$.a") is not jsonpath_ng.ext.parse("$.a")


def test_undo_restores_what_was_there() -> None:
    before = (jsonpath_ng.ext.parse, EventTemplateParser.__dict__["parse"])
    undo = fast_events.install()
    undo()
    assert (jsonpath_ng.ext.parse, EventTemplateParser.__dict__["parse"]) == before
