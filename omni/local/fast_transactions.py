"""Make moto's ``TransactWriteItems`` cost independent of the table's size.

moto snapshots every table a transaction touches with ``copy.deepcopy`` (to roll back a
cancelled transaction), once per action: the cost of every transaction grows with the
tables (under load, 70% of the local stack's CPU went there, and with 300,000 items in
the customers table a single profile-merge transaction takes seconds) — moto's cost,
not DynamoDB's. :func:`install` replaces that snapshot, in this process only, with one
that copies the table's item index shallowly and deep-copies only the items the
transaction names — the only ones it can change — so a rollback restores exactly the
same state. Requests, conditions and results are untouched.

Used by the embedded emulator of ``omni local`` (and so by the end-to-end tests) through
:func:`make_moto_transactions_fast`, and by :mod:`bench.scaling`.
"""

from __future__ import annotations

import copy
import threading
import types
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table

_local = threading.local()
_installed = False


def _snapshot(table: Table) -> Table:
    clone = copy.copy(table)
    if table.range_key_attr:
        clone.items = defaultdict(dict, {h: dict(r) for h, r in table.items.items()})
    else:
        clone.items = dict(table.items)  # type: ignore[assignment]  # a hash-key table: a plain index
    for key in getattr(_local, "touched", {}).get(table.name, []):
        hash_key = DynamoType(key[table.hash_key_attr])
        if table.range_key_attr:
            range_key = DynamoType(key[table.range_key_attr])
            item = clone.items.get(hash_key, {}).get(range_key)
            if item is not None:
                clone.items[hash_key][range_key] = copy.deepcopy(item)
        elif hash_key in clone.items:
            clone.items[hash_key] = copy.deepcopy(clone.items[hash_key])
    return clone


def _deepcopy(value: Any, memo: Any = None) -> Any:
    if isinstance(value, Table) and getattr(_local, "touched", None) is not None:
        return _snapshot(value)
    return copy.deepcopy(value, memo)


def install() -> Callable[[], None]:
    """Patch moto in this process; returns the function that undoes it."""
    backend = dynamodb_models.DynamoDBBackend
    original = backend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        touched: dict[str, list[dict[str, Any]]] = {}
        for action in transact_items:
            _, op = next(iter(action.items()))
            table = self.tables.get(op.get("TableName"))
            if table is None:
                continue
            key = op.get("Key") or {
                name: op["Item"][name]
                for name in (table.hash_key_attr, table.range_key_attr)
                if name and name in op.get("Item", {})
            }
            touched.setdefault(table.name, []).append(key)
        _local.touched = touched
        try:
            return original(self, transact_items)
        finally:
            _local.touched = None

    saved_copy = dynamodb_models.copy
    dynamodb_models.copy = types.SimpleNamespace(deepcopy=_deepcopy, copy=copy.copy)  # type: ignore[assignment]
    backend.transact_write_items = transact_write_items  # type: ignore[method-assign]

    def undo() -> None:
        dynamodb_models.copy = saved_copy  # type: ignore[assignment]
        backend.transact_write_items = original  # type: ignore[method-assign]

    return undo


def make_moto_transactions_fast() -> None:
    """Idempotent :func:`install` for the process's lifetime (the embedded emulator's)."""
    global _installed  # noqa: PLW0603 - patches moto once per process
    if not _installed:
        install()
        _installed = True
