"""The benchmark's index write units (bench/meter.py): what each projection costs."""

from __future__ import annotations

from bench.meter import Meter, TableSchema


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
