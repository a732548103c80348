"""Helpers for tests of the e-mail function under moto: SES's Lambda-action event, stored mail."""

from __future__ import annotations

import copy
import json
from typing import Any

import boto3

from functions.email.handler import handler
from tests.helpers import FIXTURES as SHARED_FIXTURES
from tests.helpers import context
from topology import TOPOLOGY

FIXTURES = SHARED_FIXTURES / "email"


EVENT = json.loads((FIXTURES / "ses_lambda_event.json").read_text())


PREFIX = TOPOLOGY.function("email").email.prefix  # type: ignore[union-attr]


SES_SENT_ID = "0100019a1b2c3d4e-5f6a7b8c-9d0e-4f1a-8b2c-3d4e5f6a7b8c-000000"


def bucket(stack: dict[Any, str]) -> str:
    return stack[("bucket", "inbound-email")]


def ses_event(
    message_id: str,
    *,
    verdicts: dict[str, str] | None = None,
    recipients: list[str] | None = None,
    dmarc_policy: str | None = None,
) -> dict[str, Any]:
    event = copy.deepcopy(EVENT)
    ses = event["Records"][0]["ses"]
    ses["mail"]["messageId"] = message_id
    for name, status in (verdicts or {}).items():
        ses["receipt"][f"{name}Verdict"] = {"status": status}
    if dmarc_policy:
        ses["receipt"]["dmarcPolicy"] = dmarc_policy
    if recipients is not None:
        ses["receipt"]["recipients"] = recipients
    return event


def receive(stack: dict[Any, str], fixture: str, message_id: str, **kwargs: Any) -> dict[str, Any]:
    """Store the mail as the S3 action does, then invoke the function as the Lambda action does."""
    boto3.client("s3").put_object(
        Bucket=bucket(stack), Key=f"{PREFIX}{message_id}", Body=(FIXTURES / fixture).read_bytes()
    )
    return handler(ses_event(message_id, **kwargs), context("email"))


def published(stack: dict[Any, str]) -> list[dict[str, Any]]:
    """The message.received events on the profile-merge queue (left there)."""
    sqs = boto3.client("sqs")
    found: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=stack[("queue", "profile-merge")], MaxNumberOfMessages=10, VisibilityTimeout=30
        ).get("Messages", [])
        if not batch:
            return found
        found.extend(json.loads(m["Body"]) for m in batch)
