"""SQS consumers: parse each record as the EventBridge event it carries, report failures per item.

Every consumer function uses :func:`event_record_model` for its parser model and
:class:`LoggedBatchProcessor`, which logs why a record failed (a poison message ends
in the dead-letter queue after maxReceiveCount receives, and the log says why).
"""

from datetime import datetime
from typing import Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from pydantic import BaseModel, ConfigDict, Field, Json, create_model

# The SQS record and the EventBridge event are modelled here, as AWS documents them, rather than
# by subclassing Powertools' parser models: those build their validators when their module is
# imported (the SQS one with its nested attribute models, ≈ 10 ms of every consumer's cold start,
# bench/coldstart.py); these build theirs on the first record, like every model of ours.
_DEFERRED = ConfigDict(defer_build=True)


class SqsAttributes(BaseModel):
    """A record's system attributes (the receive count says how close it is to the dead-letter queue)."""

    model_config = _DEFERRED

    ApproximateReceiveCount: str
    ApproximateFirstReceiveTimestamp: datetime
    SentTimestamp: datetime
    SenderId: str
    MessageGroupId: str | None = None
    MessageDeduplicationId: str | None = None
    SequenceNumber: str | None = None
    AWSTraceHeader: str | None = None
    DeadLetterQueueSourceArn: str | None = None


class SqsMessageAttribute(BaseModel):
    model_config = _DEFERRED

    dataType: str
    stringValue: str | None = None
    binaryValue: str | None = None
    stringListValues: list[str] = []
    binaryListValues: list[str] = []


class SqsRecord(BaseModel):
    """One record of the event Lambda passes an SQS consumer; ``body`` is what was sent."""

    model_config = _DEFERRED

    messageId: str
    receiptHandle: str
    body: str | BaseModel
    attributes: SqsAttributes
    messageAttributes: dict[str, SqsMessageAttribute] = {}
    md5OfBody: str
    md5OfMessageAttributes: str | None = None
    eventSource: Literal["aws:sqs"]
    eventSourceARN: str
    awsRegion: str


class BusEvent(BaseModel):
    """The EventBridge event a bus rule delivered to the queue (``detail`` is the contract)."""

    model_config = ConfigDict(defer_build=True, populate_by_name=True)

    version: str | None = None
    id: str
    source: str
    # moto's default EventBridge -> SQS template leaves out "account"; AWS always sends it.
    # Nothing here reads it, so the local stack and the cloud parse the same way.
    account: str = ""
    time: datetime
    region: str
    resources: list[str]
    detail_type: str = Field(alias="detail-type")
    detail: dict[str, Any] | BaseModel
    replay_name: str | None = Field(default=None, alias="replay-name")


def event_record_model(detail: type[BaseModel]) -> type[SqsRecord]:
    """An SQS record model whose body is an EventBridge event with ``detail`` of that type."""
    envelope = create_model(f"{detail.__name__}Event", __base__=BusEvent, detail=(detail, ...))
    return create_model(f"{detail.__name__}Record", __base__=SqsRecord, body=(Json[envelope], ...))  # type: ignore[valid-type,misc]


class LoggedBatchProcessor(BatchProcessor):
    def __init__(self, model: type[SqsRecord], logger: Logger) -> None:
        # Powertools only calls ``model.model_validate(record)``: any pydantic model of the record
        # will do (its annotation names its own parser models).
        super().__init__(event_type=EventType.SQS, model=model, raise_on_entire_batch_failure=False)  # type: ignore[arg-type]
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
