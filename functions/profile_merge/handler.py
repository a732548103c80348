"""Profile merge: each inbound message -> one customer, recorded in their open conversation.

Consumes ``message.received`` from the profile-merge queue; publishes ``message.recorded``.
A message whose verified identities belong to several customers merges them (see
``shared.services.profiles``); a replay of a message of an erased person is dropped. An
automatic reply (out-of-office) becomes a note for the agent (``auto_replies``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.profile_merge.auto_replies import note_auto_reply
from shared.contracts.events import MessageReceived, MessageRecorded, format_timestamp, utc_now
from shared.contracts.names import MESSAGE_RECORDED
from shared.domain.identity import normalise
from shared.platform.bus import EventPublisher
from shared.platform.consumer import LoggedBatchProcessor, event_record_model
from shared.platform.observability import new_logger, new_tracer, set_correlation
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository
from shared.services.profiles import record_message

logger = new_logger()
tracer = new_tracer()
Record = event_record_model(MessageReceived)
processor = LoggedBatchProcessor(Record, logger)
customers = CustomerRepository()
conversations = ConversationRepository(customers=customers)
publisher = EventPublisher(source="omni.profile-merge")


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
    logger.info(
        "message recorded",
        extra={
            "message_id": recorded.message_id,
            "customer_id": recorded.customer_id,
            "conversation_id": recorded.conversation_id,
            "new_customer": recorded.new_customer,
            "new_conversation": recorded.new_conversation,
            "duplicate": not recorded.new_message,
            "possible_matches": [m.identity.key for m in recorded.possible_matches],
            "merges": recorded.merges,
            "dropped": recorded.dropped,
            "survey_answer": recorded.survey,
        },
    )
    if recorded.customer_id is None or recorded.conversation_id is None:
        return  # a consent keyword, or a replay of an erased person's message: nothing to route
    # Published for a duplicate too: the first attempt may have stopped before publishing;
    # routing is idempotent on the message id.
    publisher.publish(
        [
            (
                MESSAGE_RECORDED,
                MessageRecorded(
                    kind=message.kind,
                    correlation_id=message.message_key,
                    customer_id=recorded.customer_id,
                    conversation_id=recorded.conversation_id,
                    message_id=recorded.message_id,
                    channel=message.channel,
                    text=message.text,
                    sent_at=message.sent_at,
                    reply_to=normalise(message.sender),
                    new_conversation=recorded.new_conversation,
                    channel_switch=recorded.channel_switch,
                    reopened=recorded.reopened,
                    survey=recorded.survey,  # type: ignore[arg-type] - "ces" or "csat" when set
                    survey_score=recorded.survey_score,
                    automated=message.automated,
                ),
            )
        ]
    )


@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
