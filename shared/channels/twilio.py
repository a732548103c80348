"""Twilio (SMS and voice): signatures, form bodies, keywords, statuses, TwiML. No AWS.

Twilio posts ``application/x-www-form-urlencoded`` bodies and signs each request:
``X-Twilio-Signature = base64(HMAC-SHA1(auth token, URL + name1 + value1 + name2 + ...))``
with the full URL it called (query string included) and every POST parameter, sorted
by name. Nothing time-dependent is signed, so a request cannot be "stale": what a
signature proves is that Twilio sent exactly these parameters to exactly this URL. A
replayed request carries its original SID, which downstream records only once.

The functions here turn verified form fields into the canonical
:class:`~shared.contracts.events.MessageReceived`, map delivery statuses onto ours, and write
the TwiML the webhooks answer with.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit, urlunsplit
from xml.sax.saxutils import escape

from shared.contracts.events import (
    Attachment,
    ConsentKeyword,
    DeliveryStatus,
    Identity,
    MessageKind,
    MessageReceived,
)
from shared.domain.identity import InvalidIdentity, normalise_phone

PROVIDER = "twilio"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
#: Header names arrive lower-cased in API Gateway's payload format 2.0.
SIGNATURE_HEADER = "x-twilio-signature"
#: Twilio's webhooks carry a few dozen parameters; far more is not Twilio.
MAX_FORM_FIELDS = 200
#: The queue a caller waits in when routing has not chosen one for them.
DEFAULT_QUEUE = "general"

Params = Sequence[tuple[str, str]]


class TwilioRequestError(Exception):
    """A webhook request we refuse; ``status`` is the HTTP status to answer with."""

    status = 400


class MalformedForm(TwilioRequestError):
    status = 400


class InvalidSignature(TwilioRequestError):
    status = 401


# --------------------------------------------------------------------------- #
# The request: form body and signature
# --------------------------------------------------------------------------- #
def parse_form(body: bytes) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs of a form body, in order, blank values kept."""
    try:
        text = body.decode("utf-8")
        return parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=True,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except UnicodeDecodeError as exc:
        raise MalformedForm("the form body is not valid UTF-8") from exc
    except ValueError as exc:
        raise MalformedForm(f"the body is not a valid form: {exc}") from exc


def signed_text(url: str, params: Iterable[tuple[str, str]]) -> str:
    """What Twilio signs: the URL, then each parameter's name and value, sorted by name.

    A name sent more than once contributes each of its distinct values, sorted (as
    Twilio's own validators do).
    """
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    parts = [url]
    for name in sorted(values):
        parts.extend(name + value for value in sorted(values[name]))
    return "".join(parts)


def compute_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    digest = hmac.new(auth_token.encode(), signed_text(url, params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def url_variants(url: str) -> list[str]:
    """``url`` as given, without and with its scheme's default port.

    Twilio is not consistent about signing ``https://host/...`` or ``https://host:443/...``.
    """
    parts = urlsplit(url)
    default_port = {"https": 443, "http": 80}.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:
        return [url]
    if default_port is None or not parts.hostname or port not in (None, default_port):
        return [url]  # an explicit non-default port is signed as it is
    userinfo, at, host_port = parts.netloc.rpartition("@")
    host = host_port.rsplit(":", 1)[0] if port is not None else host_port
    variants = [url]
    for netloc in (f"{userinfo}{at}{host}", f"{userinfo}{at}{host}:{default_port}"):
        candidate = urlunsplit(parts._replace(netloc=netloc))
        if candidate not in variants:
            variants.append(candidate)
    return variants


def verify_signature(auth_token: str, url: str, params: Params, signature: str | None) -> None:
    """Raise :class:`InvalidSignature` unless ``signature`` is Twilio's for ``url`` and ``params``."""
    if not signature:
        raise InvalidSignature("the X-Twilio-Signature header is missing")
    given = signature.strip().encode()
    matched = False
    for candidate in url_variants(url):
        expected = compute_signature(auth_token, candidate, params).encode()
        # Every variant is compared, so the time taken does not depend on which one matched.
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise InvalidSignature("the X-Twilio-Signature does not match this request")


def verified_form(auth_token: str, url: str, body: bytes, signature: str | None) -> dict[str, str]:
    """Parse and authenticate a webhook; returns its parameters by name (the last value wins)."""
    if not signature:
        raise InvalidSignature("the X-Twilio-Signature header is missing")
    params = parse_form(body)
    verify_signature(auth_token, url, params, signature)
    return dict(params)


# --------------------------------------------------------------------------- #
# SMS
# --------------------------------------------------------------------------- #
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP"})
#: ``OptOutType`` Twilio adds when a Messaging Service's Advanced Opt-Out matched a keyword.
OPT_OUT_TYPES: Mapping[str, ConsentKeyword] = {"STOP": "opt_out", "START": "opt_in", "HELP": "help"}


def consent_keyword(body: str, opt_out_type: str | None = None) -> ConsentKeyword | None:
    """The consent keyword an SMS is, if the whole message is one (any case, blanks trimmed).

    Twilio's own verdict (``OptOutType``, which covers custom keywords) wins.
    """
    if opt_out_type and opt_out_type.strip().upper() in OPT_OUT_TYPES:
        return OPT_OUT_TYPES[opt_out_type.strip().upper()]
    word = body.strip().upper()
    if word in OPT_OUT_KEYWORDS:
        return "opt_out"
    if word in OPT_IN_KEYWORDS:
        return "opt_in"
    if word in HELP_KEYWORDS:
        return "help"
    return None


def phone_identity(raw: str) -> Identity:
    """The sending phone, proven by the carrier and Twilio; raises InvalidIdentity."""
    return Identity(type="phone", value=normalise_phone(raw), verified=True)


def our_number(raw: str) -> str | None:
    """Our number the customer wrote to or called, E.164 when it is a phone number."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        return normalise_phone(raw)
    except InvalidIdentity:
        return raw[:320]


def inbound_sms(
    *,
    message_sid: str,
    sender: Identity,
    to: str,
    body: str,
    media: Sequence[tuple[str, str]],
    received_at: datetime,
    opt_out_type: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> MessageReceived:
    """The canonical message of an inbound SMS/MMS; ``media`` is ``(url, content type)`` pairs.

    Twilio's SMS webhook carries no send time, so ``sent_at`` is when we received it;
    a retry is recognised by its MessageSid downstream, not by its timestamp.
    """
    keyword = consent_keyword(body, opt_out_type)
    return MessageReceived(
        kind="consent" if keyword else "message",
        keyword=keyword,
        channel="sms",
        provider=PROVIDER,
        provider_message_id=message_sid,
        sender=sender,
        recipient=our_number(to),
        text=body,
        attachments=tuple(Attachment(type=content_type, url=url) for url, content_type in media),
        sent_at=received_at,
        received_at=received_at,
        metadata={**(metadata or {}), "dedupe": "provider_message_id"},
    )


#: Twilio's MessageStatus values onto our delivery statuses.
DELIVERY_STATUSES: Mapping[str, DeliveryStatus] = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}


def delivery_status(message_status: str) -> DeliveryStatus | None:
    """Our status for Twilio's ``MessageStatus``; None for statuses of inbound messages or unknown ones."""
    return DELIVERY_STATUSES.get(message_status.strip().lower())


# --------------------------------------------------------------------------- #
# Voice
# --------------------------------------------------------------------------- #
#: Call statuses after which a call is over (Twilio sends only these by default).
TERMINAL_CALL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
_CALL_OUTCOMES = {
    "busy": "Call not connected: the line was busy",
    "failed": "Call failed",
    "no-answer": "Call not answered",
    "canceled": "Call canceled",
}


def caller_identity(raw_from: str, call_sid: str) -> Identity:
    """The calling phone; a withheld or unusable caller id becomes an identity of the call itself.

    So the call, its status and its transcription still land together in one
    conversation, which an agent can later attach to the right customer.
    """
    try:
        return phone_identity(raw_from)
    except InvalidIdentity:
        return Identity(type="external", value=f"twilio-call:{call_sid}", verified=True)


def parse_timestamp(value: str) -> datetime:
    """Twilio's RFC 2822 ``Timestamp`` (``Tue, 25 Nov 2026 08:00:00 +0000``); raises ValueError."""
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"not an RFC 2822 date: {value!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _call_message(
    *,
    kind: MessageKind,
    provider_message_id: str,
    caller: Identity,
    to: str,
    text: str,
    sent_at: datetime,
    received_at: datetime,
    metadata: Mapping[str, str],
    attachments: Sequence[Attachment] = (),
) -> MessageReceived:
    return MessageReceived(
        kind=kind,
        channel="voice",
        provider=PROVIDER,
        provider_message_id=provider_message_id,
        sender=caller,
        recipient=our_number(to),
        text=text,
        attachments=tuple(attachments),
        sent_at=sent_at,
        received_at=received_at,
        metadata={k: v for k, v in metadata.items() if v},
    )


def incoming_call(
    *,
    call_sid: str,
    caller: Identity,
    to: str,
    call_status: str,
    queue: str,
    received_at: datetime,
    caller_name: str | None = None,
) -> MessageReceived:
    return _call_message(
        kind="call",
        provider_message_id=call_sid,
        caller=caller,
        to=to,
        text="Incoming call",
        sent_at=received_at,
        received_at=received_at,
        metadata={
            "call_sid": call_sid,
            "call_status": call_status,
            "queue": queue,
            "caller_name": caller_name or "",
        },
    )


def call_status_text(call_status: str, duration_s: int | None) -> str:
    if call_status == "completed":
        return f"Call completed after {duration_s} s" if duration_s is not None else "Call completed"
    return _CALL_OUTCOMES.get(call_status, f"Call {call_status}")


def call_ended(
    *,
    call_sid: str,
    caller: Identity,
    to: str,
    call_status: str,
    duration_s: int | None,
    ended_at: datetime | None,
    received_at: datetime,
) -> MessageReceived:
    """The end of a call (a terminal status callback): one message per call and status.

    Twilio's ``Timestamp`` has whole seconds while the call's earlier events carry the
    time we received them; the end is placed at the end of its second, so a short call
    does not sort before its own start.
    """
    if ended_at is not None and ended_at.microsecond == 0:
        ended_at += timedelta(microseconds=999_999)
    return _call_message(
        kind="call_status",
        provider_message_id=f"{call_sid}:status:{call_status}",
        caller=caller,
        to=to,
        text=call_status_text(call_status, duration_s),
        sent_at=ended_at or received_at,
        received_at=received_at,
        metadata={
            "call_sid": call_sid,
            "call_status": call_status,
            "duration_s": "" if duration_s is None else str(duration_s),
        },
    )


def transcription(
    *,
    transcription_sid: str,
    call_sid: str,
    caller: Identity,
    to: str,
    status: str,
    text: str,
    recording_sid: str | None,
    recording_url: str | None,
    received_at: datetime,
) -> MessageReceived:
    """What the caller said on a recording, as a message of the call's conversation."""
    attachments = []
    if recording_url:
        # Twilio serves a recording's URL as WAV unless an extension asks for another format.
        attachments.append(Attachment(type="audio/wav", url=recording_url, name=recording_sid))
    transcribed = status == "completed" and bool(text.strip())
    body = text if transcribed else "(The recording could not be transcribed.)"
    return _call_message(
        kind="transcription",
        provider_message_id=transcription_sid,
        caller=caller,
        to=to,
        text=body,
        sent_at=received_at,
        received_at=received_at,
        metadata={
            "call_sid": call_sid,
            "transcription_status": status,
            "recording_sid": recording_sid or "",
        },
        attachments=attachments,
    )


class _Customers(Protocol):
    def owner_of(self, identity: Identity) -> str | None: ...

    def get_profile(self, customer_id: str) -> dict[str, Any] | None: ...


class _Conversations(Protocol):
    def get_meta(self, conversation_id: str) -> dict[str, Any] | None: ...


def queue_for_caller(customers: _Customers, conversations: _Conversations, caller: Identity) -> str:
    """The queue of the caller's open conversation, else :data:`DEFAULT_QUEUE`.

    Three key look-ups, fast enough for Twilio's answer deadline.
    """
    if caller.type != "phone":
        return DEFAULT_QUEUE
    customer_id = customers.owner_of(caller)
    profile = customers.get_profile(customer_id) if customer_id else None
    conversation_id = (profile or {}).get("open_conversation_id")
    meta = conversations.get_meta(conversation_id) if conversation_id else None
    if not meta:
        return DEFAULT_QUEUE
    # The conversation's current queue (after a transfer or an overflow), else routing's choice.
    for queue in (meta.get("queue"), (meta.get("routing") or {}).get("queue")):
        if isinstance(queue, str) and queue:
            return queue
    return DEFAULT_QUEUE


# --------------------------------------------------------------------------- #
# TwiML
# --------------------------------------------------------------------------- #
TWIML_CONTENT_TYPE = "text/xml"
_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
#: The answer to a message or callback when there is nothing to say.
EMPTY_TWIML = f"{_XML_DECLARATION}<Response/>"


def greeting(queue: str) -> str:
    """What a caller hears before waiting in ``queue`` (``billing`` -> "our billing team")."""
    name = " ".join(queue.replace("-", " ").replace("_", " ").split())
    who = "our team" if queue == DEFAULT_QUEUE or not name else f"our {name} team"
    return f"Thank you for calling. Please hold; the next available member of {who} will be with you shortly."


def enqueue_twiml(queue: str, greeting_text: str) -> str:
    """Greet the caller and put them in the Twilio queue named ``queue``."""
    return (
        f"{_XML_DECLARATION}<Response>"
        f"<Say>{escape(greeting_text)}</Say>"
        f"<Enqueue>{escape(queue)}</Enqueue>"
        "</Response>"
    )
