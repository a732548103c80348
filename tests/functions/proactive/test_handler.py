"""The proactive function under moto: shipping updates, retention tasks, idempotency, bad events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.proactive import handler as proactive_fn
from shared.contracts.events import Identity, format_timestamp
from shared.repositories.agents import AgentRepository
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository
from tests.helpers import context, eventbridge_envelope, sqs_event
from topology import AGENT_ASSIGNED, NOTIFICATION_REQUESTED

PHONE = "+4915112340777"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def published(stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """What the function publishes (the bus itself is exercised by the e2e test)."""
    out: list[tuple[str, Any]] = []
    monkeypatch.setattr(proactive_fn.publisher, "publish", out.extend)
    monkeypatch.setattr(proactive_fn, "_proactive", None)
    return out


@pytest.fixture
def customer(stack: dict[Any, str]) -> str:
    CustomerRepository().create(
        "cus_proactive1",
        [Identity(type="phone", value=PHONE, verified=True)],
        format_timestamp(NOW),
        display_name="Ana Lima",
    )
    return "cus_proactive1"


def deliver(*envelopes: str) -> dict[str, Any]:
    return proactive_fn.handler(sqs_event(list(envelopes), "proactive"), context("proactive"))


def check(order_id: str, at: datetime, who: dict[str, Any]) -> str:
    return eventbridge_envelope(
        "order.status_checked", {**who, "order_id": order_id, "at": at.isoformat()}, source="omni.shop"
    )


def view(url: str, at: datetime, who: dict[str, Any]) -> str:
    return eventbridge_envelope("page.viewed", {**who, "url": url, "at": at.isoformat()}, source="omni.web")


def test_third_order_check_within_24h_sends_one_shipping_update(
    customer: str, published: list[tuple[str, Any]]
) -> None:
    by_phone = {"identity": {"type": "phone", "value": "+49 151 12340777"}}  # normalised to E.164
    first, second = (
        check("A-100", NOW - timedelta(hours=5), by_phone),
        check("A-100", NOW - timedelta(hours=3), by_phone),
    )
    assert deliver(first, second)["batchItemFailures"] == []
    assert published == []
    third = check("A-100", NOW - timedelta(hours=1), {"customer_id": customer})
    assert deliver(third)["batchItemFailures"] == []
    [(detail_type, notification)] = published
    assert detail_type == NOTIFICATION_REQUESTED
    assert notification.customer_id == customer
    assert notification.template == "order_shipped"
    assert notification.kind == "notification"
    assert notification.variables == {
        "first_name": "Ana",
        "order_id": "A-100",
        "tracking_url": "https://www.example.com/orders/A-100",
    }
    window = (NOW - timedelta(hours=5)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    assert notification.notification_id == f"proactive:shipping_update:{customer}:A-100:{window}"

    # A fourth check sends nothing more; the third redelivered asks for the same notification.
    assert deliver(check("A-100", NOW, by_phone))["batchItemFailures"] == []
    assert len(published) == 1
    assert deliver(third)["batchItemFailures"] == []
    assert [n.notification_id for _, n in published] == [notification.notification_id] * 2
    # Another order counts on its own.
    deliver(check("B-7", NOW, by_phone))
    assert len(published) == 2


def test_cancellation_page_opens_one_retention_task_per_day(
    customer: str, published: list[tuple[str, Any]]
) -> None:
    AgentRepository().save("rita", "Rita", {"retention": 9}, 2, format_timestamp(NOW))
    AgentRepository().set_status("rita", "available", format_timestamp(NOW))
    who = {"customer_id": customer}
    assert deliver(view("https://shop.example.com/help", NOW, who))["batchItemFailures"] == []
    assert published == []
    viewed = view("https://shop.example.com/account/cancel", NOW, who)
    assert deliver(viewed)["batchItemFailures"] == []
    [(detail_type, assigned)] = published
    assert (detail_type, assigned.agent_id, assigned.queue) == (AGENT_ASSIGNED, "rita", "retention")
    conversations = ConversationRepository()
    conversation = conversations.get(assigned.conversation_id)
    assert conversation is not None
    assert (conversation.customer_id, conversation.status, conversation.queue) == (
        customer,
        "assigned",
        "retention",
    )
    assert conversation.handover is not None
    assert conversation.handover.summary.startswith("Proactive: customer viewed the cancellation page")
    [note] = conversation.notes
    assert note.text.startswith(
        "customer viewed the cancellation page (https://shop.example.com/account/cancel"
    )
    assert [t.to_status for t in conversation.transitions] == ["open", "queued", "assigned"]

    # Viewed again the same day, and the first view redelivered: still one task, one note.
    again = view("https://shop.example.com/account/cancel?step=2", NOW + timedelta(minutes=5), who)
    assert deliver(again, viewed)["batchItemFailures"] == []
    after = conversations.get(assigned.conversation_id)
    assert after is not None
    assert len(after.notes) == 1
    assert [t.to_status for t in after.transitions] == ["open", "queued", "assigned"]
    assert [c.conversation_id for c in conversations.list_for_customer(customer)] == [
        assigned.conversation_id
    ]
    assert AgentRepository().get("rita").active_count == 1  # type: ignore[union-attr]


def test_unknown_customers_are_dropped_and_bad_events_fail_their_record(
    customer: str, published: list[tuple[str, Any]]
) -> None:
    unknown = check("A-1", NOW, {"identity": {"type": "phone", "value": "+4915100000000"}})
    no_order = eventbridge_envelope("order.status_checked", {"customer_id": customer, "at": NOW.isoformat()})
    no_customer = eventbridge_envelope("page.viewed", {"url": "/cancel", "at": NOW.isoformat()})
    naive_time = eventbridge_envelope(
        "page.viewed", {"customer_id": customer, "url": "/cancel", "at": "2026-01-01T10:00"}
    )
    batch = sqs_event([unknown, no_order, no_customer, naive_time], "proactive")
    result = proactive_fn.handler(batch, context("proactive"))
    ids = [r["messageId"] for r in batch["Records"]]
    # The unknown customer is dropped (nothing to do); the malformed ones go to the DLQ in the end.
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(ids[1:])
    assert published == []


def test_the_rules_file_is_validated_when_the_function_starts(
    stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text(json.dumps("x").join(["version = 1\n[[rules]]\nname = ", "\nevent = 'page.clicked'\n"]))
    monkeypatch.setenv("OMNI_PROACTIVE_RULES", str(bad))
    monkeypatch.setattr(proactive_fn, "_proactive", None)
    from functions.proactive.rules import ProactiveConfigError  # noqa: PLC0415

    with pytest.raises(ProactiveConfigError, match=r"rules\[0\]\.event: unknown event 'page.clicked'"):
        proactive_fn.proactive()


def test_a_conversation_already_with_an_agent_only_gets_the_note(
    customer: str, published: list[tuple[str, Any]]
) -> None:
    from shared.services.desk import Desk  # noqa: PLC0415

    now = format_timestamp(NOW)
    agents, conversations = AgentRepository(), ConversationRepository()
    agents.save("bea", "Bea", {"billing": 5}, 2, now)
    agents.set_status("bea", "available", now)
    assert conversations.open_for(customer, "conv_billing1", now, "sms")
    desk = Desk(conversations, agents, CustomerRepository())
    conversations.update_meta(
        "conv_billing1",
        lambda meta: desk.enqueue_change(meta, "billing", 0, now, by="routing", reason="billing"),
    )
    assert desk.assign_waiting("conv_billing1", now)

    assert deliver(view("/account/cancel", NOW, {"customer_id": customer}))["batchItemFailures"] == []
    assert published == []  # nobody new is assigned
    conversation = conversations.get("conv_billing1")
    assert conversation is not None
    assert (conversation.status, conversation.queue, conversation.assigned_agent) == (
        "assigned",
        "billing",
        "bea",
    )
    [note] = conversation.notes
    assert note.author == "proactive:cancellation_page"
    assert note.text.startswith("customer viewed the cancellation page (/account/cancel")
