"""The emulated SQS event source mappings and schedules."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from omni.local.invoker import InvocationResult
from omni.local.pollers import failed_message_ids
from omni.local.runtime import LocalRuntime
from tests.helpers.local import make_topology
from tests.omni.local import fake_handlers
from topology import Schedule


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(make_topology(), port=0, stage="pollers", retry_delay_s=0) as rt:
        yield rt


def send(runtime: LocalRuntime, *actions: str, attributes: dict[str, Any] | None = None) -> list[str]:
    """Send one message per action to the work queue (in one batch call); returns their ids."""
    sqs = runtime.client("sqs")
    entries = []
    for index, action in enumerate(actions):
        entry: dict[str, Any] = {"Id": str(index), "MessageBody": json.dumps({"action": action, "n": index})}
        if attributes:
            entry["MessageAttributes"] = attributes
        entries.append(entry)
    response = sqs.send_message_batch(QueueUrl=runtime.physical[("queue", "work")], Entries=entries)
    assert not response.get("Failed")
    by_id = {item["Id"]: item["MessageId"] for item in response["Successful"]}
    return [by_id[str(index)] for index in range(len(actions))]


def deliveries() -> list[list[dict[str, Any]]]:
    """The batches the worker received, in order."""
    return [call["records"] for call in fake_handlers.calls("batch")]


def receive_counts() -> Counter[str]:
    return Counter(record["messageId"] for batch in deliveries() for record in batch)


def test_batch_has_the_lambda_sqs_record_shape(runtime: LocalRuntime) -> None:
    poller = runtime.pollers["work"]
    poller.stop()  # hold the poller so that the messages arrive as one batch
    try:
        ids = send(
            runtime,
            "ok",
            "ok",
            "ok",
            attributes={
                "kind": {"DataType": "String", "StringValue": "test"},
                "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
            },
        )
    finally:
        poller.start()
    runtime.wait_idle(timeout=15)

    batches = deliveries()
    assert len(batches) == 1
    records = batches[0]
    assert [record["messageId"] for record in records] == ids
    queue_arn = runtime.provisioned.queues["work"].arn  # type: ignore[union-attr]
    for record in records:
        assert set(record) >= {
            "messageId",
            "receiptHandle",
            "body",
            "attributes",
            "messageAttributes",
            "md5OfBody",
            "eventSource",
            "eventSourceARN",
            "awsRegion",
        }
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"] == queue_arn
        assert record["awsRegion"] == "us-east-1"
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
        attributes = record["attributes"]
        assert attributes["ApproximateReceiveCount"] == "1"
        for name in ("SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"):
            assert isinstance(attributes[name], str), name
            assert attributes[name], name
        assert record["messageAttributes"]["kind"] == {
            "stringValue": "test",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        }
        assert record["messageAttributes"]["blob"]["binaryValue"] == "AAE="
        assert record["messageAttributes"]["blob"]["dataType"] == "Binary"
    context = fake_handlers.calls("batch")[0]["context"]
    assert context["function_name"] == "omni-pollers-worker"
    # Succeeded records were deleted.
    assert runtime.queue_depth("work") == {"visible": 0, "in_flight": 0, "delayed": 0}
    assert runtime.queue_depth("work", dlq=True)["visible"] == 0


def test_partial_batch_failure_redelivers_only_the_failed_records(runtime: LocalRuntime) -> None:
    ok_1, flaky, ok_2 = send(runtime, "ok", "fail-once", "ok")
    runtime.wait_idle(timeout=15)
    counts = receive_counts()
    assert counts[ok_1] == 1
    assert counts[ok_2] == 1
    assert counts[flaky] == 2
    retried = [record for batch in deliveries() for record in batch if record["messageId"] == flaky]
    assert [record["attributes"]["ApproximateReceiveCount"] for record in retried] == ["1", "2"]
    assert runtime.queue_depth("work", dlq=True)["visible"] == 0


def test_poison_message_ends_in_the_dlq_and_the_rest_keeps_flowing(runtime: LocalRuntime) -> None:
    sqs = runtime.client("sqs")
    dlq_url = runtime.provisioned.queues["work"].dlq_url  # type: ignore[union-attr]
    started = time.monotonic()
    (poison,) = send(runtime, "fail")
    others = send(runtime, "ok", "ok", "ok") + send(runtime, "ok", "ok")
    runtime.wait_idle(timeout=20)
    assert time.monotonic() - started < 15  # retries do not wait for the 60 s visibility timeout

    counts = receive_counts()
    assert counts[poison] == 3  # maxReceiveCount
    assert all(counts[message_id] == 1 for message_id in others)
    assert runtime.queue_depth("work") == {"visible": 0, "in_flight": 0, "delayed": 0}
    dead = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)["Messages"]
    assert [message["MessageId"] for message in dead] == [poison]
    assert json.loads(dead[0]["Body"])["action"] == "fail"
    sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=dead[0]["ReceiptHandle"])


def test_handler_exception_redelivers_the_whole_batch(runtime: LocalRuntime) -> None:
    ids = send(runtime, "ok", "raise-once", "ok")
    runtime.wait_idle(timeout=15)
    batches = deliveries()
    failed_batch = next(
        batch
        for batch in batches
        if any(
            json.loads(r["body"])["action"] == "raise-once"
            and r["attributes"]["ApproximateReceiveCount"] == "1"
            for r in batch
        )
    )
    counts = receive_counts()
    for record in failed_batch:  # everything in the failed invocation came back
        assert counts[record["messageId"]] == 2
    assert set(counts) == set(ids)
    assert runtime.queue_depth("work", dlq=True)["visible"] == 0


def test_invalid_item_identifier_fails_the_whole_batch(runtime: LocalRuntime) -> None:
    (message_id,) = send(runtime, "bad-id-once")
    runtime.wait_idle(timeout=15)
    assert receive_counts()[message_id] == 2


@pytest.mark.parametrize(
    ("value", "ok", "expected"),
    [
        (None, True, set()),
        ({}, True, set()),
        ({"batchItemFailures": []}, True, set()),
        ({"batchItemFailures": None}, True, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, True, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, True, {"a", "b", "c"}),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, True, {"a", "b", "c"}),
        ({"batchItemFailures": [{"id": "b"}]}, True, {"a", "b", "c"}),
        ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, True, {"a", "b", "c"}),
        ({"batchItemFailures": "b"}, True, {"a", "b", "c"}),
        (None, False, {"a", "b", "c"}),
    ],
)
def test_batch_response_rules(value: Any, ok: bool, expected: set[str]) -> None:
    result = InvocationResult(function="f", request_id="r", ok=ok, value=value)
    assert failed_message_ids(result, ["a", "b", "c"]) == expected


def test_schedules_invoke_their_function() -> None:
    topology = make_topology(schedules=(Schedule(name="tick", rate_minutes=1),))
    with LocalRuntime(topology, port=0, stage="sched", schedule_interval_s=0.2) as rt:
        deadline = time.monotonic() + 10
        while len(fake_handlers.calls("tick")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(fake_handlers.calls("tick")) >= 2
        result = rt.trigger_schedule("ticker", "tick")
        assert result.ok
    event = fake_handlers.calls("tick")[0]["event"]
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.scheduler"
    assert event["resources"] == [
        "arn:aws:scheduler:us-east-1:123456789012:schedule/default/omni-sched-ticker-tick"
    ]
    assert event["detail"] == {}
    assert fake_handlers.calls("tick")[0]["context"]["function_name"] == "omni-sched-ticker"


def test_stop_is_prompt() -> None:
    rt = LocalRuntime(make_topology(), port=0, stage="stop").start()
    time.sleep(0.2)  # the pollers are in a long poll now
    pollers = list(rt.pollers.values())
    assert pollers
    assert all(poller.alive for poller in pollers)
    started = time.monotonic()
    rt.stop()
    assert time.monotonic() - started < 3
    assert not any(poller.alive for poller in pollers)


def test_powertools_batch_processor_partial_failures(runtime: LocalRuntime) -> None:
    sqs = runtime.client("sqs")
    url = runtime.physical[("queue", "pt")]
    good = sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"fail": False}))["MessageId"]
    bad = sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"fail": True}))["MessageId"]
    runtime.wait_idle(timeout=15)
    seen = Counter(call["message_id"] for call in fake_handlers.calls("pt-batch"))
    assert seen == {good: 1, bad: 2}  # maxReceiveCount of the pt queue is 2
    dlq = runtime.provisioned.queues["pt"].dlq_url  # type: ignore[union-attr]
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    assert [message["MessageId"] for message in dead] == [bad]
