"""Make moto's DynamoDB (and SQS) apply each request atomically, as the services do.

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


_SQS_METHODS = ("receive_message", "delete_message", "change_message_visibility")
_sqs_installed = False


def make_moto_sqs_atomic() -> None:
    """Idempotent: each queue's receives, deletes and visibility changes take the queue's lock.

    moto's SQS has no lock of its own: two receives of one queue can both pick the same
    visible message (two batches with one message: Lambda's pollers never get that from
    SQS for one receive), and a delete rebuilds the queue's message list while a send may
    be appending to it, so a message sent at that moment could vanish. moto's sends already
    append under the queue's condition (``Queue._messages_lock``, re-entrant); these
    methods now take it too. A long-polling receive still waits on that condition, which
    releases the lock while it waits, so other requests are not held up.
    """
    global _sqs_installed  # noqa: PLW0603 - patches a class once per process
    if _sqs_installed:
        return
    from moto.sqs.models import SQSBackend  # noqa: PLC0415

    for name in _SQS_METHODS:
        original = getattr(SQSBackend, name)

        def locked(self: Any, queue_name: str, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with self.get_queue(queue_name)._messages_lock:
                return __original(self, queue_name, *args, **kwargs)

        setattr(SQSBackend, name, functools.wraps(original)(locked))
    _sqs_installed = True
