"""Lambda handlers of the synthetic topology the tests in tests/local run.

They stand in for the real functions (which tests/local must not depend on) and
record what they were given, so that tests can check the events and contexts.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import time
from typing import Any

import boto3

_lock = threading.Lock()
_calls: list[tuple[str, dict[str, Any]]] = []


def _shared() -> Any:
    """The imported module: a further container of a function runs a copy of this module,
    whose calls must land in the one list the tests read."""
    return sys.modules[__name__]


def reset() -> None:
    shared = _shared()
    with shared._lock:
        shared._calls.clear()


def record(kind: str, **data: Any) -> None:
    shared = _shared()
    with shared._lock:
        shared._calls.append((kind, data))


def calls(kind: str) -> list[dict[str, Any]]:
    shared = _shared()
    with shared._lock:
        return [data for name, data in shared._calls if name == kind]


def _context(context: Any) -> dict[str, Any]:
    return {
        "function_name": context.function_name,
        "function_version": context.function_version,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "invoked_function_arn": context.invoked_function_arn,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }


# --------------------------------------------------------------------------- #
# HTTP handlers
# --------------------------------------------------------------------------- #
def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answers with the event and the context it got."""
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"event": event, "context": _context(context), "env": dict(os.environ)}),
    }


def plain(event: dict[str, Any], context: Any) -> Any:
    """Answers without a statusCode: HTTP API infers a 200 JSON response."""
    mode = (event.get("queryStringParameters") or {}).get("mode")
    if mode == "str":
        return "hello"
    if mode == "list":
        return [1, 2, 3]
    return {"hello": "world"}


def boom(event: dict[str, Any], context: Any) -> Any:
    raise RuntimeError("boom")


def fancy(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A response using every field of the payload format 2.0 response."""
    return {
        "statusCode": 201,
        "headers": {"content-type": "application/octet-stream", "x-one": "1"},
        "multiValueHeaders": {"x-many": ["a", "b"]},
        "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
        "body": base64.b64encode(b"\x00\x01\xffbinary").decode(),
        "isBase64Encoded": True,
    }


def malformed(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": {"not": "a string"}}


def publish(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Puts the request body on the bus as a ``thing.happened`` event."""
    detail = json.loads(event.get("body") or "{}")
    response = boto3.client("events").put_events(
        Entries=[
            {
                "EventBusName": os.environ["EVENT_BUS_NAME"],
                "Source": "omni.test",
                "DetailType": "thing.happened",
                "Detail": json.dumps(detail),
            }
        ]
    )
    if response.get("FailedEntryCount"):
        raise RuntimeError(f"put_events failed: {response}")
    return {"statusCode": 202, "body": json.dumps({"accepted": detail.get("id")})}


# --------------------------------------------------------------------------- #
# SQS consumers
# --------------------------------------------------------------------------- #
def store(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Writes the detail of each EventBridge event it gets to the items table."""
    table = boto3.resource("dynamodb").Table(os.environ["ITEMS_TABLE"])
    for rec in event["Records"]:
        envelope = json.loads(rec["body"])
        item = {
            "pk": envelope["detail"]["id"],
            "sk": "item",
            "source": envelope["source"],
            "detail_type": envelope["detail-type"],
        }
        if envelope["detail"].get("text"):
            item["text"] = envelope["detail"]["text"]  # a GSI key: never an empty string
        table.put_item(Item=item)
    return {"batchItemFailures": []}


def batch(event: dict[str, Any], context: Any) -> Any:
    """Obeys the ``action`` in each record's body: ok, fail, fail-once, raise-once, bad-id-once,
    slow (takes ``seconds`` before answering)."""
    records = event["Records"]
    started = time.monotonic()
    for rec in records:
        body = json.loads(rec["body"])
        if body.get("action") == "slow":
            time.sleep(float(body.get("seconds", 0.5)))
    record(
        "batch",
        records=records,
        context=_context(context),
        started=started,
        ended=time.monotonic(),
        container=id(globals()),  # this container's module globals
    )
    failures: list[dict[str, str]] = []
    for rec in records:
        action = json.loads(rec["body"]).get("action", "ok")
        first = rec["attributes"]["ApproximateReceiveCount"] == "1"
        if action == "raise-once" and first:
            raise RuntimeError("the whole batch fails")
        if action == "bad-id-once" and first:
            return {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]}
        if action == "fail" or (action == "fail-once" and first):
            failures.append({"itemIdentifier": rec["messageId"]})
    return {"batchItemFailures": failures}


def tick(event: dict[str, Any], context: Any) -> None:
    record("tick", event=event, context=_context(context))
