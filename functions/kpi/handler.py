"""KPI: counts conversation events into the ``kpis`` table (definitions: docs/kpis.md).

Consumes from the kpi queue ``agent.assigned``, ``conversation.stalled``,
``conversation.resolved``, ``conversation.reopened``, ``feedback.submitted``, and - the
rule filters them on the bus - only those ``message.recorded`` that switch channel, may
reopen or answer the survey, and those ``notification.requested`` that hand over or may
be the first response; plus its own delayed ``kpi.ces_due`` messages (ask the survey
question a few seconds after a resolution, unless the conversation reopened). A
batch is counted with one write (one ``ADD`` per counter row, the state items and the
events' ids in one transaction); each event counts once (its id on the conversation's
state), and a record that fails to parse or to count is reported alone (partial batch
response) while the others count. Emits the KPIs as CloudWatch
metrics in the embedded metric format (namespace ``omni``, dimensions ``service`` and
``stage``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.kpi.processor import DETAIL_MODELS, KpiEvent, KpiProcessor
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


#: The events of the current batch that parsed, with their SQS message ids (filled by
#: :func:`record_handler`, counted together by :func:`handler`).
_batch: list[tuple[str, KpiEvent]] = []


@tracer.capture_method
def record_handler(record: Any) -> None:
    """Parse and validate one record; the batch is counted as a whole once every record is parsed."""
    body = record.body
    model = DETAIL_MODELS.get(body.detail_type)
    if model is None:
        logger.warning("event type the KPIs do not count", extra={"detail_type": body.detail_type})
        return
    detail = model.model_validate(body.detail)
    _batch.append(
        (record.messageId, KpiEvent(body.id, body.detail_type, detail, format_timestamp(body.time)))
    )


def _correlate(event: KpiEvent) -> None:
    detail = event.detail
    set_correlation(
        logger,
        correlation_of(
            detail,
            getattr(detail, "message_id", None),
            getattr(detail, "notification_id", None),
            getattr(detail, "conversation_id", None),
        ),
    )


@tracer.capture_method
def batch_handler(records: list[tuple[str, KpiEvent]]) -> list[str]:
    """Count the parsed events in one write; the SQS message ids of those that failed."""
    results = kpis().handle_batch([event for _, event in records], on_event=_correlate)
    failed: list[str] = []
    for (message_id, event), result in zip(records, results, strict=True):
        _correlate(event)
        if isinstance(result, Exception):
            failed.append(message_id)
            logger.warning(
                "event failed; SQS will redeliver it, then move it to the dead-letter queue",
                extra={
                    "message_id": message_id,
                    "event_id": event.event_id,
                    "error_type": type(result).__name__,
                    "error": str(result)[:500],
                },
            )
            continue
        metrics.add_metric(name="KpiEventsCounted", unit="Count", value=1 if result.counted else 0)
        for name, value, unit in result.metrics:
            metrics.add_metric(name=name, unit=unit, value=value)
        logger.info(
            "event counted" if result.counted else "event changed nothing (or was counted before)",
            extra={
                "detail_type": event.detail_type,
                "event_id": event.event_id,
                "conversation_id": getattr(event.detail, "conversation_id", None),
                "metrics": [name for name, _, _ in result.metrics],
            },
        )
    set_correlation(logger, None)
    return failed


@tracer.capture_lambda_handler
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    set_stage_dimension(metrics, settings.stage())
    _batch.clear()
    with processor(records=event["Records"], handler=record_handler, lambda_context=context):
        processor.process()
    failures = [item["itemIdentifier"] for item in processor.response()["batchItemFailures"]]
    try:
        failures += batch_handler(list(_batch))
    finally:
        _batch.clear()
    # Every invocation publishes this one (0 most of the time): the events SQS will redeliver, and
    # a batch of events that all failed or changed nothing still has a metric to flush.
    metrics.add_metric(name="KpiEventsFailed", unit="Count", value=len(failures))
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}
