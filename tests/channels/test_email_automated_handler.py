"""Automatic mail through the e-mail function and the delivery-status consumer, on moto:
a bounce marks the delivery it returns failed and the address undeliverable, and creates
no customer; an out-of-office reply is published flagged as automatic."""

from __future__ import annotations

import json
from typing import Any

import boto3

from functions.delivery_status import handler as delivery_status
from shared.contracts.events import Identity
from shared.repositories.customers import CustomerRepository
from shared.repositories.outbox import OutboxRepository
from tests.channels.test_email_handler import SES_SENT_ID, published, receive
from tests.helpers import context, sqs_event

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
