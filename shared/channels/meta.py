"""Meta webhooks: WhatsApp Cloud API, Messenger and Instagram. Pure functions, no AWS.

* :func:`verify_signature` checks ``X-Hub-Signature-256`` (``sha256=`` + hex HMAC-SHA256
  of the raw body, keyed with the app secret) in constant time;
* :func:`answer_handshake` answers the subscription handshake (``hub.mode``,
  ``hub.verify_token``, ``hub.challenge``);
* :func:`parse_whatsapp` and :func:`parse_messenger` turn a notification into canonical
  :class:`~shared.contracts.events.MessageReceived` events plus the delivery statuses of messages
  we sent, and say what they left out (echoes of our own messages, read receipts, ...).

Meta adds fields over time, so the models accept unknown fields and check only those
we use; a body without them is refused with the path of the first missing field.
Everything derived from a notification (ids, timestamps) comes from the notification
itself, so a retried notification yields the same events.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from shared.contracts.events import Attachment, Identity, MessageReceived
from shared.domain.identity import InvalidIdentity, normalise_value

PROVIDER = "meta"
SIGNATURE_HEADER = "x-hub-signature-256"
WHATSAPP_OBJECT = "whatsapp_business_account"
#: ``object`` of a Messenger-platform notification -> our channel (and identity type).
MESSENGER_OBJECTS: dict[str, Literal["messenger", "instagram"]] = {
    "page": "messenger",
    "instagram": "instagram",
}
#: WhatsApp ``statuses[].status`` -> our delivery status (``played`` is a voice message heard).
WHATSAPP_STATUSES = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "played": "read",
    "failed": "failed",
}
#: Where a WhatsApp media attachment lives: Cloud API hands a media id, fetched with the token.
WHATSAPP_MEDIA_SCHEME = "whatsapp-media:"
WHATSAPP_MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")

MAX_TEXT = 20_000
MAX_URL = 2048
_SIGNATURE = re.compile(r"^sha256=([0-9a-fA-F]{64})$")
_MAX_CHALLENGE = 256


# --------------------------------------------------------------------------- #
# Signature and handshake
# --------------------------------------------------------------------------- #
class InvalidSignature(Exception):
    """``X-Hub-Signature-256`` is missing, malformed or not made with our app secret."""


class HandshakeRefused(Exception):
    """The subscription handshake cannot be answered: ``status`` is 400 or 403."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def sign(app_secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends with ``body``."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(app_secret: str, body: bytes, header: str | None) -> None:
    """Raise :class:`InvalidSignature` unless ``header`` signs exactly ``body``."""
    if not header:
        raise InvalidSignature(f"the {SIGNATURE_HEADER} header is missing")
    found = _SIGNATURE.match(header.strip())
    if not found:
        raise InvalidSignature(f"the {SIGNATURE_HEADER} header is not sha256=<64 hex digits>")
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), found.group(1).lower().encode()):
        raise InvalidSignature(f"the {SIGNATURE_HEADER} signature does not match the body")


def answer_handshake(params: Mapping[str, str] | None, verify_token: str) -> str:
    """The ``hub.challenge`` to echo when Meta subscribes the webhook with our verify token."""
    params = params or {}
    missing = [name for name in ("hub.mode", "hub.verify_token", "hub.challenge") if not params.get(name)]
    if missing:
        raise HandshakeRefused(400, f"missing query parameter(s): {', '.join(missing)}")
    if params["hub.mode"] != "subscribe":
        raise HandshakeRefused(400, "hub.mode must be 'subscribe'")
    challenge = params["hub.challenge"]
    if len(challenge) > _MAX_CHALLENGE or not challenge.isprintable():
        raise HandshakeRefused(400, "hub.challenge is not a short printable string")
    if not hmac.compare_digest(params["hub.verify_token"].encode(), verify_token.encode()):
        raise HandshakeRefused(403, "hub.verify_token does not match")
    return challenge


# --------------------------------------------------------------------------- #
# What a notification amounts to
# --------------------------------------------------------------------------- #
class InvalidPayload(ValueError):
    """The body is not a notification we can read; the message says where and why."""


@dataclass(frozen=True)
class StatusUpdate:
    """A delivery status of a message we sent, from the provider."""

    provider_message_id: str
    status: Literal["sent", "delivered", "read", "failed"]
    at: datetime
    error_code: str | None = None
    #: WhatsApp: the ``biz_opaque_callback_data`` we sent with the message, echoed back.
    callback_data: str | None = None


@dataclass
class Notification:
    """The canonical content of one webhook POST."""

    object: str
    messages: list[MessageReceived] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    #: What was deliberately left out, one short reason each (echo, read receipt, ...).
    ignored: list[str] = field(default_factory=list)
    #: False when ``object`` is not one this webhook serves (everything was ignored).
    known_object: bool = True
    _keys: set[str] = field(default_factory=set, repr=False)

    def add_message(self, message: MessageReceived) -> None:
        # Meta may repeat an event inside one notification; publish it once.
        if message.message_key not in self._keys:
            self._keys.add(message.message_key)
            self.messages.append(message)


# --------------------------------------------------------------------------- #
# Field types
# --------------------------------------------------------------------------- #
def _from_unix(value: Any) -> Any:
    """Unix time as Meta sends it: seconds (WhatsApp, as a string) or milliseconds (Messenger)."""
    if isinstance(value, datetime) or value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("expected a unix timestamp")
    try:
        number = float(value)
    except ValueError:
        raise ValueError("expected a unix timestamp") from None
    if not 0 <= number < 1e14:
        raise ValueError("unix timestamp out of range")
    if number >= 1e11:  # milliseconds: seconds this large are 5,000 years away
        number /= 1000
    return datetime.fromtimestamp(number, UTC)


UnixTime = Annotated[datetime, BeforeValidator(_from_unix)]
MessageId = Annotated[str, Field(min_length=1, max_length=200)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="allow", coerce_numbers_to_str=True, populate_by_name=True, defer_build=True
    )


# --------------------------------------------------------------------------- #
# WhatsApp Cloud API (object "whatsapp_business_account", field "messages")
# --------------------------------------------------------------------------- #
class WaMetadata(_Model):
    phone_number_id: Annotated[str, Field(min_length=1, max_length=64)]
    display_phone_number: str | None = None


class WaProfile(_Model):
    name: str | None = None


class WaContact(_Model):
    wa_id: str | None = None
    profile: WaProfile | None = None


class WaText(_Model):
    body: str = ""


class WaMedia(_Model):
    id: str | None = None
    mime_type: str | None = None
    caption: str | None = None
    filename: str | None = None
    url: str | None = None


class WaLocation(_Model):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


class WaReply(_Model):
    id: str | None = None
    title: str | None = None
    description: str | None = None


class WaInteractive(_Model):
    type: str
    button_reply: WaReply | None = None
    list_reply: WaReply | None = None


class WaButton(_Model):
    text: str | None = None
    payload: str | None = None


class WaContext(_Model):
    id: str | None = None


class WaError(_Model):
    code: str | None = None
    title: str | None = None


class WaMessage(_Model):
    from_: Annotated[str, Field(alias="from", min_length=1, max_length=40)]
    id: MessageId
    timestamp: UnixTime
    type: Annotated[str, Field(min_length=1, max_length=50)]
    text: WaText | None = None
    image: WaMedia | None = None
    video: WaMedia | None = None
    audio: WaMedia | None = None
    document: WaMedia | None = None
    sticker: WaMedia | None = None
    location: WaLocation | None = None
    interactive: WaInteractive | None = None
    button: WaButton | None = None
    context: WaContext | None = None
    errors: list[WaError] = Field(default_factory=list)


class WaStatus(_Model):
    id: MessageId
    status: Annotated[str, Field(min_length=1, max_length=50)]
    timestamp: UnixTime
    recipient_id: str | None = None
    errors: list[WaError] = Field(default_factory=list)
    biz_opaque_callback_data: Annotated[str, Field(max_length=512)] | None = None


class WaValue(_Model):
    metadata: WaMetadata
    contacts: list[WaContact] = Field(default_factory=list)
    messages: list[WaMessage] = Field(default_factory=list)
    statuses: list[WaStatus] = Field(default_factory=list)
    #: Problems Meta reports outside any message (a rate limit, ...).
    errors: list[WaError] = Field(default_factory=list)


class WaChange(_Model):
    field: str
    #: Checked as :class:`WaValue` only for ``field == "messages"``; other fields differ.
    value: dict[str, Any]


class WaEntry(_Model):
    id: str
    changes: list[WaChange] = Field(default_factory=list)


class Envelope(_Model):
    object: Annotated[str, Field(min_length=1, max_length=100)]
    entry: list[dict[str, Any]]


class WhatsAppNotification(_Model):
    object: str
    entry: list[WaEntry]


# --------------------------------------------------------------------------- #
# Messenger and Instagram (object "page" / "instagram", entry[].messaging[])
# --------------------------------------------------------------------------- #
class MsParty(_Model):
    id: str | None = None
    user_ref: str | None = None


class MsAttachmentPayload(_Model):
    url: str | None = None


class MsAttachment(_Model):
    type: Annotated[str, Field(min_length=1, max_length=100)]
    payload: MsAttachmentPayload | None = None
    #: Older ``fallback`` attachments carry the shared link here rather than in ``payload``.
    url: str | None = None
    title: str | None = None


class MsQuickReply(_Model):
    payload: str | None = None


class MsReplyTo(_Model):
    mid: str | None = None


class MsMessage(_Model):
    mid: MessageId
    text: str | None = None
    attachments: list[MsAttachment] = Field(default_factory=list)
    quick_reply: MsQuickReply | None = None
    reply_to: MsReplyTo | None = None
    is_echo: bool = False
    is_deleted: bool = False
    is_unsupported: bool = False


class MsPostback(_Model):
    mid: MessageId | None = None
    title: str | None = None
    payload: str | None = None


class MsDelivery(_Model):
    mids: list[str] = Field(default_factory=list)
    watermark: UnixTime | None = None


class MsRead(_Model):
    #: Messenger reports reads with a watermark; Instagram names the message read.
    watermark: UnixTime | None = None
    mid: str | None = None


class MsEvent(_Model):
    sender: MsParty | None = None
    recipient: MsParty | None = None
    timestamp: UnixTime | None = None
    message: MsMessage | None = None
    postback: MsPostback | None = None
    delivery: MsDelivery | None = None
    read: MsRead | None = None


class MsEntry(_Model):
    id: str
    time: UnixTime | None = None
    messaging: list[MsEvent] = Field(default_factory=list)


class MessengerNotification(_Model):
    object: str
    entry: list[MsEntry]


# --------------------------------------------------------------------------- #
# Parsing
# --------------------------------------------------------------------------- #
def _problem(exc: ValidationError, prefix: str = "") -> InvalidPayload:
    first = exc.errors()[0]
    path = ".".join(str(part) for part in first.get("loc", ()))
    where = ".".join(p for p in (prefix, path) if p) or "body"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return InvalidPayload(f"{where}: {first.get('msg', 'invalid')}{more}")


def read_envelope(body: bytes) -> tuple[str, dict[str, Any]]:
    """The ``object`` of a notification and the notification, or :class:`InvalidPayload`."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidPayload(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidPayload("the body must be a JSON object")
    try:
        envelope = Envelope.model_validate(data)
    except ValidationError as exc:
        raise _problem(exc) from None
    return envelope.object, data


def _clip(text: str | None, limit: int) -> str:
    return (text or "")[:limit]


def _identity(identity_type: str, raw: str, where: str) -> str:
    try:
        return normalise_value(identity_type, raw)
    except InvalidIdentity as exc:
        raise InvalidPayload(f"{where}: {exc}") from None


def parse_whatsapp(body: bytes, received_at: datetime) -> Notification:
    """A WhatsApp Cloud API notification: customer messages and our messages' statuses."""
    kind, data = read_envelope(body)
    if kind != WHATSAPP_OBJECT:
        return Notification(object=kind, ignored=[f"object {kind}"], known_object=False)
    try:
        notification = WhatsAppNotification.model_validate(data)
    except ValidationError as exc:
        raise _problem(exc) from None
    result = Notification(object=kind)
    for e, entry in enumerate(notification.entry):
        for c, change in enumerate(entry.changes):
            where = f"entry.{e}.changes.{c}.value"
            if change.field != "messages":
                result.ignored.append(f"field {change.field}")
                continue
            try:
                value = WaValue.model_validate(change.value)
            except ValidationError as exc:
                raise _problem(exc, where) from None
            for m, message in enumerate(value.messages):
                if message.type == "reaction":  # a gesture on a message, not a message
                    result.ignored.append("reaction")
                    continue
                result.add_message(
                    _whatsapp_message(entry.id, value, message, received_at, f"{where}.messages.{m}")
                )
            result.ignored.extend(f"error {error.code}: {error.title}" for error in value.errors)
            for status in value.statuses:
                update = _whatsapp_status(status)
                if update is None:
                    result.ignored.append(f"status {status.status}")
                else:
                    result.statuses.append(update)
    return result


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def _whatsapp_message(
    account_id: str, value: WaValue, message: WaMessage, received_at: datetime, where: str
) -> MessageReceived:
    wa_id = _identity("whatsapp", message.from_, f"{where}.from")
    contact = next((c for c in value.contacts if c.wa_id and _digits(c.wa_id) == _digits(wa_id)), None)
    if contact is None and len(value.contacts) == 1:
        contact = value.contacts[0]
    name = contact.profile.name if contact and contact.profile and contact.profile.name else None
    text, attachments, extra = _whatsapp_content(message)
    metadata = {
        "whatsapp_type": message.type,
        "phone_number_id": value.metadata.phone_number_id,
        "waba_id": account_id,
        **extra,
    }
    if value.metadata.display_phone_number:
        metadata["display_phone_number"] = value.metadata.display_phone_number
    if message.context and message.context.id:
        metadata["reply_to"] = message.context.id
    code = next((e.code for e in message.errors if e.code), None)
    if code:
        metadata["error_code"] = code
    return _message_event(
        where,
        channel="whatsapp",
        provider=PROVIDER,
        provider_message_id=message.id,
        # A wa_id is the customer's phone number: the phone identity makes SMS and
        # WhatsApp from the same number one customer.
        sender=Identity(type="whatsapp", value=wa_id, verified=True),
        identities=(Identity(type="phone", value=wa_id, verified=True),),
        display_name=_clip(name, 200) or None,
        recipient=value.metadata.phone_number_id,
        text=_clip(text, MAX_TEXT),
        attachments=tuple(attachments),
        sent_at=message.timestamp,
        received_at=received_at,
        metadata={k: _clip(v, 1000) for k, v in metadata.items()},
    )


def _whatsapp_content(message: WaMessage) -> tuple[str, list[Attachment], dict[str, str]]:
    """Text, attachments and extra metadata of one WhatsApp message, by its type."""
    kind = message.type
    if kind == "text" and message.text is not None:
        return message.text.body, [], {}
    if kind in WHATSAPP_MEDIA_TYPES:
        media: WaMedia | None = getattr(message, kind)
        if media is None:
            return f"[{kind}]", [], {}
        attachments = []
        if media.id:
            attachments.append(
                Attachment(
                    type=_clip(media.mime_type or kind, 100),
                    url=WHATSAPP_MEDIA_SCHEME + _clip(media.id, 200),
                    name=media.filename,
                )
            )
        return media.caption or f"[{kind}]", attachments, {}
    if kind == "location" and message.location is not None:
        place = message.location
        label = ", ".join(part for part in (place.name, place.address) if part)
        text = f"[location {place.latitude},{place.longitude}]" + (f" {label}" if label else "")
        return text, [], {}
    if kind == "interactive" and message.interactive is not None:
        reply = message.interactive.button_reply or message.interactive.list_reply
        if reply is not None:
            extra = {"reply_id": reply.id} if reply.id else {}
            return reply.title or reply.description or "[interactive]", [], extra
        return f"[interactive {message.interactive.type}]", [], {}
    if kind == "button" and message.button is not None:
        extra = {"button_payload": message.button.payload} if message.button.payload else {}
        return message.button.text or message.button.payload or "[button]", [], extra
    return f"[{kind}]", [], {}


def _whatsapp_status(status: WaStatus) -> StatusUpdate | None:
    mapped = WHATSAPP_STATUSES.get(status.status)
    if mapped is None:
        return None
    code = next((e.code for e in status.errors if e.code), None)
    return StatusUpdate(status.id, mapped, status.timestamp, code, status.biz_opaque_callback_data)  # type: ignore[arg-type]


def parse_messenger(body: bytes, received_at: datetime) -> Notification:
    """A Messenger (``page``) or Instagram (``instagram``) notification.

    Echoes of the page's own messages, reactions, edits, referrals and other gestures
    are left out; deliveries and reads become statuses of the messages they name.
    """
    kind, data = read_envelope(body)
    channel = MESSENGER_OBJECTS.get(kind)
    if channel is None:
        return Notification(object=kind, ignored=[f"object {kind}"], known_object=False)
    try:
        notification = MessengerNotification.model_validate(data)
    except ValidationError as exc:
        raise _problem(exc) from None
    result = Notification(object=kind)
    for e, entry in enumerate(notification.entry):
        if not entry.messaging:
            result.ignored.append("entry without messaging")
        for i, event in enumerate(entry.messaging):
            _messenger_event(result, channel, entry, event, received_at, f"entry.{e}.messaging.{i}")
    return result


def _messenger_event(
    result: Notification,
    channel: Literal["messenger", "instagram"],
    entry: MsEntry,
    event: MsEvent,
    received_at: datetime,
    where: str,
) -> None:
    at = event.timestamp or entry.time
    if event.delivery is not None or event.read is not None:
        _messenger_receipt(result, event, at or received_at)
        return
    if event.message is None and event.postback is None:
        result.ignored.append("other event")  # reactions, edits, referrals, opt-ins, ...
        return
    sender = event.sender.id if event.sender else None
    if (event.message is not None and event.message.is_echo) or (sender and sender == entry.id):
        result.ignored.append("echo")  # sent by the page or account itself
        return
    if not sender:
        result.ignored.append("sender without id")  # the chat plugin's user_ref
        return
    if event.message is not None and event.message.is_deleted:
        result.ignored.append("deleted")
        return
    if at is None:
        raise InvalidPayload(f"{where}.timestamp: Field required")
    sender_id = _identity(channel, sender, f"{where}.sender.id")
    metadata = {"page_id" if channel == "messenger" else "account_id": entry.id}
    if event.message is not None:
        provider_id, text, attachments, extra = _messenger_message(event.message)
    else:
        assert event.postback is not None
        # Postbacks carry a mid only from Graph API v11; otherwise the tap is named by
        # who tapped and when, which a retry repeats.
        fallback_id = f"postback:{sender_id}:{int(at.timestamp() * 1000)}"
        provider_id, text, attachments, extra = _messenger_postback(event.postback, fallback_id)
    metadata.update(extra)
    recipient = event.recipient.id if event.recipient and event.recipient.id else entry.id
    result.add_message(
        _message_event(
            where,
            channel=channel,
            provider=PROVIDER,
            provider_message_id=provider_id,
            sender=Identity(type=channel, value=sender_id, verified=True),
            recipient=_clip(recipient, 320),
            text=_clip(text, MAX_TEXT),
            attachments=tuple(attachments),
            sent_at=at,
            received_at=received_at,
            metadata={k: _clip(v, 1000) for k, v in metadata.items()},
        )
    )


def _messenger_receipt(result: Notification, event: MsEvent, at: datetime) -> None:
    """A delivery or read receipt for messages we sent."""
    if event.delivery is not None:
        when = event.delivery.watermark or at
        result.statuses.extend(StatusUpdate(mid, "delivered", when) for mid in event.delivery.mids)
        if not event.delivery.mids:
            result.ignored.append("delivery watermark")
    elif event.read is not None and event.read.mid:  # Instagram names the message read
        result.statuses.append(StatusUpdate(event.read.mid, "read", at))
    else:  # Messenger: "everything before the watermark was read", no message named
        result.ignored.append("read watermark")


def _messenger_message(message: MsMessage) -> tuple[str, str, list[Attachment], dict[str, str]]:
    attachments = []
    for attachment in message.attachments:
        url = (attachment.payload.url if attachment.payload else None) or attachment.url
        if url and len(url) <= MAX_URL:
            attachments.append(Attachment(type=attachment.type, url=url, name=attachment.title or None))
    text = message.text or " ".join(f"[{kind}]" for kind in sorted({a.type for a in message.attachments}))
    if not text and message.is_unsupported:
        text = "[unsupported]"
    metadata = {"event": "message"}
    if message.quick_reply and message.quick_reply.payload:
        metadata["quick_reply_payload"] = message.quick_reply.payload
    if message.reply_to and message.reply_to.mid:
        metadata["reply_to"] = message.reply_to.mid
    return message.mid, text, attachments, metadata


def _messenger_postback(
    postback: MsPostback, fallback_id: str
) -> tuple[str, str, list[Attachment], dict[str, str]]:
    metadata = {"event": "postback"}
    if postback.payload:
        metadata["postback_payload"] = postback.payload
    text = postback.title or postback.payload or "[postback]"
    return postback.mid or fallback_id, text, [], metadata


def _message_event(where: str, **fields: Any) -> MessageReceived:
    try:
        return MessageReceived(**fields)
    except ValidationError as exc:
        raise _problem(exc, where) from None
