"""Drive the message pipeline under moto: post web chat messages, then hand each queue's batch
to its consumer as Lambda's event source mapping would (profile merge, routing, notify)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3

from functions.notify.handler import handler as notify
from functions.profile_merge.handler import handler as profile_merge
from functions.routing.handler import handler as routing
from functions.webchat.handler import handler as webchat
from shared.channels.webchat import compute_user_hash
from tests.helpers import context, http_event
from topology import TOPOLOGY

CONSUMERS = {"profile-merge": profile_merge, "routing": routing, "notify": notify}


def drain(stack: dict[Any, str], queue: str) -> dict[str, Any]:
    """Hand every message of ``queue`` to its consumer once; delete those it did not fail."""
    sqs = boto3.client("sqs")
    url = stack[("queue", queue)]
    received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])
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
        for m in received.get("Messages", [])
    ]
    if not records:
        return {"batchItemFailures": [], "count": 0}
    fn = TOPOLOGY.consumer_of(queue).name
    result = CONSUMERS[queue]({"Records": records}, context(fn))
    failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
    for record in records:
        if record["messageId"] not in failed:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])
    return {**result, "count": len(records)}


def run_pipeline(stack: dict[Any, str]) -> None:
    for queue in ("profile-merge", "routing", "notify"):
        result = drain(stack, queue)
        assert result["batchItemFailures"] == [], (queue, result)


def open_session(customer: dict[str, Any] | None = None) -> dict[str, Any]:
    response = webchat(
        http_event("POST", "/webchat/sessions", body={"customer": customer} if customer else {}),
        context("webchat"),
    )
    assert response["statusCode"] == 201, response
    return json.loads(response["body"])


def say(session: dict[str, Any], message_id: str, text: str, sent_at: str | None = None) -> None:
    """Post a message; by default sent now (acknowledgements are stamped with the real time)."""
    sent_at = sent_at or datetime.now(UTC).isoformat()
    response = webchat(
        http_event(
            "POST",
            "/webchat/sessions/{session_id}/messages",
            path_parameters={"session_id": session["session_id"]},
            body={"message_id": message_id, "text": text, "sent_at": sent_at},
            headers={"authorization": f"Bearer {session['token']}"},
        ),
        context("webchat"),
    )
    assert response["statusCode"] == 202, response


def verified_ana() -> dict[str, Any]:
    secret = TOPOLOGY.secret("webchat-identity").local_default
    return {
        "account_id": "acct-42",
        "email": "ana@example.com",
        "name": "Ana Lima",
        "user_hash": compute_user_hash(secret, "acct-42"),
    }
