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
* the retention check of ``receive_message`` reads the queue's retention period directly.

Used by the embedded emulator of ``omni local`` through :func:`make_moto_sqs_fast`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.core.utils import unix_time
from moto.sqs.exceptions import InvalidAttributeName
from moto.sqs.models import Message, SQSBackend

_installed = False


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

    SQSBackend.get_queue_attributes = get_queue_attributes  # type: ignore[method-assign]
    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]

    def undo() -> None:
        SQSBackend.get_queue_attributes = original_attributes  # type: ignore[method-assign]
        SQSBackend.is_message_valid_based_on_retention_period = original_retention  # type: ignore[method-assign]

    return undo


def make_moto_sqs_fast() -> None:
    """Idempotent :func:`install` for the process's lifetime (the embedded emulator's)."""
    global _installed  # noqa: PLW0603 - patches moto once per process
    if not _installed:
        install()
        _installed = True
