"""Contact choices on the profile: a merge keeps the more recent explicit choice, an erasure
removes them, a reply keyword sets them once and an older one never overrides a newer one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.contracts.contact import ContactChoicesPatch
from shared.contracts.events import format_timestamp, utc_now
from shared.services.profiles.erasure import erase_customer
from tests.shared.services.profiles.support import START, Repos, inbound, snapshot, verified

PHONE = "+4915112340000"


def test_a_merge_keeps_per_choice_the_more_recent_one(stack: dict[Any, str]) -> None:
    repos = Repos()
    ana = repos.record(inbound("m1", verified("webchat", "wcs_choices"))).customer_id
    bob = repos.record(inbound("m2", verified("phone", PHONE), channel="sms", seconds=1)).customer_id
    assert ana
    assert bob
    assert ana != bob
    early, late = format_timestamp(START), format_timestamp(START + timedelta(hours=1))
    patch = ContactChoicesPatch.model_validate
    assert repos.customers.set_choices(ana, patch({"channel_preferences": ["webchat"]}), late, "agent:x")
    assert repos.customers.set_choices(ana, patch({"timezone": "Europe/Lisbon"}), early, "agent:x")
    assert repos.customers.set_choices(bob, patch({"channel_preferences": ["sms"]}), early, "sms:keyword")
    assert repos.customers.set_choices(
        bob, patch({"timezone": "Asia/Tokyo", "quiet_hours": {"start": "23:00", "end": "06:00"}}), late, "x"
    )

    linking = repos.record(
        inbound("m3", verified("webchat", "wcs_choices"), verified("phone", PHONE), seconds=2)
    )
    assert linking.customer_id == ana
    assert linking.merges
    choices = repos.customers.contact_choices(ana)
    assert choices is not None
    assert choices.channel_preferences == ["webchat"]  # ana's is the later choice
    assert choices.timezone == "Asia/Tokyo"  # bob's is the later choice
    assert choices.quiet_hours is not None
    assert choices.quiet_hours.start == "23:00"
    assert choices.set_at == late


def test_an_older_choice_does_not_override_a_newer_one(stack: dict[Any, str]) -> None:
    repos = Repos()
    customer = repos.record(inbound("o1", verified("phone", PHONE), channel="sms")).customer_id
    assert customer
    newer, older = format_timestamp(START + timedelta(minutes=5)), format_timestamp(START)
    assert repos.customers.set_choices(
        customer, ContactChoicesPatch(channel_preferences=["email"]), newer, "a"
    )
    assert not repos.customers.set_choices(
        customer, ContactChoicesPatch(channel_preferences=["sms"]), older, "b"
    )
    choices = repos.customers.contact_choices(customer)
    assert choices is not None
    assert choices.channel_preferences == ["email"]


def test_a_keyword_reply_sets_the_choice_once_and_opens_no_conversation(stack: dict[Any, str]) -> None:
    repos = Repos()
    first = repos.record(inbound("k0", verified("phone", PHONE), channel="sms", text="Hello"))
    assert first.customer_id
    keyword = inbound("k1", verified("phone", PHONE), channel="sms", text="WhatsApp bitte", seconds=5)
    recorded = repos.record(keyword)
    assert recorded.keyword is not None
    assert recorded.conversation_id is None
    assert recorded.event(keyword) is None  # not routed
    choices = repos.customers.contact_choices(first.customer_id)
    assert choices is not None
    assert choices.channel_preferences == ["whatsapp"]
    customer = repos.customers.get(first.customer_id)
    assert customer is not None
    assert customer.attributes["channel_preferences"].source == "sms:keyword"
    again = repos.record(keyword)  # a redelivery changes nothing, and still asks for the confirmation
    assert again.keyword is not None


def test_erasure_removes_the_choices(stack: dict[Any, str]) -> None:
    repos = Repos()
    customer = repos.record(inbound("e1", verified("phone", PHONE), channel="sms")).customer_id
    assert customer
    patch = ContactChoicesPatch(timezone="Pacific/Chatham", channel_preferences=["sms"])
    assert repos.customers.set_choices(customer, patch, format_timestamp(START), "agent:x")
    now = utc_now()
    erase_customer(repos.customers, repos.merger, customer, format_timestamp(now), int(now.timestamp()))
    assert "Pacific/Chatham" not in repr(snapshot(stack))
    choices = repos.customers.contact_choices(customer)
    assert choices is not None
    assert choices.timezone is None
    assert choices.channel_preferences == []
