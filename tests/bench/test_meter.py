"""The benchmark's index write units (bench/meter.py): what each projection costs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bench.meter import Meter, TableSchema, _item_kind, item_size


def meter_with(projection: str, included: tuple[str, ...] = ()) -> Meter:
    meter = Meter("http://127.0.0.1:1", "us-east-1")  # never called: the schema is given
    meter._schemas["t"] = TableSchema(("pk", "sk"), {"i": (("g",), projection, included)})
    return meter


def item(**attrs: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": "p"}, "sk": {"S": "s"}, **{k: {"S": v} for k, v in attrs.items()}}


def test_an_update_writes_an_index_only_when_it_changes_what_the_index_projects() -> None:
    big = "x" * 3000
    old, new = item(g="k", a="1", body=big), item(g="k", a="1", body=big + "y")
    assert meter_with("ALL")._gsi_units("t", old, new) == (3, 1)
    assert meter_with("INCLUDE", ("a",))._gsi_units("t", old, new) == (0, 0)
    assert meter_with("KEYS_ONLY")._gsi_units("t", old, new) == (0, 0)
    changed = item(g="k", a="2", body=big)
    assert meter_with("INCLUDE", ("a",))._gsi_units("t", old, changed) == (1, 1)
    # A new key: the old index item is deleted and a new one written (small, when projected small).
    moved = item(g="k2", a="1", body=big)
    assert meter_with("INCLUDE", ("a",))._gsi_units("t", old, moved) == (2, 2)
    assert meter_with("ALL")._gsi_units("t", old, moved) == (6, 2)
    # Not in the (sparse) index before or after: nothing.
    assert meter_with("ALL")._gsi_units("t", item(a="1"), item(a="2")) == (0, 0)


def test_read_units_are_counted_by_item_kind_a_query_shared_by_size() -> None:
    meter = meter_with("ALL")
    body = {"TableName": "omni-test-conversations", "KeyConditionExpression": "pk = :pk"}
    meta = {"pk": {"S": "CONV#1"}, "sk": {"S": "META"}, "body": {"S": "x" * 3000}}
    message = {"pk": {"S": "CONV#1"}, "sk": {"S": "MSG#2026#1"}, "body": {"S": "x" * 1000}}
    units = meter._account_query("Query", body, {"Items": [meta, message]})
    assert units == 0.5  # about 4 KB, eventually consistent
    shares = meter.data.rru_by_item
    assert shares[("conversations", "META")] > 2 * shares[("conversations", "MSG")] > 0
    assert meter.data.item_requests[("conversations", "META", "Query")] == 1
    # The KPI counter rows are named by their day: one kind, whatever the day.
    assert _item_kind({"pk": {"S": "KPI#2026-11"}, "sk": {"S": "2026-11-02#billing#sms"}}) == "DAY"


def test_index_writes_are_told_by_index_and_cause() -> None:
    """DynamoDB's rules (developer guide, global secondary indexes, writes): a changed key is a
    delete and a put, entering or leaving a sparse index one write, a changed projected
    attribute one write, a rewrite with the same values none."""
    meter = Meter("http://127.0.0.1:1", "us-east-1")
    meter._schemas["t"] = TableSchema(
        ("pk", "sk"), {"q": (("g", "r"), "INCLUDE", ("a",)), "k": (("h",), "KEYS_ONLY", ())}
    )
    queued = item(g="billing", r="1", a="x", h="1")

    def causes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[tuple[str, str, str, int]]:
        return [(w.index, w.cause, w.attributes, w.units) for w in meter._gsi_writes("t", old, new)]

    # The same values written again (an update that sets what was there): no index write.
    assert causes(queued, dict(queued)) == []
    assert meter._gsi_units("t", queued, dict(queued)) == (0, 0)
    # A non-projected attribute changed: no index write either.
    assert causes(queued, {**queued, "body": {"S": "y"}}) == []
    assert causes(None, queued) == [
        ("q", "entered", "a,g,pk,r,sk", 1),
        ("k", "entered", "h,pk,sk", 1),
    ]
    assert causes(queued, {**queued, "r": {"S": "2"}}) == [("q", "key changed", "r", 2)]
    assert causes(queued, {**queued, "a": {"S": "y"}}) == [("q", "projected attribute changed", "a", 1)]
    left = {k: v for k, v in queued.items() if k != "g"}
    assert causes(queued, left) == [("q", "left", "a,g,pk,r,sk", 1)]
    assert causes(queued, None) == [("q", "left", "a,g,pk,r,sk", 1), ("k", "left", "h,pk,sk", 1)]


def test_the_largest_item_of_each_kind_is_kept_with_its_attribute_sizes() -> None:
    meter = meter_with("KEYS_ONLY")
    meter._schemas["omni-test-conversations"] = TableSchema(("pk", "sk"), {})
    small = {"pk": {"S": "CONV#1"}, "sk": {"S": "META"}, "status": {"S": "open"}}
    large = {**small, "routing": {"M": {"answer": {"S": "x" * 500}}}}
    items: Iterator[dict[str, Any]] = iter([small, large, small])

    def fetch(table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        return next(items)

    meter._fetch = fetch  # type: ignore[method-assign]
    for _ in range(3):
        meter._account_dynamodb(
            "routing", "PutItem", {}, {}, [("omni-test-conversations", small, "Put", None)]
        )
    size, attributes = meter.data.largest[("conversations", "META")]
    assert size == item_size(large) == sum(attributes.values())
    assert attributes["routing"] == len("routing") + 3 + len("answer") + 500 + 1
