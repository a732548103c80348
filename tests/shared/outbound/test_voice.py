"""Voice callback requests: the Twilio Calls adapter against intercepted HTTP (Twilio's
documented request and response formats, errors included), channel choice and consent,
and local mode (the request lands on the outbox attempt, nothing is sent)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from functions.notify import handler as notify_handler
from shared.contracts.events import Identity, NotificationRequested
from shared.outbound.adapters import (
    DeliveryFailed,
    HttpClient,
    LocalOutboxAdapter,
    OutboundMessage,
    ProviderBusy,
)
from shared.outbound.policy import CustomerFacts, choose_channels
from shared.outbound.twilio import TwilioVoiceAdapter, say_twiml
from shared.repositories.outbox import OutboxRepository
from tests.helpers.notify import NOON, make_customer, notifier
from tests.helpers.outbound import FakeProvider

TWILIO = {"account_sid": "AC123", "auth_token": "tok", "from": "+15005550006"}
PHONE = Identity(type="phone", value="+351910000001", verified=True)
EMAIL = Identity(type="email", value="ana@example.com", verified=True)
TEXT = 'Hello Ana, you asked us to call back about order <A&17> "today".'

#: Twilio's documented answer to creating a call (trimmed to the fields we read or show).
CALL_CREATED = {
    "sid": "CA42ed11f93dc08b952027ffbc406d0868",
    "account_sid": "AC123",
    "status": "queued",
    "to": "+351910000001",
    "from": "+15005550006",
    "direction": "outbound-api",
    "date_created": None,
    "uri": "/2010-04-01/Accounts/AC123/Calls/CA42ed11f93dc08b952027ffbc406d0868.json",
}


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    """A local HTTP server standing in for api.twilio.com (urllib3 really sends to it)."""
    fake = FakeProvider()
    yield fake
    fake.close()


@pytest.fixture
def http() -> HttpClient:
    return HttpClient(retries=2, backoff_s=0.01, timeout_s=(1, 1))


def message(**overrides: Any) -> OutboundMessage:
    fields: dict[str, Any] = {
        "notification_id": "n-1",
        "channel": "voice",
        "to": PHONE,
        "text": TEXT,
        "customer_id": "c1",
        "timestamp": "2026-05-10T12:00:00.000000Z",
    }
    fields.update(overrides)
    return OutboundMessage(**fields)


# --------------------------------------------------------------------------- #
# The adapter against intercepted HTTP
# --------------------------------------------------------------------------- #
def test_call_is_the_documented_form_with_escaped_twiml(provider: FakeProvider, http: HttpClient) -> None:
    adapter = TwilioVoiceAdapter(TWILIO, http, provider.base)
    provider.responses.append((201, CALL_CREATED))
    request = adapter.build(message())
    accepted = adapter.send(request, message())
    assert accepted.provider_message_id == "CA42ed11f93dc08b952027ffbc406d0868"
    [sent] = provider.requests
    assert sent["method"] == "POST"
    assert sent["path"] == "/2010-04-01/Accounts/AC123/Calls.json"
    assert sent["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert sent["headers"]["authorization"] == "Basic QUMxMjM6dG9r"  # the SMS adapter's credentials
    assert parse_qs(sent["body"]) == {
        "To": ["+351910000001"],
        "From": ["+15005550006"],
        "Twiml": [
            "<Response><Say>Hello Ana, you asked us to call back about order &lt;A&amp;17&gt; "
            '"today".</Say></Response>'
        ],
    }
    assert "tok" not in str(request.record())


def test_voice_caller_id_overrides_the_sms_sender(http: HttpClient) -> None:
    adapter = TwilioVoiceAdapter({**TWILIO, "voice_from": "+15005550001"}, http, "http://unused")
    assert adapter.build(message()).body["From"] == "+15005550001"


def test_twiml_escapes_markup() -> None:
    assert say_twiml("</Say><Hangup/>") == "<Response><Say>&lt;/Say&gt;&lt;Hangup/&gt;</Say></Response>"


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (
            400,
            {
                "code": 21215,
                "message": "Account not authorized to call +351910000001. Perhaps you need to enable "
                "some international permissions",
                "more_info": "https://www.twilio.com/docs/errors/21215",
                "status": 400,
            },
            "twilio_21215",
        ),
        (
            400,
            {
                "code": 21205,
                "message": "Url is not a valid URL",
                "more_info": "https://www.twilio.com/docs/errors/21205",
                "status": 400,
            },
            "twilio_21205",
        ),
        (
            401,
            {
                "code": 20003,
                "message": "Authenticate",
                "more_info": "https://www.twilio.com/docs/errors/20003",
                "status": 401,
            },
            "twilio_20003",
        ),
    ],
)
def test_refused_call_fails_with_twilios_reason(
    provider: FakeProvider, http: HttpClient, status: int, body: dict[str, Any], code: str
) -> None:
    adapter = TwilioVoiceAdapter(TWILIO, http, provider.base)
    provider.responses.append((status, body))
    with pytest.raises(DeliveryFailed) as failure:
        adapter.send(adapter.build(message()), message())
    assert failure.value.code == code
    assert failure.value.reason == body["message"]
    assert len(provider.requests) == 1  # a 4xx is not retried


def test_busy_twilio_is_retried_then_reported(provider: FakeProvider, http: HttpClient) -> None:
    adapter = TwilioVoiceAdapter(TWILIO, http, provider.base)
    too_many = {"code": 20429, "message": "Too Many Requests", "status": 429}
    provider.responses.extend([(429, too_many), (503, {}), (201, CALL_CREATED)])
    assert adapter.send(adapter.build(message()), message()).provider_message_id == CALL_CREATED["sid"]
    assert len(provider.requests) == 3
    provider.requests.clear()
    provider.responses.extend([(500, {"message": "Internal"})])
    with pytest.raises(ProviderBusy):
        adapter.send(adapter.build(message()), message())


def test_only_phones_and_short_texts_can_be_called(http: HttpClient) -> None:
    adapter = TwilioVoiceAdapter(TWILIO, http, "http://unused")
    with pytest.raises(DeliveryFailed) as wrong:
        adapter.build(message(to=EMAIL))
    assert wrong.value.code == "wrong_recipient"
    with pytest.raises(DeliveryFailed) as long:
        adapter.build(message(text="x" * 4000))
    assert long.value.code == "message_too_long"


def test_find_sent_asks_twilio_for_recent_calls(provider: FakeProvider, http: HttpClient) -> None:
    adapter = TwilioVoiceAdapter(TWILIO, http, provider.base)
    since = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
    old = {**CALL_CREATED, "sid": "CAold", "date_created": format_datetime(since - timedelta(hours=1))}
    recent = {**CALL_CREATED, "date_created": format_datetime(since + timedelta(seconds=3))}
    provider.responses.append((200, {"calls": [old], "page": 0}))
    provider.responses.append((200, {"calls": [recent, old], "page": 0}))
    request = adapter.build(message())
    assert adapter.find_sent(request, message(), since) is None
    assert adapter.find_sent(request, message(), since) == CALL_CREATED["sid"]
    query = parse_qs(urlsplit(provider.requests[0]["path"]).query)
    assert provider.requests[0]["method"] == "GET"
    assert urlsplit(provider.requests[0]["path"]).path == "/2010-04-01/Accounts/AC123/Calls.json"
    assert query["To"] == ["+351910000001"]
    assert query["From"] == ["+15005550006"]


# --------------------------------------------------------------------------- #
# Channel choice and consent
# --------------------------------------------------------------------------- #
def plan(channel: str | None = None, **facts: Any) -> list[str]:
    request = NotificationRequested(
        kind="notification", notification_id="n-1", customer_id="c1", text="hi", channel=channel
    )
    chosen = choose_channels(request, CustomerFacts("c1", identities=(PHONE, EMAIL), **facts), None)
    return [candidate.channel for candidate in chosen.candidates]


def test_voice_only_when_requested_or_preferred() -> None:
    assert "voice" not in plan()
    assert plan("voice") == ["voice"]
    assert plan(preferred=("voice", "email")) == ["voice", "email"]
    request = NotificationRequested(
        kind="notification", notification_id="n", customer_id="c1", text="hi", channel="voice"
    )
    [candidate] = choose_channels(request, CustomerFacts("c1", identities=(PHONE,)), None).candidates
    assert candidate.to == PHONE


def test_voice_consent_follows_the_numbers_sms_consent_unless_its_own_is_recorded() -> None:
    assert plan("voice", consent={"sms": "opted_out"}) == []
    assert plan(preferred=("voice", "email"), consent={"sms": "opted_out"}) == ["email"]
    assert plan("voice", consent={"sms": "opted_out", "voice": "opted_in"}) == ["voice"]
    request = NotificationRequested(
        kind="notification",
        notification_id="n",
        customer_id="c1",
        text="hi",
        channel="voice",
        urgency="marketing",
    )
    facts = CustomerFacts("c1", identities=(PHONE,))
    assert choose_channels(request, facts, None).skipped == (("voice", "no_marketing_opt_in"),)


# --------------------------------------------------------------------------- #
# Local mode: the call request is stored on the outbox attempt, nothing is sent
# --------------------------------------------------------------------------- #
def test_local_mode_stores_the_call_request(stack: Any) -> None:
    adapters = notify_handler.build_adapters(mode="local")
    assert isinstance(adapters["voice"], LocalOutboxAdapter)
    assert isinstance(notify_handler.build_adapters(mode="")["voice"], TwilioVoiceAdapter)
    make_customer("c1", [PHONE, EMAIL])
    callback = NotificationRequested(
        kind="notification",
        notification_id="n-1",
        customer_id="c1",
        text="We are calling you back.",
        channel="voice",
    )
    outcome = notifier(adapters).handle(callback, NOON)
    assert (outcome.status, outcome.channel) == ("sent", "voice")
    item = OutboxRepository().get("n-1")
    assert item is not None
    attempt = item["attempts"]["voice"]
    assert attempt["state"] == "accepted"
    assert attempt["provider_message_id"].startswith("CA")
    assert item["provider_message_id"] == attempt["provider_message_id"]
    stored = attempt["request"]
    assert stored["url"].endswith("/2010-04-01/Accounts/AC00000000000000000000000000000000/Calls.json")
    assert stored["body"] == {
        "To": "+351910000001",
        "From": "+15005550006",
        "Twiml": "<Response><Say>We are calling you back.</Say></Response>",
    }


def test_local_mode_refuses_a_call_after_stop(stack: Any) -> None:
    make_customer("c1", [PHONE], consent={"sms": "opted_out"})
    callback = NotificationRequested(
        kind="notification", notification_id="n-1", customer_id="c1", text="hi", channel="voice"
    )
    outcome = notifier(notify_handler.build_adapters(mode="local")).handle(callback, NOON)
    assert outcome.status == "failed"
    assert "opted_out" in (outcome.error or "")
