"""Automatic mail through the e-mail function and the delivery-status consumer, on moto:
a bounce marks the delivery it returns failed and the address undeliverable, and creates
no customer; an out-of-office reply is published flagged as automatic."""

from __future__ import annotations

import json
from typing import Any

import boto3

from functions.delivery_status import handler as delivery_status
from functions.email.handler import handler
from shared.contracts.events import Identity
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository
from shared.repositories.outbox import OutboxRepository
from tests.helpers import context, sqs_event
from tests.helpers.email import (
    FIXTURES,
    PREFIX,
    SES_SENT_ID,
    bucket,
    published,
    receive,
    ses_event,
)
from tests.helpers.pipeline import drain

AT = "2026-11-26T08:00:01.000000Z"
GONE = "old.address@example.org"


def delivery(notification_id: str, recipient: str = GONE, provider_id: str = SES_SENT_ID) -> OutboxRepository:
    outbox = OutboxRepository()
    outbox.start(
        {
            "notification_id": notification_id,
            "created_at": AT,
            "customer_id": "cust-gone",
            "conversation_id": "conv-gone",
            "channel": "email",
            "recipient": f"email:{recipient}",
        }
    )
    outbox.mark(notification_id, "sent", AT, provider_message_id=provider_id)
    return outbox


def receipts(stack: dict[Any, str]) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    found: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=stack[("queue", "delivery-status")], MaxNumberOfMessages=10, VisibilityTimeout=30
    ).get("Messages", []):
        found.extend(json.loads(m["Body"]) for m in batch)
    return found


def test_a_dsn_marks_the_delivery_it_returns_failed_and_publishes_no_message(stack: dict[Any, str]) -> None:
    outbox = delivery("route:email#0100bounce")  # found by the X-Omni-Notification it returns
    result = receive(stack, "bounce_dsn.eml", "bounce000000000000000000000000000000001")
    assert result["results"] == [
        {
            "ses_message_id": "bounce000000000000000000000000000000001",
            "status": "bounce",
            "matched": "route:email#0100bounce",
            "failed": True,
        }
    ]
    item = outbox.get("route:email#0100bounce")
    assert item is not None
    assert (item["status"], item["error"]) == ("failed", "bounce:5.1.1")
    assert published(stack) == []  # no message.received: no customer, no conversation
    [event] = receipts(stack)
    assert event["detail-type"] == "delivery.status_changed"
    detail = event["detail"]
    assert (detail["notification_id"], detail["status"], detail["error_code"]) == (
        "route:email#0100bounce",
        "failed",
        "bounce:5.1.1",
    )
    assert detail["customer_id"] == "cust-gone"
    assert detail["undeliverable"] == {"type": "email", "value": GONE, "verified": False}


def test_a_non_standard_bounce_is_matched_by_the_message_id_it_quotes(stack: dict[Any, str]) -> None:
    outbox = delivery("ntf_quoted", recipient="nobody.here@example.net")
    result = receive(stack, "bounce_quoted.eml", "bounce000000000000000000000000000000002")
    assert result["results"][0]["matched"] == "ntf_quoted"
    assert (outbox.get("ntf_quoted") or {})["status"] == "failed"
    assert published(stack) == []
    [event] = receipts(stack)
    assert event["detail"]["undeliverable"]["value"] == "nobody.here@example.net"


def test_a_bounce_for_no_mail_of_ours_is_dropped(stack: dict[Any, str]) -> None:
    result = receive(stack, "bounce_dsn.eml", "bounce000000000000000000000000000000003")
    assert result["results"][0] == {
        "ses_message_id": "bounce000000000000000000000000000000003",
        "status": "bounce",
        "matched": None,
    }
    assert published(stack) == []
    assert receipts(stack) == []


def test_a_bounce_naming_another_recipient_changes_nothing(stack: dict[Any, str]) -> None:
    outbox = delivery("route:email#0100bounce", recipient="someone.else@example.org")
    result = receive(stack, "bounce_dsn.eml", "bounce000000000000000000000000000000004")
    assert result["results"][0]["matched"] is None
    assert (outbox.get("route:email#0100bounce") or {})["status"] == "sent"
    assert receipts(stack) == []


def test_an_out_of_office_reply_is_published_as_automatic(stack: dict[Any, str]) -> None:
    receive(stack, "ooo_vacation.eml", "ooo00000000000000000000000000000000001")
    [event] = published(stack)
    assert event["detail"]["automated"] == "auto_reply"
    assert event["detail"]["metadata"]["automated_by"] == "Auto-Submitted"


def test_the_consumer_records_the_undeliverable_address_on_the_profile(stack: dict[Any, str]) -> None:
    customers = CustomerRepository()
    address = Identity(type="email", value=GONE, verified=True)
    customers.create("cust-gone", [address], AT)
    detail = {
        "notification_id": "ntf_x",
        "channel": "email",
        "provider_message_id": SES_SENT_ID,
        "status": "failed",
        "at": "2026-11-26T08:00:05.000000Z",
        "error_code": "bounce:5.1.1",
        "customer_id": "cust-gone",
        "undeliverable": {"type": "email", "value": GONE},
    }
    body = json.dumps(
        {
            "version": "0",
            "id": "1",
            "detail-type": "delivery.status_changed",
            "source": "omni.email",
            "account": "",
            "time": "2026-11-26T08:00:05Z",
            "region": "eu-west-1",
            "resources": [],
            "detail": detail,
        }
    )
    result = delivery_status.handler(sqs_event([body, body], "delivery-status"), context("delivery-status"))
    assert result == {"batchItemFailures": []}
    customer = customers.get("cust-gone")
    assert customer is not None
    [identity] = customer.identities
    assert identity.undeliverable == {"at": "2026-11-26T08:00:05.000000Z", "reason": "bounce:5.1.1"}


# --------------------------------------------------------------------------- #
# Through profile merge and routing: nothing answers automatic mail
# --------------------------------------------------------------------------- #
def receive_raw(stack: dict[Any, str], raw: bytes, message_id: str) -> None:
    boto3.client("s3").put_object(Bucket=bucket(stack), Key=f"{PREFIX}{message_id}", Body=raw)
    handler(ses_event(message_id), context("email"))


def route_all(stack: dict[Any, str]) -> list[dict[str, Any]]:
    """Profile merge and routing consume what is queued; the notifications asked for (left queued)."""
    for queue in ("profile-merge", "routing"):
        assert drain(stack, queue)["batchItemFailures"] == []
    sqs = boto3.client("sqs")
    found: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=stack[("queue", "notify")], MaxNumberOfMessages=10, VisibilityTimeout=60
    ).get("Messages", []):
        found.extend(json.loads(m["Body"])["detail"] for m in batch)
    return found


def ana_conversation() -> Any:
    customers = CustomerRepository()
    customer_id = customers.owner_of(Identity(type="email", value="ana.lima@example.com", verified=True))
    assert customer_id is not None
    profile = customers.get_profile(customer_id) or {}
    conversation = ConversationRepository(customers=customers).get(profile["open_conversation_id"])
    assert conversation is not None
    return conversation


def test_list_mail_is_recorded_for_the_agent_but_never_acknowledged(stack: dict[Any, str]) -> None:
    receive(stack, "list_newsletter.eml", "list00000000000000000000000000000000001")
    assert route_all(stack) == []
    customer_id = CustomerRepository().owner_of(
        Identity(type="email", value="news@vendor.example", verified=True)
    )
    assert customer_id is not None  # recorded: an agent decides what to do with it
    open_id = (CustomerRepository().get_profile(customer_id) or {})["open_conversation_id"]
    meta = ConversationRepository().get_meta(open_id) or {}
    assert meta["automated_mail"] == "list"  # no survey after its resolution
    assert meta["status"] == "queued"  # with people, never the bot


def test_an_out_of_office_reply_is_a_note_on_the_conversation_and_gets_no_reply(
    stack: dict[Any, str],
) -> None:
    receive(stack, "plain.eml", "plain0000000000000000000000000000000001")
    [acknowledgement] = route_all(stack)
    assert acknowledgement["kind"] == "acknowledgement"
    receive(stack, "ooo_exchange.eml", "ooo00000000000000000000000000000000002")
    assert route_all(stack) == []
    conversation = ana_conversation()
    assert [m.direction for m in conversation.messages] == ["inbound"]  # not a customer message
    [note] = conversation.notes
    assert note.author == "email:auto-reply"
    assert note.text.startswith("Automatic reply from ana.lima@example.com")
    assert "out of the office until 7 December" in note.text


def test_one_acknowledgement_per_conversation_within_the_window(stack: dict[Any, str]) -> None:
    receive(stack, "plain.eml", "plain0000000000000000000000000000000001")  # billing
    [first] = route_all(stack)
    assert first["kind"] == "acknowledgement"
    moved = (
        (FIXTURES / "plain.eml")
        .read_bytes()
        .replace(
            b"my invoice 2026-118 charges me twice for the same order. Could you check it?",
            b"I want to cancel my contract.",
        )
    )
    receive_raw(
        stack, moved.replace(b"CAF1plain0001", b"CAF1plain0002"), "plain0000000000000000000000000000000002"
    )
    assert route_all(stack) == []  # another queue, but acknowledged a moment ago
    conversation = ana_conversation()
    assert len([m for m in conversation.messages if m.direction == "inbound"]) == 2
