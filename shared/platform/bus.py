"""Publishing events to the EventBridge bus without losing any.

``PutEvents`` can fail for single entries while the call itself succeeds
(``FailedEntryCount`` > 0): the failed entries are sent again, with backoff, and if
some still fail the caller gets :class:`PublishError` so it can refuse the work
(a webhook answers 503 so the provider retries; a consumer reports the batch item
as failed so SQS redelivers it). Entries go in chunks of ten, the API's limit.

:func:`send_delayed` skips the bus: it puts an event, in the envelope EventBridge would give
it, straight on an SQS queue with ``DelaySeconds`` (a function asking itself to do something
later: notify after quiet hours, the KPI survey question after a resolution).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

from shared.contracts.events import utc_now
from shared.contracts.names import EVENT_SOURCE_PREFIX
from shared.platform import aws, settings
from shared.platform.config import require_env
from shared.platform.observability import annotate_published

MAX_ENTRIES_PER_CALL = 10
#: PutEvents calls in flight at once when a big batch is published.
MAX_PUBLISH_WORKERS = 8
#: SQS allows at most 15 minutes of DelaySeconds.
MAX_DELAY_S = 900


class PublishError(RuntimeError):
    """Some events could not be put on the bus after retries."""

    def __init__(self, failures: list[dict[str, Any]]) -> None:
        codes = sorted({str(f.get("ErrorCode")) for f in failures})
        super().__init__(f"{len(failures)} event(s) not published: {', '.join(codes)}")
        self.failures = failures


class EventPublisher:
    def __init__(
        self,
        source: str,
        bus_name: str | None = None,
        client: Any = None,
        attempts: int = 4,
        backoff_s: float = 0.05,
    ) -> None:
        if not source.startswith(EVENT_SOURCE_PREFIX):
            raise ValueError(f"event source must start with {EVENT_SOURCE_PREFIX!r}")
        self.source = source
        self._bus_name = bus_name
        self._client = client
        self.attempts = attempts
        self.backoff_s = backoff_s

    @property
    def bus_name(self) -> str:
        return self._bus_name or require_env(settings.EVENT_BUS_NAME)

    @property
    def client(self) -> Any:
        return self._client or aws.client("events")

    def entry(self, detail_type: str, detail: BaseModel) -> dict[str, Any]:
        return {
            "Source": self.source,
            "DetailType": detail_type,
            "Detail": detail.model_dump_json(),
            "EventBusName": self.bus_name,
            # When it happened by the publisher's clock (EventBridge's own otherwise).
            "Time": utc_now(),
        }

    def publish(self, events: Sequence[tuple[str, BaseModel]]) -> None:
        """Put every ``(detail_type, detail)`` on the bus or raise :class:`PublishError`."""
        pending = [self.entry(detail_type, detail) for detail_type, detail in events]
        annotate_published(events)
        for start in range(0, len(pending), MAX_ENTRIES_PER_CALL):
            self._put_all(pending[start : start + MAX_ENTRIES_PER_CALL])

    def publish_concurrently(
        self,
        events: Sequence[tuple[str, BaseModel]],
        budget_s: float,
        workers: int = MAX_PUBLISH_WORKERS,
        overflow: Callable[[Sequence[tuple[str, BaseModel]]], None] | None = None,
    ) -> int:
        """:meth:`publish` with up to ``workers`` PutEvents calls at once, within ``budget_s`` seconds.

        When the budget runs out, the events whose PutEvents call had not finished go to
        ``overflow`` (a queue, say; one still in flight may also reach the bus: consumers are
        idempotent) and their number is returned. Raises :class:`PublishError` when a call
        fails, or the budget runs out and there is no ``overflow``: the caller answers so the
        sender retries; what went out already is deduplicated downstream.
        """
        if len(events) <= MAX_ENTRIES_PER_CALL:
            self.publish(events)
            return 0
        from concurrent.futures import ThreadPoolExecutor, wait  # noqa: PLC0415 - only big batches

        pending = [self.entry(detail_type, detail) for detail_type, detail in events]
        annotate_published(events)
        chunks = [pending[i : i + MAX_ENTRIES_PER_CALL] for i in range(0, len(pending), MAX_ENTRIES_PER_CALL)]
        client = self.client  # resolved once, shared by the threads (boto3 clients are thread-safe)
        pool = ThreadPoolExecutor(max_workers=workers)
        futures = [pool.submit(self._put_all, chunk, client) for chunk in chunks]
        done, late = wait(futures, timeout=budget_s)
        pool.shutdown(wait=False, cancel_futures=True)
        failures = [f.exception() for f in done if f.exception() is not None]
        if failures or (late and overflow is None):
            raise PublishError([{"ErrorCode": "TimeBudgetExceeded" if late else "PutEventsFailed"}])
        if not late:
            return 0
        remainder = [
            event
            for index, future in enumerate(futures)
            if future in late
            for event in events[index * MAX_ENTRIES_PER_CALL : (index + 1) * MAX_ENTRIES_PER_CALL]
        ]
        assert overflow is not None
        overflow(remainder)
        return len(remainder)

    def _put_all(self, entries: list[dict[str, Any]], client: Any = None) -> None:
        failures: list[dict[str, Any]] = []
        client = client or self.client
        for attempt in range(self.attempts):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            response = client.put_events(Entries=entries)
            if not response.get("FailedEntryCount"):
                return
            # Results come back in the order of the entries; resend only those that failed.
            results = response["Entries"]
            failures = [result for result in results if result.get("ErrorCode")]
            entries = [
                entry for entry, result in zip(entries, results, strict=True) if result.get("ErrorCode")
            ]
        raise PublishError(failures)


def envelope(source: str, detail_type: str, detail: BaseModel, time: str) -> dict[str, Any]:
    """``detail`` in the envelope an EventBridge rule delivers to an SQS queue."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": "",
        "time": time,
        "region": settings.aws_region(),
        "resources": [],
        "detail": detail.model_dump(mode="json"),
    }


def send_to_queue(queue_url: str, source: str, events: Sequence[tuple[str, BaseModel]], time: str) -> None:
    """Put the events on the queue as a bus rule would (SendMessageBatch, 10 a call); raises
    :class:`PublishError` for what SQS did not take."""
    sqs = aws.client("sqs")
    bodies = [json.dumps(envelope(source, detail_type, detail, time)) for detail_type, detail in events]
    for start in range(0, len(bodies), MAX_ENTRIES_PER_CALL):
        chunk = bodies[start : start + MAX_ENTRIES_PER_CALL]
        entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
        failed = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries).get("Failed") or []
        if failed:
            raise PublishError([{"ErrorCode": str(f.get("Code")), "Id": f.get("Id")} for f in failed])


def send_delayed(
    queue_url: str, source: str, detail_type: str, detail: BaseModel, delay_s: int, time: str
) -> int:
    """Put ``detail`` on the queue in an EventBridge envelope, delivered after ``delay_s`` seconds.

    The delay is clamped to what SQS allows (0-900 s); returns the delay used. ``time`` is the
    envelope's ``time`` (the formatted "now").
    """
    delay = max(0, min(MAX_DELAY_S, delay_s))
    envelope = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": "",
        "time": time,
        "region": settings.aws_region(),
        "resources": [],
        "detail": detail.model_dump(mode="json"),
    }
    aws.client("sqs").send_message(QueueUrl=queue_url, MessageBody=json.dumps(envelope), DelaySeconds=delay)
    return delay
