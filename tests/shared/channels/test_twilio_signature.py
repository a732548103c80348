"""Twilio signatures, form bodies, keywords, statuses and TwiML (pure, no AWS).

Expected signatures come from the ``twilio`` package's ``RequestValidator``, an
implementation we did not write.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from shared.channels import twilio
from shared.contracts.events import Identity

TOKEN = "12345678901234567890123456789012"
URL = "https://hooks.example.com/webhooks/sms?tenant=eu"
PARAMS = [
    ("MessageSid", "SM" + "a" * 32),
    ("AccountSid", "AC" + "b" * 32),
    ("From", "+4915112345678"),
    ("To", "+14155550100"),
    ("Body", "Grüße \u2013 my invoice & order #42 are wrong?"),
    ("NumMedia", "0"),
    ("ToCity", ""),
]


def reference(url: str, params: list[tuple[str, str]]) -> str:
    return RequestValidator(TOKEN).compute_signature(url, dict(params))


def test_signature_matches_twilios_validator() -> None:
    assert twilio.compute_signature(TOKEN, URL, PARAMS) == reference(URL, PARAMS)
    twilio.verify_signature(TOKEN, URL, PARAMS, reference(URL, PARAMS))
    assert RequestValidator(TOKEN).validate(URL, dict(PARAMS), twilio.compute_signature(TOKEN, URL, PARAMS))


def test_parameter_order_does_not_matter_but_every_parameter_counts() -> None:
    signature = reference(URL, PARAMS)
    twilio.verify_signature(TOKEN, URL, list(reversed(PARAMS)), signature)
    with pytest.raises(twilio.InvalidSignature):
        twilio.verify_signature(TOKEN, URL, [*PARAMS, ("Extra", "1")], signature)
    with pytest.raises(twilio.InvalidSignature):
        twilio.verify_signature(TOKEN, URL, PARAMS[:-1], signature)


def test_repeated_names_are_signed_like_twilios_validator() -> None:
    class MultiDict(dict[str, list[str]]):
        def getlist(self, name: str) -> list[str]:
            return self[name]

    params = [("Tag", "b"), ("Tag", "a"), ("Body", "x")]
    expected = RequestValidator(TOKEN).compute_signature(URL, MultiDict({"Tag": ["b", "a"], "Body": ["x"]}))
    assert twilio.compute_signature(TOKEN, URL, params) == expected


@pytest.mark.parametrize(
    ("signed_url", "called_url"),
    [
        ("https://hooks.example.com:443/webhooks/sms", "https://hooks.example.com/webhooks/sms"),
        ("https://hooks.example.com/webhooks/sms", "https://hooks.example.com:443/webhooks/sms"),
    ],
)
def test_default_port_may_or_may_not_be_signed(signed_url: str, called_url: str) -> None:
    twilio.verify_signature(TOKEN, called_url, PARAMS, reference(signed_url, PARAMS))


@pytest.mark.parametrize(
    "other_url",
    [
        "https://hooks.example.com/webhooks/sms?tenant=us",  # another query
        "https://hooks.example.com/webhooks/sms",  # query dropped
        "https://hooks.example.com/webhooks/sms/status?tenant=eu",  # another route
        "http://hooks.example.com/webhooks/sms?tenant=eu",  # another scheme
        "https://hooks.example.com:8443/webhooks/sms?tenant=eu",  # another port
    ],
)
def test_a_signature_for_another_url_is_refused(other_url: str) -> None:
    # Twilio signs no timestamp: a "stale" request is one replayed elsewhere or altered.
    with pytest.raises(twilio.InvalidSignature, match="does not match"):
        twilio.verify_signature(TOKEN, URL, PARAMS, reference(other_url, PARAMS))


def test_forged_and_missing_signatures_are_refused() -> None:
    with pytest.raises(twilio.InvalidSignature, match="missing"):
        twilio.verify_signature(TOKEN, URL, PARAMS, None)
    with pytest.raises(twilio.InvalidSignature, match="missing"):
        twilio.verify_signature(TOKEN, URL, PARAMS, "")
    with pytest.raises(twilio.InvalidSignature):
        twilio.verify_signature(
            TOKEN, URL, PARAMS, RequestValidator("another-token").compute_signature(URL, dict(PARAMS))
        )
    altered = [(k, "Hi" if k == "Body" else v) for k, v in PARAMS]
    with pytest.raises(twilio.InvalidSignature):
        twilio.verify_signature(TOKEN, URL, altered, reference(URL, PARAMS))


def test_verified_form_parses_the_body_it_authenticates() -> None:
    body = urlencode(PARAMS).encode()
    form = twilio.verified_form(TOKEN, URL, body, reference(URL, PARAMS))
    assert form["Body"] == "Grüße \u2013 my invoice & order #42 are wrong?"
    assert form["ToCity"] == ""
    with pytest.raises(twilio.InvalidSignature):
        twilio.verified_form(TOKEN, URL, body, None)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe", "UTF-8"),
        (b"Body=%FF", "UTF-8"),
        (b"Body", "not a valid form"),
        (b"A=1&&B=2", "not a valid form"),
        ("&".join(f"P{i}=x" for i in range(twilio.MAX_FORM_FIELDS + 1)).encode(), "not a valid form"),
    ],
)
def test_malformed_forms(body: bytes, reason: str) -> None:
    with pytest.raises(twilio.MalformedForm, match=reason):
        twilio.parse_form(body)


@pytest.mark.parametrize(
    ("body", "opt_out_type", "keyword"),
    [
        ("STOP", None, "opt_out"),
        (" stop ", None, "opt_out"),
        ("Stop\n", None, "opt_out"),
        ("StopAll", None, "opt_out"),
        ("unsubscribe", None, "opt_out"),
        ("CANCEL", None, "opt_out"),
        ("end", None, "opt_out"),
        ("Quit", None, "opt_out"),
        ("START", None, "opt_in"),
        ("unstop", None, "opt_in"),
        ("help", None, "help"),
        ("Stop sending me the invoice twice", None, None),
        ("Please cancel", None, None),
        ("hello", None, None),
        ("", None, None),
        ("ALTO", "STOP", "opt_out"),  # a custom keyword Advanced Opt-Out recognised
        ("hello", "START", "opt_in"),
    ],
)
def test_consent_keywords(body: str, opt_out_type: str | None, keyword: str | None) -> None:
    assert twilio.consent_keyword(body, opt_out_type) == keyword


@pytest.mark.parametrize(
    ("twilio_status", "ours"),
    [
        ("accepted", "queued"),
        ("queued", "queued"),
        ("sending", "queued"),
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("read", "read"),
        ("undelivered", "failed"),
        ("failed", "failed"),
        ("canceled", "failed"),
        ("received", None),
        ("something-new", None),
    ],
)
def test_delivery_statuses(twilio_status: str, ours: str | None) -> None:
    assert twilio.delivery_status(twilio_status) == ours


def test_inbound_sms_is_canonical() -> None:
    now = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    message = twilio.inbound_sms(
        message_sid="MM" + "c" * 32,
        sender=twilio.phone_identity("+49 151 12345678"),
        to="+1 (415) 555-0100",
        body="see photo",
        media=[("https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME1", "image/jpeg")],
        received_at=now,
        metadata={"account_sid": "AC" + "b" * 32},
    )
    assert (message.kind, message.channel, message.provider) == ("message", "sms", "twilio")
    assert message.sender == Identity(type="phone", value="+4915112345678", verified=True)
    assert message.recipient == "+14155550100"
    assert message.attachments[0].type == "image/jpeg"
    assert message.sent_at == message.received_at == now
    assert message.metadata["dedupe"] == "provider_message_id"


def test_a_withheld_caller_id_becomes_an_identity_of_the_call() -> None:
    sid = "CA" + "d" * 32
    assert twilio.caller_identity("+4915112345678", sid).type == "phone"
    for withheld in ("Anonymous", "+266696687", "", "client:agent"):
        assert twilio.caller_identity(withheld, sid) == Identity(
            type="external", value=f"twilio-call:{sid}", verified=True
        )


def test_call_status_texts_and_timestamps() -> None:
    assert twilio.call_status_text("completed", 42) == "Call completed after 42 s"
    assert twilio.call_status_text("no-answer", None) == "Call not answered"
    assert twilio.parse_timestamp("Wed, 25 Nov 2026 08:00:42 +0000") == datetime(
        2026, 11, 25, 8, 0, 42, tzinfo=UTC
    )
    with pytest.raises(ValueError, match="RFC 2822"):
        twilio.parse_timestamp("yesterday")


def test_enqueue_twiml_is_valid_and_escaped() -> None:
    xml = twilio.enqueue_twiml("billing<&>", twilio.greeting("billing<&>"))
    root = ET.fromstring(xml.encode())
    assert root.tag == "Response"
    assert [child.tag for child in root] == ["Say", "Enqueue"]
    assert root.find("Enqueue").text == "billing<&>"  # type: ignore[union-attr]
    assert "our billing<&> team" in root.find("Say").text  # type: ignore[union-attr, operator]
    assert "our team" in twilio.greeting("general")
    assert "our customer care team" in twilio.greeting("customer-care")
    empty = ET.fromstring(twilio.EMPTY_TWIML.encode())
    assert (empty.tag, list(empty)) == ("Response", [])


class _Customers:
    def __init__(self, owner: str | None, profile: dict[str, str] | None) -> None:
        self.owner, self.profile = owner, profile

    def owner_of(self, identity: Identity) -> str | None:
        return self.owner

    def get_profile(self, customer_id: str) -> dict[str, str] | None:
        return self.profile


class _Conversations:
    def __init__(self, meta: Mapping[str, object] | None) -> None:
        self.meta = meta

    def get_meta(self, conversation_id: str) -> dict[str, object] | None:
        return dict(self.meta) if self.meta is not None else None


def test_queue_for_caller() -> None:
    caller = twilio.phone_identity("+4915112345678")
    known = _Customers("cus_1", {"open_conversation_id": "conv_1"})
    assert (
        twilio.queue_for_caller(known, _Conversations({"routing": {"queue": "billing"}}), caller) == "billing"
    )
    moved = {"queue": "retention", "routing": {"queue": "billing"}}  # transferred since routing
    assert twilio.queue_for_caller(known, _Conversations(moved), caller) == "retention"
    not_routed = _Conversations({"status": "open"})
    assert twilio.queue_for_caller(known, not_routed, caller) == "general"
    assert twilio.queue_for_caller(known, _Conversations(None), caller) == "general"
    assert twilio.queue_for_caller(_Customers("cus_1", {}), _Conversations(None), caller) == "general"
    assert twilio.queue_for_caller(_Customers(None, None), _Conversations(None), caller) == "general"
    anonymous = twilio.caller_identity("Anonymous", "CA" + "e" * 32)
    assert (
        twilio.queue_for_caller(known, _Conversations({"routing": {"queue": "billing"}}), anonymous)
        == "general"
    )
