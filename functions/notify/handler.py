"""Notify: deliver each requested notification once, on the customer's channel.

Consumes ``notification.requested`` from the notify queue (published by routing, the
agent API, or any company system).
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.consumer import LoggedBatchProcessor, event_record_model
from shared.events import NotificationRequested, format_timestamp, utc_now
from shared.notify import ChannelAdapter, WebchatAdapter, deliver
from shared.repositories.conversations import ConversationRepository
from shared.repositories.outbox import OutboxRepository

logger = Logger()
Record = event_record_model(NotificationRequested)
processor = LoggedBatchProcessor(Record, logger)
conversations = ConversationRepository()
outbox = OutboxRepository()
adapters: dict[str, ChannelAdapter] = {"webchat": WebchatAdapter()}


def record_handler(record: Any) -> None:
    request: NotificationRequested = record.body.detail
    outcome = deliver(request, conversations, outbox, adapters, format_timestamp(utc_now()), int(time.time()))
    log = logger.warning if outcome.status == "failed" else logger.info
    log("notification handled", extra={**outcome.__dict__, "kind": request.kind})


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
