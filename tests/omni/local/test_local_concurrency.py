"""Concurrent batches, as an event source mapping hands them out (omni/local/pollers.py, invoker.py).

With ``concurrency=n`` a queue's poller keeps up to n batches in flight and a function has
up to n containers, each with its own module globals (a Powertools ``BatchProcessor`` at
module level keeps one batch's state). Slow invocations overlap instead of queueing;
a FIFO queue's message groups keep their order (SQS hands out nothing of a group while an
earlier message of it is in flight); partial failures stay per batch.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from omni.local.pollers import QueueEndpoint, SqsPoller
from omni.local.runtime import LocalRuntime
from tests.helpers.local import make_topology
from tests.omni.local import fake_handlers
from topology import Queue

CONCURRENCY = 3


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(
        make_topology(), port=0, stage="concurrency", retry_delay_s=0, concurrency=CONCURRENCY
    ) as rt:
        yield rt


def _slow(seconds: float, **extra: Any) -> str:
    return json.dumps({"action": "slow", "seconds": seconds, **extra})


def test_two_slow_batches_run_at_once_in_two_containers(runtime: LocalRuntime) -> None:
    sqs = runtime.client("sqs")
    url = runtime.physical[("queue", "work")]
    sqs.send_message(QueueUrl=url, MessageBody=_slow(1.5))
    # The first batch is in its invocation before the second message exists: two batches.
    deadline = time.monotonic() + 10
    while not runtime.invoker.concurrent.get("worker"):  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the first batch never started"
        time.sleep(0.02)
    sqs.send_message(QueueUrl=url, MessageBody=_slow(1.5))
    runtime.wait_idle(timeout=60)

    batches = fake_handlers.calls("batch")
    assert len(batches) == 2
    first, second = sorted(batches, key=lambda call: call["started"])
    assert second["started"] < first["ended"], "the second batch waited for the first"
    assert first["container"] != second["container"]  # each in a container of its own
    assert runtime.invoker.peak_concurrent["worker"] >= 2  # type: ignore[union-attr]
    assert runtime.queue_depth("work") == {"visible": 0, "in_flight": 0, "delayed": 0}


def test_concurrent_batch_processors_keep_their_own_failures(runtime: LocalRuntime) -> None:
    """Powertools' module-level BatchProcessor holds one batch: containers must not share it."""
    sqs = runtime.client("sqs")
    url = runtime.physical[("queue", "pt")]
    sent: dict[str, bool] = {}
    for n in range(30):
        fail = n % 5 == 0
        message_id = sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"fail": fail, "n": n}))[
            "MessageId"
        ]
        sent[message_id] = fail
    runtime.wait_idle(timeout=90)
    seen = Counter(call["message_id"] for call in fake_handlers.calls("pt-batch"))
    # Each good record once; each failing one twice (maxReceiveCount 2), then the DLQ.
    assert seen == {message_id: 2 if fail else 1 for message_id, fail in sent.items()}
    dlq = runtime.provisioned.queues["pt"].dlq_url  # type: ignore[union-attr]
    dead: list[str] = []
    while True:
        got = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10).get("Messages", [])
        if not got:
            break
        dead += [message["MessageId"] for message in got]
        sqs.delete_message_batch(
            QueueUrl=dlq,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)],
        )
    assert sorted(dead) == sorted(message_id for message_id, fail in sent.items() if fail)


def test_a_fifo_queue_keeps_each_message_group_in_order(runtime: LocalRuntime) -> None:
    sqs = runtime.client("sqs")
    url = sqs.create_queue(
        QueueName="omni-concurrency-groups.fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true", "VisibilityTimeout": "60"},
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    poller = SqsPoller(
        Queue(name="groups", batch_size=1, visibility_timeout_s=60),
        runtime.topology.consumer_of("work"),
        QueueEndpoint(url=url, arn=arn),
        sqs=runtime.client("sqs"),
        invoker=runtime.invoker,  # type: ignore[arg-type]
        region=runtime.region,
        retry_delay_s=0,
        concurrency=CONCURRENCY,
    )
    groups = ("a", "b", "c")
    for n in range(4):
        for group in groups:
            sqs.send_message(
                QueueUrl=url, MessageBody=_slow(0.2, group=group, n=n), MessageGroupId=f"customer-{group}"
            )
    poller.start()
    try:
        deadline = time.monotonic() + 30
        while len(fake_handlers.calls("batch")) < 4 * len(groups):
            assert time.monotonic() < deadline, fake_handlers.calls("batch")
            time.sleep(0.05)
    finally:
        poller.stop()
    calls = sorted(fake_handlers.calls("batch"), key=lambda call: call["started"])
    bodies = [json.loads(record["body"]) for call in calls for record in call["records"]]
    for group in groups:
        assert [body["n"] for body in bodies if body["group"] == group] == [0, 1, 2, 3], group
        mine = [call for call in calls if json.loads(call["records"][0]["body"])["group"] == group]
        # A group's next message starts only after its previous one ended.
        assert all(later["started"] >= earlier["ended"] for earlier, later in itertools.pairwise(mine))
    overlapping = any(b["started"] < a["ended"] for a, b in itertools.pairwise(calls))
    assert overlapping, "the groups were not processed concurrently"
