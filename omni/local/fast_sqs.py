"""Make moto's SQS cost independent of the number of messages waiting in a queue.

moto answers ``GetQueueAttributes`` by computing *every* attribute of the queue three
times per attribute asked for, and the message counts among them walk every message of
the queue (reading the clock twice per message); ``ReceiveMessage`` asks for the queue's
retention period that way once per message it hands out. With a backlog of a few hundred
messages (a burst of webhooks ahead of profile merge), one receive of ten messages walked
the queue ninety times: the drain became quadratic in the backlog — moto's cost, not SQS's.

:func:`install` changes, in this process only:

* ``get_queue_attributes`` computes the queue's attributes once per request (same names,
  same values, same errors);
* the retention check of ``receive_message`` reads the queue's retention period directly;
* ``send_message`` (and so ``SendMessageBatch`` and EventBridge's deliveries) no longer
  counts the queue's messages: it reads the queue's attributes only for
  ``ContentBasedDeduplication``, but moto's attributes include the three message counts,
  each a walk over every message — while a send runs in a thread, those counts read 0
  there (nothing of a send's outcome depends on them).

Used by the embedded emulator of ``omni local`` through :func:`make_moto_sqs_fast`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from moto.core.utils import unix_time
from moto.sqs.exceptions import InvalidAttributeName
from moto.sqs.models import Message, Queue, SQSBackend

_installed = False
_local = threading.local()
_COUNTS = (
    "approximate_number_of_messages",
    "approximate_number_of_messages_not_visible",
    "approximate_number_of_messages_delayed",
)


def _count_unless_sending(original: property) -> property:
    def count(queue: Queue) -> int:
        if getattr(_local, "sending", False):
            return 0
        return original.fget(queue)  # type: ignore[misc, no-any-return]

    return property(count)


def install() -> Callable[[], None]:
    """Patch moto in this process; returns the function that undoes it."""
    original_attributes = SQSBackend.get_queue_attributes
    original_retention = SQSBackend.is_message_valid_based_on_retention_period

    def get_queue_attributes(self: SQSBackend, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
        queue = self.get_queue(queue_name)
        if not attribute_names:
            return {}
        valid_names = ["All", *queue.BASE_ATTRIBUTES, *queue.FIFO_ATTRIBUTES, *queue.KMS_ATTRIBUTES]
        invalid_name = next((name for name in attribute_names if name not in valid_names), None)
        if invalid_name or invalid_name == "":
            raise InvalidAttributeName(invalid_name)
        computed = queue.attributes
        if "All" in attribute_names:
            return computed
        return {
            name: computed[name]
            for name in attribute_names
            if name in computed and computed[name] is not None
        }

    def is_message_valid_based_on_retention_period(
        self: SQSBackend, queue_name: str, message: Message
    ) -> bool:
        retention_period = getattr(self.get_queue(queue_name), "message_retention_period")  # noqa: B009
        retain_until = retention_period + message.sent_timestamp / 1000  # type: ignore[operator]
        return bool(retain_until > unix_time())

    original_send = SQSBackend.send_message
    original_counts = {name: Queue.__dict__[name] for name in _COUNTS}

    def send_message(self: SQSBackend, *args: Any, **kwargs: Any) -> Message:
        _local.sending = True
        try:
            return original_send(self, *args, **kwargs)
        finally:
            _local.sending = False

    SQSBackend.get_queue_attributes = get_queue_attributes  # type: ignore[method-assign]
    SQSBackend.send_message = send_message  # type: ignore[method-assign]
    for name, counted in original_counts.items():
        setattr(Queue, name, _count_unless_sending(counted))
    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]

    def undo() -> None:
        SQSBackend.get_queue_attributes = original_attributes  # type: ignore[method-assign]
        SQSBackend.is_message_valid_based_on_retention_period = original_retention  # type: ignore[method-assign]
        SQSBackend.send_message = original_send  # type: ignore[method-assign]
        for name, counted in original_counts.items():
            setattr(Queue, name, counted)

    return undo


def make_moto_sqs_fast() -> None:
    """Idempotent :func:`install` for the process's lifetime (the embedded emulator's)."""
    global _installed  # noqa: PLW0603 - patches moto once per process
    if not _installed:
        install()
        _installed = True
