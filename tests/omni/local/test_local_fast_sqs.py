"""The embedded emulator's SQS (omni/local/fast_sqs.py).

moto computed every attribute of a queue (walking all its messages) three times per
attribute asked for, and once per message a receive handed out: draining a backlog was
quadratic. The answers must stay the same; the walks must go.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.sqs.models import Message, Queue

from omni.local.emulator import Emulator


@pytest.fixture
def sqs() -> Iterator[Any]:
    with Emulator():
        yield boto3.client("sqs")


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the walks over a queue's messages (moto's visible-message count)."""
    counted: list[int] = []
    original = Queue.approximate_number_of_messages

    def count(queue: Queue) -> int:
        counted.append(1)
        return original.fget(queue)  # type: ignore[attr-defined, no-any-return]

    monkeypatch.setattr(Queue, "approximate_number_of_messages", property(count))
    return counted


def test_attributes_answer_the_same(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="fast-sqs-attributes", Attributes={"VisibilityTimeout": "45"})[
        "QueueUrl"
    ]
    for n in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=str(n))
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)
    asked = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "VisibilityTimeout"]
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=asked)["Attributes"]
    assert got == {
        "ApproximateNumberOfMessages": "2",
        "ApproximateNumberOfMessagesNotVisible": "1",
        "VisibilityTimeout": "45",
    }
    everything = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert {name: everything[name] for name in asked} == got
    assert "RedrivePolicy" not in sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["RedrivePolicy"]
    ).get("Attributes", {})
    with pytest.raises(ClientError) as caught:
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["NoSuchAttribute"])
    assert caught.value.response["Error"]["Code"] == "InvalidAttributeName"


def test_counting_and_receiving_walk_the_queue_once_at_most(sqs: Any, walks: list[int]) -> None:
    url = sqs.create_queue(QueueName="fast-sqs-walks")["QueueUrl"]
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": str(n)} for n in range(10)])
    walks.clear()
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert len(received) == 10
    assert walks == []  # moto's own receive counted the queue three times per message
    sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )
    assert len(walks) == 1  # moto's own: three times per attribute asked for


def test_messages_past_their_retention_are_not_delivered(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="fast-sqs-retention", Attributes={"MessageRetentionPeriod": "60"})[
        "QueueUrl"
    ]
    sqs.send_message(QueueUrl=url, MessageBody="fresh")
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]] == [
        "fresh"
    ]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"MessageRetentionPeriod": "1"})
    time.sleep(1.1)
    assert not sqs.receive_message(QueueUrl=url).get("Messages")


def test_concurrent_receivers_get_each_message_once_and_deletes_lose_no_send(sqs: Any) -> None:
    """Pollers with concurrent batches receive and delete while the bus keeps sending."""
    url = sqs.create_queue(QueueName="fast-sqs-concurrent", Attributes={"VisibilityTimeout": "60"})[
        "QueueUrl"
    ]
    total, senders, receivers = 400, 4, 4
    received: list[str] = []
    lock = threading.Lock()
    done_sending = threading.Event()

    def send(worker: int) -> None:
        client = boto3.client("sqs")
        for start in range(worker * total // senders, (worker + 1) * total // senders, 10):
            entries = [{"Id": str(n), "MessageBody": str(start + n)} for n in range(10)]
            client.send_message_batch(QueueUrl=url, Entries=entries)

    def receive() -> None:
        client = boto3.client("sqs")
        while True:
            messages = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                if done_sending.is_set():
                    return
                continue
            with lock:
                received.extend(m["Body"] for m in messages)
            client.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )

    with ThreadPoolExecutor(senders + receivers) as pool:
        receiving = [pool.submit(receive) for _ in range(receivers)]
        list(pool.map(send, range(senders)))
        done_sending.set()
        for future in receiving:
            future.result()
    assert len(received) == len(set(received)) == total


@pytest.fixture
def visits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the messages looked at (moto's visibility check of a message)."""
    counted: list[int] = []
    original = Message.visible

    def visible(message: Message) -> bool:
        counted.append(1)
        return original.fget(message)  # type: ignore[attr-defined, no-any-return]

    monkeypatch.setattr(Message, "visible", property(visible))
    return counted


def test_sending_does_not_count_the_queue(sqs: Any, visits: list[int]) -> None:
    url = sqs.create_queue(QueueName="fast-sqs-send")["QueueUrl"]
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": str(n)} for n in range(10)])
    sqs.send_message(QueueUrl=url, MessageBody="one more")
    assert visits == []  # moto's own: every send looked at every message of the queue twice
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert got["Attributes"] == {"ApproximateNumberOfMessages": "11"}  # the counts are still moto's


def test_content_based_deduplication_still_applies_to_sends(sqs: Any) -> None:
    url = sqs.create_queue(
        QueueName="fast-sqs-dedup.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    for _ in range(3):
        sqs.send_message(QueueUrl=url, MessageBody="same body", MessageGroupId="g")
    sqs.send_message(QueueUrl=url, MessageBody="another body", MessageGroupId="g")
    got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert got["ApproximateNumberOfMessages"] == "2"
    assert got["ContentBasedDeduplication"] == "true"
