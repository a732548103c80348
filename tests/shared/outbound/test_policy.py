"""Channel choice, consent, quiet hours and the service windows: table tests of pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from shared.contracts.events import Identity, NotificationRequested
from shared.outbound.policy import (
    ConversationFacts,
    CustomerFacts,
    QuietHours,
    choose_channels,
    consent_refusal,
    defers_for_quiet_hours,
    next_allowed_time,
    window_open,
)

PHONE = Identity(type="phone", value="+351910000001", verified=True)
WA = Identity(type="whatsapp", value="+351910000001", verified=True)
EMAIL = Identity(type="email", value="ana@example.com", verified=True)
WEB = Identity(type="webchat", value="ws_1", verified=True)
MESSENGER = Identity(type="messenger", value="psid-1", verified=True)


def notification(**overrides: object) -> NotificationRequested:
    fields: dict[str, object] = {"notification_id": "n1", "customer_id": "c1", "kind": "notification"}
    fields.update(overrides)
    return NotificationRequested(**fields)  # type: ignore[arg-type]


def customer(**overrides: object) -> CustomerFacts:
    fields: dict[str, object] = {"customer_id": "c1", "identities": (PHONE, WA, EMAIL, WEB)}
    fields.update(overrides)
    return CustomerFacts(**fields)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- #
# consent
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("status", "urgency", "exempt", "expected"),
    [
        (None, "transactional", False, None),
        ("opted_in", "transactional", False, None),
        ("opted_out", "transactional", False, "opted_out"),
        ("opted_out", "transactional", True, None),  # reply in a conversation the customer opened
        (None, "marketing", False, "no_marketing_opt_in"),
        ("opted_out", "marketing", False, "no_marketing_opt_in"),
        ("opted_in", "marketing", False, None),
        ("opted_out", "marketing", True, None),
    ],
)
def test_consent_rules(status: str | None, urgency: str, exempt: bool, expected: str | None) -> None:
    assert consent_refusal(status, urgency, exempt) == expected


# --------------------------------------------------------------------------- #
# channel choice
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("facts", "request_fields", "channels", "skipped"),
    [
        # preference order, first reachable wins (fallback order kept for later)
        (customer(preferred=("whatsapp", "email")), {}, ["whatsapp", "email"], []),
        (customer(preferred=("email", "sms")), {}, ["email", "sms"], []),
        # a channel without consent is skipped, the next one is used
        (
            customer(preferred=("sms", "email"), consent={"sms": "opted_out"}),
            {},
            ["email"],
            [("sms", "opted_out")],
        ),
        # a preferred channel without an address is skipped
        (customer(preferred=("messenger", "email")), {}, ["email"], [("messenger", "no_address")]),
        # marketing needs an opt-in per channel
        (
            customer(preferred=("sms", "email"), consent={"email": "opted_in"}),
            {"urgency": "marketing"},
            ["email"],
            [("sms", "no_marketing_opt_in")],
        ),
        # no preference: every channel the customer can be reached on, richest first
        (customer(), {}, ["whatsapp", "sms", "email", "webchat"], [("messenger", "no_address")]),
        # an explicit channel is the only candidate
        (customer(preferred=("email",)), {"channel": "sms"}, ["sms"], []),
        (customer(consent={"sms": "opted_out"}), {"channel": "sms"}, [], [("sms", "opted_out")]),
    ],
)
def test_notification_channel_choice(
    facts: CustomerFacts,
    request_fields: dict[str, object],
    channels: list[str],
    skipped: list[tuple[str, str]],
) -> None:
    plan = choose_channels(notification(**request_fields), facts, None)
    assert [c.channel for c in plan.candidates] == channels
    assert list(plan.skipped) == skipped


def test_all_channels_preference_fans_out() -> None:
    plan = choose_channels(notification(), customer(preferred=("sms", "email"), all_channels=True), None)
    assert plan.fan_out
    assert [c.channel for c in plan.candidates] == ["sms", "email"]
    assert not choose_channels(notification(channel="sms"), customer(all_channels=True), None).fan_out


def test_addresses_prefer_verified_identities() -> None:
    claimed = Identity(type="email", value="typo@example.com", verified=False)
    facts = customer(identities=(EMAIL, claimed))
    assert facts.address("email") == EMAIL
    assert customer(identities=(claimed,)).address("email") == claimed


CONVERSATION = ConversationFacts(
    conversation_id="conv1",
    customer_opened=True,
    last_inbound_channel="whatsapp",
    reply_to=WA,
)


@pytest.mark.parametrize(
    ("conversation", "facts", "expected"),
    [
        # the channel the customer last used, to the identity that wrote
        (CONVERSATION, customer(preferred=("email",)), [("whatsapp", WA)]),
        # an opt-out does not stop a reply in a conversation the customer opened
        (CONVERSATION, customer(consent={"whatsapp": "opted_out"}), [("whatsapp", WA)]),
        # ... but it does in one the customer did not open
        (
            ConversationFacts("conv2", customer_opened=False, last_inbound_channel="sms", reply_to=PHONE),
            customer(consent={"sms": "opted_out"}),
            [],
        ),
        # nothing to reply to
        (ConversationFacts("conv3", customer_opened=True), customer(), []),
    ],
)
def test_reply_channel(
    conversation: ConversationFacts, facts: CustomerFacts, expected: list[tuple[str, Identity]]
) -> None:
    request = notification(kind="reply", conversation_id=conversation.conversation_id, text="hi")
    plan = choose_channels(request, facts, conversation)
    assert [(c.channel, c.to) for c in plan.candidates] == expected
    assert not plan.fan_out


def test_reply_with_explicit_channel_and_address_uses_them() -> None:
    request = notification(
        kind="acknowledgement", conversation_id="conv1", text="hi", channel="webchat", to=WEB
    )
    plan = choose_channels(request, customer(), CONVERSATION)
    assert [(c.channel, c.to) for c in plan.candidates] == [("webchat", WEB)]


def test_plan_reason_names_every_ruled_out_channel() -> None:
    plan = choose_channels(notification(channel="sms"), customer(consent={"sms": "opted_out"}), None)
    assert plan.reason() == "no_channel: every channel was ruled out (sms: opted_out)"


# --------------------------------------------------------------------------- #
# quiet hours
# --------------------------------------------------------------------------- #
def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "zone", "quiet", "expected"),
    [
        # Lisbon in winter is UTC+0: 22:30 is quiet until 08:00 the next morning
        ("2026-01-15T22:30:00", "Europe/Lisbon", QuietHours(), "2026-01-16T08:00:00"),
        # just after midnight: until 08:00 the same day
        ("2026-01-15T00:10:00", "Europe/Lisbon", QuietHours(), "2026-01-15T08:00:00"),
        # day time: allowed
        ("2026-01-15T12:00:00", "Europe/Lisbon", QuietHours(), None),
        # the boundaries: 21:00 is quiet, 08:00 is allowed
        ("2026-01-15T21:00:00", "Europe/Lisbon", QuietHours(), "2026-01-16T08:00:00"),
        ("2026-01-15T08:00:00", "Europe/Lisbon", QuietHours(), None),
        ("2026-01-15T07:59:59", "Europe/Lisbon", QuietHours(), "2026-01-15T08:00:00"),
        # 12:00 UTC is 23:00 in Sydney (UTC+11 in January): until 08:00 Sydney = 21:00 UTC
        ("2026-01-15T12:00:00", "Australia/Sydney", QuietHours(), "2026-01-15T21:00:00"),
        # 03:00 UTC is 22:00 in New York (UTC-5): until 08:00 New York = 13:00 UTC
        ("2026-01-15T03:00:00", "America/New_York", QuietHours(), "2026-01-15T13:00:00"),
        # per-customer override 22:00-07:00
        ("2026-01-15T21:30:00", "Europe/Lisbon", QuietHours(time(22), time(7)), None),
        ("2026-01-15T06:30:00", "Europe/Lisbon", QuietHours(time(22), time(7)), "2026-01-15T07:00:00"),
        # an interval that does not wrap midnight (a siesta)
        ("2026-01-15T13:30:00", "Europe/Lisbon", QuietHours(time(13), time(15)), "2026-01-15T15:00:00"),
        # start == end: no quiet hours
        ("2026-01-15T23:00:00", "Europe/Lisbon", QuietHours(time(0), time(0)), None),
        # DST: New York springs forward on 2026-03-08 (EST -5 -> EDT -4). 22:00 EST on the 7th
        # is quiet until 08:00 EDT on the 8th = 12:00 UTC (not 13:00)
        ("2026-03-08T03:00:00", "America/New_York", QuietHours(), "2026-03-08T12:00:00"),
        # DST: Lisbon falls back on 2026-10-25 (WEST +1 -> WET 0): 08:00 WET = 08:00 UTC
        ("2026-10-24T21:30:00", "Europe/Lisbon", QuietHours(), "2026-10-25T08:00:00"),
        # quiet hours ending inside the spring-forward gap (02:00-03:00 does not exist in New
        # York on 2026-03-08): they end when the clocks jump, 07:00 UTC
        ("2026-03-08T05:00:00", "America/New_York", QuietHours(time(0), time(2, 30)), "2026-03-08T07:00:00"),
        # quiet hours ending on an ambiguous time (01:30 happens twice in New York on
        # 2026-11-01): they end at the first 01:30 (EDT, 05:30 UTC)
        ("2026-11-01T04:00:00", "America/New_York", QuietHours(time(0), time(1, 30)), "2026-11-01T05:30:00"),
    ],
)
def test_next_allowed_time(now: str, zone: str, quiet: QuietHours, expected: str | None) -> None:
    result = next_allowed_time(utc(now), ZoneInfo(zone), quiet)
    assert result == (utc(expected) if expected else None)
    if result is not None:  # the answer is itself allowed, and the instant before is not
        assert next_allowed_time(result, ZoneInfo(zone), quiet) is None
        assert next_allowed_time(result - timedelta(seconds=1), ZoneInfo(zone), quiet) is not None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"start": "22:00", "end": "07:30"}, QuietHours(time(22), time(7, 30))),
        ({"start": "nonsense", "end": "07:30"}, QuietHours()),
        ({"end": "07:30"}, QuietHours()),
        ("22-07", QuietHours()),
        (None, QuietHours()),
    ],
)
def test_quiet_hours_parse(raw: object, expected: QuietHours) -> None:
    assert QuietHours.parse(raw) == expected


def test_unknown_time_zone_falls_back_to_utc() -> None:
    assert customer(timezone="Mars/Olympus").zone() == ZoneInfo("UTC")
    assert customer(timezone="Asia/Tokyo").zone() == ZoneInfo("Asia/Tokyo")


@pytest.mark.parametrize(
    ("fields", "defers"),
    [
        ({}, True),
        ({"urgency": "marketing"}, True),
        ({"urgent": True}, False),
        ({"kind": "reply", "conversation_id": "conv1"}, False),
        ({"kind": "acknowledgement", "conversation_id": "conv1"}, False),
    ],
)
def test_which_requests_wait_for_quiet_hours(fields: dict[str, object], defers: bool) -> None:
    assert defers_for_quiet_hours(notification(**fields)) is defers


# --------------------------------------------------------------------------- #
# service windows
# --------------------------------------------------------------------------- #
NOW = utc("2026-05-10T12:00:00")


@pytest.mark.parametrize(
    ("channel", "last_inbound", "expected"),
    [
        ("whatsapp", {"whatsapp": NOW - timedelta(hours=23, minutes=59)}, True),
        ("whatsapp", {"whatsapp": NOW - timedelta(hours=24)}, False),
        ("whatsapp", {"sms": NOW - timedelta(minutes=5)}, False),  # only WhatsApp messages count
        ("whatsapp", {}, False),
        ("messenger", {"messenger": NOW - timedelta(hours=2)}, True),
        ("messenger", {"messenger": NOW - timedelta(days=2)}, False),
        ("sms", {}, True),
        ("email", {}, True),
    ],
)
def test_service_window(channel: str, last_inbound: dict[str, datetime], expected: bool) -> None:
    conversation = ConversationFacts("conv1", last_inbound_at=last_inbound)
    assert window_open(channel, conversation, NOW) is expected


def test_no_conversation_means_no_window() -> None:
    assert window_open("whatsapp", None, NOW) is False
    assert window_open("sms", None, NOW) is True


# --------------------------------------------------------------------------- #
# undeliverable addresses (an e-mail bounce)
# --------------------------------------------------------------------------- #
def test_an_undeliverable_address_is_skipped_for_the_next_channel() -> None:
    facts = customer(preferred=("email", "sms"), undeliverable=frozenset({EMAIL.key}))
    plan = choose_channels(notification(), facts, None)
    assert [c.channel for c in plan.candidates] == ["sms"]
    assert plan.skipped == (("email", "undeliverable"),)


def test_another_address_on_the_channel_is_used_when_one_bounced() -> None:
    work = Identity(type="email", value="ana@work.example", verified=True)
    facts = customer(identities=(work, EMAIL), preferred=("email",), undeliverable=frozenset({EMAIL.key}))
    plan = choose_channels(notification(), facts, None)
    assert [(c.channel, c.to) for c in plan.candidates] == [("email", work)]


def test_a_request_naming_a_bounced_address_says_why_nothing_goes() -> None:
    facts = customer(undeliverable=frozenset({EMAIL.key}))
    plan = choose_channels(notification(channel="email", to=EMAIL), facts, None)
    assert plan.candidates == ()
    assert plan.skipped == (("email", "undeliverable"),)


def test_a_reply_to_a_bounced_address_is_not_sent() -> None:
    facts = customer(undeliverable=frozenset({EMAIL.key}))
    conversation = ConversationFacts("conv-1", last_inbound_channel="email", reply_to=EMAIL)
    plan = choose_channels(notification(kind="reply", conversation_id="conv-1"), facts, conversation)
    assert plan.candidates == ()
    assert plan.skipped == (("email", "undeliverable"),)
