"""Delivery receipts reach the conversation timeline: the repository's monotonic status
update, the delivery-status consumer, and the webhooks that publish the receipts."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import boto3
import pytest

from functions.delivery_status import handler as delivery_status
from functions.whatsapp import handler as whatsapp
from shared.contracts.events import DeliveryStatusChanged, Identity
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository
from shared.repositories.outbox import OutboxRepository
from tests.helpers import FIXTURES, context, eventbridge_envelope, http_event, sqs_event
from topology import DELIVERY_STATUS_CHANGED, TOPOLOGY

AT = "2026-11-25T08:00:00.000000Z"
PHONE = Identity(type="phone", value="+4915112345678", verified=True)
META_FIXTURES = FIXTURES / "meta"


def conversation_with_reply(
    conversation_id: str = "conv-1", message_id: str = "ntf_0"
) -> ConversationRepository:
    """A conversation with the customer's message and our reply (status ``sent``)."""
    customers = CustomerRepository()
    customer_id = f"cust-{conversation_id}"
    digits = int(hashlib.sha256(conversation_id.encode()).hexdigest(), 16) % 10**7
    phone = PHONE.model_copy(update={"value": f"+49151{digits:07d}"})
    customers.create(customer_id, [phone], AT)
    conversations = ConversationRepository(customers=customers)
    assert conversations.open_for(customer_id, conversation_id, AT, "sms")
    conversations.append_inbound(conversation_id, f"sms#in-{conversation_id}", "sms", "Hello?", AT, phone)
    assert conversations.record_outbound(
        conversation_id,
        message_id=message_id,
        channel="sms",
        text="Hi!",
        timestamp="2026-11-25T08:00:01.000000Z",
        author="agent:a1",
        status="sent",
    )
    return conversations


def status_of(conversations: ConversationRepository, conversation_id: str, message_id: str) -> str | None:
    conversation = conversations.get(conversation_id)
    assert conversation is not None
    [message] = [m for m in conversation.messages if m.message_id == message_id]
    return message.status


# --------------------------------------------------------------------------- #
# ConversationRepository.set_message_status
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("sequence", "changes", "final"),
    [
        (["delivered", "read"], [True, True], "read"),
        (["read", "delivered", "sent"], [True, False, False], "read"),  # out of order
        (["delivered", "delivered"], [True, False], "delivered"),  # duplicate
        (["sent"], [False], "sent"),  # what notify recorded already
        (["delivered", "failed", "read"], [True, True, False], "failed"),  # failed is final
        (["queued"], [False], "sent"),
    ],
)
def test_status_moves_forward_only(
    stack: dict[Any, str], sequence: list[str], changes: list[bool], final: str
) -> None:
    conversations = conversation_with_reply()
    applied = [conversations.set_message_status("conv-1", "ntf_0", s, AT) for s in sequence]
    assert applied == changes
    assert status_of(conversations, "conv-1", "ntf_0") == final


def test_failed_keeps_the_provider_error_code_and_time(stack: dict[Any, str]) -> None:
    conversations = conversation_with_reply()
    assert conversations.set_message_status(None, "ntf_0", "failed", "2026-11-25T08:05:00.000000Z", "30003")
    item = conversations.table.get({"pk": "CONV#conv-1", "sk": "MSG#2026-11-25T08:00:01.000000Z#ntf_0"})
    assert item is not None
    assert (item["status"], item["error_code"], item["status_at"]) == (
        "failed",
        "30003",
        "2026-11-25T08:05:00.000000Z",
    )


def test_unknown_foreign_and_inbound_messages_are_left_alone(stack: dict[Any, str]) -> None:
    conversations = conversation_with_reply()
    assert conversations.set_message_status("conv-1", "ntf_unknown", "delivered", AT) is False
    assert conversations.set_message_status("conv-other", "ntf_0", "delivered", AT) is False
    # A customer's message has no delivery status of ours.
    assert conversations.set_message_status("conv-1", "sms#in-conv-1", "delivered", AT) is False
    conversation = conversations.get("conv-1")
    assert conversation is not None
    assert [(m.message_id, m.status) for m in conversation.messages] == [
        ("sms#in-conv-1", None),
        ("ntf_0", "sent"),
    ]
    with pytest.raises(ValueError, match="unknown delivery status"):
        conversations.set_message_status("conv-1", "ntf_0", "bounced", AT)


# --------------------------------------------------------------------------- #
# The delivery-status consumer
# --------------------------------------------------------------------------- #


def receipt(status: str, notification_id: str = "ntf_0", **extra: Any) -> str:
    detail = DeliveryStatusChanged(
        notification_id=notification_id,
        channel="sms",
        provider_message_id="SM0001",
        status=status,  # type: ignore[arg-type]
        at=AT,
        **extra,
    ).model_dump(mode="json")
    return eventbridge_envelope(DELIVERY_STATUS_CHANGED, detail, source="omni.sms")


def consume(bodies: list[str]) -> dict[str, Any]:
    return delivery_status.handler(sqs_event(bodies, "delivery-status"), context("delivery-status"))


def test_consumer_applies_receipts_in_any_order(stack: dict[Any, str]) -> None:
    conversations = conversation_with_reply()
    result = consume([receipt("read"), receipt("delivered"), receipt("read")])
    assert result == {"batchItemFailures": []}
    assert status_of(conversations, "conv-1", "ntf_0") == "read"


def test_receipt_for_a_message_in_no_conversation_is_acknowledged(stack: dict[Any, str]) -> None:
    conversation_with_reply()
    assert consume([receipt("delivered", notification_id="ntf_elsewhere")]) == {"batchItemFailures": []}


def test_malformed_receipt_is_reported_not_raised(stack: dict[Any, str]) -> None:
    conversations = conversation_with_reply()
    bad = eventbridge_envelope(DELIVERY_STATUS_CHANGED, {"notification_id": "ntf_0", "status": "bounced"})
    event = sqs_event([bad, receipt("delivered")], "delivery-status")
    result = delivery_status.handler(event, context("delivery-status"))
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert status_of(conversations, "conv-1", "ntf_0") == "delivered"


def test_the_topology_routes_receipts_to_the_consumer() -> None:
    fn = TOPOLOGY.function("delivery-status")
    assert fn.queue == "delivery-status"
    [rule] = [r for r in TOPOLOGY.rules if DELIVERY_STATUS_CHANGED in r.detail_types]
    assert rule.target_queue == "delivery-status"
    assert [(g.kind, g.resource, g.access) for g in fn.grants] == [
        ("table", "conversations", "readwrite"),
        ("table", "customers", "readwrite"),  # an e-mail bounce marks the address undeliverable
    ]


# --------------------------------------------------------------------------- #
# A webhook publishes the receipts; the consumer applies them
# --------------------------------------------------------------------------- #


def drain(queue_url: str) -> list[str]:
    sqs, bodies = boto3.client("sqs"), []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_whatsapp_receipts_reach_the_timeline(stack: dict[Any, str]) -> None:
    conversations = conversation_with_reply("conv-1", "ntf_0")
    conversation_with_reply("conv-2", "ntf_1")
    outbox = OutboxRepository()
    for n, wamid in enumerate(("wamid.OUTBOUND0001", "wamid.OUTBOUND0002")):
        outbox.start({"notification_id": f"ntf_{n}", "channel": "whatsapp", "created_at": AT})
        outbox.mark(f"ntf_{n}", "sent", AT, provider_message_id=wamid)
    payload = json.loads((META_FIXTURES / "whatsapp_statuses.json").read_bytes())
    payload["entry"][0]["changes"][0]["value"]["statuses"].reverse()  # read before delivered and sent
    body = json.dumps(payload)
    secret = TOPOLOGY.secret("meta-app-secret").local_default.encode()
    headers = {
        "content-type": "application/json",
        "x-hub-signature-256": "sha256=" + hmac.new(secret, body.encode(), hashlib.sha256).hexdigest(),
    }
    response = whatsapp.handler(
        http_event("POST", "/webhooks/whatsapp", body=body, headers=headers), context("whatsapp")
    )
    assert response["statusCode"] == 200
    bodies = drain(stack[("queue", "delivery-status")])
    receipts = [json.loads(b) for b in bodies]
    assert {r["source"] for r in receipts} == {"omni.whatsapp"}
    assert sorted((r["detail"]["notification_id"], r["detail"]["status"]) for r in receipts) == [
        ("ntf_0", "delivered"),
        ("ntf_0", "read"),
        ("ntf_0", "sent"),
        ("ntf_1", "failed"),
    ]
    assert consume(bodies) == {"batchItemFailures": []}
    assert status_of(conversations, "conv-1", "ntf_0") == "read"
    assert status_of(conversations, "conv-2", "ntf_1") == "failed"
    failed = conversations.table.get({"pk": "CONV#conv-2", "sk": "MSG#2026-11-25T08:00:01.000000Z#ntf_1"})
    assert failed is not None
    assert failed["error_code"] == "131047"


# --------------------------------------------------------------------------- #
# WhatsApp echoes biz_opaque_callback_data: an unconfirmed send is confirmed
# --------------------------------------------------------------------------- #


def unconfirmed_whatsapp(outbox: OutboxRepository, notification_id: str) -> None:
    """What notify leaves after a crash between Meta's answer and recording it."""
    outbox.start({"notification_id": notification_id, "channel": "whatsapp", "created_at": AT})
    _, new = outbox.begin_attempt(
        notification_id, "whatsapp", {"key": f"{notification_id}#whatsapp", "started_at": AT}
    )
    assert new
    outbox.settle_attempt(notification_id, "whatsapp", "unconfirmed", AT, error="unconfirmed: not resent")
    outbox.mark(notification_id, "sent", AT, extra={"unconfirmed": True, "channel": "whatsapp"})


def whatsapp_status(wamid: str, status: str, callback_data: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": "106540352242922",
                            },
                            "statuses": [
                                {
                                    "id": wamid,
                                    "status": status,
                                    "timestamp": "1795600901",
                                    "recipient_id": "4915112345678",
                                    **({"biz_opaque_callback_data": callback_data} if callback_data else {}),
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    text = json.dumps(body)
    secret = TOPOLOGY.secret("meta-app-secret").local_default.encode()
    headers = {
        "content-type": "application/json",
        "x-hub-signature-256": "sha256=" + hmac.new(secret, text.encode(), hashlib.sha256).hexdigest(),
    }
    return whatsapp.handler(
        http_event("POST", "/webhooks/whatsapp", body=text, headers=headers), context("whatsapp")
    )


def test_echoed_key_confirms_an_unconfirmed_send_and_reaches_the_timeline(stack: dict[Any, str]) -> None:
    conversations = conversation_with_reply("conv-1", "ntf_0")
    outbox = OutboxRepository()
    unconfirmed_whatsapp(outbox, "ntf_0")
    assert whatsapp_status("wamid.CONFIRM01", "delivered", "ntf_0#whatsapp")["statusCode"] == 200
    item = outbox.get("ntf_0")
    assert item is not None
    assert item["attempts"]["whatsapp"]["state"] == "accepted"
    assert item["attempts"]["whatsapp"]["provider_message_id"] == "wamid.CONFIRM01"
    assert (item["provider_message_id"], item["status"]) == ("wamid.CONFIRM01", "delivered")
    assert "unconfirmed" not in item
    # Later receipts find the delivery by its id as usual.
    assert whatsapp_status("wamid.CONFIRM01", "read", "ntf_0#whatsapp")["statusCode"] == 200
    assert outbox.get("ntf_0")["status"] == "read"  # type: ignore[index]
    assert consume(drain(stack[("queue", "delivery-status")])) == {"batchItemFailures": []}
    assert status_of(conversations, "conv-1", "ntf_0") == "read"


@pytest.mark.parametrize(
    "callback_data",
    ["ntf_0#sms", "ntf_other#whatsapp", "not-a-key", None],
)
def test_an_echo_that_names_no_unconfirmed_attempt_changes_nothing(
    stack: dict[Any, str], callback_data: str | None
) -> None:
    outbox = OutboxRepository()
    unconfirmed_whatsapp(outbox, "ntf_0")
    assert whatsapp_status("wamid.STRANGER", "delivered", callback_data)["statusCode"] == 200
    item = outbox.get("ntf_0")
    assert item is not None
    assert item["attempts"]["whatsapp"]["state"] == "unconfirmed"
    assert "provider_message_id" not in item
    assert item["status"] == "sent"
    assert drain(stack[("queue", "delivery-status")]) == []


def test_an_accepted_attempt_is_not_rewritten_by_an_echo(stack: dict[Any, str]) -> None:
    outbox = OutboxRepository()
    outbox.start({"notification_id": "ntf_0", "channel": "whatsapp", "created_at": AT})
    outbox.mark("ntf_0", "sent", AT, provider_message_id="wamid.REAL")
    assert outbox.confirm_attempt("ntf_0#whatsapp", "whatsapp", "wamid.FORGED", "delivered", AT) is None
    item = outbox.get("ntf_0")
    assert item is not None
    assert (item["provider_message_id"], item["status"]) == ("wamid.REAL", "sent")
