"""The benchmark's index write units (bench/meter.py): what each projection costs."""

from __future__ import annotations

from bench.meter import Meter, TableSchema, _item_kind


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
