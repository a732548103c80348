"""Profile merge: each inbound message -> one customer, recorded in their open conversation.

Consumes ``message.received`` from the profile-merge queue; publishes ``message.recorded``.
A message whose verified identities belong to several customers merges them (see
``shared.services.profiles``); a replay of a message of an erased person is dropped. An
automatic reply (out-of-office) becomes a note for the agent (``auto_replies``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.profile_merge.auto_replies import note_auto_reply
from shared import bootstrap
from shared.contracts.events import MessageReceived, NotificationRequested, format_timestamp, utc_now
from shared.contracts.names import MESSAGE_RECORDED, NOTIFICATION_REQUESTED
from shared.domain.contact_choices import ChannelKeyword
from shared.domain.identity import normalise
from shared.platform.consumer import LoggedBatchProcessor, event_record_model
from shared.platform.observability import new_logger, new_tracer, set_correlation
from shared.services.profiles.inbound import record_message

logger = new_logger()
tracer = new_tracer()
Record = event_record_model(MessageReceived)
processor = LoggedBatchProcessor(Record, logger)
customers = bootstrap.customers()
conversations = bootstrap.conversations()
publisher = bootstrap.publisher("omni.profile-merge")


def keyword_confirmation(
    customer_id: str, message: MessageReceived, keyword: ChannelKeyword
) -> NotificationRequested:
    """The short answer to a reply keyword, on the channel and to the number it came from.

    Urgent: it answers what the customer just wrote, quiet hours do not hold it back."""
    return NotificationRequested(
        notification_id=f"channel-keyword:{message.message_key}",
        customer_id=customer_id,
        kind="notification",
        text=keyword.confirmation(),
        channel=message.channel,
        to=normalise(message.sender),
        urgent=True,
        author="bot",
        correlation_id=message.message_key,
    )


@tracer.capture_method
def record_handler(record: Any) -> None:
    message: MessageReceived = record.body.detail
    # The inbound message's id follows it through every function's logs and events.
    set_correlation(logger, message.message_key)
    if message.automated in ("auto_reply", "bounce"):
        # Not a customer request: a note for the agent at most, never routed nor answered.
        customer_id, conversation_id = note_auto_reply(customers, conversations, message)
        logger.info(
            "automatic reply noted for the agent" if conversation_id else "automatic reply dropped",
            extra={
                "automated": message.automated,
                "customer_id": customer_id,
                "conversation_id": conversation_id,
            },
        )
        return
    recorded = record_message(customers, conversations, message, format_timestamp(utc_now()))
    logger.info("message recorded", extra=recorded.log_fields())
    if recorded.keyword is not None and recorded.customer_id is not None:
        # A reply keyword chose the customer's channels: confirm it (once per message; a
        # redelivery publishes the same notification id again), route nothing.
        publisher.publish(
            [(NOTIFICATION_REQUESTED, keyword_confirmation(recorded.customer_id, message, recorded.keyword))]
        )
        return
    event = recorded.event(message)
    if event is None:
        return  # a consent keyword, or a replay of an erased person's message: nothing to route
    # Published for a duplicate too: the first attempt may have stopped before publishing;
    # routing is idempotent on the message id.
    publisher.publish([(MESSAGE_RECORDED, event)])


@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
