"""Routing: decide who answers each recorded message, tell the customer, hand over to agents.

Consumes ``message.recorded`` from the routing queue; publishes ``notification.requested``
(automated answers, acknowledgements) and ``agent.assigned``. The rules are
``shared/domain/routing_rules.toml`` (see ``shared/domain/routing_rules.py``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.routing.orders import order_lookup_from_env
from functions.routing.router import Router
from shared import bootstrap
from shared.contracts.events import MessageRecorded, format_timestamp, utc_now
from shared.platform.consumer import LoggedBatchProcessor, event_record_model
from shared.platform.observability import new_logger, new_tracer, set_correlation, with_correlation

logger = new_logger()
tracer = new_tracer()
Record = event_record_model(MessageRecorded)
processor = LoggedBatchProcessor(Record, logger)
customers = bootstrap.customers()
conversations = bootstrap.conversations()
publisher = bootstrap.publisher("omni.routing")
_router: Router | None = None


def router() -> Router:
    """Built on first use: the rules file is read and validated once per container."""
    global _router  # noqa: PLW0603 - one per container
    if _router is None:
        desk = bootstrap.desk()
        _router = Router(conversations, customers, desk, rules=desk.rules, orders=order_lookup_from_env())
    return _router


@tracer.capture_method
def record_handler(record: Any) -> None:
    event: MessageRecorded = record.body.detail
    correlation_id = event.correlation_id or event.message_id
    set_correlation(logger, correlation_id)
    events = with_correlation(router().route(event, format_timestamp(utc_now())), correlation_id)
    logger.info(
        "message routed",
        extra={
            "conversation_id": event.conversation_id,
            "message_id": event.message_id,
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
