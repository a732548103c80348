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
* **Tracing.** Every function has a :class:`LazyTracer` (:func:`new_tracer`) around its
  handler: a Powertools ``Tracer`` that is created on the first invocation, not at import,
  and only where tracing is on (in Lambda, with active tracing; off locally and in tests
  via ``POWERTOOLS_TRACE_DISABLED``). Creating it imports the X-Ray SDK and patches
  botocore (every AWS call a subsegment): 7-9 ms of CPU, 30-37 ms in the functions that
  have not loaded asyncio already, that would otherwise count against every import
  (``bench/coldstart.py`` reports it as first-invocation work). Only botocore is
  patched: ``patch_all`` imports and patches a dozen libraries the functions do not use
  (about 40 ms more). :func:`set_correlation` annotates the current
  segment with ``correlation_id``, so a message is found in X-Ray with the filter
  ``annotation.correlation_id = "sms#SM..."``; responses are not captured (they carry
  customer data).
* **Metrics.** :func:`set_stage_dimension` gives every metric of the invocation its
  ``stage`` dimension.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar, cast

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from pydantic import BaseModel

from shared.platform import settings

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics, Tracer

_log = logging.getLogger(__name__)

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
REDUNDANT_KEYS = ("function_arn", "function_memory_size", "sampling_rate")
#: Keys left off the routine lines (INFO and below: one per function per message), kept on
#: warnings and errors, where they help: the code location, the X-Ray trace id (a message's
#: trace is found by its ``correlation_id`` annotation). Routine lines also leave out
#: ``cold_start`` when false and any key whose value is empty (None, [], {}). About 90-150
#: bytes a line; ``correlation_id`` stays on every line.
ROUTINE_ONLY_KEYS = ("location", "xray_trace_id")


def _says_nothing(key: str, value: Any) -> bool:
    if key == "cold_start":
        return value is False
    return value is None or (isinstance(value, list | dict | tuple) and not value)


class MaskingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, with phone numbers and e-mail addresses masked and the
    routine lines compact (:data:`REDUNDANT_KEYS`, :data:`ROUTINE_ONLY_KEYS`)."""

    def serialize(self, log: dict[str, Any]) -> str:  # type: ignore[override]
        for key in REDUNDANT_KEYS:
            log.pop(key, None)
        if log.get("level") in ("INFO", "DEBUG"):
            for key in ROUTINE_ONLY_KEYS:
                log.pop(key, None)
            # Nothing said is shorter than an empty value: a false cold start, a None, [] or {}.
            for key in [k for k, v in log.items() if _says_nothing(k, v)]:
                del log[key]
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
    annotate_correlation(correlation_id)


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


# --------------------------------------------------------------------------- #
# Tracing
# --------------------------------------------------------------------------- #

#: What the tracer patches: the AWS SDK, so every DynamoDB, SQS, EventBridge... call is a subsegment.
TRACED_MODULES = ("botocore",)
#: The annotation that carries the correlation id (X-Ray: letters, digits and ``_`` only).
CORRELATION_ANNOTATION = "correlation_id"
#: X-Ray keeps annotation values of up to 1,000 characters.
_MAX_ANNOTATION = 1000

_F = TypeVar("_F", bound=Callable[..., Any])
#: The Powertools Tracer once a traced handler has created it (tracing on, first invocation).
_active: Tracer | None = None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "y", "yes", "t", "true", "on")


def tracing_enabled() -> bool:
    """Powertools' rule: on in Lambda unless ``POWERTOOLS_TRACE_DISABLED`` says otherwise;
    off in SAM or Chalice local mode and outside Lambda."""
    if _truthy(os.getenv(settings.POWERTOOLS_TRACE_DISABLED)):
        return False
    if not os.getenv(settings.LAMBDA_TASK_ROOT):
        return False
    return not (os.getenv(settings.AWS_SAM_LOCAL) or os.getenv(settings.AWS_CHALICE_CLI_MODE))


class LazyTracer:
    """A Powertools ``Tracer`` created on the first invocation, and only if tracing is on.

    ``capture_lambda_handler`` and ``capture_method`` decorate at import time as
    Powertools' do; the ``Tracer`` behind them (X-Ray SDK import, botocore patching) is
    created by the first call. With tracing off the decorated functions are called as
    they are.
    """

    def __init__(self, service: str | None = None) -> None:
        self.service = service
        self._tracer: Tracer | None = None
        self._enabled: bool | None = None

    @property
    def enabled(self) -> bool:
        if self._enabled is None:
            self._enabled = tracing_enabled()
        return self._enabled

    @property
    def tracer(self) -> Tracer | None:
        """The Powertools Tracer (created now if need be), or None with tracing off."""
        global _active  # noqa: PLW0603 - the one tracer of this container
        if self._tracer is None and self.enabled:
            from aws_lambda_powertools import Tracer  # noqa: PLC0415 - cheap; the X-Ray SDK it loads is not

            tracer = Tracer(service=self.service, auto_patch=False)
            tracer.patch(TRACED_MODULES)
            self._tracer = tracer
            _active = tracer
        return self._tracer

    def capture_lambda_handler(self, handler: _F) -> _F:
        """Powertools' ``capture_lambda_handler`` (cold start and service annotated, errors recorded)."""
        traced: list[Callable[..., Any]] = []

        @functools.wraps(handler)
        def wrapper(event: Any, context: Any) -> Any:
            tracer = self.tracer
            if tracer is None:
                return handler(event, context)
            if not traced:
                traced.append(tracer.capture_lambda_handler(handler, capture_response=False))
            return traced[0](event, context)

        wrapper.__traced_by__ = self  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    def capture_method(self, method: _F) -> _F:
        """Powertools' ``capture_method``: a subsegment per call (the response is not captured)."""
        traced: list[Callable[..., Any]] = []

        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            tracer = self.tracer
            if tracer is None:
                return method(*args, **kwargs)
            if not traced:
                traced.append(tracer.capture_method(cast(Any, method), capture_response=False))
            return traced[0](*args, **kwargs)

        wrapper.__traced_by__ = self  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]


def new_tracer(service: str | None = None) -> LazyTracer:
    """The function's tracer; the service name defaults to ``POWERTOOLS_SERVICE_NAME``."""
    return LazyTracer(service=service)


def annotate_correlation(*correlation_ids: str | None) -> None:
    """Put the correlation id(s) on the current trace segment (no-op with tracing off).

    Several ids (a webhook notification with several messages) are joined by spaces:
    the X-Ray filter ``annotation.correlation_id CONTAINS "..."`` finds each.
    """
    ids = [cid for cid in dict.fromkeys(correlation_ids) if cid]
    if _active is None or not ids:
        return
    try:
        _active.put_annotation(key=CORRELATION_ANNOTATION, value=" ".join(ids)[:_MAX_ANNOTATION])
    except Exception:  # a trace annotation must never fail the work it describes
        _log.debug("could not annotate the trace segment", exc_info=True)


def annotate_published(events: Sequence[tuple[str, BaseModel]]) -> None:
    """Annotate the trace with the correlation ids of the events being published, so that a
    webhook's trace is found by the messages it accepted (``message.received`` has no
    correlation id yet: its message key, ``<channel>#<provider message id>``, becomes it)."""
    if _active is None:
        return
    annotate_correlation(*(correlation_of(d, getattr(d, "message_key", None)) for _, d in events))


def set_stage_dimension(metrics: Metrics, stage: str) -> None:
    """``stage`` as a default dimension of ``metrics`` (call it at the start of each invocation).

    Powertools keeps dimensions on the ``Metrics`` class, shared by every instance in the
    process, and re-adds the default ones after each flush. In Lambda a process serves one
    stage, so the value never changes; the local stack and the tests run several stages'
    functions in one process, where setting another value over the kept one would warn
    ("Dimension 'stage' has already been added"). A changed stage replaces the old one.
    """
    if metrics.default_dimensions.get("stage") == stage:
        return
    metrics.clear_default_dimensions()
    metrics.dimension_set.pop("stage", None)
    metrics.set_default_dimensions(stage=stage)
