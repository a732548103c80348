"""Proactive service: behaviour events (``order.status_checked``, ``page.viewed``) into actions.

Consumes the proactive queue, fed by the ``behaviour-events`` rule (sources ``omni.*``).
Publishes ``notification.requested`` (a shipping update after repeated order-status
checks) and ``agent.assigned`` (a retention task handed to an agent). The rules are
``functions/proactive/proactive_rules.toml`` (see ``rules.py`` beside it). An event that breaks the
documented schema fails its record and ends in the dead-letter queue, with the reason in
the log; an event about an unknown customer is logged and dropped.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.proactive.events import BehaviourDetail
from functions.proactive.service import Proactive
from shared import bootstrap
from shared.contracts.events import format_timestamp, utc_now
from shared.platform.consumer import LoggedBatchProcessor, event_record_model
from shared.platform.observability import new_logger, new_tracer, set_correlation, with_correlation

logger = new_logger()
tracer = new_tracer()
Record = event_record_model(BehaviourDetail)
processor = LoggedBatchProcessor(Record, logger)
behaviour = bootstrap.behaviour()
publisher = bootstrap.publisher("omni.proactive")
_proactive: Proactive | None = None


def proactive() -> Proactive:
    """Built on first use: the rules files are read and validated once per container."""
    global _proactive  # noqa: PLW0603 - one per container
    if _proactive is None:
        _proactive = Proactive(behaviour, bootstrap.customers(), bootstrap.conversations(), bootstrap.desk())
    return _proactive


@tracer.capture_method
def record_handler(record: Any) -> None:
    envelope = record.body
    correlation_id = f"behaviour#{envelope.id}"
    set_correlation(logger, correlation_id)
    events = with_correlation(
        proactive().handle(envelope.detail_type, envelope.id, envelope.detail, format_timestamp(utc_now())),
        correlation_id,
    )
    logger.info(
        "behaviour event handled",
        extra={
            "detail_type": envelope.detail_type,
            "source": envelope.source,
            "published": [detail_type for detail_type, _ in events],
        },
    )
    if events:
        publisher.publish(events)


@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )
