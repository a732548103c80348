"""The Messenger/Instagram function under moto: echoes, receipts, postbacks, batches, retries."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from functions.messenger import handler as messenger
from shared.contracts.events import MessageReceived, format_timestamp, utc_now
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository
from shared.repositories.outbox import OutboxRepository
from shared.services.profiles.inbound import record_message
from tests.helpers import FIXTURES as SHARED_FIXTURES
from tests.helpers import context, http_event
from tests.helpers.meta import post_signed, received_on_bus, signature
from topology import TOPOLOGY

FIXTURES = SHARED_FIXTURES / "meta"
PATH = "/webhooks/messenger"
VERIFY_TOKEN = TOPOLOGY.secret("meta-verify-token").local_default


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def delivery(outbox: OutboxRepository, notification_id: str) -> dict[str, Any]:
    item = outbox.get(notification_id)
    assert item is not None, notification_id
    return item


def post(body: bytes, headers: dict[str, str] | None = None, signed: bool = True) -> dict[str, Any]:
    return post_signed(messenger.handler, PATH, "messenger", body, headers, signed)


def body_of(response: dict[str, Any]) -> Any:
    return json.loads(response["body"]) if response.get("body") else None


def published(stack: dict[Any, str]) -> list[MessageReceived]:
    return sorted(received_on_bus(stack, "omni.messenger"), key=lambda m: m.sent_at)


def start_delivery(notification_id: str, mid: str) -> OutboxRepository:
    outbox = OutboxRepository()
    outbox.start(
        {"notification_id": notification_id, "channel": "messenger", "created_at": "2026-11-25T08:00:00Z"}
    )
    outbox.mark(notification_id, "sent", "2026-11-25T08:00:01Z", provider_message_id=mid)
    return outbox


def test_handshake_on_the_messenger_hook(stack: dict[Any, str]) -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "CHALLENGE_ACCEPTED"}
    response = messenger.handler(http_event("GET", PATH, query=query), context("messenger"))
    assert (response["statusCode"], response["body"]) == (200, "CHALLENGE_ACCEPTED")
    query["hub.verify_token"] = "guess"
    assert messenger.handler(http_event("GET", PATH, query=query), context("messenger"))["statusCode"] == 403


def test_messenger_message_is_published(stack: dict[Any, str]) -> None:
    response = post(fixture("messenger_text.json"))
    assert response["statusCode"] == 200
    assert body_of(response) == {"status": "EVENT_RECEIVED", "messages": 1, "statuses": 0, "ignored": 0}
    [message] = published(stack)
    assert (message.channel, message.sender.type, message.sender.value) == (
        "messenger",
        "messenger",
        "6783902515025498",
    )
    assert message.text == "Hello, is my parcel on its way?"


def test_echoes_and_read_watermarks_are_not_messages_and_deliveries_update_the_log(
    stack: dict[Any, str],
) -> None:
    outbox = start_delivery("ntf_m1", "m_OUTBOUND0001")
    response = post(fixture("messenger_mixed.json"))
    assert response["statusCode"] == 200
    assert body_of(response) == {"status": "EVENT_RECEIVED", "messages": 3, "statuses": 1, "ignored": 2}
    messages = published(stack)
    assert [m.provider_message_id for m in messages] == [
        "m_ATTACHMENT0001",
        "m_QUICKREPLY0001",
        "m_POSTBACK0001",
    ]
    assert "m_ECHO0001" not in {m.provider_message_id for m in messages}
    assert delivery(outbox, "ntf_m1")["status"] == "delivered"


def test_instagram_messages_and_read_receipts(stack: dict[Any, str]) -> None:
    read_mid = json.loads(fixture("instagram_messages.json"))["entry"][0]["messaging"][3]["read"]["mid"]
    outbox = start_delivery("ntf_ig1", read_mid)
    response = post(fixture("instagram_messages.json"))
    assert response["statusCode"] == 200
    assert body_of(response) == {"status": "EVENT_RECEIVED", "messages": 2, "statuses": 1, "ignored": 2}
    messages = published(stack)
    assert {(m.channel, m.sender.type, m.sender.value) for m in messages} == {
        ("instagram", "instagram", "1092310252982105")
    }
    assert [m.text for m in messages] == ["Do you ship to Portugal?", "[image]"]
    assert delivery(outbox, "ntf_ig1")["status"] == "read"


def test_batch_of_entries_publishes_each_message(stack: dict[Any, str]) -> None:
    assert post(fixture("messenger_batch.json"))["statusCode"] == 200
    messages = published(stack)
    assert [m.provider_message_id for m in messages] == ["m_BATCH0001", "m_BATCH0002", "m_BATCH0003"]
    customers = CustomerRepository()
    conversations = ConversationRepository(customers=customers)
    results = [record_message(customers, conversations, m, format_timestamp(utc_now())) for m in messages]
    assert len({r.customer_id for r in results}) == 2  # two people wrote


def test_redelivery_is_recorded_once(stack: dict[Any, str]) -> None:
    body = fixture("messenger_text.json")
    with ThreadPoolExecutor(max_workers=3) as pool:
        statuses = list(pool.map(lambda _: post(body)["statusCode"], range(3)))
    statuses.append(post(body)["statusCode"])
    assert statuses == [200] * 4
    customers = CustomerRepository()
    conversations = ConversationRepository(customers=customers)
    results = [
        record_message(customers, conversations, m, format_timestamp(utc_now())) for m in published(stack)
    ]
    assert len(results) == 4
    assert sum(r.new_message for r in results) == 1
    conversation = conversations.get(str(results[0].conversation_id))
    assert conversation is not None
    assert len(conversation.messages) == 1


def test_bad_signatures_and_bodies(stack: dict[Any, str]) -> None:
    body = fixture("messenger_text.json")
    assert post(body, signed=False)["statusCode"] == 401
    assert (
        post(body, {"x-hub-signature-256": signature(body, "wrong-secret")}, signed=False)["statusCode"]
        == 401
    )
    event = {"sender": {"id": "1"}, "timestamp": 1, "message": {}}
    malformed = post(json.dumps({"object": "page", "entry": [{"id": "1", "messaging": [event]}]}).encode())
    # One unreadable event is skipped (logged), not a reason to refuse the batch.
    assert malformed["statusCode"] == 200
    assert body_of(malformed)["ignored"] == 1
    assert post(b'{"object": "page"}')["statusCode"] == 400
    assert post(body, {"content-type": "text/plain"})["statusCode"] == 415
    assert published(stack) == []
