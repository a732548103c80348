"""Lambda's SQS event source mappings and schedules, emulated with threads.

:class:`SqsPoller` does what an event source mapping with ``ReportBatchItemFailures``
does: it receives batches, invokes the consumer with the exact Lambda SQS event,
deletes the records that succeeded and leaves the failed ones on the queue. The
queue's ``RedrivePolicy`` moves a message to the dead-letter queue once it has been
received ``maxReceiveCount`` times: moto's SQS does that on receive, as SQS does, so
the poller relies on it (``tests/local`` checks it).

Like an event source mapping, a poller hands batches to up to ``concurrency`` invocations
at once (its *maximum concurrency*; Lambda starts with five concurrent batches per
queue): ``concurrency`` threads each receive a batch, invoke, and delete. Batches of
one queue thus overlap as they do in Lambda (each invocation in a container of its own,
see :class:`~omni.local.invoker.Invoker`); on a FIFO queue SQS itself keeps a message
group's order, since it hands out no message of a group while an earlier one is in flight.

Deviation from Lambda, on purpose: Lambda leaves a failed message invisible for the
rest of the queue's visibility timeout (180 s in this topology) before it is retried.
Locally that would make every retry take three minutes, so the poller sets the
visibility of failed messages to a short *retry delay* instead: ``retry_delay_s``
(default 1 s, or ``$OMNI_LOCAL_RETRY_DELAY``). Retries, receive counts and the move
to the DLQ are otherwise the same.

:class:`Scheduler` invokes functions with schedules the way EventBridge Scheduler
does: every ``rate_minutes`` (or a shorter local interval), asynchronously, with a
``Scheduled Event``-shaped event; a failed invocation is logged, not retried.
"""

from __future__ import annotations

import base64
import heapq
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from omni.local.emulator import DEFAULT_ACCOUNT_ID
from omni.local.invoker import InvocationResult, Invoker
from topology import Function, Queue, Schedule

logger = logging.getLogger("omni.local.pollers")

RETRY_DELAY_ENV = "OMNI_LOCAL_RETRY_DELAY"
CONCURRENCY_ENV = "OMNI_LOCAL_CONCURRENCY"
DEFAULT_RETRY_DELAY_S = 1.0
#: Long-poll wait of each receive: short so that pollers stop promptly.
RECEIVE_WAIT_S = 1

_SYSTEM_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "DeadLetterQueueSourceArn",
    "AWSTraceHeader",
)


def default_retry_delay() -> float:
    raw = os.environ.get(RETRY_DELAY_ENV)
    if not raw:
        return DEFAULT_RETRY_DELAY_S
    try:
        return max(0.0, float(raw))
    except ValueError:
        logger.warning("ignoring %s=%r: not a number", RETRY_DELAY_ENV, raw)
        return DEFAULT_RETRY_DELAY_S


def default_concurrency() -> int:
    """Containers per function and concurrent batches per queue: ``$OMNI_LOCAL_CONCURRENCY`` or 1."""
    raw = os.environ.get(CONCURRENCY_ENV)
    if not raw:
        return 1
    try:
        return max(1, int(raw))
    except ValueError:
        logger.warning("ignoring %s=%r: not a whole number", CONCURRENCY_ENV, raw)
        return 1


# --------------------------------------------------------------------------- #
# The Lambda SQS event
# --------------------------------------------------------------------------- #
def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        raw = value["BinaryValue"]
        out["binaryValue"] = base64.b64encode(raw).decode("ascii") if isinstance(raw, bytes) else raw
    out["stringListValues"] = list(value.get("StringListValues") or [])
    out["binaryListValues"] = [
        base64.b64encode(item).decode("ascii") if isinstance(item, bytes) else item
        for item in value.get("BinaryListValues") or []
    ]
    out["dataType"] = value.get("DataType", "String")
    return out


def sqs_record(message: dict[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """One record of a Lambda SQS event, from a ``ReceiveMessage`` message."""
    attributes = message.get("Attributes") or {}
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": {name: str(attributes[name]) for name in _SYSTEM_ATTRIBUTES if name in attributes},
        "messageAttributes": {
            name: _message_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record["eventSource"] = "aws:sqs"
    record["eventSourceARN"] = queue_arn
    record["awsRegion"] = region
    return record


def failed_message_ids(result: InvocationResult, message_ids: list[str]) -> set[str]:
    """The records Lambda would leave on the queue after this invocation.

    Everything when the handler failed or answered with an invalid ``batchItemFailures``
    (an entry without ``itemIdentifier``, an empty one, or an id not in the batch);
    the listed ones otherwise; nothing for an empty or missing list.
    """
    everything = set(message_ids)
    if not result.ok:
        return everything
    value = result.value
    if value is None:
        return set()
    if not isinstance(value, dict):
        logger.warning(
            "%s returned %s, not a batch response: treated as a complete success",
            result.function,
            type(value).__name__,
        )
        return set()
    failures = value.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        logger.error("%s: batchItemFailures is not a list: the whole batch failed", result.function)
        return everything
    failed: set[str] = set()
    for entry in failures:
        identifier = entry.get("itemIdentifier") if isinstance(entry, dict) else None
        if not isinstance(identifier, str) or identifier not in everything:
            logger.error(
                "%s: invalid batchItemFailures entry %r: the whole batch failed", result.function, entry
            )
            return everything
        failed.add(identifier)
    return failed


# --------------------------------------------------------------------------- #
# Event source mapping
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class QueueEndpoint:
    url: str
    arn: str


class SqsPoller:
    """One queue's event source mapping: ``concurrency`` threads that receive, invoke, delete."""

    def __init__(
        self,
        queue: Queue,
        function: Function,
        endpoint: QueueEndpoint,
        *,
        sqs: Any,
        invoker: Invoker,
        region: str,
        retry_delay_s: float | None = None,
        concurrency: int = 1,
    ) -> None:
        self.queue = queue
        self.function = function
        self.endpoint = endpoint
        self.sqs = sqs
        self.invoker = invoker
        self.region = region
        self.retry_delay_s = default_retry_delay() if retry_delay_s is None else max(0.0, retry_delay_s)
        self.concurrency = max(1, concurrency)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._count_lock = threading.Lock()
        self.batches = 0
        self.last_error: str | None = None

    @property
    def alive(self) -> bool:
        return bool(self._threads) and all(thread.is_alive() for thread in self._threads)

    def start(self) -> None:
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._run, name=f"omni-sqs-{self.queue.name}-{n}", daemon=True)
            for n in range(self.concurrency)
        ]
        for thread in self._threads:
            thread.start()

    def signal_stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                logger.warning("poller of %s did not stop within %.0f s", self.queue.name, timeout)
        self._threads = []

    def stop(self, timeout: float = 10.0) -> None:
        self.signal_stop()
        self.join(timeout)

    # ------------------------------------------------------------------ #
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._receive_batch()
                if not messages:
                    continue
                if self._stop.is_set():
                    # Shutting down: hand the batch back instead of starting an invocation.
                    self._change_visibility(messages, 0)
                    return
                self.process(messages)
            except Exception as exc:
                if self._stop.is_set():
                    return
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.exception("poller of %s failed; retrying", self.queue.name)
                self._stop.wait(1.0)

    def _receive(self, count: int, wait_s: int) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=self.endpoint.url,
            MaxNumberOfMessages=max(1, min(count, 10)),
            WaitTimeSeconds=wait_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(response.get("Messages") or [])

    def _receive_batch(self) -> list[dict[str, Any]]:
        batch = self._receive(self.queue.batch_size, RECEIVE_WAIT_S)
        window = self.queue.max_batching_window_s
        if not batch or window <= 0:
            return batch
        # Gather more until the batch is full or the batching window closes.
        window_end = time.monotonic() + window
        while len(batch) < self.queue.batch_size and not self._stop.is_set():
            remaining = window_end - time.monotonic()
            if remaining <= 0:
                break
            more = self._receive(self.queue.batch_size - len(batch), 0)
            batch.extend(more)
            if not more:
                self._stop.wait(min(remaining, 0.1))
        return batch

    def process(self, messages: list[dict[str, Any]]) -> set[str]:
        """Invoke the consumer with one batch; returns the ids left on the queue."""
        records = [
            sqs_record(message, queue_arn=self.endpoint.arn, region=self.region) for message in messages
        ]
        ids = [record["messageId"] for record in records]
        result = self.invoker.invoke(self.function, {"Records": records})
        failed = failed_message_ids(result, ids)
        with self._count_lock:
            self.batches += 1
        succeeded = [message for message in messages if message["MessageId"] not in failed]
        retry = [message for message in messages if message["MessageId"] in failed]
        self._delete(succeeded)
        if retry:
            logger.warning(
                "%s: %d of %d records failed; retrying in %.1f s",
                self.function.name,
                len(retry),
                len(messages),
                self.retry_delay_s,
            )
            self._change_visibility(retry, math.ceil(self.retry_delay_s))
        return failed

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            response = self.sqs.delete_message_batch(
                QueueUrl=self.endpoint.url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            for failure in response.get("Failed") or []:
                logger.error("%s: could not delete a message: %s", self.queue.name, failure)

    def _change_visibility(self, messages: list[dict[str, Any]], timeout_s: int) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            self.sqs.change_message_visibility_batch(
                QueueUrl=self.endpoint.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": timeout_s}
                    for i, m in enumerate(chunk)
                ],
            )


# --------------------------------------------------------------------------- #
# Schedules
# --------------------------------------------------------------------------- #
def scheduled_event(
    schedule_arn: str, *, region: str, account_id: str = DEFAULT_ACCOUNT_ID
) -> dict[str, Any]:
    """The event a schedule hands its target (EventBridge ``Scheduled Event`` shape)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": account_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [schedule_arn],
        "detail": {},
    }


@dataclass
class _Entry:
    function: Function
    schedule: Schedule
    arn: str
    interval_s: float


class Scheduler:
    """One thread firing every schedule of the topology at its rate (first run after one interval)."""

    def __init__(
        self,
        entries: list[tuple[Function, Schedule, str]],
        *,
        invoker: Invoker,
        region: str,
        account_id: str = DEFAULT_ACCOUNT_ID,
        interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.entries = [
            _Entry(fn, schedule, arn, interval_s if interval_s is not None else schedule.rate_minutes * 60.0)
            for fn, schedule, arn in entries
        ]
        self.invoker = invoker
        self.region = region
        self.account_id = account_id
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fired = 0

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if not self.entries:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="omni-scheduler", daemon=True)
        self._thread.start()

    def signal_stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def stop(self, timeout: float = 10.0) -> None:
        self.signal_stop()
        self.join(timeout)

    def fire(self, function_name: str, schedule_name: str) -> InvocationResult:
        """Run one schedule now (synchronously)."""
        for entry in self.entries:
            if entry.function.name == function_name and entry.schedule.name == schedule_name:
                return self._fire(entry)
        raise KeyError(f"no schedule {schedule_name!r} on function {function_name!r}")

    def _fire(self, entry: _Entry) -> InvocationResult:
        event = scheduled_event(entry.arn, region=self.region, account_id=self.account_id)
        result = self.invoker.invoke(entry.function, event)
        self.fired += 1
        if not result.ok:
            logger.error(
                "schedule %s of %s failed: %s", entry.schedule.name, entry.function.name, result.error_type
            )
        return result

    def _run(self) -> None:
        now = self._clock()
        heap = [(now + entry.interval_s, index) for index, entry in enumerate(self.entries)]
        heapq.heapify(heap)
        while heap and not self._stop.is_set():
            due, index = heap[0]
            delay = due - self._clock()
            if delay > 0:
                self._stop.wait(delay)
                continue
            heapq.heappop(heap)
            entry = self.entries[index]
            try:
                self._fire(entry)
            except Exception:  # pragma: no cover - invoke never raises for handler errors
                logger.exception("schedule %s failed", entry.schedule.name)
            heapq.heappush(heap, (max(due + entry.interval_s, self._clock()), index))
