"""Fuzzing every provider parser and every webhook with valid signatures over hostile bodies.

Bodies are random bytes, valid payloads truncated at a random point, oversized, or valid
payloads with one value replaced by the wrong type, unicode, a huge number or nothing.
A parser may only raise its documented error; a webhook may only answer 2xx (what the
provider contract says for something it may ignore) or 4xx — never 5xx, never raise.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omni.send.meta import whatsapp_message, whatsapp_status
from omni.send.twilio import (
    call_status_payload,
    incoming_call_payload,
    sms_payload,
    sms_status_payload,
    transcription_payload,
)
from shared.channels import email as email_channel
from shared.channels import meta, twilio
from tests.helpers import FIXTURES, context, http_event
from topology import TOPOLOGY

PUBLIC_BASE = "https://hooks.example.com"
TWILIO_TOKEN = TOPOLOGY.secret("twilio-auth-token").local_default
META_SECRET = TOPOLOGY.secret("meta-app-secret").local_default
EXAMPLES = 40
HANDLER_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --------------------------------------------------------------------------- #
# Strategies
# --------------------------------------------------------------------------- #
HUGE = st.sampled_from([2**63, -(2**63) - 1, 10**30, 1e308, -1e308, 0, -1])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    HUGE,
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF), max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


@st.composite
def mutated_json(draw: st.DrawFn, valid: list[dict[str, Any]]) -> bytes:
    """A valid payload with one to three values replaced, or removed."""
    document: Any = draw(st.sampled_from(valid))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(_paths(document)))
        if path and draw(st.booleans()) and isinstance(parent := _get(document, path[:-1]), dict):
            document = _replace(document, path[:-1], {k: v for k, v in parent.items() if k != path[-1]})
        else:
            document = _replace(document, path, draw(json_values))
    return json.dumps(document).encode()


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


@st.composite
def truncated(draw: st.DrawFn, valid: list[bytes]) -> bytes:
    body = draw(st.sampled_from(valid))
    return body[: draw(st.integers(min_value=0, max_value=max(len(body) - 1, 0)))]


def hostile_bodies(valid_json: list[dict[str, Any]]) -> st.SearchStrategy[bytes]:
    encoded = [json.dumps(v).encode() for v in valid_json]
    return st.one_of(
        st.binary(max_size=600),
        st.text(max_size=300).map(str.encode),
        truncated(encoded),
        mutated_json(valid_json),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.sampled_from(encoded).map(lambda b: b + b" " * 300_000),  # oversized
        st.sampled_from(encoded).map(lambda b: b.replace(b"[", b"[" * 400, 1)),  # deeply nested
    )


WHATSAPP_VALID = [
    whatsapp_message("4915112345678", "Hallo", name="Jörg"),
    whatsapp_message("4915112345678", "look", kind="image"),
    whatsapp_message("4915112345678", "here", kind="location"),
    whatsapp_message("4915112345678", "yes", kind="interactive"),
    whatsapp_status("wamid.ABC", "delivered", recipient="4915112345678"),
    json.loads((FIXTURES / "meta" / "whatsapp_batch.json").read_text()),
    json.loads((FIXTURES / "meta" / "whatsapp_errors.json").read_text()),
]
MESSENGER_VALID = [
    json.loads((FIXTURES / "meta" / name).read_text())
    for name in (
        "messenger_text.json",
        "messenger_batch.json",
        "messenger_mixed.json",
        "instagram_messages.json",
    )
]


def _form_valid() -> dict[str, list[list[tuple[str, str]]]]:
    return {
        "/webhooks/sms": [
            sms_payload("SM" + "a" * 32, "+14155550100", "Hi"),
            sms_payload("SM" + "b" * 32, "0151", "STOP"),
        ],
        "/webhooks/sms/status": [sms_status_payload("SM" + "c" * 32, "delivered", "+14155550100")],
        "/webhooks/voice": [incoming_call_payload("CA" + "d" * 32, "+14155550100")],
        "/webhooks/voice/status": [call_status_payload("CA" + "d" * 32, "+14155550100", "completed", 42)],
        "/webhooks/voice/transcription": [
            transcription_payload(
                "CA" + "d" * 32, "+14155550100", "I need help with my bill", "TR" + "f" * 32, "RE" + "f" * 32
            )
        ],
    }


form_values = st.one_of(
    st.text(max_size=60),
    st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF), max_size=30),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.sampled_from(["", " ", "\x00", "null", "NaN", "1e999", "-1", "+", "00", "9" * 400]),
    st.text(max_size=5).map(lambda s: s * 2000),
)


@st.composite
def mutated_form(draw: st.DrawFn, valid: list[list[tuple[str, str]]]) -> list[tuple[str, str]]:
    params = list(draw(st.sampled_from(valid)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        action = draw(st.sampled_from(["replace", "drop", "add", "duplicate"]))
        if action == "add" or not params:
            params.append((draw(st.text(max_size=20)), draw(form_values)))
            continue
        index = draw(st.integers(min_value=0, max_value=len(params) - 1))
        if action == "replace":
            params[index] = (params[index][0], draw(form_values))
        elif action == "drop":
            params.pop(index)
        else:
            params.append((params[index][0], draw(form_values)))
    return params


# --------------------------------------------------------------------------- #
# Pure parsers: only their documented errors
# --------------------------------------------------------------------------- #
@settings(max_examples=150, deadline=None)
@given(body=hostile_bodies(WHATSAPP_VALID))
def test_whatsapp_parser_raises_only_invalid_payload(body: bytes) -> None:
    with contextlib.suppress(meta.InvalidPayload):
        meta.parse_whatsapp(body, datetime.now(UTC))


@settings(max_examples=150, deadline=None)
@given(body=hostile_bodies(MESSENGER_VALID))
def test_messenger_parser_raises_only_invalid_payload(body: bytes) -> None:
    with contextlib.suppress(meta.InvalidPayload):
        meta.parse_messenger(body, datetime.now(UTC))


@settings(max_examples=150, deadline=None)
@given(body=st.one_of(st.binary(max_size=500), st.text(max_size=300).map(str.encode)))
def test_twilio_form_parser_raises_only_malformed_form(body: bytes) -> None:
    with contextlib.suppress(twilio.MalformedForm):
        twilio.parse_form(body)


@settings(max_examples=100, deadline=None)
@given(params=mutated_form(_form_valid()["/webhooks/sms"]))
def test_twilio_signed_form_round_trips_or_is_refused(params: list[tuple[str, str]]) -> None:
    url = PUBLIC_BASE + "/webhooks/sms"
    body = urlencode(params).encode()
    try:
        form = twilio.verified_form(
            TWILIO_TOKEN, url, body, twilio.compute_signature(TWILIO_TOKEN, url, params)
        )
    except twilio.TwilioRequestError:
        return
    assert set(form) <= {key for key, _ in params}


def _emails() -> list[bytes]:
    return [path.read_bytes() for path in sorted((FIXTURES / "email").glob("*.eml"))]


def _receipt() -> email_channel.Receipt:
    return email_channel.Receipt(
        ses_message_id="ses-1",
        timestamp=datetime(2026, 11, 25, 9, 0, tzinfo=UTC),
        recipients=("support@example.com",),
        envelope_from="bounce@example.org",
        verdicts=email_channel.Verdicts(spf="PASS", dkim="PASS", dmarc="PASS"),
        bucket="mail",
        key="inbound/ses-1",
    )


@st.composite
def hostile_emails(draw: st.DrawFn) -> bytes:
    fixture = draw(st.sampled_from(_emails()))
    choice = draw(st.integers(min_value=0, max_value=3))
    if choice == 0:
        return draw(st.binary(max_size=800))
    if choice == 1:
        return fixture[: draw(st.integers(min_value=0, max_value=len(fixture)))]
    if choice == 2:  # a header value replaced by hostile text
        lines = fixture.split(b"\n")
        index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        lines[index] = (
            lines[index].split(b":", 1)[0] + b": " + draw(form_values).encode("utf-8", "surrogatepass")
        )
        return b"\n".join(lines)

    # Hand-built: hostile header values the e-mail library would refuse to write itself.
    def header(text: str) -> bytes:
        return text.replace("\r", " ").replace("\n", " ").encode("utf-8", "surrogatepass")

    sender, subject = draw(form_values), draw(form_values)
    return (
        b"From: " + header(sender) + b"\r\nSubject: " + header(subject) + b"\r\n"
        b"Content-Type: "
        + header(draw(st.sampled_from(["text/plain", "text/html", "multipart/mixed", "x/y"])))
        + b"\r\n\r\n"
        + draw(st.binary(max_size=300))
    )


@settings(max_examples=150, deadline=None)
@given(raw=hostile_emails())
def test_email_parser_raises_only_unparseable_email(raw: bytes) -> None:
    try:
        parsed = email_channel.parse_email(raw)
        message = email_channel.inbound_message(parsed, _receipt(), datetime.now(UTC))
    except email_channel.UnparseableEmail:
        return
    assert message.channel == "email"


# --------------------------------------------------------------------------- #
# Webhooks under moto: valid signatures over hostile bodies
# --------------------------------------------------------------------------- #
def _invoke(function: str, route: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    from importlib import import_module  # noqa: PLC0415

    handler: Callable[..., dict[str, Any]] = import_module(
        TOPOLOGY.function(function).handler.rsplit(".", 1)[0]
    ).handler
    event = http_event("POST", route, headers=headers)
    event["body"] = base64.b64encode(body).decode()
    event["isBase64Encoded"] = True
    event["rawPath"] = route
    return handler(event, context(function))


def _assert_client_error_or_ignored(response: dict[str, Any], body: bytes) -> None:
    status = response["statusCode"]
    assert status < 500, (status, response.get("body"), body[:300])
    assert status in (200, 201, 202, 204, 400, 401, 404, 409, 413, 415, 422), (status, response.get("body"))


@pytest.fixture
def hooks(stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch) -> dict[Any, str]:
    monkeypatch.setenv("OMNI_PUBLIC_BASE_URL", PUBLIC_BASE)
    return stack


def meta_headers(body: bytes) -> dict[str, str]:
    signature = "sha256=" + hmac.new(META_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"content-type": "application/json", "x-hub-signature-256": signature}


@HANDLER_SETTINGS
@given(body=hostile_bodies(WHATSAPP_VALID))
def test_whatsapp_webhook_answers_4xx_or_200_never_5xx(hooks: dict[Any, str], body: bytes) -> None:
    _assert_client_error_or_ignored(_invoke("whatsapp", "/webhooks/whatsapp", body, meta_headers(body)), body)


@HANDLER_SETTINGS
@given(body=hostile_bodies(MESSENGER_VALID))
def test_messenger_webhook_answers_4xx_or_200_never_5xx(hooks: dict[Any, str], body: bytes) -> None:
    _assert_client_error_or_ignored(
        _invoke("messenger", "/webhooks/messenger", body, meta_headers(body)), body
    )


FORM_ROUTES = sorted(_form_valid())


@HANDLER_SETTINGS
@given(data=st.data(), route=st.sampled_from(FORM_ROUTES))
def test_twilio_webhooks_answer_4xx_or_200_never_5xx(
    hooks: dict[Any, str], data: st.DataObject, route: str
) -> None:
    function = "sms" if route.startswith("/webhooks/sms") else "voice"
    if data.draw(st.booleans()):
        params = data.draw(mutated_form(_form_valid()[route]))
        body = urlencode(params).encode()
    else:  # raw junk, signed over whatever it parses to (if anything)
        body = data.draw(st.one_of(st.binary(max_size=400), st.text(max_size=200).map(str.encode)))
        try:
            params = twilio.parse_form(body)
        except twilio.MalformedForm:
            params = []
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": twilio.compute_signature(TWILIO_TOKEN, PUBLIC_BASE + route, params),
    }
    _assert_client_error_or_ignored(_invoke(function, route, body, headers), body)


def test_signed_twilio_junk_is_actually_reaching_the_parser(hooks: dict[Any, str]) -> None:
    """The fuzzer's signatures are valid: a well-formed SMS through the same path is accepted."""
    params = sms_payload("SM" + "e" * 32, "+14155550100", "hello")
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": twilio.compute_signature(TWILIO_TOKEN, PUBLIC_BASE + "/webhooks/sms", params),
    }
    assert _invoke("sms", "/webhooks/sms", urlencode(params).encode(), headers)["statusCode"] == 200
    body = json.dumps(WHATSAPP_VALID[0]).encode()
    assert _invoke("whatsapp", "/webhooks/whatsapp", body, meta_headers(body))["statusCode"] == 200


WEBCHAT_VALID = [
    {"message_id": "m-1", "text": "hello", "sent_at": "2026-11-25T09:00:00+00:00"},
    {"message_id": "m-2", "text": "ünïcødé ✓", "sent_at": "2026-11-25T09:00:00Z"},
]


@HANDLER_SETTINGS
@given(
    body=hostile_bodies(WEBCHAT_VALID), session_body=hostile_bodies([{}, {"customer": {"email": "a@b.co"}}])
)
def test_webchat_answers_4xx_or_2xx_never_5xx(
    hooks: dict[Any, str], body: bytes, session_body: bytes
) -> None:
    opened = _invoke("webchat", "/webchat/sessions", session_body, {"content-type": "application/json"})
    _assert_client_error_or_ignored(opened, session_body)
    session = json.loads(
        _invoke("webchat", "/webchat/sessions", b"{}", {"content-type": "application/json"})["body"]
    )
    route = "/webchat/sessions/{session_id}/messages"
    from functions.webchat.handler import handler  # noqa: PLC0415

    event = http_event(
        "POST",
        route,
        path_parameters={"session_id": session["session_id"]},
        headers={"content-type": "application/json", "authorization": f"Bearer {session['token']}"},
    )
    event["body"] = base64.b64encode(body).decode()
    event["isBase64Encoded"] = True
    _assert_client_error_or_ignored(handler(event, context("webchat")), body)


SES_EVENT = json.loads((FIXTURES / "email" / "ses_lambda_event.json").read_text())


@HANDLER_SETTINGS
@given(body=mutated_json([SES_EVENT]))
def test_email_function_never_raises_on_a_hostile_ses_event(hooks: dict[Any, str], body: bytes) -> None:
    from functions.email.handler import handler  # noqa: PLC0415

    result = handler(json.loads(body), context("email"))
    assert {r["status"] for r in result["results"]} <= {"published", "skipped"}, result


@pytest.mark.parametrize("body", [b"\x80", b'{"customer": "\xff"}', b"\xef\xbb\xbf{}\xc3"])
def test_a_body_that_is_not_utf8_is_a_400_not_a_crash(hooks: dict[Any, str], body: bytes) -> None:
    """Found by the fuzzer: the validation middleware decoded the body and raised UnicodeDecodeError."""
    response = _invoke("webchat", "/webchat/sessions", body, {"content-type": "application/json"})
    assert response["statusCode"] == 400, response
    assert "UTF-8" in json.loads(response["body"])["message"]
