"""Make moto's DynamoDB apply each request atomically, as DynamoDB does.

moto checks a condition and then writes in plain Python, so two threads can both pass
``attribute_not_exists`` or ``version = :v`` and both write: a lost update real
DynamoDB cannot produce. The local runtime and the tests serve requests from several
threads, so every DynamoDB read and write of moto's backend takes one lock here.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_LOCK = threading.RLock()
_METHODS = (
    "put_item",
    "get_item",
    "query",
    "scan",
    "update_item",
    "delete_item",
    "transact_write_items",
    "transact_get_items",
)
_installed = False


def dynamodb_lock() -> threading.RLock:
    """The lock every request of moto's DynamoDB backend holds (re-entrant): for patches that
    must read and write the backend's state in the same atomic step as a request."""
    return _LOCK


def make_moto_dynamodb_atomic() -> None:
    """Idempotent: wraps the backend's request methods in one process-wide lock."""
    global _installed  # noqa: PLW0603 - patches a class once per process
    if _installed:
        return
    from moto.dynamodb.models import DynamoDBBackend  # noqa: PLC0415

    for name in _METHODS:
        original = getattr(DynamoDBBackend, name, None)
        if original is None:
            continue

        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with _LOCK:
                return __original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, functools.wraps(original)(locked))
    _installed = True
