"""Fault injection at the AWS client layer, a Lambda-like SQS driver and the ledger of counts.

Faults are injected by wrapping ``botocore.client.BaseClient._make_api_call``: every
client (whoever created it, whenever) goes through it, so the code under test runs
unchanged and sees exactly what AWS would return: an error, or a partial result.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from tests.helpers import context
from topology import TOPOLOGY

#: ``fault(client, operation, params, call)``: return a response, raise, or ``call(params)``.
Fault = Callable[[Any, str, dict[str, Any], Callable[[dict[str, Any]], Any]], Any]


@contextmanager
def inject(fault: Fault) -> Iterator[None]:
    """Route every AWS API call through ``fault`` while the block runs."""
    original = BaseClient._make_api_call

    def patched(client: Any, operation: str, params: dict[str, Any]) -> Any:
        return fault(client, operation, params, lambda p: original(client, operation, p))

    BaseClient._make_api_call = patched  # type: ignore[method-assign]
    try:
        yield
    finally:
        BaseClient._make_api_call = original  # type: ignore[method-assign]


def client_error(code: str, operation: str, message: str = "injected", **extra: Any) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}, **extra}, operation)


# --------------------------------------------------------------------------- #
# Driving consumers as Lambda's SQS event source mapping does
# --------------------------------------------------------------------------- #
def consumers() -> dict[str, Callable[[dict[str, Any], Any], dict[str, Any]]]:
    from functions.notify.handler import handler as notify  # noqa: PLC0415
    from functions.profile_merge.handler import handler as profile_merge  # noqa: PLC0415
    from functions.routing.handler import handler as routing  # noqa: PLC0415

    return {"profile-merge": profile_merge, "routing": routing, "notify": notify}


PIPELINE = ("profile-merge", "routing", "notify")


def receive(stack: dict[Any, str], queue: str) -> list[dict[str, Any]]:
    url = stack[("queue", queue)]
    received = boto3.client("sqs").receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]
    )
    return [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m.get("Attributes", {}),
            "messageAttributes": {},
            "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue}",
            "awsRegion": "us-east-1",
        }
        for m in received.get("Messages", [])
    ]


def settle(stack: dict[Any, str], queue: str, records: list[dict[str, Any]], failed: set[str]) -> None:
    """Delete what succeeded; make the failed records visible again at once (retry without waiting)."""
    sqs = boto3.client("sqs")
    url = stack[("queue", queue)]
    for record in records:
        if record["messageId"] in failed:
            sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
            )
        else:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])


def invoke(queue: str, records: list[dict[str, Any]]) -> set[str]:
    fn = TOPOLOGY.consumer_of(queue).name
    result = consumers()[queue]({"Records": records}, context(fn))
    return {f["itemIdentifier"] for f in result["batchItemFailures"]}


def run_until_empty(stack: dict[Any, str], max_rounds: int = 200) -> int:
    """Drive every stage until no queue holds a message; returns the number of failed records seen."""
    failures = 0
    for _ in range(max_rounds):
        busy = False
        for queue in PIPELINE:
            records = receive(stack, queue)
            if not records:
                continue
            busy = True
            failed = invoke(queue, records)
            failures += len(failed)
            settle(stack, queue, records, failed)
        if not busy:
            return failures
    raise AssertionError(f"the pipeline did not drain in {max_rounds} rounds")


def dlq_bodies(stack: dict[Any, str], queue: str) -> list[str]:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=stack[("queue", queue)].rsplit("/", 1)[1] + "-dlq")["QueueUrl"]
    bodies: list[str] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60)
        if not got.get("Messages"):
            return bodies
        bodies += [m["Body"] for m in got["Messages"]]


# --------------------------------------------------------------------------- #
# Counting: what went in against what the conversations table holds
# --------------------------------------------------------------------------- #
def scan(table: str, ddb: Any = None) -> list[dict[str, Any]]:
    from shared.repositories.dynamo import deserialise  # noqa: PLC0415

    ddb = ddb or boto3.client("dynamodb")
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = ddb.scan(**kwargs)
        items += [deserialise(i) for i in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@dataclass
class Ledger:
    """Messages in (by their ``channel#provider id`` key) against messages recorded."""

    scenario: str
    sent: set[str] = field(default_factory=set)
    recorded: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def expect(self, key: str) -> None:
        with self.lock:
            self.sent.add(key)

    def count(self, conversations_table: str, ddb: Any = None) -> Ledger:
        self.recorded = [
            item["message_id"]
            for item in scan(conversations_table, ddb)
            if str(item.get("sk", "")).startswith("MSG#") and item.get("direction") == "inbound"
        ]
        return self

    @property
    def duplicates(self) -> int:
        return len(self.recorded) - len(set(self.recorded))

    @property
    def lost(self) -> int:
        return len(self.sent - set(self.recorded))

    @property
    def unexpected(self) -> int:
        return len(set(self.recorded) - self.sent)

    def report(self, **extra: Any) -> dict[str, Any]:
        counts = {
            "in": len(self.sent),
            "recorded": len(self.recorded),
            "duplicates": self.duplicates,
            "lost": self.lost,
            **extra,
        }
        print(f"\n[faults] {self.scenario}: {json.dumps(counts)}")
        return counts

    def assert_exactly_once(self, **extra: Any) -> dict[str, Any]:
        counts = self.report(**extra)
        assert self.duplicates == 0, counts
        assert self.lost == 0, counts
        assert self.unexpected == 0, counts
        assert len(self.recorded) == len(self.sent), counts
        return counts
