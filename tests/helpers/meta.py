"""Helpers for tests of the WhatsApp webhook under moto: signed posts, what reached the bus."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import boto3

from functions.whatsapp import handler as whatsapp
from shared.contracts.events import MessageReceived, format_timestamp, utc_now
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository
from shared.services.profiles.inbound import record_message
from tests.helpers import FIXTURES as SHARED_FIXTURES
from tests.helpers import context, http_event
from topology import TOPOLOGY

FIXTURES = SHARED_FIXTURES / "meta"


PATH = "/webhooks/whatsapp"


APP_SECRET = TOPOLOGY.secret("meta-app-secret").local_default


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def signature(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_signed(
    handler: Any, path: str, function: str, body: bytes, headers: dict[str, str] | None, signed: bool
) -> dict[str, Any]:
    """POST ``body`` to a Meta webhook ``handler`` as Meta does (signed with the app secret)."""
    all_headers = {"content-type": "application/json"}
    if signed:
        all_headers["x-hub-signature-256"] = signature(body)
    all_headers.update(headers or {})
    return handler(http_event("POST", path, body=body.decode(), headers=all_headers), context(function))


def post(body: bytes, headers: dict[str, str] | None = None, signed: bool = True) -> dict[str, Any]:
    return post_signed(whatsapp.handler, PATH, "whatsapp", body, headers, signed)


def body_of(response: dict[str, Any]) -> Any:
    return json.loads(response["body"]) if response.get("body") else None


def received_on_bus(stack: dict[Any, str], source: str) -> list[MessageReceived]:
    """Every message.received from ``source`` that reached the profile-merge queue through the bus rule."""
    sqs = boto3.client("sqs")
    found: list[MessageReceived] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=stack[("queue", "profile-merge")], MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not batch:
            return found
        for item in batch:
            envelope = json.loads(item["Body"])
            assert envelope["detail-type"] == "message.received"
            assert envelope["source"] == source
            found.append(MessageReceived.model_validate(envelope["detail"]))


def published(stack: dict[Any, str]) -> list[MessageReceived]:
    return received_on_bus(stack, "omni.whatsapp")


def record_all(messages: list[MessageReceived]) -> list[Any]:
    customers = CustomerRepository()
    conversations = ConversationRepository(customers=customers)
    return [record_message(customers, conversations, m, format_timestamp(utc_now())) for m in messages]
