"""Builders for the events Lambda hands our handlers (shapes as AWS documents them)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from omni.local.lambda_context import LambdaContext
from topology import TOPOLOGY

#: The repository's root folder.
REPO_ROOT = Path(__file__).resolve().parents[2]
#: Provider payloads in their real formats (e-mail messages, Meta webhooks), shared by the tests.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def context(function: str) -> LambdaContext:
    fn = TOPOLOGY.function(function)
    return LambdaContext.for_function(f"omni-test-{fn.name}", memory_mb=fn.memory_mb, timeout_s=fn.timeout_s)


def http_event(
    method: str,
    route_path: str,
    *,
    path_parameters: dict[str, str] | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    claims: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API payload-format-2.0 event for ``route_path`` (a template)."""
    path = route_path
    for name, value in (path_parameters or {}).items():
        path = path.replace("{" + name + "}", value)
    all_headers = {"host": "api.example.com", "user-agent": "pytest"}
    if body is not None and not isinstance(body, str):
        body = json.dumps(body)
        all_headers["content-type"] = "application/json"
    all_headers.update({k.lower(): v for k, v in (headers or {}).items()})
    request_context: dict[str, Any] = {
        "accountId": "123456789012",
        "apiId": "api",
        "domainName": "api.example.com",
        "domainPrefix": "api",
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1",
            "userAgent": "pytest",
        },
        "requestId": str(uuid.uuid4()),
        "routeKey": f"{method} {route_path}",
        "stage": "$default",
        "time": "25/Nov/2026:08:00:00 +0000",
        "timeEpoch": 1795600800000,
    }
    if claims is not None:
        request_context["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {route_path}",
        "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": all_headers,
        "requestContext": request_context,
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body is not None:
        event["body"] = body
    return event


def sqs_event(bodies: list[str], queue: str = "test") -> dict[str, Any]:
    """A Lambda SQS batch with one record per body."""
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": f"handle-{i}",
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795600800000",
                    "SenderId": "AIDAEXAMPLE",
                    "ApproximateFirstReceiveTimestamp": "1795600800000",
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:us-east-1:123456789012:{queue}",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def deliver_one_batch(queue_url: str, queue: str, handler: Any) -> int:
    """What the event source mapping does once: receive up to 10 messages from the (moto) queue,
    hand them to ``handler`` as a Lambda SQS batch, delete them; asserts no record failed."""
    import boto3  # noqa: PLC0415 - only the tests that drain real queues need it

    sqs = boto3.client("sqs")
    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
        "Messages", []
    )
    if not got:
        return 0
    records = [
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
        for m in got
    ]
    name = TOPOLOGY.consumer_of(queue).name
    result = handler({"Records": records}, context(name))
    assert result["batchItemFailures"] == [], (queue, result)
    for m in got:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return len(got)


def eventbridge_envelope(detail_type: str, detail: dict[str, Any], source: str = "omni.test") -> str:
    """The JSON an EventBridge rule puts into its SQS target."""
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": source,
            "account": "123456789012",
            "time": "2026-11-25T08:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": detail,
        }
    )
