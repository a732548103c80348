"""Notify reads what it needs of the customer in one request: the partition holds the profile
and the identities, the profile is not read a second time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from functions.notify.facts import customer_facts
from functions.notify.handler import build_adapters
from shared.contracts.events import Identity, InboundFacts, NotificationRequested, format_timestamp
from shared.platform import aws
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository
from shared.repositories.outbox import OutboxRepository
from tests.helpers.notify import NOON, make_customer, notifier


def test_customer_facts_come_from_one_read_of_the_partition(stack: dict[Any, str]) -> None:
    phone = Identity(type="phone", value="+4915122220001", verified=True)
    make_customer(
        "cus_facts",
        [phone],
        preferences={"channels": ["sms"]},
        consent={"sms": "opted_in"},
        timezone="Europe/Berlin",
    )
    calls: Counter[str] = Counter()
    client = aws.client("dynamodb")

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    client.meta.events.register("before-call.dynamodb", count)
    try:
        facts = customer_facts("cus_facts", CustomerRepository())
    finally:
        client.meta.events.unregister("before-call.dynamodb", count)
    assert dict(calls) == {"Query": 1}
    assert facts is not None
    assert facts.identities == (phone,)
    assert facts.consent == {"sms": "opted_in"}
    assert facts.preferred == ("sms",)
    assert facts.timezone == "Europe/Berlin"
    assert customer_facts("cus_nobody", CustomerRepository()) is None


WA = Identity(type="whatsapp", value="+351910000009", verified=True)
EMAIL = Identity(type="email", value="facts@example.com", verified=True)


def open_with(conversation_id: str, message_id: str, channel: str, sender: Identity, at: datetime) -> None:
    conversations = ConversationRepository()
    assert conversations.open_for("c-ans", conversation_id, format_timestamp(at), channel)
    conversations.append_inbound(conversation_id, message_id, channel, "hello", format_timestamp(at), sender)


def reply(conversation_id: str, answering: InboundFacts, to: Identity) -> NotificationRequested:
    return NotificationRequested(
        notification_id=f"route:{answering.message_id}",
        customer_id="c-ans",
        kind="acknowledgement",
        text="We are on it.",
        conversation_id=conversation_id,
        channel=answering.channel,
        to=to,
        answering=answering,
    )


@contextmanager
def conversation_reads(stack: dict[Any, str]) -> Iterator[Counter[str]]:
    table = stack[("table", "conversations")]
    calls: Counter[str] = Counter()
    client = aws.client("dynamodb")

    def count(model: Any, params: dict[str, Any], **_: Any) -> None:
        if params.get("TableName") == table and model.name in ("GetItem", "Query", "BatchGetItem"):
            calls[model.name] += 1

    client.meta.events.register("before-parameter-build.dynamodb", count)
    try:
        yield calls
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb", count)


def test_a_reply_to_a_message_reads_nothing_of_the_conversation(stack: dict[Any, str]) -> None:
    make_customer("c-ans", [WA])
    at = NOON - timedelta(minutes=3)
    open_with("conv-ans", "whatsapp#wamid.1", "whatsapp", WA, at)
    answering = InboundFacts(message_id="whatsapp#wamid.1", channel="whatsapp", sent_at=at)
    with conversation_reads(stack) as calls:
        outcome = notifier(build_adapters(mode="local")).handle(reply("conv-ans", answering, WA), NOON)
    assert (outcome.status, outcome.channel) == ("sent", "whatsapp")  # inside the 24-hour window
    assert calls["Query"] == 0, calls
    assert calls["GetItem"] == 1, calls  # META once: the timeline entry's own write, not the facts


def test_the_window_is_measured_from_the_answered_message(stack: dict[Any, str]) -> None:
    make_customer("c-ans", [WA])
    at = NOON - timedelta(days=2)
    open_with("conv-old", "whatsapp#wamid.2", "whatsapp", WA, at)
    answering = InboundFacts(message_id="whatsapp#wamid.2", channel="whatsapp", sent_at=at)
    outcome = notifier(build_adapters(mode="local")).handle(reply("conv-old", answering, WA), NOON)
    assert outcome.status == "failed"
    assert "outside_whatsapp_window" in (outcome.error or "")


def test_an_email_reply_threads_under_the_answered_email(stack: dict[Any, str]) -> None:
    make_customer("c-ans", [EMAIL])
    open_with("conv-mail", "email#<ANS-1@mail.example.com>", "email", EMAIL, NOON)
    answering = InboundFacts(message_id="email#<ANS-1@mail.example.com>", channel="email", sent_at=NOON)
    request = reply("conv-mail", answering, EMAIL).model_copy(update={"subject": "Re: hello"})
    outcome = notifier(build_adapters(mode="local")).handle(request, NOON)
    assert outcome.status == "sent"
    stored = OutboxRepository().get(request.notification_id) or {}
    raw = stored["attempts"]["email"]["request"]["body"]["Content"]["Raw"]["Data"]
    assert "In-Reply-To: <ANS-1@mail.example.com>" in raw
