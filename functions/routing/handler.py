"""Routing: decide who answers each recorded message and tell the customer.

Consumes ``message.recorded`` from the routing queue; publishes ``notification.requested``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.bus import EventPublisher
from shared.consumer import LoggedBatchProcessor, event_record_model
from shared.events import MessageRecorded, format_timestamp, utc_now
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository
from shared.routing import route_message
from shared.topology import NOTIFICATION_REQUESTED

logger = Logger()
Record = event_record_model(MessageRecorded)
processor = LoggedBatchProcessor(Record, logger)
customers = CustomerRepository()
conversations = ConversationRepository(customers=customers)
publisher = EventPublisher(source="omni.routing")


def _first_name(customer_id: str) -> str | None:
    profile = customers.get_profile(customer_id)
    name = (profile or {}).get("display_name")
    return name.split()[0] if name else None


def record_handler(record: Any) -> None:
    event: MessageRecorded = record.body.detail
    request = route_message(conversations, event, format_timestamp(utc_now()), _first_name(event.customer_id))
    logger.info(
        "message routed",
        extra={
            "conversation_id": event.conversation_id,
            "message_id": event.message_id,
            "notification_id": request.notification_id if request else None,
        },
    )
    if request is not None:
        publisher.publish([(NOTIFICATION_REQUESTED, request)])


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
