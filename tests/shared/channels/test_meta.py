"""Meta webhooks, pure: signatures, the handshake, and notifications -> canonical events.

Fixtures are notifications in the shapes Meta documents (WhatsApp Cloud API messages
and statuses webhooks; Messenger messages, postbacks, echoes, deliveries and reads;
Instagram messaging). Signatures are computed here with the standard library.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.channels import meta
from tests.helpers import FIXTURES as SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "meta"
SECRET = "test-app-secret"
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def signature(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- #
# Signature
# --------------------------------------------------------------------------- #
def test_signature_made_with_the_app_secret_is_accepted() -> None:
    body = fixture("whatsapp_text.json")
    meta.verify_signature(SECRET, body, signature(body))
    meta.verify_signature(SECRET, body, signature(body).upper().replace("SHA256=", "sha256="))
    assert meta.sign(SECRET, body) == signature(body)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("sha1=" + "0" * 40, "not sha256="),
        ("sha256=" + "z" * 64, "not sha256="),
        ("sha256=" + "0" * 63, "not sha256="),
    ],
)
def test_missing_or_malformed_signature_is_refused(header: str | None, reason: str) -> None:
    with pytest.raises(meta.InvalidSignature, match=reason):
        meta.verify_signature(SECRET, b"{}", header)


def test_forged_signature_and_tampered_body_are_refused() -> None:
    body = fixture("whatsapp_text.json")
    with pytest.raises(meta.InvalidSignature, match="does not match"):
        meta.verify_signature(SECRET, body, signature(body, secret="someone-else"))
    tampered = body.replace(b"invoice is wrong", b"invoice is right")
    with pytest.raises(meta.InvalidSignature, match="does not match"):
        meta.verify_signature(SECRET, tampered, signature(body))


# --------------------------------------------------------------------------- #
# Handshake
# --------------------------------------------------------------------------- #
def test_handshake_echoes_the_challenge_for_our_token() -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "1158201444"}
    assert meta.answer_handshake(params, "tok") == "1158201444"


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"}, 403),
        ({"hub.mode": "subscribe", "hub.verify_token": "to", "hub.challenge": "1"}, 403),
        ({"hub.mode": "subscribe", "hub.challenge": "1"}, 400),
        ({"hub.mode": "subscribe", "hub.verify_token": "tok"}, 400),
        ({"hub.mode": "unsubscribe", "hub.verify_token": "tok", "hub.challenge": "1"}, 400),
        ({"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "x" * 300}, 400),
        (None, 400),
    ],
)
def test_handshake_refusals(params: dict[str, str] | None, status: int) -> None:
    with pytest.raises(meta.HandshakeRefused) as refused:
        meta.answer_handshake(params, "tok")
    assert refused.value.status == status


# --------------------------------------------------------------------------- #
# WhatsApp
# --------------------------------------------------------------------------- #
def test_whatsapp_text_message_becomes_one_canonical_message() -> None:
    notification = meta.parse_whatsapp(fixture("whatsapp_text.json"), NOW)
    [message] = notification.messages
    assert (notification.statuses, notification.ignored) == ([], [])
    assert message.channel == "whatsapp"
    assert message.provider == "meta"
    assert message.provider_message_id.startswith("wamid.HBgN")
    assert message.sender.model_dump() == {"type": "whatsapp", "value": "+4915112345678", "verified": True}
    # The wa_id is a phone number: published as a phone identity too, so SMS joins the customer.
    assert [i.model_dump() for i in message.identities] == [
        {"type": "phone", "value": "+4915112345678", "verified": True}
    ]
    assert message.display_name == "Ana Lima"
    assert message.recipient == "106540352242922"
    assert message.text == "Hi, my invoice is wrong"
    assert message.sent_at == datetime.fromtimestamp(1795600800, UTC)
    assert message.received_at == NOW
    assert message.metadata["display_phone_number"] == "15550783881"
    assert message.metadata["waba_id"] == "102290129340398"


def test_whatsapp_message_types() -> None:
    notification = meta.parse_whatsapp(fixture("whatsapp_types.json"), NOW)
    by_type = {m.metadata["whatsapp_type"]: m for m in notification.messages}
    assert list(by_type) == ["image", "audio", "document", "location", "interactive", "button", "reaction"]
    assert notification.ignored == []
    # A reaction is recorded against the message it reacts to, never answered.
    assert by_type["reaction"].kind == "reaction"
    assert by_type["reaction"].metadata["reaction_to"]

    image = by_type["image"]
    assert image.text == "the invoice"
    assert [a.model_dump() for a in image.attachments] == [
        {
            "type": "image/jpeg",
            "url": "whatsapp-media:2754859441498128",
            "size": None,
            "name": None,
            "content": {
                "kind": "media",
                "media_type": "image",
                "media_id": "2754859441498128",
                "mime_type": "image/jpeg",
                "caption": "the invoice",
                "filename": None,
            },
        }
    ]
    assert by_type["audio"].text == "[audio]"
    assert by_type["audio"].attachments[0].type == "audio/ogg; codecs=opus"
    document = by_type["document"]
    assert (document.text, document.attachments[0].name) == ("[document]", "invoice-2026-11.pdf")
    assert by_type["location"].text == (
        "[location 52.521918,13.413215] Our shop, Alexanderplatz 1, 10178 Berlin"
    )
    interactive = by_type["interactive"]
    assert interactive.text == "Billing question"
    assert interactive.metadata["reply_id"] == "billing"
    assert interactive.metadata["reply_to"] == "wamid.OUTBOUNDLIST0001"
    button = by_type["button"]
    assert (button.text, button.metadata["button_payload"]) == ("Talk to an agent", "talk-to-agent")


def test_whatsapp_statuses_map_onto_delivery_statuses() -> None:
    notification = meta.parse_whatsapp(fixture("whatsapp_statuses.json"), NOW)
    assert notification.messages == []
    assert [(s.provider_message_id, s.status, s.error_code) for s in notification.statuses] == [
        ("wamid.OUTBOUND0001", "sent", None),
        ("wamid.OUTBOUND0001", "delivered", None),
        ("wamid.OUTBOUND0001", "read", None),
        ("wamid.OUTBOUND0002", "failed", "131047"),
    ]
    assert notification.statuses[0].at == datetime.fromtimestamp(1795600900, UTC)


def test_whatsapp_batch_of_entries_changes_messages_and_statuses() -> None:
    notification = meta.parse_whatsapp(fixture("whatsapp_batch.json"), NOW)
    assert [
        (m.provider_message_id, m.sender.value, m.display_name, m.recipient) for m in notification.messages
    ] == [
        ("wamid.BATCH0001", "+4915112345678", "Ana Lima", "106540352242922"),
        ("wamid.BATCH0002", "+5511987654321", "Bruno Costa", "106540352242922"),
        ("wamid.BATCH0003", "+4915112345678", "Ana Lima", "106540352242922"),
        ("wamid.BATCH0004", "+447700900123", "Chen Wei", "106540352242923"),
    ]
    assert [(s.provider_message_id, s.status) for s in notification.statuses] == [
        ("wamid.OUTBOUND0101", "delivered"),
        ("wamid.OUTBOUND0102", "read"),
    ]
    assert notification.ignored == ["field message_template_status_update"]


def test_whatsapp_errors_outside_messages_are_reported_not_refused() -> None:
    notification = meta.parse_whatsapp(fixture("whatsapp_errors.json"), NOW)
    assert (notification.messages, notification.statuses) == ([], [])
    assert notification.ignored == ["error 130429: Rate limit hit"]


def test_a_message_repeated_inside_one_notification_is_published_once() -> None:
    payload = json.loads(fixture("whatsapp_text.json"))
    value = payload["entry"][0]["changes"][0]["value"]
    value["messages"].append(dict(value["messages"][0]))
    payload["entry"].append(payload["entry"][0])
    notification = meta.parse_whatsapp(json.dumps(payload).encode(), NOW)
    assert len(notification.messages) == 1


def test_parsing_is_deterministic_so_retries_publish_the_same_event() -> None:
    body = fixture("whatsapp_batch.json")
    first = meta.parse_whatsapp(body, NOW)
    again = meta.parse_whatsapp(body, datetime(2026, 11, 27, tzinfo=UTC))
    assert [m.model_dump(exclude={"received_at"}) for m in first.messages] == [
        m.model_dump(exclude={"received_at"}) for m in again.messages
    ]


def test_unknown_object_is_ignored_not_refused() -> None:
    notification = meta.parse_whatsapp(fixture("messenger_text.json"), NOW)
    assert notification.known_object is False
    assert (notification.messages, notification.statuses) == ([], [])
    assert meta.parse_messenger(fixture("whatsapp_text.json"), NOW).known_object is False


def _whatsapp_with(**message_changes: Any) -> bytes:
    payload = json.loads(fixture("whatsapp_text.json"))
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    for key, value in message_changes.items():
        if value is None:
            message.pop(key)
        else:
            message[key] = value
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"object": "whatsapp_business_account"}', "entry: Field required"),
        (b'{"object": "whatsapp_business_account", "entry": [1]}', "entry.0"),
        (b'{"entry": []}', "object: Field required"),
    ],
)
def test_malformed_whatsapp_notifications_say_why(body: bytes, reason: str) -> None:
    with pytest.raises(meta.InvalidPayload, match=reason.replace(".", r"\.")):
        meta.parse_whatsapp(body, NOW)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_whatsapp_with(id=None), "entry.0.changes.0.value.messages.0.id: Field required"),
        (_whatsapp_with(timestamp="yesterday"), "messages.0.timestamp"),
        (_whatsapp_with(**{"from": "not-a-number"}), "messages.0.from"),
        (_whatsapp_with(**{"from": None}), "messages.0.from: neither from nor from_user_id"),
        (_whatsapp_with(id="w" * 201), "messages.0.id"),
    ],
)
def test_an_unreadable_whatsapp_message_is_skipped_with_the_reason(body: bytes, reason: str) -> None:
    notification = meta.parse_whatsapp(body, NOW)
    assert notification.messages == []
    [skipped] = notification.skipped
    assert reason in skipped
    assert notification.ignored == [f"skipped: {skipped}"]


def test_whatsapp_value_without_metadata_is_refused() -> None:
    payload = json.loads(fixture("whatsapp_text.json"))
    del payload["entry"][0]["changes"][0]["value"]["metadata"]
    with pytest.raises(meta.InvalidPayload, match=r"entry\.0\.changes\.0\.value\.metadata"):
        meta.parse_whatsapp(json.dumps(payload).encode(), NOW)


# --------------------------------------------------------------------------- #
# Messenger and Instagram
# --------------------------------------------------------------------------- #
def test_messenger_text_message() -> None:
    notification = meta.parse_messenger(fixture("messenger_text.json"), NOW)
    [message] = notification.messages
    assert message.channel == "messenger"
    assert message.sender.model_dump() == {"type": "messenger", "value": "6783902515025498", "verified": True}
    assert message.identities == ()
    assert message.recipient == "682498302938465"
    assert message.text == "Hello, is my parcel on its way?"
    assert message.provider_message_id.startswith("m_AG5Hz2Uq")
    # Messenger timestamps are milliseconds.
    assert message.sent_at == datetime.fromtimestamp(1795600800.123, UTC)


def test_messenger_echoes_and_receipts_are_not_customer_messages() -> None:
    notification = meta.parse_messenger(fixture("messenger_mixed.json"), NOW)
    assert [(m.provider_message_id, m.text, m.metadata["event"]) for m in notification.messages] == [
        ("m_ATTACHMENT0001", "[image]", "message"),
        ("m_QUICKREPLY0001", "Billing", "message"),
        ("m_POSTBACK0001", "Talk to a person", "postback"),
    ]
    attachment, quick_reply, postback = notification.messages
    assert [a.model_dump() for a in attachment.attachments] == [
        {
            "type": "image",
            "url": "https://scontent.xx.fbcdn.net/v/t1.15752-9/parcel.jpg?_nc_cat=1&oh=00_AfB&oe=6A0B1C2D",
            "size": None,
            "name": None,
        }
    ]
    assert quick_reply.metadata["quick_reply_payload"] == "TOPIC_BILLING"
    assert postback.metadata["postback_payload"] == "HUMAN_AGENT"
    # The delivery names our message; the read receipt only has a watermark.
    assert [(s.provider_message_id, s.status) for s in notification.statuses] == [
        ("m_OUTBOUND0001", "delivered")
    ]
    assert notification.statuses[0].at == datetime.fromtimestamp(1795600860.005, UTC)
    assert notification.ignored == ["echo", "read watermark"]


def test_instagram_messages_echoes_reads_and_reactions() -> None:
    notification = meta.parse_messenger(fixture("instagram_messages.json"), NOW)
    assert [m.channel for m in notification.messages] == ["instagram", "instagram"]
    text, image = notification.messages
    assert text.sender.model_dump() == {"type": "instagram", "value": "1092310252982105", "verified": True}
    assert text.text == "Do you ship to Portugal?"
    assert text.recipient == "17841405822304914"
    assert text.metadata["account_id"] == "17841405822304914"
    assert image.text == "[image]"
    assert image.attachments[0].url.startswith("https://lookaside.fbsbx.com/")
    [read] = notification.statuses
    assert read.status == "read"
    assert read.provider_message_id.endswith("NDA5OAZDZD")
    assert notification.ignored == ["echo", "other event"]


def test_messenger_batch_of_entries() -> None:
    notification = meta.parse_messenger(fixture("messenger_batch.json"), NOW)
    assert [(m.provider_message_id, m.sender.value, m.recipient) for m in notification.messages] == [
        ("m_BATCH0001", "6783902515025498", "682498302938465"),
        ("m_BATCH0002", "7290218365012345", "682498302938465"),
        ("m_BATCH0003", "6783902515025498", "682498302938466"),
    ]
    assert notification.messages[2].metadata["reply_to"] == "m_BATCH0001"


def _messenger_event(event: dict[str, Any], entry_id: str = "682498302938465") -> bytes:
    return json.dumps(
        {"object": "page", "entry": [{"id": entry_id, "time": 1795600800450, "messaging": [event]}]}
    ).encode()


def test_postback_without_mid_gets_an_id_a_retry_repeats() -> None:
    event = {
        "sender": {"id": "6783902515025498"},
        "recipient": {"id": "682498302938465"},
        "timestamp": 1795600800123,
        "postback": {"title": "Get Started", "payload": "GET_STARTED"},
    }
    first = meta.parse_messenger(_messenger_event(event), NOW).messages[0]
    again = meta.parse_messenger(_messenger_event(event), NOW).messages[0]
    assert first.provider_message_id == again.provider_message_id == "postback:6783902515025498:1795600800123"
    assert first.text == "Get Started"


def test_chat_plugin_user_ref_and_deleted_messages_are_left_out() -> None:
    by_ref = {
        "sender": {"user_ref": "ref-1"},
        "recipient": {"id": "682498302938465"},
        "timestamp": 1,
        "message": {"mid": "m_1", "text": "hi"},
    }
    deleted = {
        "sender": {"id": "1"},
        "recipient": {"id": "682498302938465"},
        "timestamp": 1,
        "message": {"mid": "m_2", "is_deleted": True},
    }
    assert meta.parse_messenger(_messenger_event(by_ref), NOW).ignored == ["sender without id"]
    assert meta.parse_messenger(_messenger_event(deleted), NOW).ignored == ["deleted"]


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"sender": {"id": "1"}, "timestamp": 1, "message": {"text": "no mid"}}, "messaging.0.message.mid"),
        ({"sender": {"id": "1"}, "message": {"mid": "m_1", "text": "when?"}}, "timestamp"),
        ({"sender": {"id": "bad id!"}, "timestamp": 1, "message": {"mid": "m_1"}}, "sender.id"),
        ({"sender": {"id": "1"}, "timestamp": "soon", "message": {"mid": "m_1"}}, "timestamp"),
    ],
)
def test_malformed_messenger_events_say_why(event: dict[str, Any], reason: str) -> None:
    good = {"sender": {"id": "1"}, "timestamp": 1, "message": {"mid": "m_ok", "text": "hi"}}
    body = json.dumps(
        {"object": "page", "entry": [{"id": "682498302938465", "messaging": [event, good]}]}
    ).encode()
    # The unreadable event is skipped with the reason; the rest of the batch is recorded.
    notification = meta.parse_messenger(body, NOW)
    assert [m.provider_message_id for m in notification.messages] == ["m_ok"]
    [skipped] = notification.skipped
    assert reason in skipped
