"""Make moto's DynamoDB ``Query`` cost independent of the table's size.

moto answers every ``Query`` by listing *every* item of the table, sorted by primary key
(``Table.all_items``), and then keeping those of the partition asked for: each query costs
O(n log n) in the table's size, though DynamoDB reads one partition. On the local stack
the conversations table grows with every message, so the end-to-end rate fell as the
tables grew — moto's cost, not DynamoDB's.

:func:`install` changes, in this process only, what ``all_items`` hands to a running
``Query`` — nothing else calls it differently:

* a query of the table itself gets the items of the one partition it names (moto then
  keeps exactly those, and sorts them by sort key, as before);
* a query of a secondary index gets the items whose index partition key equals the one
  asked for when that key is a string or binary (compared exactly as stored), every item
  otherwise — unsorted: moto filters them again and sorts them by the index's keys and
  the table's keys, a total order, so the order it had from the pre-sorted list is kept.

Every condition, filter, limit, page and projection is still moto's own code.
Used by the embedded emulator of ``omni local`` (and so by the end-to-end tests) through
:func:`make_moto_queries_fast`, and by :mod:`bench.scaling`.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

_local = threading.local()
_installed = False


def _partition(table: Table, hash_key: DynamoType | None) -> list[Item]:
    if hash_key is None:
        return []
    found = table.items.get(hash_key)
    if found is None:
        return []
    if table.range_key_attr:
        return list(found.values())
    return [found]  # type: ignore[list-item]  # a hash-key table maps the key to its item


def _index_candidates(table: Table, conditions: list[tuple[str, DynamoType]]) -> list[Item]:
    items: list[Item] = []
    for part in table.items.values():
        if table.range_key_attr:
            items.extend(part.values())
        else:
            items.append(part)  # type: ignore[arg-type]
    exact = [(name, value) for name, value in conditions if value.type in ("S", "B")]
    if not exact:
        return items
    name, expected = exact[0]
    kind, raw = expected.type, expected.value
    out = []
    for item in items:
        value = item.attrs.get(name)
        if value is not None and value.type == kind and value.value == raw:
            out.append(item)
    return out


def install() -> Callable[[], None]:
    """Patch moto in this process; returns the function that undoes it."""
    original_query = Table.query
    original_all_items = Table.all_items
    signature = inspect.signature(original_query)

    def query(self: Table, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        index_name = bound.arguments.get("index_name")
        conditions = list(bound.arguments.get("hash_key_conditions") or [])
        _local.query = (index_name, bound.arguments.get("hash_key"), conditions)
        try:
            return original_query(self, *args, **kwargs)
        finally:
            _local.query = None

    def all_items(self: Table) -> list[Item]:
        running = getattr(_local, "query", None)
        if running is None:
            return original_all_items(self)
        _local.query = None  # only the query's own listing
        index_name, hash_key, conditions = running
        if index_name:
            return _index_candidates(self, conditions)
        return _partition(self, hash_key)

    Table.query = query  # type: ignore[method-assign]
    Table.all_items = all_items  # type: ignore[method-assign]

    def undo() -> None:
        Table.query = original_query  # type: ignore[method-assign]
        Table.all_items = original_all_items  # type: ignore[method-assign]

    return undo


def make_moto_queries_fast() -> None:
    """Idempotent :func:`install` for the process's lifetime (the embedded emulator's)."""
    global _installed  # noqa: PLW0603 - patches moto once per process
    if not _installed:
        install()
        _installed = True
