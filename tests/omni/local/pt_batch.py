"""An SQS consumer written the way the real functions are: Powertools BatchProcessor."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from tests.omni.local import fake_handlers

logger = Logger()
processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    body = json.loads(record.body)
    fake_handlers.record(
        "pt-batch", message_id=record.message_id, receive_count=record.attributes.approximate_receive_count
    )
    if body.get("fail"):
        raise ValueError("this record fails")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> Any:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
