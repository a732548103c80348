"""SQS consumers: parse each record as the EventBridge event it carries, report failures per item.

Every consumer function uses :func:`event_record_model` for its parser model and
:class:`LoggedBatchProcessor`, which logs why a record failed (a poison message ends
in the dead-letter queue after maxReceiveCount receives, and the log says why).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel, SqsRecordModel
from pydantic import BaseModel, ConfigDict, Json, create_model


class BusEvent(EventBridgeModel):
    model_config = ConfigDict(defer_build=True)

    # moto's default EventBridge -> SQS template leaves out "account"; AWS always sends it.
    # Nothing here reads it, so the local stack and the cloud parse the same way.
    account: str = ""


class _SqsRecord(SqsRecordModel):
    # Validators are built on the first record, not at import (cold start).
    model_config = ConfigDict(defer_build=True)


def event_record_model(detail: type[BaseModel]) -> type[SqsRecordModel]:
    """An SQS record model whose body is an EventBridge event with ``detail`` of that type."""
    envelope = create_model(f"{detail.__name__}Event", __base__=BusEvent, detail=(detail, ...))
    return create_model(f"{detail.__name__}Record", __base__=_SqsRecord, body=(Json[envelope], ...))  # type: ignore[valid-type,misc]


class LoggedBatchProcessor(BatchProcessor):
    def __init__(self, model: type[SqsRecordModel], logger: Logger) -> None:
        super().__init__(event_type=EventType.SQS, model=model, raise_on_entire_batch_failure=False)
        self._logger = logger

    def failure_handler(self, record: Any, exception: Any) -> Any:
        _, error, _ = exception
        message_id, receive_count = _identify(record)
        self._logger.warning(
            "record failed; SQS will redeliver it, then move it to the dead-letter queue",
            extra={
                "message_id": message_id,
                "receive_count": receive_count,
                "error_type": type(error).__name__,
                "error": str(error)[:500],
            },
        )
        return super().failure_handler(record, exception)


def _identify(record: Any) -> tuple[str | None, str | None]:
    """Message id and receive count of a record: a raw dict, the parsed model, or (for a record
    that failed validation, a poison message) Powertools' ``SQSRecord`` data class."""
    if isinstance(record, dict):
        return record.get("messageId"), record.get("attributes", {}).get("ApproximateReceiveCount")
    message_id = getattr(record, "messageId", None) or getattr(record, "message_id", None)
    attributes = getattr(record, "attributes", None)
    receive_count = getattr(attributes, "ApproximateReceiveCount", None) or getattr(
        attributes, "approximate_receive_count", None
    )
    return message_id, receive_count
