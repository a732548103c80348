"""KPI: counts conversation events into the ``kpis`` table (definitions: docs/kpis.md).

Consumes from the kpi queue ``agent.assigned``, ``conversation.stalled``,
``conversation.resolved``, ``conversation.reopened``, ``feedback.submitted``, and - the
rule filters them on the bus - only those ``message.recorded`` that switch channel, may
reopen or answer the survey, and those ``notification.requested`` that hand over or may
be the first response; plus its own delayed ``kpi.ces_due`` messages (ask the survey
question a few seconds after a resolution, unless the conversation reopened). Each
event counts once (its id on the conversation's state). Emits the KPIs as CloudWatch
metrics in the embedded metric format (namespace ``omni``, dimensions ``service`` and
``stage``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.kpi.processor import DETAIL_MODELS, KpiProcessor
from shared.contracts.events import format_timestamp, utc_now
from shared.contracts.names import PROJECT
from shared.platform import settings
from shared.platform.bus import EventPublisher
from shared.platform.consumer import LoggedBatchProcessor, event_record_model
from shared.platform.observability import (
    correlation_of,
    new_logger,
    new_tracer,
    set_correlation,
    set_stage_dimension,
)
from shared.repositories.conversations import ConversationRepository
from shared.repositories.kpis import KpiRepository

logger = new_logger()
tracer = new_tracer()
metrics = Metrics(namespace=PROJECT)
Record = event_record_model(dict)  # type: ignore[arg-type]  # the detail type decides the model
processor = LoggedBatchProcessor(Record, logger)
publisher = EventPublisher(source="omni.kpi")
_kpis: KpiProcessor | None = None


def kpis() -> KpiProcessor:
    global _kpis  # noqa: PLW0603 - one per container, built on first use
    if _kpis is None:
        _kpis = KpiProcessor(
            KpiRepository(),
            ConversationRepository(),
            publish=publisher.publish,
            now=lambda: format_timestamp(utc_now()),
        )
    return _kpis


@tracer.capture_method
def record_handler(record: Any) -> None:
    body = record.body
    model = DETAIL_MODELS.get(body.detail_type)
    if model is None:
        logger.warning("event type the KPIs do not count", extra={"detail_type": body.detail_type})
        return
    detail = model.model_validate(body.detail)
    set_correlation(
        logger,
        correlation_of(
            detail,
            getattr(detail, "message_id", None),
            getattr(detail, "notification_id", None),
            getattr(detail, "conversation_id", None),
        ),
    )
    outcome = kpis().handle(body.id, body.detail_type, detail, format_timestamp(body.time))
    metrics.add_metric(name="KpiEventsCounted", unit="Count", value=1 if outcome.counted else 0)
    for name, value, unit in outcome.metrics:
        metrics.add_metric(name=name, unit=unit, value=value)
    logger.info(
        "event counted" if outcome.counted else "event changed nothing (or was counted before)",
        extra={
            "detail_type": body.detail_type,
            "event_id": body.id,
            "conversation_id": getattr(detail, "conversation_id", None),
            "metrics": [name for name, _, _ in outcome.metrics],
        },
    )
    set_correlation(logger, None)


@tracer.capture_lambda_handler
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    set_stage_dimension(metrics, settings.stage())
    return dict(
        process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    )
