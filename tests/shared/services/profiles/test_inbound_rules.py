"""Recording an inbound message, without DynamoDB: the survey-answer rules, the event for
routing, and the reopen window taken from the routing rules (fakes for the repositories)."""

from __future__ import annotations

import types
from typing import Any

import pytest

from shared.contracts.events import MessageRecorded, format_timestamp
from shared.repositories.conversation_aggregates import InboundRecorded
from shared.repositories.customers import CustomerProfile, ProfileState
from shared.services.profiles import inbound
from shared.services.profiles.inbound import RecordedMessage, pending_survey, record_message, stored_answer
from shared.services.profiles.resolution import PossibleMatch, Resolution
from tests.shared.services.profiles.support import START, claimed, verified
from tests.shared.services.profiles.support import inbound as message_from

RESOLVED_AT = "2026-11-25T08:00:00.000000Z"


def resolved(**extra: Any) -> dict[str, Any]:
    return {
        "conversation_id": "conv_1",
        "customer_id": "cus_1",
        "status": "resolved",
        "resolved_at": RESOLVED_AT,
        "survey_pending": {"survey": "csat", "resolved_at": RESOLVED_AT},
        **extra,
    }


def test_a_survey_is_pending_only_on_the_customers_resolved_conversation_for_this_resolution() -> None:
    assert pending_survey(resolved(), "cus_1") == "csat"
    assert pending_survey(None, "cus_1") is None
    assert pending_survey(resolved(), "cus_2") is None
    assert pending_survey(resolved(status="open"), "cus_1") is None
    # Asked after an earlier resolution: the conversation was reopened and resolved again since.
    assert pending_survey(resolved(resolved_at="2026-11-26T08:00:00.000000Z"), "cus_1") is None
    assert (
        pending_survey(resolved(survey_pending={"survey": "nps", "resolved_at": RESOLVED_AT}), "cus_1")
        is None
    )
    assert pending_survey(resolved(survey_pending=None), "cus_1") is None


def test_a_redelivered_answer_is_found_on_the_conversation() -> None:
    meta = resolved(ces={"message_id": "m1", "score": 6}, csat={"message_id": "m2", "score": 4})
    assert stored_answer(meta, "m1") == ("ces", 6)
    assert stored_answer(meta, "m2") == ("csat", 4)
    assert stored_answer(meta, "m3") is None
    assert stored_answer({}, "m1") is None


def test_the_recorded_event_carries_what_routing_and_the_kpis_need() -> None:
    message = message_from("m1", verified("phone", "+4915112345678"), channel="sms", text="5")
    recorded = RecordedMessage(
        customer_id="cus_1",
        conversation_id="conv_1",
        message_id=message.message_key,
        new_customer=False,
        new_conversation=False,
        new_message=True,
        survey="csat",
        survey_score=5,
    )
    event = recorded.event(message)
    assert isinstance(event, MessageRecorded)
    assert (event.customer_id, event.conversation_id, event.message_id) == (
        "cus_1",
        "conv_1",
        message.message_key,
    )
    assert event.correlation_id == message.message_key
    assert (event.survey, event.survey_score, event.channel, event.text) == ("csat", 5, "sms", "5")
    assert event.reply_to.key == "phone:+4915112345678"


def test_nothing_to_route_for_a_consent_keyword_or_a_dropped_message() -> None:
    message = message_from("m1", verified("phone", "+4915112345678"), channel="sms", text="STOP")
    keyword = RecordedMessage("cus_1", None, "m1", False, False, False)
    dropped = RecordedMessage(None, None, "m1", False, False, False, dropped="erased")
    assert keyword.event(message) is None
    assert dropped.event(message) is None
    fields = RecordedMessage(
        "cus_1",
        "conv_1",
        "m1",
        True,
        True,
        False,
        possible_matches=[PossibleMatch(claimed("email", "a@example.com"), "cus_2")],
    ).log_fields()
    assert fields["duplicate"] is True
    assert fields["possible_matches"] == ["email:a@example.com"]


def test_a_link_of_another_customer_is_adopted_into_this_partition() -> None:
    identity = verified("phone", "+4915112345678")
    link = {"pk": "CUST#o", "sk": "IDENT#phone#+4915112345678", "type": "phone", "value": identity.value}
    survivor = ProfileState(profile={"customer_id": "s"}, links=[{**link, "pk": "CUST#s"}])
    assert survivor.link_of(identity) == {**link, "pk": "CUST#s"}
    assert survivor.link_of(verified("phone", "+4915100000000")) is None
    assert survivor.adopted(link) == {**link, "pk": "CUST#s"}


class FakeCustomers:
    def __init__(self) -> None:
        self.contacts: list[tuple[Any, ...]] = []

    def get_profile(self, customer_id: str) -> dict[str, Any]:
        return {"customer_id": customer_id, "status": "active", "version": 1}

    def profile(self, customer_id: str) -> CustomerProfile:
        return CustomerProfile.from_item(self.get_profile(customer_id))

    def record_contact(self, *args: Any, **kwargs: Any) -> None:
        self.contacts.append(args)


class FakeConversations:
    def __init__(self) -> None:
        self.opened: list[tuple[Any, ...]] = []

    def open_for(self, *args: Any) -> bool:
        self.opened.append(args)
        return True

    def append_inbound(self, conversation_id: str, **fields: Any) -> InboundRecorded:
        return InboundRecorded(written=True, conversation_id=conversation_id, sequence=1)


class FakeMerger:
    def recorded_in_erased(self, message_id: str) -> bool:
        return False

    def forward_message_if_merged(self, conversation_id: str, sent_at: str, message_id: str) -> str:
        return conversation_id


def test_a_new_conversation_gets_the_reopen_window_of_the_routing_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(inbound, "load_rules", lambda: types.SimpleNamespace(reopen_window_hours=5))
    monkeypatch.setattr(inbound, "resolve_customer", lambda *args: Resolution("cus_1", True))
    customers, conversations = FakeCustomers(), FakeConversations()
    message = message_from("m1", verified("phone", "+4915112345678"), channel="sms", text="hello")
    recorded = record_message(
        customers,  # type: ignore[arg-type]
        conversations,  # type: ignore[arg-type]
        message,
        format_timestamp(START),
        make_id=lambda prefix: f"{prefix}_new",
        merger=FakeMerger(),  # type: ignore[arg-type]
    )
    assert conversations.opened == [("cus_1", "conv_new", format_timestamp(START), "sms", 5)]
    assert (recorded.conversation_id, recorded.new_conversation, recorded.new_message) == (
        "conv_new",
        True,
        True,
    )
    assert len(customers.contacts) == 1
