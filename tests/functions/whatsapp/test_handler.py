"""The WhatsApp function under moto: handshake, signatures, batches, statuses, retries, bad input."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from functions.whatsapp import handler as whatsapp
from shared.contracts.events import Identity, MessageReceived, format_timestamp, utc_now
from shared.platform.bus import PublishError
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository
from shared.repositories.outbox import OutboxRepository
from tests.helpers import context, http_event
from tests.helpers.meta import (
    PATH,
    body_of,
    fixture,
    post,
    published,
    record_all,
    signature,
)
from topology import TOPOLOGY

VERIFY_TOKEN = TOPOLOGY.secret("meta-verify-token").local_default


def delivery(outbox: OutboxRepository, notification_id: str) -> dict[str, Any]:
    item = outbox.get(notification_id)
    assert item is not None, notification_id
    return item


# --------------------------------------------------------------------------- #
# Handshake
# --------------------------------------------------------------------------- #
def test_handshake_echoes_the_challenge_as_plain_text(stack: dict[Any, str]) -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    response = whatsapp.handler(http_event("GET", PATH, query=query), context("whatsapp"))
    assert response["statusCode"] == 200
    assert response["body"] == "1158201444"
    assert response["headers"]["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"}, 403),
        ({"hub.mode": "subscribe", "hub.challenge": "1"}, 400),
        ({}, 400),
    ],
)
def test_handshake_refusals(stack: dict[Any, str], query: dict[str, str], status: int) -> None:
    response = whatsapp.handler(http_event("GET", PATH, query=query), context("whatsapp"))
    assert response["statusCode"] == status
    assert response["body"] != "1"
    assert body_of(response)["message"]


# --------------------------------------------------------------------------- #
# Messages
# --------------------------------------------------------------------------- #
def test_signed_message_is_published_in_canonical_form(stack: dict[Any, str]) -> None:
    response = post(fixture("whatsapp_text.json"))
    assert response["statusCode"] == 200
    assert body_of(response) == {"status": "EVENT_RECEIVED", "messages": 1, "statuses": 0, "ignored": 0}
    [message] = published(stack)
    assert message.channel == "whatsapp"
    assert message.sender == Identity(type="whatsapp", value="+4915112345678", verified=True)
    assert message.identities == (Identity(type="phone", value="+4915112345678", verified=True),)
    assert (message.display_name, message.text) == ("Ana Lima", "Hi, my invoice is wrong")
    assert message.sent_at == datetime.fromtimestamp(1795600800, UTC)


def test_base64_encoded_body_is_verified_on_its_bytes(stack: dict[Any, str]) -> None:
    body = fixture("whatsapp_text.json")
    event = http_event(
        "POST",
        PATH,
        body=base64.b64encode(body).decode(),
        headers={"content-type": "application/json", "x-hub-signature-256": signature(body)},
    )
    event["isBase64Encoded"] = True
    assert whatsapp.handler(event, context("whatsapp"))["statusCode"] == 200
    assert len(published(stack)) == 1


def test_batch_publishes_every_message_and_applies_every_status(stack: dict[Any, str]) -> None:
    outbox = OutboxRepository()
    for n, wamid in enumerate(("wamid.OUTBOUND0101", "wamid.OUTBOUND0102")):
        outbox.start(
            {"notification_id": f"ntf_{n}", "channel": "whatsapp", "created_at": "2026-11-25T08:00:00Z"}
        )
        outbox.mark(f"ntf_{n}", "sent", "2026-11-25T08:00:01Z", provider_message_id=wamid)
    response = post(fixture("whatsapp_batch.json"))
    assert response["statusCode"] == 200
    assert body_of(response) == {"status": "EVENT_RECEIVED", "messages": 4, "statuses": 2, "ignored": 1}
    ids = sorted(m.provider_message_id for m in published(stack))
    assert ids == ["wamid.BATCH0001", "wamid.BATCH0002", "wamid.BATCH0003", "wamid.BATCH0004"]
    assert delivery(outbox, "ntf_0")["status"] == "delivered"
    assert delivery(outbox, "ntf_1")["status"] == "read"


def test_statuses_move_forward_only_and_keep_the_error_code(stack: dict[Any, str]) -> None:
    outbox = OutboxRepository()
    for n, wamid in enumerate(("wamid.OUTBOUND0001", "wamid.OUTBOUND0002")):
        outbox.start(
            {"notification_id": f"ntf_{n}", "channel": "whatsapp", "created_at": "2026-11-25T08:00:00Z"}
        )
        outbox.mark(f"ntf_{n}", "sent", "2026-11-25T08:00:01Z", provider_message_id=wamid)
    payload = json.loads(fixture("whatsapp_statuses.json"))
    statuses = payload["entry"][0]["changes"][0]["value"]["statuses"]
    statuses.reverse()  # Meta does not promise order: read arrives before delivered and sent
    assert post(json.dumps(payload).encode())["statusCode"] == 200
    read = delivery(outbox, "ntf_0")
    assert read["status"] == "read"
    assert read["status_history"]["read"] == format_timestamp(datetime.fromtimestamp(1795600902, UTC))
    failed = delivery(outbox, "ntf_1")
    assert (failed["status"], failed["error_code"]) == ("failed", "131047")


def test_status_of_a_message_we_do_not_know_is_accepted(stack: dict[Any, str]) -> None:
    response = post(fixture("whatsapp_statuses.json"))
    assert response["statusCode"] == 200
    assert body_of(response)["statuses"] == 4


def test_unknown_object_gets_200_and_is_ignored(stack: dict[Any, str]) -> None:
    response = post(fixture("messenger_text.json"))
    assert response["statusCode"] == 200
    assert body_of(response) == {"status": "EVENT_RECEIVED", "messages": 0, "statuses": 0, "ignored": 1}
    assert published(stack) == []


# --------------------------------------------------------------------------- #
# Retries: recorded once
# --------------------------------------------------------------------------- #
def test_redelivered_three_times_and_concurrently_is_recorded_once(stack: dict[Any, str]) -> None:
    body = fixture("whatsapp_text.json")
    statuses = [post(body)["statusCode"] for _ in range(3)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses += list(pool.map(lambda _: post(body)["statusCode"], range(4)))
    assert statuses == [200] * 7
    events = published(stack)
    assert len(events) == 7  # Meta's retries are all accepted ...
    with ThreadPoolExecutor(max_workers=7) as pool:  # ... and profile merge sees them at once
        results = list(pool.map(lambda m: record_all([m])[0], events))
    assert sum(r.new_message for r in results) == 1
    assert len({r.customer_id for r in results}) == 1
    conversation = ConversationRepository().get(results[0].conversation_id)
    assert conversation is not None
    assert [m.text for m in conversation.messages] == ["Hi, my invoice is wrong"]


@pytest.mark.parametrize("order", ["whatsapp_first", "sms_first"])
def test_same_phone_on_whatsapp_and_sms_is_one_customer(stack: dict[Any, str], order: str) -> None:
    assert post(fixture("whatsapp_text.json"))["statusCode"] == 200
    [from_whatsapp] = published(stack)
    from_sms = MessageReceived(
        channel="sms",
        provider="twilio",
        provider_message_id="SM0123456789abcdef0123456789abcdef",
        sender=Identity(type="phone", value="+49 151 12345678", verified=True),
        recipient="+15550001111",
        text="also by SMS",
        sent_at=from_whatsapp.sent_at + timedelta(minutes=1),
        received_at=utc_now(),
    )
    messages = [from_whatsapp, from_sms] if order == "whatsapp_first" else [from_sms, from_whatsapp]
    results = record_all(messages)
    assert results[0].customer_id == results[1].customer_id
    assert results[0].conversation_id == results[1].conversation_id
    customer = CustomerRepository().get(results[0].customer_id)
    assert customer is not None
    assert {(i.type, i.value) for i in customer.identities} == {
        ("whatsapp", "+4915112345678"),
        ("phone", "+4915112345678"),
    }
    conversation = ConversationRepository().get(results[0].conversation_id)
    assert conversation is not None
    assert sorted(m.channel for m in conversation.messages) == ["sms", "whatsapp"]


# --------------------------------------------------------------------------- #
# Bad input
# --------------------------------------------------------------------------- #
def test_forged_missing_and_stale_signatures_get_401(stack: dict[Any, str]) -> None:
    body = fixture("whatsapp_text.json")
    forged = post(body, {"x-hub-signature-256": signature(body, "not-the-app-secret")}, signed=False)
    missing = post(body, signed=False)
    tampered_body = body.replace(b"wrong", b"right")
    tampered = post(tampered_body, {"x-hub-signature-256": signature(body)}, signed=False)
    for response in (forged, missing, tampered):
        assert response["statusCode"] == 401
        assert "x-hub-signature-256" in body_of(response)["message"]
    assert published(stack) == []


def test_signature_is_checked_before_the_body_is_read(stack: dict[Any, str]) -> None:
    assert post(b"not json", signed=False)["statusCode"] == 401


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b'{"object": "whatsapp_business_account"}', "entry: Field required"),
    ],
)
def test_malformed_body_gets_400_with_the_reason(stack: dict[Any, str], body: bytes, reason: str) -> None:
    response = post(body)
    assert response["statusCode"] == 400
    assert reason in body_of(response)["message"]


def test_one_unreadable_message_is_skipped_and_the_rest_of_the_batch_recorded(stack: dict[Any, str]) -> None:
    payload = json.loads(fixture("whatsapp_text.json"))
    messages = payload["entry"][0]["changes"][0]["value"]["messages"]
    broken = {k: v for k, v in messages[0].items() if k != "id"}
    messages.insert(0, broken)
    response = post(json.dumps(payload).encode())
    assert response["statusCode"] == 200  # Meta would resend a refused batch for days
    assert body_of(response) == {"status": "EVENT_RECEIVED", "messages": 1, "statuses": 0, "ignored": 1}
    assert [m.text for m in published(stack)] == ["Hi, my invoice is wrong"]


def test_oversized_body_gets_413_and_wrong_content_type_415(stack: dict[Any, str]) -> None:
    big = json.dumps(
        {"object": "whatsapp_business_account", "entry": [], "pad": "x" * (1024 * 1024)}
    ).encode()
    assert post(big)["statusCode"] == 413
    body = fixture("whatsapp_text.json")
    assert post(body, {"content-type": "application/x-www-form-urlencoded"})["statusCode"] == 415


def test_bus_failure_asks_meta_to_retry(stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(events: Any) -> None:
        raise PublishError([{"ErrorCode": "InternalFailure"}])

    monkeypatch.setattr(whatsapp.publisher, "publish", refuse)
    response = post(fixture("whatsapp_text.json"))
    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"] == "1"


def test_delivery_log_failure_asks_meta_to_retry(
    stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(*args: Any) -> None:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "UpdateItem")

    monkeypatch.setattr(whatsapp.outbox, "update_status", unavailable)
    response = post(fixture("whatsapp_statuses.json"))
    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"] == "1"
