"""Builders shared by the profile tests: canonical inbound messages and whole-table snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from shared.contracts.events import Identity, MessageReceived, format_timestamp, utc_now
from shared.repositories.conversation_merge import ConversationMerger
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository
from shared.services.profiles.inbound import RecordedMessage, record_message

START = datetime(2026, 11, 25, 8, tzinfo=UTC)


def verified(identity_type: str, value: str) -> Identity:
    return Identity(type=identity_type, value=value, verified=True)  # type: ignore[arg-type]


def claimed(identity_type: str, value: str) -> Identity:
    return Identity(type=identity_type, value=value, verified=False)  # type: ignore[arg-type]


def inbound(
    message_id: str,
    sender: Identity,
    *identities: Identity,
    channel: str = "webchat",
    seconds: int = 0,
    text: str | None = None,
    display_name: str | None = None,
    sent_at: datetime | None = None,
) -> MessageReceived:
    return MessageReceived(
        channel=channel,  # type: ignore[arg-type]
        provider="test",
        provider_message_id=message_id,
        sender=sender,
        identities=identities,
        display_name=display_name,
        text=text if text is not None else f"text of {message_id}",
        sent_at=sent_at or START + timedelta(seconds=seconds),
        received_at=utc_now(),
    )


class Repos:
    def __init__(self) -> None:
        self.customers = CustomerRepository()
        self.conversations = ConversationRepository(customers=self.customers)
        self.merger = ConversationMerger()

    def record(self, message: MessageReceived) -> RecordedMessage:
        return record_message(
            self.customers, self.conversations, message, format_timestamp(utc_now()), merger=self.merger
        )


def snapshot(stack: dict[Any, str]) -> dict[str, list[dict[str, Any]]]:
    """Every item of the customers and conversations tables, sorted: a whole-state fingerprint."""
    client = boto3.client("dynamodb")
    state: dict[str, list[dict[str, Any]]] = {}
    for table in ("customers", "conversations"):
        name = stack[("table", table)]
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": name}
        while True:
            page = client.scan(**kwargs)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        state[table] = sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))
    return state
