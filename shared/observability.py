"""Observability shared by the functions: correlation ids and PII masking in logs.

* **Correlation id.** The inbound message's id (``<channel>#<provider message id>``, the
  ``message_id`` of ``message.recorded``) is carried in the ``correlation_id`` field of
  every event that follows from it; each consumer calls :func:`set_correlation` so that
  every log line of the record carries it (Powertools ``correlation_id`` key). Events an
  agent causes carry the API request id instead.
* **PII masking.** :class:`MaskingFormatter` is a Powertools formatter that masks phone
  numbers and e-mail addresses anywhere in a log record (message and extra keys):
  ``+4915112345678`` -> ``+49*********78``, ``ana.lima@example.com`` -> ``a***@example.com``.
  Use it with ``Logger(logger_formatter=MaskingFormatter())``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from pydantic import BaseModel

_EMAIL = re.compile(r"(?<![\w.+-])([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@((?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,})")
#: E.164 (``+`` and 8-15 digits, separators allowed) or a bare run of 9-15 digits (wa_id, PSID).
_PHONE = re.compile(r"(?<![\w+])(\+\d(?:[ ()\-./]?\d){6,14})(?![\w])|(?<![\w.+-])(\d{9,15})(?![\w.:-])")


def _mask_phone(match: re.Match[str]) -> str:
    number = match.group(0)
    digits = [i for i, ch in enumerate(number) if ch.isdigit()]
    keep = set(digits[:2] + digits[-2:]) if number.startswith("+") else set(digits[-2:])
    return "".join(ch if (i in keep or not ch.isdigit()) else "*" for i, ch in enumerate(number))


def mask_pii(text: str) -> str:
    """``text`` with e-mail addresses and phone numbers masked."""
    masked = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(_mask_phone, masked)


#: Lambda context keys Powertools adds to every line that the log group and Lambda's own
#: REPORT line already say (the function, its ARN and memory): ~150 bytes a line, paid for at
#: ingestion on every message. ``function_request_id`` stays: it joins a line to its REPORT.
REDUNDANT_KEYS = ("function_arn", "function_memory_size")


class MaskingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, with phone numbers and e-mail addresses masked."""

    def serialize(self, log: dict[str, Any]) -> str:  # type: ignore[override]
        for key in REDUNDANT_KEYS:
            log.pop(key, None)
        return super().serialize(log)

    def format(self, record: Any) -> str:
        return mask_pii(super().format(record))


def new_logger(**kwargs: Any) -> Logger:
    """A Powertools Logger whose output has PII masked."""
    return Logger(logger_formatter=MaskingFormatter(), **kwargs)


_current: ContextVar[str | None] = ContextVar("omni_correlation_id", default=None)


def set_correlation(logger: Logger, correlation_id: str | None) -> None:
    """Put ``correlation_id`` on every following log line of this record (None clears it);
    :func:`current_correlation` returns it to code that publishes events."""
    logger.set_correlation_id(correlation_id)
    _current.set(correlation_id)


def current_correlation() -> str | None:
    return _current.get()


def with_correlation(
    events: Sequence[tuple[str, BaseModel]], correlation_id: str | None
) -> list[tuple[str, BaseModel]]:
    """The events, each carrying ``correlation_id`` unless it has one (or has no such field)."""
    out: list[tuple[str, BaseModel]] = []
    for detail_type, detail in events:
        stamped = detail
        if (
            correlation_id
            and "correlation_id" in type(detail).model_fields
            and getattr(detail, "correlation_id", None) is None
        ):
            stamped = detail.model_copy(update={"correlation_id": correlation_id})
        out.append((detail_type, stamped))
    return out


def correlation_of(detail: BaseModel, *fallbacks: str | None) -> str | None:
    """The event's correlation id, else the first fallback that is set."""
    found = getattr(detail, "correlation_id", None)
    return found or next((f for f in fallbacks if f), None)
