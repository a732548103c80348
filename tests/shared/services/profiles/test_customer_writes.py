"""Only necessary writes: a known identity of a known customer costs no write on the customers
table; the profile's contact bookkeeping moves per conversation and per day, and what it
protected (retention, identity resolution, merges, the event's facts) still holds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest

from shared.domain.retention import RETAIN_ATTRIBUTE, retain_until, retention_days
from shared.platform import aws
from shared.repositories.customer_profile import CustomerProfile
from tests.shared.services.profiles.support import START, Repos, inbound, verified

WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}


@contextmanager
def customer_requests(stack: dict[Any, str]) -> Iterator[Counter[str]]:
    """Count the DynamoDB requests on the customers table (a transaction counts when it names it)."""
    table = stack[("table", "customers")]
    calls: Counter[str] = Counter()
    client = aws.client("dynamodb")

    def count(model: Any, params: dict[str, Any], **_: Any) -> None:
        names = {params.get("TableName")}
        names |= set(params.get("RequestItems", {}))
        for action in params.get("TransactItems", []):
            names.add(next(iter(action.values())).get("TableName"))
        if table in names:
            calls[model.name] += 1

    client.meta.events.register("before-parameter-build.dynamodb", count)
    try:
        yield calls
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb", count)


def writes(calls: Counter[str]) -> int:
    return sum(n for op, n in calls.items() if op in WRITES)


# --------------------------------------------------------------------------- #
# The aggregate's rule (pure)
# --------------------------------------------------------------------------- #

PROFILE_ITEM = {
    "customer_id": "cus_1",
    "status": "active",
    "version": 3,
    "display_name": "Ada Lovelace",
    "attributes": {"language": {"value": "de", "at": "2026-11-01T00:00:00Z", "source": "agent"}},
    "tags": ["vip"],
    "consent_sms": {"status": "opted_out", "at": "2026-11-02T00:00:00Z", "source": "sms:STOP"},
    "last_seen": {"sms": "2026-11-25T08:00:00.000000Z"},
    "contacts": {"2026-11-25": 1, "2026-10-01": 4},
    RETAIN_ATTRIBUTE: retain_until("2026-11-25", retention_days()),
    "open_conversation_id": "conv_1",
}
NOW = "2026-11-25T09:00:00.000000Z"


def test_the_profile_aggregate_reads_the_item() -> None:
    profile = CustomerProfile.from_item(PROFILE_ITEM)
    assert (profile.customer_id, profile.version, profile.active) == ("cus_1", 3, True)
    assert profile.attribute("language") == "de"
    assert profile.open_conversation_id == "conv_1"
    facts = profile.facts()
    assert (facts.display_name, facts.language, facts.tags, facts.version) == (
        "Ada Lovelace",
        "de",
        ["vip"],
        3,
    )
    assert facts.consent == {"sms": "opted_out"}


def test_a_second_message_of_the_day_on_the_channel_changes_nothing_of_the_profile() -> None:
    profile = CustomerProfile.from_item(PROFILE_ITEM)
    assert profile.contact_due("sms", "2026-11-25T08:30:00.000000Z", NOW, retention_days(), False) is None


def test_a_new_conversation_a_new_day_or_a_new_channel_is_a_contact() -> None:
    profile = CustomerProfile.from_item(PROFILE_ITEM)
    days = retention_days()
    new_conversation = profile.contact_due("sms", "2026-11-25T08:30:00.000000Z", NOW, days, True)
    assert new_conversation is not None
    assert new_conversation.day == "2026-11-25"
    other_channel = profile.contact_due("whatsapp", "2026-11-25T08:30:00.000000Z", NOW, days, False)
    assert other_channel is not None
    assert other_channel.newer
    next_day = profile.contact_due("sms", "2026-11-26T07:00:00.000000Z", "2026-11-26T08:00:00Z", days, False)
    assert next_day is not None
    assert next_day.retain_until_day == retain_until("2026-11-26", days)  # retention moves with the day
    assert next_day.forget_days == ("2026-10-01",)  # counters older than 30 days go in the same write


def test_last_seen_stays_within_an_hour_of_the_latest_message_without_counting_a_contact() -> None:
    """Notify measures the 24-hour service windows from ``last_seen``: it never lags by an hour."""
    profile = CustomerProfile.from_item(PROFILE_ITEM)
    days = retention_days()
    assert profile.contact_due("sms", "2026-11-25T08:59:00.000000Z", NOW, days, False) is None
    update = profile.contact_due("sms", "2026-11-25T09:00:00.000000Z", NOW, days, False)
    assert update is not None
    assert update.newer
    assert not update.count  # the same contact: the day's counter stays


def test_a_replayed_old_message_does_not_move_retention_back() -> None:
    profile = CustomerProfile.from_item(PROFILE_ITEM)
    update = profile.contact_due("email", "2026-01-01T00:00:00.000000Z", NOW, retention_days(), False)
    assert update is not None
    assert update.retain_until_day == PROFILE_ITEM[RETAIN_ATTRIBUTE]
    assert update.newer  # the first e-mail contact


# --------------------------------------------------------------------------- #
# Recording messages (moto)
# --------------------------------------------------------------------------- #


def test_a_known_identity_of_a_known_customer_writes_nothing_to_the_customers_table(
    stack: dict[Any, str],
) -> None:
    repos = Repos()
    phone = verified("phone", "+4915111110001")
    first = repos.record(inbound("w-1", phone, channel="sms"))
    with customer_requests(stack) as calls:
        again = repos.record(inbound("w-2", phone, channel="sms", seconds=60))
    assert again.customer_id == first.customer_id  # the identity still resolves
    assert again.conversation_id == first.conversation_id
    assert again.new_message
    assert writes(calls) == 0, calls
    # The profile is read once (with the identities), not again to record the message.
    assert calls["GetItem"] == 0, calls


def test_the_first_message_of_a_new_day_counts_a_contact_and_moves_retention(stack: dict[Any, str]) -> None:
    repos = Repos()
    phone = verified("phone", "+4915111110002")
    first = repos.record(inbound("d-1", phone, channel="sms"))
    assert first.customer_id is not None
    repos.record(inbound("d-2", phone, channel="sms", seconds=30))
    later_day = START + timedelta(days=2)
    with customer_requests(stack) as calls:
        repos.record(inbound("d-3", phone, channel="sms", sent_at=later_day))
    assert calls["UpdateItem"] == 1, calls
    profile = repos.customers.profile(first.customer_id)
    assert profile is not None
    assert dict(profile.contacts) == {START.date().isoformat(): 1, later_day.date().isoformat(): 1}
    # Never behind the latest contact (the profile's creation today may keep it later still).
    assert str(profile.retain_until_day) >= retain_until(later_day.date().isoformat(), retention_days())
    assert profile.last_seen["sms"].startswith(later_day.date().isoformat())


def test_a_new_identity_on_a_known_customer_is_still_attached(stack: dict[Any, str]) -> None:
    repos = Repos()
    session = verified("webchat", "wcs_writes_1")
    email = verified("email", "writes@example.com")
    first = repos.record(inbound("n-1", session))
    with customer_requests(stack) as calls:
        second = repos.record(inbound("n-2", session, email, seconds=5))
    assert second.customer_id == first.customer_id
    assert calls["TransactWriteItems"] >= 1  # the new identity and its ownership
    assert repos.customers.owner_of(email) == first.customer_id


def test_the_event_carries_the_profile_facts_routing_needs(stack: dict[Any, str]) -> None:
    repos = Repos()
    session = verified("webchat", "wcs_writes_2")
    recorded = repos.record(inbound("f-1", session, display_name="Grace Hopper"))
    message = inbound("f-2", session, seconds=5)
    again = repos.record(message)
    event = again.event(message)
    assert event is not None
    assert event.customer is not None
    assert event.customer.display_name == "Grace Hopper"
    stored = repos.customers.profile(str(recorded.customer_id))
    assert stored is not None
    assert event.customer.version == stored.version


@pytest.mark.parametrize("channel", ["sms"])
def test_a_merge_still_joins_the_customers_and_the_next_message_writes_nothing(
    stack: dict[Any, str], channel: str
) -> None:
    repos = Repos()
    phone = verified("phone", "+4915111110003")
    session = verified("webchat", "wcs_writes_3")
    a = repos.record(inbound("m-1", phone, channel=channel))
    b = repos.record(inbound("m-2", session, seconds=1))
    merged = repos.record(inbound("m-3", session, phone, seconds=2))
    assert merged.merges
    assert merged.customer_id in (a.customer_id, b.customer_id)
    with customer_requests(stack) as calls:
        after = repos.record(inbound("m-4", phone, channel=channel, seconds=3))
    assert after.customer_id == merged.customer_id
    assert writes(calls) == 0, calls


def test_a_new_customer_is_created_with_their_first_contact_in_one_write(stack: dict[Any, str]) -> None:
    repos = Repos()
    phone = verified("phone", "+4915111110004")
    with customer_requests(stack) as calls:
        first = repos.record(inbound("c-1", phone, channel="sms"))
    assert first.new_customer
    assert first.new_conversation
    # The customer (profile, identity, ownership) in one transaction; the conversation marks
    # itself open on the profile in its own; no separate update counts the contact.
    assert calls["UpdateItem"] == 0, calls
    assert calls["GetItem"] == 0, calls
    assert first.customer_id is not None
    profile = repos.customers.profile(first.customer_id)
    assert profile is not None
    assert dict(profile.contacts) == {START.date().isoformat(): 1}
    assert profile.last_seen["sms"].startswith(START.date().isoformat())
    assert profile.open_conversation_id == first.conversation_id
