"""Notify under moto: channel choice from profiles, fallback, consent, quiet hours, templates,
the timeline, and delivery that survives faults without sending twice."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_string
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from functions.notify import handler as notify_handler
from functions.notify import notifier as shared_notify
from functions.notify.notifier import AttemptInFlight, Notifier, UnsubscribeLinks
from shared.contracts.events import Identity, NotificationRequested, format_timestamp
from shared.domain import links
from shared.outbound.adapters import (
    Accepted,
    DeliveryFailed,
    LocalOutboxAdapter,
    OutboundMessage,
    ProviderBusy,
    ProviderRequest,
)
from shared.outbound.meta import WhatsAppAdapter
from shared.outbound.ses import SesEmailAdapter
from shared.outbound.twilio import TwilioSmsAdapter
from shared.outbound.webchat import WebchatAdapter
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository
from shared.repositories.outbox import OutboxRepository
from shared.repositories.webchat import WebchatRepository
from tests.helpers import context, eventbridge_envelope, http_event, sqs_event
from tests.helpers.notify import NOON, make_customer, notifier
from topology import TOPOLOGY

PHONE = Identity(type="phone", value="+351910000001", verified=True)
WA = Identity(type="whatsapp", value="+351910000001", verified=True)
EMAIL = Identity(type="email", value="ana@example.com", verified=True)
SHIPPED = {"first_name": "Ana", "order_id": "A-17", "tracking_url": "https://t.example/A-17"}


def open_conversation(
    customer_id: str, conversation_id: str, channel: str, sender: Identity, at: datetime
) -> None:
    conversations = ConversationRepository()
    assert conversations.open_for(customer_id, conversation_id, format_timestamp(at), channel)
    conversations.append_inbound(
        conversation_id, f"{channel}#in-1", channel, "Where is my order?", format_timestamp(at), sender
    )


@dataclass
class FakeAdapter:
    """A provider that accepts (or refuses) and counts what it was sent."""

    channel: str
    idempotent: bool = False
    provider: str = "fake"
    fail: DeliveryFailed | None = None
    busy: int = 0
    can_find: bool = False
    sent: list[OutboundMessage] = field(default_factory=list)

    def build(self, message: OutboundMessage) -> ProviderRequest:
        return ProviderRequest(self.provider, "POST", f"fake:{self.channel}", "json", {"text": message.text})

    def send(self, request: ProviderRequest, message: OutboundMessage) -> Accepted:
        if self.busy:
            self.busy -= 1
            raise ProviderBusy("429")
        if self.fail:
            raise self.fail
        self.sent.append(message)
        return Accepted(f"{self.channel}-id-{len(self.sent)}")

    def find_sent(self, request: ProviderRequest, message: OutboundMessage, since: datetime) -> str | None:
        if not self.can_find:
            raise NotImplementedError
        return f"{self.channel}-id-{len(self.sent)}" if self.sent else None

    def simulate(self, request: ProviderRequest, message: OutboundMessage) -> Accepted:
        raise AssertionError("not used")


def local_adapters() -> dict[str, Any]:
    return notify_handler.build_adapters(mode="local")


def request(**fields: Any) -> NotificationRequested:
    base: dict[str, Any] = {"notification_id": "n-1", "customer_id": "c1", "kind": "notification"}
    base.update(fields)
    return NotificationRequested(**base)


# --------------------------------------------------------------------------- #
# Channel choice, templates, consent (local mode: the provider request is stored)
# --------------------------------------------------------------------------- #
def test_whatsapp_preference_gets_the_approved_template(stack: Any) -> None:
    make_customer("c1", [PHONE, WA, EMAIL], preferences={"channels": ["whatsapp", "email"]}, language="pt-BR")
    outcome = notifier(local_adapters()).handle(request(template="order_shipped", variables=SHIPPED), NOON)
    assert (outcome.status, outcome.channel) == ("sent", "whatsapp")
    item = OutboxRepository().get("n-1")
    assert item is not None
    assert item["status"] == "sent"
    assert item["channel"] == "whatsapp"
    assert item["template_version"] == 1
    assert item["language"] == "pt-br"
    attempt = item["attempts"]["whatsapp"]
    assert attempt["state"] == "accepted"
    assert attempt["key"] == "n-1#whatsapp"
    body = attempt["request"]["body"]
    assert body["type"] == "template"  # no inbound WhatsApp in 24 h: template, not free text
    assert body["template"]["name"] == "order_shipped"
    assert body["template"]["language"] == {"code": "pt_BR"}
    assert attempt["request"]["url"].endswith("/100000000000000/messages")
    assert item["provider_message_id"] == attempt["provider_message_id"]
    assert OutboxRepository().notification_for_provider_id(item["provider_message_id"]) == "n-1"


def test_email_preference_gets_an_email(stack: Any) -> None:
    make_customer("c1", [PHONE, EMAIL], preferences={"channels": ["email"]})
    outcome = notifier(local_adapters()).handle(request(template="order_shipped", variables=SHIPPED), NOON)
    assert (outcome.status, outcome.channel) == ("sent", "email")
    attempt = OutboxRepository().get("n-1")["attempts"]["email"]  # type: ignore[index]
    raw = attempt["request"]["body"]["Content"]["Raw"]["Data"]
    assert "Subject: Your order A-17 is on its way" in raw
    assert "List-Unsubscribe: <mailto:support+unsubscribe-c1@reply.example.com" in raw
    assert attempt["details"]["message_id_header"].endswith("amazonses.com>")


def test_free_text_whatsapp_inside_the_window(stack: Any) -> None:
    make_customer("c1", [WA], preferences={"channels": ["whatsapp"]})
    open_conversation("c1", "conv-1", "whatsapp", WA, NOON - timedelta(hours=3))
    outcome = notifier(local_adapters()).handle(request(text="Your parcel is at the door."), NOON)
    assert outcome.status == "sent"
    body = OutboxRepository().get("n-1")["attempts"]["whatsapp"]["request"]["body"]  # type: ignore[index]
    assert body["type"] == "text"
    assert body["text"]["body"] == "Your parcel is at the door."


def test_free_text_outside_the_window_falls_back_with_the_reason(stack: Any) -> None:
    make_customer("c1", [WA, PHONE], preferences={"channels": ["whatsapp", "sms"]})
    outcome = notifier(local_adapters()).handle(request(text="Your parcel is at the door."), NOON)
    assert (outcome.status, outcome.channel) == ("sent", "sms")
    assert outcome.skipped[0][0] == "whatsapp"
    assert outcome.skipped[0][1].startswith("outside_whatsapp_window")


def test_no_window_and_no_fallback_fails_clearly(stack: Any) -> None:
    make_customer("c1", [WA], preferences={"channels": ["whatsapp"]})
    outcome = notifier(local_adapters()).handle(request(text="hello"), NOON)
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert "outside_whatsapp_window" in outcome.error
    assert OutboxRepository().get("n-1")["status"] == "failed"  # type: ignore[index]


def test_permanent_failure_falls_back_to_the_next_channel(stack: Any) -> None:
    make_customer("c1", [PHONE, EMAIL], preferences={"channels": ["sms", "email"]})
    sms = FakeAdapter("sms", fail=DeliveryFailed("twilio_21211", "The 'To' number is not valid"))
    email = FakeAdapter("email")
    outcome = notifier({"sms": sms, "email": email}).handle(request(text="hello"), NOON)
    assert (outcome.status, outcome.channel) == ("sent", "email")
    item = OutboxRepository().get("n-1")
    assert item["attempts"]["sms"]["state"] == "failed"  # type: ignore[index]
    assert item["attempts"]["sms"]["error"] == "twilio_21211: The 'To' number is not valid"  # type: ignore[index]
    assert item["skipped"] == ["sms: twilio_21211: The 'To' number is not valid"]  # type: ignore[index]
    # a redelivered request does nothing more
    assert notifier({"sms": sms, "email": email}).handle(request(text="hello"), NOON).status == "already_done"
    assert len(email.sent) == 1


def test_a_bounced_address_is_not_written_to_and_the_next_channel_is_tried(stack: Any) -> None:
    make_customer("c1", [EMAIL, PHONE], preferences={"channels": ["email", "sms"]})
    assert CustomerRepository().mark_undeliverable("c1", EMAIL, "2026-05-01T00:00:00.000000Z", "bounce:5.1.1")
    sms, email = FakeAdapter("sms"), FakeAdapter("email")
    outcome = notifier({"sms": sms, "email": email}).handle(request(text="hello"), NOON)
    assert (outcome.status, outcome.channel) == ("sent", "sms")
    assert not email.sent
    assert ("email", "undeliverable") in outcome.skipped


def test_a_bounced_only_address_fails_with_the_reason(stack: Any) -> None:
    make_customer("c1", [EMAIL], preferences={"channels": ["email"]})
    CustomerRepository().mark_undeliverable("c1", EMAIL, "2026-05-01T00:00:00.000000Z", "bounce:5.1.1")
    email = FakeAdapter("email")
    outcome = notifier({"email": email}).handle(request(text="hello"), NOON)
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert "email: undeliverable" in outcome.error
    assert not email.sent


def test_opted_out_channel_is_skipped_and_marketing_needs_opt_in(stack: Any) -> None:
    make_customer(
        "c1",
        [PHONE, EMAIL],
        preferences={"channels": ["sms", "email"]},
        consent={"sms": "opted_out", "email": "opted_in"},
    )
    sms, email = FakeAdapter("sms"), FakeAdapter("email")
    outcome = notifier({"sms": sms, "email": email}).handle(request(text="hi", urgency="marketing"), NOON)
    assert outcome.channel == "email"
    assert not sms.sent
    make_customer("c2", [Identity(type="phone", value="+351910000002", verified=True)])
    outcome = notifier({"sms": sms}).handle(
        request(
            notification_id="n-2",
            customer_id="c2",
            template="spring_sale",
            urgency="marketing",
            variables={"first_name": "Rui", "discount_code": "SPRING"},
        ),
        NOON,
    )
    assert outcome.status == "failed"
    assert "no_marketing_opt_in" in (outcome.error or "")
    assert not sms.sent


def test_all_channels_preference_sends_on_each(stack: Any) -> None:
    make_customer("c1", [PHONE, EMAIL], preferences={"channels": ["sms", "email"], "all": True})
    sms, email = FakeAdapter("sms"), FakeAdapter("email")
    outcome = notifier({"sms": sms, "email": email}).handle(request(text="hi"), NOON)
    assert outcome.channels == ("sms", "email")
    assert len(sms.sent) == len(email.sent) == 1


def test_missing_template_variable_fails_before_anything_is_sent(stack: Any) -> None:
    make_customer("c1", [PHONE])
    sms = FakeAdapter("sms")
    outcome = notifier({"sms": sms}).handle(
        request(template="order_shipped", variables={"first_name": "Ana"}), NOON
    )
    assert outcome.status == "failed"
    assert outcome.error == "missing_variables: template 'order_shipped' needs order_id, tracking_url"
    assert not sms.sent


def test_reply_goes_to_the_last_used_channel_and_into_the_timeline(stack: Any) -> None:
    make_customer("c1", [PHONE, EMAIL], preferences={"channels": ["email"]}, consent={"sms": "opted_out"})
    open_conversation("c1", "conv-1", "sms", PHONE, NOON - timedelta(minutes=5))
    sms = FakeAdapter("sms")
    outcome = notifier({"sms": sms, "email": FakeAdapter("email")}).handle(
        request(kind="reply", conversation_id="conv-1", text="It ships today.", author="agent:a1"), NOON
    )
    # the customer opted out of SMS, but is writing on SMS in this conversation: answered there
    assert (outcome.status, outcome.channel) == ("sent", "sms")
    assert sms.sent[0].to == PHONE
    conversation = ConversationRepository().get("conv-1")
    assert conversation is not None
    [reply] = [m for m in conversation.messages if m.direction == "outbound"]
    assert (reply.message_id, reply.channel, reply.status, reply.author) == ("n-1", "sms", "sent", "agent:a1")


def test_failed_reply_is_in_the_timeline_as_failed(stack: Any) -> None:
    make_customer("c1", [WA])
    open_conversation("c1", "conv-1", "whatsapp", WA, NOON - timedelta(days=2))
    outcome = notifier(local_adapters()).handle(
        request(kind="reply", conversation_id="conv-1", text="Sorry for the wait"), NOON
    )
    assert outcome.status == "failed"
    assert "outside_whatsapp_window" in (outcome.error or "")
    conversation = ConversationRepository().get("conv-1")
    assert [m.status for m in conversation.messages if m.direction == "outbound"] == ["failed"]  # type: ignore[union-attr]


def test_email_reply_threads_on_the_customers_email(stack: Any) -> None:
    make_customer("c1", [EMAIL])
    conversations = ConversationRepository()
    conversations.open_for("c1", "conv-9", format_timestamp(NOON), "email")
    conversations.append_inbound(
        "conv-9", "email#<CAF-123@mail.example.com>", "email", "Hi", format_timestamp(NOON), EMAIL
    )
    outcome = notifier(local_adapters()).handle(
        request(kind="reply", conversation_id="conv-9", text="Hello Ana", subject="Re: Hi"), NOON
    )
    assert outcome.status == "sent"
    raw = OutboxRepository().get("n-1")["attempts"]["email"]["request"]["body"]["Content"]["Raw"]["Data"]  # type: ignore[index]
    assert "In-Reply-To: <CAF-123@mail.example.com>" in raw
    assert "Reply-To: support+conv-9@reply.example.com" in raw


# --------------------------------------------------------------------------- #
# One-click unsubscribe links (RFC 8058) on e-mail notifications
# --------------------------------------------------------------------------- #
LINKS_SECRET = "links-secret-for-tests"
API_URL = "https://abc123.execute-api.eu-west-3.amazonaws.com"


def email_raw(notification_id: str = "n-1") -> str:
    item = OutboxRepository().get(notification_id)
    assert item is not None
    return str(item["attempts"]["email"]["request"]["body"]["Content"]["Raw"]["Data"])


def link_notifier(base_url: str | None) -> Notifier:
    customers = CustomerRepository()
    return Notifier(
        outbox=OutboxRepository(),
        conversations=ConversationRepository(customers=customers),
        customers=customers,
        adapters=local_adapters(),
        unsubscribe_links=UnsubscribeLinks(base_url=lambda: base_url, secret=lambda: LINKS_SECRET),
    )


def test_email_notification_carries_the_one_click_unsubscribe_link(stack: Any) -> None:
    make_customer("c1", [EMAIL], preferences={"channels": ["email"]})
    outcome = link_notifier(API_URL).handle(request(template="order_shipped", variables=SHIPPED), NOON)
    assert (outcome.status, outcome.channel) == ("sent", "email")
    mime = message_from_string(email_raw())
    https, mailto = (part.strip().strip("<>") for part in str(mime["List-Unsubscribe"]).split(","))
    assert mailto == "mailto:support+unsubscribe-c1@reply.example.com?subject=unsubscribe"
    assert https.startswith(f"{API_URL}/links/unsubscribe?t=")
    assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    claims = links.verify(
        LINKS_SECRET, parse_qs(urlsplit(https).query)["t"][0], "unsubscribe", now=NOON.timestamp()
    )
    assert (claims.customer_id, claims.channel) == ("c1", "email")
    assert claims.expires == int(NOON.timestamp()) + links.LIFETIME_S["unsubscribe"]
    body = mime.get_payload(decode=True).decode()  # type: ignore[union-attr]
    text = "Hi Ana, your order A-17 has shipped. Track it here: https://t.example/A-17"
    assert (
        body.replace("\r\n", "\n")
        == f"{text}\n\n-- \nTo stop receiving these e-mails, unsubscribe: {https}\n"
    )


def test_replies_carry_no_unsubscribe_link(stack: Any) -> None:
    make_customer("c1", [EMAIL])
    conversations = ConversationRepository()
    conversations.open_for("c1", "conv-9", format_timestamp(NOON), "email")
    conversations.append_inbound(
        "conv-9", "email#<CAF-1@mail.example.com>", "email", "Hi", format_timestamp(NOON), EMAIL
    )
    outcome = link_notifier(API_URL).handle(
        request(kind="reply", conversation_id="conv-9", text="Hello Ana", subject="Re: Hi"), NOON
    )
    assert outcome.status == "sent"
    mime = message_from_string(email_raw())
    assert mime["List-Unsubscribe"] is None
    assert mime["List-Unsubscribe-Post"] is None
    assert "/links/" not in email_raw()


def test_without_a_public_api_url_only_the_mailto_is_added_and_logged_once(
    stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(shared_notify._log, "warning", lambda message, *a, **k: warnings.append(message))
    make_customer("c1", [EMAIL], preferences={"channels": ["email"]})
    sender = link_notifier(None)
    for notification_id in ("n-1", "n-2"):
        assert sender.handle(request(notification_id=notification_id, text="hello"), NOON).status == "sent"
        mime = message_from_string(email_raw(notification_id))
        assert (
            mime["List-Unsubscribe"]
            == "<mailto:support+unsubscribe-c1@reply.example.com?subject=unsubscribe>"
        )
        assert mime["List-Unsubscribe-Post"] is None
    assert len(warnings) == 1
    assert "OMNI_PUBLIC_API_URL" in warnings[0]


def test_the_notify_function_mints_links_with_the_deployed_secret_and_url(
    stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNI_PUBLIC_API_URL", API_URL + "/")
    monkeypatch.setenv("OMNI_OUTBOUND_MODE", "local")
    monkeypatch.setattr(notify_handler, "_notifier", None)
    monkeypatch.setattr(notify_handler, "clock", lambda: NOON)
    make_customer(
        "c1", [EMAIL], preferences={"channels": ["email"]}, quiet_hours={"start": "00:00", "end": "00:00"}
    )
    body = eventbridge_envelope(
        "notification.requested", request(text="Your invoice is ready").model_dump(mode="json")
    )
    assert run_handler(body) == {"batchItemFailures": []}
    mime = message_from_string(email_raw())
    https = str(mime["List-Unsubscribe"]).split(",")[0].strip().strip("<>")
    assert https.startswith(f"{API_URL}/links/unsubscribe?t=")
    secret = TOPOLOGY.secret("links-signing").local_default  # what the emulated Secrets Manager holds
    assert links.verify(secret, parse_qs(urlsplit(https).query)["t"][0], "unsubscribe").customer_id == "c1"


# --------------------------------------------------------------------------- #
# Never twice: faults between the provider call and our record
# --------------------------------------------------------------------------- #
class CrashAfterProvider(OutboxRepository):
    """The function dies after the provider accepted, before the acceptance is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.crashes = 1

    def record_sent(self, notification_id: str, at: str, settled: Any, **kw: Any) -> None:
        if self.crashes:
            self.crashes -= 1
            raise RuntimeError("injected fault: Lambda timed out")
        super().record_sent(notification_id, at, settled, **kw)


def test_retry_within_the_lease_waits_instead_of_sending(stack: Any) -> None:
    make_customer("c1", [PHONE])
    sms = FakeAdapter("sms", can_find=True)
    with pytest.raises(RuntimeError, match="injected"):
        notifier({"sms": sms}, CrashAfterProvider()).handle(request(text="hi"), NOON)
    with pytest.raises(AttemptInFlight):
        notifier({"sms": sms}).handle(request(text="hi"), NOON + timedelta(seconds=30))
    assert len(sms.sent) == 1


def test_fault_after_accept_provider_asked_not_resent(stack: Any) -> None:
    """Twilio-like: the provider can list what it sent; the retry finds the message."""
    make_customer("c1", [PHONE])
    sms = FakeAdapter("sms", can_find=True)
    with pytest.raises(RuntimeError, match="injected"):
        notifier({"sms": sms}, CrashAfterProvider()).handle(request(text="hi"), NOON)
    outcome = notifier({"sms": sms}).handle(request(text="hi"), NOON + timedelta(minutes=5))
    assert outcome.status == "sent"
    assert len(sms.sent) == 1  # the customer got one text
    item = OutboxRepository().get("n-1")
    assert item["attempts"]["sms"]["state"] == "accepted"  # type: ignore[index]
    assert item["provider_message_id"] == "sms-id-1"  # type: ignore[index]


def test_fault_after_accept_provider_cannot_be_asked_is_at_most_once(stack: Any) -> None:
    """Meta/SES-like: no way to ask and no idempotency key: marked unconfirmed, never resent."""
    make_customer("c1", [WA], preferences={"channels": ["whatsapp", "sms"]})
    make_customer("c9", [PHONE])
    whatsapp, sms = FakeAdapter("whatsapp"), FakeAdapter("sms")
    req = request(customer_id="c1", template="order_shipped", variables=SHIPPED)
    with pytest.raises(RuntimeError, match="injected"):
        notifier({"whatsapp": whatsapp, "sms": sms}, CrashAfterProvider()).handle(req, NOON)
    outcome = notifier({"whatsapp": whatsapp, "sms": sms}).handle(req, NOON + timedelta(minutes=5))
    assert outcome.status == "sent"
    assert outcome.channel == "whatsapp"
    assert len(whatsapp.sent) == 1
    assert not sms.sent
    item = OutboxRepository().get("n-1")
    assert item["attempts"]["whatsapp"]["state"] == "unconfirmed"  # type: ignore[index]
    assert item["unconfirmed"] is True  # type: ignore[index]


def test_fault_after_accept_on_an_idempotent_channel_resends_once(stack: Any) -> None:
    make_customer("c1", [Identity(type="webchat", value="ws_1", verified=True)])
    adapters = {"webchat": WebchatAdapter()}
    with pytest.raises(RuntimeError, match="injected"):
        notifier(adapters, CrashAfterProvider()).handle(request(text="hi", channel="webchat"), NOON)
    outcome = notifier(adapters).handle(request(text="hi", channel="webchat"), NOON + timedelta(seconds=1))
    assert outcome.status == "sent"
    outbound = [m for m in WebchatRepository().list_messages("ws_1") if m.get("direction") == "outbound"]
    assert len(outbound) == 1


def test_busy_provider_releases_the_attempt_and_raises_for_redelivery(stack: Any) -> None:
    make_customer("c1", [PHONE])
    sms = FakeAdapter("sms", busy=1)
    with pytest.raises(ProviderBusy):
        notifier({"sms": sms}).handle(request(text="hi"), NOON)
    assert OutboxRepository().get("n-1")["attempts"] == {}  # type: ignore[index]
    assert notifier({"sms": sms}).handle(request(text="hi"), NOON + timedelta(seconds=1)).status == "sent"
    assert len(sms.sent) == 1


def test_local_mode_retry_writes_one_delivery(stack: Any) -> None:
    make_customer("c1", [PHONE])
    adapters = local_adapters()
    with pytest.raises(RuntimeError, match="injected"):
        notifier(adapters, CrashAfterProvider()).handle(request(text="hi"), NOON)
    assert notifier(adapters).handle(request(text="hi"), NOON).status == "sent"
    items = boto3.client("dynamodb").scan(TableName=stack[("table", "outbox")])["Items"]
    assert len(items) == 1


def test_real_adapters_are_wrapped_only_in_local_mode() -> None:
    local = notify_handler.build_adapters(mode="local")
    cloud = notify_handler.build_adapters(mode="")
    assert isinstance(local["sms"], LocalOutboxAdapter)
    assert isinstance(local["webchat"], WebchatAdapter)
    assert isinstance(cloud["sms"], TwilioSmsAdapter)
    assert isinstance(cloud["whatsapp"], WhatsAppAdapter)
    assert isinstance(cloud["email"], SesEmailAdapter)


# --------------------------------------------------------------------------- #
# Quiet hours through the handler: re-queued with DelaySeconds, sent when they end
# --------------------------------------------------------------------------- #
def run_handler(body: str) -> dict[str, Any]:
    return notify_handler.handler(sqs_event([body], queue="notify"), context("notify"))


def test_quiet_hours_defer_through_the_queue_until_they_end(
    stack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_customer("c1", [EMAIL], preferences={"channels": ["email"]}, timezone="Europe/Lisbon")
    monkeypatch.setattr(notify_handler, "_notifier", notifier(local_adapters()))
    night = datetime(2026, 5, 10, 21, 30, tzinfo=UTC)  # 22:30 in Lisbon
    monkeypatch.setattr(notify_handler, "clock", lambda: night)
    detail = request(template="order_shipped", variables=SHIPPED).model_dump(mode="json")
    assert run_handler(eventbridge_envelope("notification.requested", detail)) == {"batchItemFailures": []}

    item = OutboxRepository().get("n-1")
    assert item["status"] == "queued"
    assert item["deferred_until"] == "2026-05-11T07:00:00.000000Z"
    assert item["attempts"] == {}  # type: ignore[index]
    sqs = boto3.client("sqs")
    url = stack[("queue", "notify")]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesDelayed"])
    assert attributes["Attributes"]["ApproximateNumberOfMessagesDelayed"] == "1"  # 15 min hop, not visible

    # the hop comes back while it is still night: deferred again
    monkeypatch.setattr(notify_handler, "clock", lambda: night + timedelta(minutes=15))
    hop = json.dumps({**json.loads(eventbridge_envelope("notification.requested", detail))})
    run_handler(hop)
    assert OutboxRepository().get("n-1")["deferrals"] == 2  # type: ignore[index]

    # at 08:00 Lisbon it goes out
    monkeypatch.setattr(notify_handler, "clock", lambda: datetime(2026, 5, 11, 7, 0, tzinfo=UTC))
    run_handler(hop)
    item = OutboxRepository().get("n-1")
    assert item["status"] == "sent"
    assert item["channel"] == "email"


def test_defer_sends_the_event_back_with_a_bounded_delay(stack: Any) -> None:
    url = stack[("queue", "notify")]
    req = request(text="hi")
    assert notify_handler.defer(req, NOON + timedelta(hours=9), NOON) == 900
    assert notify_handler.defer(req, NOON + timedelta(seconds=61.2), NOON) == 62
    assert notify_handler.defer(req, NOON - timedelta(seconds=5), NOON) == 1
    sqs = boto3.client("sqs")
    # The 1-second one may be visible already on a loaded machine; the two longer ones are not.
    counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    delayed, visible = (
        int(counts["ApproximateNumberOfMessagesDelayed"]),
        int(counts["ApproximateNumberOfMessages"]),
    )
    assert (delayed + visible, delayed >= 2) == (3, True)


def test_urgent_requests_ignore_quiet_hours(stack: Any) -> None:
    make_customer("c1", [PHONE], timezone="Europe/Lisbon")
    sms = FakeAdapter("sms")
    night = datetime(2026, 5, 10, 23, 0, tzinfo=UTC)
    assert (
        notifier({"sms": sms}).handle(request(text="Your code is 123456", urgent=True), night).status
        == "sent"
    )
    assert notifier({"sms": sms}).handle(request(notification_id="n-2", text="x"), night).status == "deferred"


def test_transient_failure_is_reported_to_sqs(stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    make_customer("c1", [PHONE])
    monkeypatch.setattr(notify_handler, "_notifier", notifier({"sms": FakeAdapter("sms", busy=5)}))
    monkeypatch.setattr(notify_handler, "clock", lambda: NOON)
    detail = request(text="hi").model_dump(mode="json")
    result = run_handler(eventbridge_envelope("notification.requested", detail))
    assert len(result["batchItemFailures"]) == 1


# --------------------------------------------------------------------------- #
# POST /notifications
# --------------------------------------------------------------------------- #
def post_notification(body: Any) -> dict[str, Any]:
    from functions.agent_api.handler import handler as agent_api  # noqa: PLC0415

    event = http_event("POST", "/notifications", body=body, claims={"sub": "agent-7"})
    return agent_api(event, context("agent-api"))


def test_post_notification_publishes_the_request(stack: Any) -> None:
    make_customer("c1", [PHONE])
    response = post_notification(
        {
            "customer_id": "c1",
            "template": "order_shipped",
            "variables": SHIPPED,
            "notification_id": "order:A-17",
        }
    )
    assert response["statusCode"] == 202, response["body"]
    assert json.loads(response["body"]) == {
        "notification_id": "order:A-17",
        "customer_id": "c1",
        "status": "requested",
    }
    messages = boto3.client("sqs").receive_message(QueueUrl=stack[("queue", "notify")], WaitTimeSeconds=1)
    [message] = messages["Messages"]
    detail = json.loads(message["Body"])["detail"]
    assert detail["template"] == "order_shipped"
    assert detail["author"] == "agent:agent-7"
    assert detail["kind"] == "notification"


@pytest.mark.parametrize(
    ("body", "status", "problem"),
    [
        ({"customer_id": "nobody", "text": "hi"}, 404, "no customer nobody"),
        (
            {"customer_id": "c1", "template": "order_shipped", "variables": {"first_name": "Ana"}},
            400,
            "needs order_id, tracking_url",
        ),
        ({"customer_id": "c1", "template": "nope"}, 400, "no template 'nope'"),
        ({"customer_id": "c1"}, 400, "either template"),
        ({"customer_id": "c1", "text": "x", "template": "order_shipped"}, 400, "either template"),
        ({"customer_id": "c1", "text": "x", "channel": "fax"}, 400, "channel"),
        ({"customer_id": "c1", "text": "x", "notification_id": "a b"}, 400, "notification_id"),
        ({"customer_id": "c1", "text": "x", "surprise": 1}, 400, "surprise"),
    ],
)
def test_post_notification_refuses_bad_requests(stack: Any, body: Any, status: int, problem: str) -> None:
    make_customer("c1", [PHONE])
    response = post_notification(body)
    assert response["statusCode"] == status
    assert problem in response["body"]


# --------------------------------------------------------------------------- #
# The delivery log: acceptance and status in one write, with a safe fallback
# --------------------------------------------------------------------------- #
def _attempting(outbox: OutboxRepository) -> None:
    outbox.start({"notification_id": "n-9", "customer_id": "c1", "created_at": "2026-05-10T12:00:00.000000Z"})
    outbox.begin_attempt("n-9", "sms", {"key": "n-9#sms", "started_at": "2026-05-10T12:00:00.000000Z"})


def test_record_sent_settles_the_attempt_and_the_status_in_one_write(stack: Any) -> None:
    outbox = OutboxRepository()
    _attempting(outbox)
    outbox.record_sent(
        "n-9", "2026-05-10T12:00:01.000000Z", [("sms", "SM1", {"segments": "1"})], provider_message_id="SM1"
    )
    item = outbox.get("n-9")
    assert item is not None
    assert item["status"] == "sent"
    assert item["attempts"]["sms"]["state"] == "accepted"
    assert item["attempts"]["sms"]["details"] == {"segments": "1"}
    assert outbox.notification_for_provider_id("SM1") == "n-9"


def test_record_sent_after_a_faster_receipt_keeps_the_later_status(stack: Any) -> None:
    outbox = OutboxRepository()
    _attempting(outbox)
    # The "delivered" receipt won the race (rank 2): record_sent must not move it back.
    outbox.mark("n-9", "delivered", "2026-05-10T12:00:02.000000Z")
    outbox.record_sent(
        "n-9", "2026-05-10T12:00:01.000000Z", [("sms", "SM1", None)], provider_message_id="SM1"
    )
    item = outbox.get("n-9")
    assert item is not None
    assert item["status"] == "delivered"
    assert item["attempts"]["sms"]["state"] == "accepted"
    assert item["provider_message_id"] == "SM1"


# --------------------------------------------------------------------------- #
# The signed preferences link (web chat and e-mail notifications, never replies)
# --------------------------------------------------------------------------- #
def preferences_notifier(webchat: FakeAdapter) -> Notifier:
    customers = CustomerRepository()
    minter = UnsubscribeLinks(base_url=lambda: API_URL, secret=lambda: LINKS_SECRET)
    return Notifier(
        outbox=OutboxRepository(),
        conversations=ConversationRepository(customers=customers),
        customers=customers,
        adapters={"webchat": webchat},
        preference_links=minter.preferences,
    )


def test_a_webchat_notification_names_the_customers_signed_preferences_page(stack: Any) -> None:
    session = Identity(type="webchat", value="wcs_prefs", verified=True)
    make_customer("c1", [session])
    webchat = FakeAdapter("webchat")
    outcome = preferences_notifier(webchat).handle(request(text="Your order has shipped."), NOON)
    assert (outcome.status, outcome.channel) == ("sent", "webchat")
    [message] = webchat.sent
    text, _, url = message.text.partition("\n\nChoose how and when we contact you: ")
    assert text == "Your order has shipped."
    assert url.startswith(f"{API_URL}/links/preferences?t=")
    claims = links.verify(
        LINKS_SECRET, parse_qs(urlsplit(url).query)["t"][0], "preferences", now=NOON.timestamp()
    )
    assert (claims.customer_id, claims.channel) == ("c1", "webchat")

    open_conversation("c1", "conv-prefs", "webchat", session, NOON)
    reply = request(notification_id="n-2", kind="reply", conversation_id="conv-prefs", text="Sure.")
    assert preferences_notifier(webchat).handle(reply, NOON).status == "sent"
    assert webchat.sent[-1].text == "Sure."  # a reply carries no link
