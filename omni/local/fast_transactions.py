"""Make moto's ``TransactWriteItems`` cost independent of the table's size.

moto snapshots every table a transaction touches with ``copy.deepcopy`` (to roll back a
cancelled transaction), once per action: the cost of every transaction grows with the
tables (under load, 70% of the local stack's CPU went there, and with 300,000 items in
the customers table a single profile-merge transaction takes seconds) — moto's cost,
not DynamoDB's. :func:`install` replaces that snapshot, in this process only, with an
undo log: before the transaction runs, a deep copy of each item it names (or the note
that there is none) — the only items it can change. moto's own rollback then puts the
live table back in its place (a no-op), and the undo log restores exactly those items,
so a cancelled transaction leaves the same state as before, at a cost that depends on
the transaction, not on the tables. Requests, conditions and results are untouched.

Used by the embedded emulator of ``omni local`` (and so by the end-to-end tests) through
:func:`make_moto_transactions_fast`, and by :mod:`bench.scaling`.
"""

from __future__ import annotations

import copy
import threading
import types
from collections.abc import Callable
from typing import Any

from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

from omni.local.atomic import dynamodb_lock

_local = threading.local()
_installed = False

#: (table, partition key, sort key or None, the item before the transaction or None)
Saved = tuple[Table, DynamoType, DynamoType | None, Item | None]


def _key_of(table: Table, op: dict[str, Any]) -> dict[str, Any] | None:
    key = op.get("Key") or {
        name: op["Item"][name]
        for name in (table.hash_key_attr, table.range_key_attr)
        if name and name in op.get("Item", {})
    }
    if table.hash_key_attr not in key or (table.range_key_attr and table.range_key_attr not in key):
        return None  # not a complete key: moto refuses the action, nothing is written
    return key


def _save(backend: Any, transact_items: list[dict[str, Any]]) -> list[Saved]:
    saved: list[Saved] = []
    for action in transact_items:
        if not isinstance(action, dict) or not action:
            continue
        _, op = next(iter(action.items()))
        table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
        key = _key_of(table, op) if table is not None else None
        if table is None or key is None:
            continue
        hash_key = DynamoType(key[table.hash_key_attr])
        if table.range_key_attr:
            range_key = DynamoType(key[table.range_key_attr])
            current = table.items[hash_key].get(range_key) if hash_key in table.items else None
        else:
            range_key = None
            current = table.items.get(hash_key)
        saved.append((table, hash_key, range_key, copy.deepcopy(current)))
    return saved


def _restore(saved: list[Saved]) -> None:
    # In reverse: should a key be named twice, the state before the first action wins.
    for table, hash_key, range_key, item in reversed(saved):
        if range_key is None:
            if item is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = item  # type: ignore[assignment]  # a hash-key table maps the key to its item
        elif item is None:
            if hash_key in table.items:
                table.items[hash_key].pop(range_key, None)
        else:
            table.items[hash_key][range_key] = item


def _deepcopy(value: Any, memo: Any = None) -> Any:
    if isinstance(value, Table) and getattr(_local, "active", False):
        # moto's snapshot: hand it the live table (its rollback puts it back, a no-op);
        # the undo log restores what the transaction changed.
        return value
    return copy.deepcopy(value, memo)


def install() -> Callable[[], None]:
    """Patch moto in this process; returns the function that undoes it."""
    backend = dynamodb_models.DynamoDBBackend
    original = backend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        # The undo log is taken and applied under the backend's lock, with the transaction:
        # no other request may write an item between its copy and its restoration.
        with dynamodb_lock():
            saved = _save(self, transact_items)
            _local.active = True
            try:
                return original(self, transact_items)
            except BaseException:
                _restore(saved)
                raise
            finally:
                _local.active = False

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
