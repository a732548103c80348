"""Delivery status: a provider's receipt moves the outbound message's status in the timeline.

Consumes ``delivery.status_changed`` from the delivery-status queue. The channel webhooks
(SMS, WhatsApp, Messenger, e-mail bounces) apply a receipt to the outbox (their grant) and publish this
event; the conversation timeline is updated here, where the conversations table is
granted. Monotonic: a duplicate or late receipt (``sent`` after ``delivered``) changes
nothing, so redelivery is harmless. A receipt for a message that is in no conversation
(a notification sent outside one) is acknowledged and logged. A receipt naming an
``undeliverable`` address (an e-mail bounce) records it on the customer's identity.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.contracts.events import DeliveryStatusChanged
from shared.platform.consumer import LoggedBatchProcessor, event_record_model
from shared.platform.observability import new_logger, new_tracer, set_correlation
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository

logger = new_logger()
tracer = new_tracer()
Record = event_record_model(DeliveryStatusChanged)
processor = LoggedBatchProcessor(Record, logger)

_conversations: ConversationRepository | None = None
_customers: CustomerRepository | None = None


def customers() -> CustomerRepository:
    global _customers  # noqa: PLW0603 - one per container, built on first use
    if _customers is None:
        _customers = CustomerRepository()
    return _customers


def conversations() -> ConversationRepository:
    global _conversations  # noqa: PLW0603 - one per container, built on first use
    if _conversations is None:
        _conversations = ConversationRepository()
    return _conversations


@tracer.capture_method
def record_handler(record: Any) -> None:
    receipt: DeliveryStatusChanged = record.body.detail
    set_correlation(logger, receipt.correlation_id or receipt.notification_id)
    changed = conversations().set_message_status(
        None, receipt.notification_id, receipt.status, receipt.at, receipt.error_code
    )
    if receipt.undeliverable is not None and receipt.customer_id:
        # A bounce: the address is recorded as unreachable on the customer's profile.
        marked = customers().mark_undeliverable(
            receipt.customer_id, receipt.undeliverable, receipt.at, receipt.error_code or receipt.status
        )
        logger.info(
            "address recorded as undeliverable" if marked else "undeliverable address left as is",
            extra={"customer_id": receipt.customer_id, "identity_type": receipt.undeliverable.type},
        )
    logger.info(
        "delivery status applied to the timeline" if changed else "delivery status left the timeline as is",
        extra={
            "notification_id": receipt.notification_id,
            "channel": receipt.channel,
            "provider_message_id": receipt.provider_message_id,
            "status": receipt.status,
            "error_code": receipt.error_code,
            "changed": changed,
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
