"""Provider adapters against intercepted HTTP: the providers' documented requests and responses.

A local HTTP server stands in for api.twilio.com and graph.facebook.com (urllib3 really
sends to it); SES goes through botocore's Stubber, which checks the request against the
service model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_string
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore.stub import Stubber

from shared.contracts.events import Identity
from shared.outbound.adapters import (
    DeliveryFailed,
    HttpClient,
    LocalOutboxAdapter,
    OutboundMessage,
    OutcomeUnknown,
    ProviderBusy,
)
from shared.outbound.meta import MessengerAdapter, WhatsAppAdapter
from shared.outbound.ses import SesEmailAdapter, ses_message_id_header
from shared.outbound.templates import WhatsAppTemplate
from shared.outbound.twilio import TwilioSmsAdapter
from tests.helpers.outbound import FakeProvider


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider()
    yield fake
    fake.close()


@pytest.fixture
def http() -> HttpClient:
    return HttpClient(retries=2, backoff_s=0.01, timeout_s=(1, 1))


TWILIO = {"account_sid": "AC123", "auth_token": "tok", "from": "+15005550006"}
META = {
    "access_token": "wa-token",
    "whatsapp_phone_number_id": "106540352242922",
    "messenger_page_access_token": "page-token",
    "graph_version": "v21.0",
}
PHONE = Identity(type="phone", value="+351910000001", verified=True)


def message(**overrides: Any) -> OutboundMessage:
    fields: dict[str, Any] = {
        "notification_id": "n-1",
        "channel": "sms",
        "to": PHONE,
        "text": "Your order A-17 has shipped.",
        "customer_id": "c1",
        "timestamp": "2026-05-10T12:00:00.000000Z",
    }
    fields.update(overrides)
    return OutboundMessage(**fields)


# --------------------------------------------------------------------------- #
# Twilio
# --------------------------------------------------------------------------- #
TWILIO_CREATED = {
    "sid": "SM1f0e8ae6ade43cb3c0ce4525424e404f",
    "status": "queued",
    "to": "+351910000001",
    "from": "+15005550006",
    "body": "Your order A-17 has shipped.",
    "direction": "outbound-api",
    "error_code": None,
    "error_message": None,
}


def test_twilio_sends_the_documented_form(provider: FakeProvider, http: HttpClient) -> None:
    adapter = TwilioSmsAdapter(
        {**TWILIO, "status_callback_url": "https://x.example/webhooks/sms/status"}, http, provider.base
    )
    provider.responses.append((201, TWILIO_CREATED))
    request = adapter.build(message())
    accepted = adapter.send(request, message())
    assert accepted.provider_message_id == "SM1f0e8ae6ade43cb3c0ce4525424e404f"
    [sent] = provider.requests
    assert sent["method"] == "POST"
    assert sent["path"] == "/2010-04-01/Accounts/AC123/Messages.json"
    assert sent["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert sent["headers"]["authorization"] == "Basic QUMxMjM6dG9r"  # base64("AC123:tok")
    assert parse_qs(sent["body"]) == {
        "To": ["+351910000001"],
        "From": ["+15005550006"],
        "Body": ["Your order A-17 has shipped."],
        "StatusCallback": ["https://x.example/webhooks/sms/status"],
    }
    # what is stored on the outbox has no credentials
    assert "tok" not in json.dumps(request.record())


def test_twilio_messaging_service_instead_of_from(provider: FakeProvider, http: HttpClient) -> None:
    adapter = TwilioSmsAdapter(
        {"account_sid": "AC1", "auth_token": "t", "messaging_service_sid": "MG9"}, http, provider.base
    )
    body = adapter.build(message()).body
    assert body["MessagingServiceSid"] == "MG9"
    assert "From" not in body


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (
            400,
            {
                "code": 21211,
                "message": "The 'To' number +351 is not a valid phone number.",
                "more_info": "https://www.twilio.com/docs/errors/21211",
                "status": 400,
            },
            "twilio_21211",
        ),
        (
            400,
            {
                "code": 21610,
                "message": "Attempt to send to unsubscribed recipient",
                "more_info": "https://www.twilio.com/docs/errors/21610",
                "status": 400,
            },
            "twilio_21610",
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
def test_twilio_4xx_is_a_permanent_failure_with_the_reason(
    provider: FakeProvider, http: HttpClient, status: int, body: dict[str, Any], code: str
) -> None:
    adapter = TwilioSmsAdapter(TWILIO, http, provider.base)
    provider.responses.append((status, body))
    with pytest.raises(DeliveryFailed) as failed:
        adapter.send(adapter.build(message()), message())
    assert failed.value.code == code
    assert failed.value.reason == body["message"]
    assert len(provider.requests) == 1  # never retried


def test_twilio_429_is_retried_with_backoff_then_succeeds(provider: FakeProvider, http: HttpClient) -> None:
    adapter = TwilioSmsAdapter(TWILIO, http, provider.base)
    too_many = {"code": 20429, "message": "Too Many Requests", "status": 429}
    provider.responses += [(429, too_many), (503, {}), (201, TWILIO_CREATED)]
    assert adapter.send(adapter.build(message()), message()).provider_message_id == TWILIO_CREATED["sid"]
    assert len(provider.requests) == 3


def test_twilio_still_busy_after_retries_raises_for_sqs(provider: FakeProvider, http: HttpClient) -> None:
    adapter = TwilioSmsAdapter(TWILIO, http, provider.base)
    provider.responses += [(429, {"code": 20429, "status": 429})] * 3
    with pytest.raises(ProviderBusy):
        adapter.send(adapter.build(message()), message())
    provider.responses.append((500, {"code": 20500, "message": "Internal Server Error", "status": 500}))
    with pytest.raises(ProviderBusy):
        adapter.send(adapter.build(message()), message())


def test_a_dropped_response_is_an_unknown_outcome_not_retried(
    provider: FakeProvider, http: HttpClient
) -> None:
    adapter = TwilioSmsAdapter(TWILIO, http, provider.base)
    provider.responses.append(("drop", None))  # type: ignore[arg-type]
    with pytest.raises(OutcomeUnknown):
        adapter.send(adapter.build(message()), message())
    assert len(provider.requests) == 1  # a second POST could text the customer twice


def test_connection_refused_is_busy(http: HttpClient) -> None:
    adapter = TwilioSmsAdapter(TWILIO, http, "http://127.0.0.1:9")
    with pytest.raises(ProviderBusy):
        adapter.send(adapter.build(message()), message())


def test_twilio_find_sent_lists_recent_messages(provider: FakeProvider, http: HttpClient) -> None:
    adapter = TwilioSmsAdapter(TWILIO, http, provider.base)
    since = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)
    listing = {
        "messages": [
            {**TWILIO_CREATED, "sid": "SMold", "date_created": "Sat, 09 May 2026 10:00:00 +0000"},
            {
                **TWILIO_CREATED,
                "sid": "SMother",
                "body": "Something else",
                "date_created": "Sun, 10 May 2026 12:00:01 +0000",
            },
            {**TWILIO_CREATED, "sid": "SMours", "date_created": "Sun, 10 May 2026 12:00:02 +0000"},
        ]
    }
    provider.responses += [(200, listing), (200, {"messages": listing["messages"][:2]})]
    request = adapter.build(message())
    assert adapter.find_sent(request, message(), since) == "SMours"
    assert adapter.find_sent(request, message(), since) is None
    query = parse_qs(urlsplit(provider.requests[0]["path"]).query)
    assert query["To"] == ["+351910000001"]
    assert query["From"] == ["+15005550006"]
    assert provider.requests[0]["method"] == "GET"


def test_sms_refuses_a_non_phone_recipient() -> None:
    with pytest.raises(DeliveryFailed, match="wrong_recipient"):
        TwilioSmsAdapter(TWILIO).build(message(to=Identity(type="email", value="a@example.com")))


def test_missing_setting_is_a_clear_failure() -> None:
    with pytest.raises(DeliveryFailed, match="'from' is missing"):
        TwilioSmsAdapter({"account_sid": "AC1", "auth_token": "t"}).build(message())


# --------------------------------------------------------------------------- #
# WhatsApp
# --------------------------------------------------------------------------- #
WA = Identity(type="whatsapp", value="+16505551234", verified=True)
WA_ACCEPTED = {
    "messaging_product": "whatsapp",
    "contacts": [{"input": "16505551234", "wa_id": "16505551234"}],
    "messages": [{"id": "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"}],
}


def test_whatsapp_text(provider: FakeProvider, http: HttpClient) -> None:
    adapter = WhatsAppAdapter(META, http, provider.base)
    provider.responses.append((200, WA_ACCEPTED))
    msg = message(channel="whatsapp", to=WA, text="We are on it.")
    accepted = adapter.send(adapter.build(msg), msg)
    assert accepted.provider_message_id == WA_ACCEPTED["messages"][0]["id"]
    assert accepted.details == {"wa_id": "16505551234"}
    [sent] = provider.requests
    assert sent["path"] == "/v21.0/106540352242922/messages"
    assert sent["headers"]["authorization"] == "Bearer wa-token"
    assert json.loads(sent["body"]) == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16505551234",
        "biz_opaque_callback_data": "n-1#whatsapp",
        "type": "text",
        "text": {"preview_url": False, "body": "We are on it."},
    }


def test_whatsapp_template(provider: FakeProvider, http: HttpClient) -> None:
    adapter = WhatsAppAdapter(META, http, provider.base)
    provider.responses.append((200, WA_ACCEPTED))
    msg = message(
        channel="whatsapp",
        to=WA,
        whatsapp_template=WhatsAppTemplate("order_shipped", "en_US", ("Ana", "A-17")),
    )
    adapter.send(adapter.build(msg), msg)
    body = json.loads(provider.requests[0]["body"])
    assert body["type"] == "template"
    assert "text" not in body
    assert body["template"] == {
        "name": "order_shipped",
        "language": {"code": "en_US"},
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "A-17"}],
            }
        ],
    }


def graph_error(code: int, message: str, details: str = "") -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details},
            "fbtrace_id": "AbCdEf123",
        }
    }


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            graph_error(131047, "(#131047) Re-engagement message", "More than 24 hours have passed"),
            "outside_whatsapp_window",
        ),
        (
            400,
            graph_error(132001, "(#132001) Template name does not exist in the translation"),
            "template_missing",
        ),
        (401, graph_error(190, "Error validating access token"), "unauthorised"),
        (400, graph_error(100, "(#100) Invalid parameter", "Parameter 'to' is invalid"), "whatsapp_100"),
    ],
)
def test_whatsapp_errors_are_permanent_with_meta_reason(
    provider: FakeProvider, http: HttpClient, status: int, body: dict[str, Any], expected: str
) -> None:
    adapter = WhatsAppAdapter(META, http, provider.base)
    provider.responses.append((status, body))
    msg = message(channel="whatsapp", to=WA)
    with pytest.raises(DeliveryFailed) as failed:
        adapter.send(adapter.build(msg), msg)
    assert failed.value.code == expected
    assert failed.value.reason


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, graph_error(130429, "(#130429) Rate limit hit")),  # throughput: 400 with a rate-limit code
        (400, graph_error(131056, "(#131056) (Business Account, Consumer Account) pair rate limit hit")),
        (500, graph_error(2, "Service temporarily unavailable")),
    ],
)
def test_whatsapp_rate_limits_and_outages_are_busy(
    provider: FakeProvider, http: HttpClient, status: int, body: dict[str, Any]
) -> None:
    adapter = WhatsAppAdapter(META, http, provider.base)
    provider.responses.append((status, body))
    msg = message(channel="whatsapp", to=WA)
    with pytest.raises(ProviderBusy):
        adapter.send(adapter.build(msg), msg)


def test_whatsapp_cannot_be_asked_what_was_sent() -> None:
    msg = message(channel="whatsapp", to=WA)
    adapter = WhatsAppAdapter(META)
    with pytest.raises(NotImplementedError):
        adapter.find_sent(adapter.build(msg), msg, datetime.now(UTC))


# --------------------------------------------------------------------------- #
# Messenger
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(("kind", "messaging_type"), [("reply", "RESPONSE"), ("notification", "UPDATE")])
def test_messenger_send_api(provider: FakeProvider, http: HttpClient, kind: str, messaging_type: str) -> None:
    adapter = MessengerAdapter(META, http, provider.base)
    provider.responses.append(
        (200, {"recipient_id": "1254477777772919", "message_id": "AG5Hz2Uq7tuwNEhXfYYKj8"})
    )
    msg = message(channel="messenger", to=Identity(type="messenger", value="1254477777772919"), kind=kind)
    assert adapter.send(adapter.build(msg), msg).provider_message_id == "AG5Hz2Uq7tuwNEhXfYYKj8"
    [sent] = provider.requests
    assert sent["path"] == "/v21.0/me/messages"
    assert sent["headers"]["authorization"] == "Bearer page-token"
    assert json.loads(sent["body"]) == {
        "recipient": {"id": "1254477777772919"},
        "messaging_type": messaging_type,
        "message": {"text": "Your order A-17 has shipped."},
    }


def test_messenger_error(provider: FakeProvider, http: HttpClient) -> None:
    adapter = MessengerAdapter(META, http, provider.base)
    provider.responses.append(
        (
            400,
            {
                "error": {
                    "message": "(#100) No matching user found",
                    "type": "OAuthException",
                    "code": 100,
                    "error_subcode": 2018001,
                    "fbtrace_id": "x",
                }
            },
        )
    )
    msg = message(channel="messenger", to=Identity(type="messenger", value="psid"))
    with pytest.raises(DeliveryFailed) as failed:
        adapter.send(adapter.build(msg), msg)
    assert failed.value.code == "messenger_100"
    assert "No matching user" in failed.value.reason


# --------------------------------------------------------------------------- #
# SES
# --------------------------------------------------------------------------- #
EMAIL = Identity(type="email", value="ana@example.com", verified=True)
SENDER = {"from": "Support <support@example.com>", "reply_mailbox": "support@reply.example.com"}


@pytest.fixture
def ses() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("sesv2", region_name="eu-west-1")
    with Stubber(client) as stubber:
        yield client, stubber


def test_ses_reply_threads_and_carries_the_reply_token(ses: tuple[Any, Stubber]) -> None:
    client, stubber = ses
    adapter = SesEmailAdapter(SENDER, client)
    msg = message(
        channel="email",
        to=EMAIL,
        kind="reply",
        conversation_id="conv-42",
        subject="Re: my order",
        in_reply_to="CAF=abc@mail.example.com",
    )
    request = adapter.build(msg)
    stubber.add_response(
        "send_email",
        {"MessageId": "0102018f5e3c1d2a-abc-000000"},
        {
            "FromEmailAddress": "Support <support@example.com>",
            "Destination": {"ToAddresses": ["ana@example.com"]},
            "ReplyToAddresses": ["support+conv-42@reply.example.com"],
            "Content": {"Raw": {"Data": request.body["Content"]["Raw"]["Data"].encode()}},
            "EmailTags": [{"Name": "notification", "Value": "n-1_email"}],
        },
    )
    accepted = adapter.send(request, msg)
    stubber.assert_no_pending_responses()
    assert accepted.provider_message_id == "0102018f5e3c1d2a-abc-000000"
    assert accepted.details["message_id_header"] == "<0102018f5e3c1d2a-abc-000000@eu-west-1.amazonses.com>"
    mime = message_from_string(request.body["Content"]["Raw"]["Data"])
    assert mime["Reply-To"] == "support+conv-42@reply.example.com"
    assert mime["In-Reply-To"] == "<CAF=abc@mail.example.com>"
    assert mime["References"] == "<CAF=abc@mail.example.com>"
    assert mime["Subject"] == "Re: my order"
    assert mime["List-Unsubscribe"] is None  # not on replies
    assert mime.get_payload().strip() == "Your order A-17 has shipped."


def test_ses_notification_has_list_unsubscribe() -> None:
    msg = message(channel="email", to=EMAIL, unsubscribe=True, subject="Shipped")
    mime = message_from_string(SesEmailAdapter(SENDER, object()).build(msg).body["Content"]["Raw"]["Data"])
    assert mime["List-Unsubscribe"] == "<mailto:support+unsubscribe-c1@reply.example.com?subject=unsubscribe>"
    assert mime["Reply-To"] == "support@reply.example.com"
    assert mime["In-Reply-To"] is None


UNSUBSCRIBE_URL = "https://api.example.com/links/unsubscribe?t=eyJjIjoiYzEifQ.c2ln"


def test_ses_notification_with_one_click_link_names_https_then_mailto() -> None:
    msg = message(
        channel="email", to=EMAIL, unsubscribe=True, unsubscribe_url=UNSUBSCRIBE_URL, subject="Sale"
    )
    raw = SesEmailAdapter(SENDER, object()).build(msg).body["Content"]["Raw"]["Data"]
    mime = message_from_string(raw)
    assert mime["List-Unsubscribe"] == (
        f"<{UNSUBSCRIBE_URL}>, <mailto:support+unsubscribe-c1@reply.example.com?subject=unsubscribe>"
    )
    assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # One header line each (unfolded), as mail clients parse them.
    assert f"List-Unsubscribe: <{UNSUBSCRIBE_URL}>, <mailto:" in raw
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw
    body = mime.get_payload().replace("\r\n", "\n")
    assert body.startswith("Your order A-17 has shipped.\n\n-- \n")
    assert body.rstrip().endswith(f"unsubscribe: {UNSUBSCRIBE_URL}")


def test_ses_reply_never_carries_unsubscribe_headers_or_footer() -> None:
    msg = message(
        channel="email", to=EMAIL, kind="reply", conversation_id="conv-1", unsubscribe_url=UNSUBSCRIBE_URL
    )
    raw = SesEmailAdapter(SENDER, object()).build(msg).body["Content"]["Raw"]["Data"]
    mime = message_from_string(raw)
    assert mime["List-Unsubscribe"] is None
    assert mime["List-Unsubscribe-Post"] is None
    assert UNSUBSCRIBE_URL not in raw


@pytest.mark.parametrize(
    ("code", "status", "outcome"),
    [
        ("MessageRejected", 400, DeliveryFailed),
        ("MailFromDomainNotVerifiedException", 400, DeliveryFailed),
        ("AccountSuspendedException", 400, DeliveryFailed),
        ("TooManyRequestsException", 429, ProviderBusy),
        ("LimitExceededException", 400, ProviderBusy),
        ("InternalFailure", 500, ProviderBusy),
    ],
)
def test_ses_errors(ses: tuple[Any, Stubber], code: str, status: int, outcome: type[Exception]) -> None:
    client, stubber = ses
    adapter = SesEmailAdapter(SENDER, client)
    msg = message(channel="email", to=EMAIL)
    stubber.add_client_error("send_email", code, "Email address is not verified.", status)
    with pytest.raises(outcome) as raised:
        adapter.send(adapter.build(msg), msg)
    if outcome is DeliveryFailed:
        assert raised.value.code == f"ses_{code}"  # type: ignore[attr-defined]
        assert raised.value.reason == "Email address is not verified."  # type: ignore[attr-defined]


def test_ses_message_id_header_per_region() -> None:
    assert ses_message_id_header("abc", "us-east-1") == "<abc@email.amazonses.com>"
    assert ses_message_id_header("abc", "eu-west-1") == "<abc@eu-west-1.amazonses.com>"


# --------------------------------------------------------------------------- #
# Local mode
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("inner", "msg", "prefix"),
    [
        (TwilioSmsAdapter(TWILIO, HttpClient(), "http://127.0.0.1:9"), message(), "SM"),
        (
            WhatsAppAdapter(META, HttpClient(), "http://127.0.0.1:9"),
            message(channel="whatsapp", to=WA),
            "wamid.",
        ),
        (SesEmailAdapter(SENDER, object(), region="us-east-1"), message(channel="email", to=EMAIL), "local-"),
    ],
)
def test_local_mode_builds_the_same_request_and_sends_nothing(
    inner: Any, msg: OutboundMessage, prefix: str
) -> None:
    local = LocalOutboxAdapter(inner)
    request = local.build(msg)
    assert request == inner.build(msg) or request.provider == "ses"  # SES: fresh Message-ID per build
    first = local.send(request, msg)
    assert first.provider_message_id.startswith(prefix)
    assert local.send(request, msg).provider_message_id == first.provider_message_id  # stable per key
    assert local.idempotent
