"""Notify: deliver each requested notification once, on the customer's channel.

Consumes ``notification.requested`` from the notify queue (published by routing, the
agent API, or any company system). A record whose provider is busy (429/5xx) or whose
outcome is not known yet raises, so SQS redelivers it later (after the visibility
timeout; the dead-letter queue after maxReceiveCount). A notification inside the
customer's quiet hours is put back on the queue with ``DelaySeconds`` (at most 15
minutes per hop, SQS's limit) until the quiet hours end: no polling loop, no table scan.

Locally (``OMNI_OUTBOUND_MODE=local``, set by ``omni local``) every provider adapter is
wrapped so the provider request lands in the outbox instead of being sent.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.notify.notifier import Notifier, UnsubscribeLinks
from shared import bootstrap
from shared.contracts.events import NotificationRequested, format_timestamp, utc_now
from shared.contracts.names import NOTIFICATION_REQUESTED
from shared.outbound.registry import build_adapters
from shared.platform import settings
from shared.platform.bus import send_delayed
from shared.platform.config import require_env
from shared.platform.consumer import LoggedBatchProcessor, event_record_model
from shared.platform.observability import new_logger, new_tracer, set_correlation

logger = new_logger()
tracer = new_tracer()
Record = event_record_model(NotificationRequested)
processor = LoggedBatchProcessor(Record, logger)

#: The time notify believes it is; tests and the local end-to-end test replace it.
clock: Callable[[], datetime] = utc_now
#: SQS allows at most 15 minutes of DelaySeconds; a longer wait takes several hops.
MAX_DEFER_S = 900
NOTIFY_QUEUE_ENV = settings.NOTIFY_QUEUE_URL
#: Source of the re-queued (deferred) requests.
DEFER_SOURCE = "omni.notify"

_notifier: Notifier | None = None

__all__ = ["build_adapters", "defer", "handler", "notifier"]


def notifier() -> Notifier:
    """Built on first use (adapters from the environment then: ``OMNI_OUTBOUND_MODE``)."""
    global _notifier  # noqa: PLW0603 - one per container, built on first use
    if _notifier is None:
        links = UnsubscribeLinks()
        _notifier = Notifier(
            outbox=bootstrap.outbox(),
            conversations=bootstrap.conversations(),
            customers=bootstrap.customers(),
            adapters=build_adapters(),
            unsubscribe_links=links,
            preference_links=links.preferences,
        )
    return _notifier


def defer(request: NotificationRequested, until: datetime, now: datetime) -> int:
    """Put the request back on the notify queue, due at ``until`` or after one 15-minute hop."""
    delay = max(1, min(MAX_DEFER_S, math.ceil((until - now).total_seconds())))
    queue_url = require_env(NOTIFY_QUEUE_ENV)
    return send_delayed(
        queue_url, DEFER_SOURCE, NOTIFICATION_REQUESTED, request, delay, format_timestamp(now)
    )


@tracer.capture_method
def record_handler(record: Any) -> None:
    request: NotificationRequested = record.body.detail
    set_correlation(logger, request.correlation_id or request.notification_id)
    now = clock()
    outcome = notifier().handle(request, now)
    if outcome.status == "deferred" and outcome.until is not None:
        delay = defer(request, outcome.until, now)
        logger.info(
            "notification deferred for quiet hours",
            extra={"notification_id": request.notification_id, "until": outcome.until, "delay_s": delay},
        )
        return
    log = logger.warning if outcome.status == "failed" else logger.info
    log(
        "notification handled",
        extra={
            "notification_id": outcome.notification_id,
            "status": outcome.status,
            "channel": outcome.channel,
            "channels": list(outcome.channels),
            "error": outcome.error,
            "skipped": [f"{c}: {why}" for c, why in outcome.skipped],
            "kind": request.kind,
        },
    )


@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )
