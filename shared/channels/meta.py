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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from shared.contracts.events import (
    AdReferral,
    Attachment,
    ChosenReply,
    ContactCard,
    Identity,
    Location,
    Media,
    MessageKind,
    MessageReceived,
    Order,
    OrderItem,
)
from shared.domain.identity import InvalidIdentity, normalise_value
from shared.platform.http import MAX_JSON_DEPTH, json_depth

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
    #: Items that could not be read (path and reason each); the rest of the batch is recorded.
    skipped: list[str] = field(default_factory=list)
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
    #: The business-scoped user id (BSUID), alongside or instead of ``wa_id``.
    user_id: str | None = None
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


class WaCardName(_Model):
    formatted_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class WaCardPhone(_Model):
    phone: str | None = None
    wa_id: str | None = None


class WaCardEmail(_Model):
    email: str | None = None


class WaCardOrg(_Model):
    company: str | None = None


class WaCard(_Model):
    """One shared contact card (``messages[].contacts[]``)."""

    name: WaCardName | None = None
    phones: list[WaCardPhone] = Field(default_factory=list)
    emails: list[WaCardEmail] = Field(default_factory=list)
    org: WaCardOrg | None = None


class WaReaction(_Model):
    message_id: str | None = None
    #: Empty when the customer took the reaction back.
    emoji: str | None = None


class WaSystem(_Model):
    type: str | None = None
    body: str | None = None
    new_wa_id: str | None = None
    wa_id: str | None = None
    new_user_id: str | None = None
    identity: str | None = None
    customer: str | None = None


class WaProductItem(_Model):
    product_retailer_id: str = ""
    quantity: int = 1
    item_price: float | None = None
    currency: str | None = None


class WaOrder(_Model):
    catalog_id: str | None = None
    text: str | None = None
    product_items: list[WaProductItem] = Field(default_factory=list)


class WaReferral(_Model):
    source_url: str | None = None
    source_id: str | None = None
    source_type: str | None = None
    headline: str | None = None
    body: str | None = None


class WaMessage(_Model):
    #: The customer's phone number (wa_id); absent for a customer known only by a business-scoped id.
    from_: Annotated[str | None, Field(alias="from", min_length=1, max_length=40)] = None
    from_user_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
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
    contacts: list[WaCard] = Field(default_factory=list)
    reaction: WaReaction | None = None
    system: WaSystem | None = None
    order: WaOrder | None = None
    referral: WaReferral | None = None
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
    #: Checked one by one (:class:`WaMessage`, :class:`WaStatus`): one unusual item is skipped, not the batch.
    messages: list[dict[str, Any]] = Field(default_factory=list)
    statuses: list[dict[str, Any]] = Field(default_factory=list)
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
    #: Checked one by one (:class:`MsEvent`): one unusual event is skipped, not the batch.
    messaging: list[dict[str, Any]] = Field(default_factory=list)


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
    if json_depth(body.decode(errors="replace")) > MAX_JSON_DEPTH:
        raise InvalidPayload(f"the body nests deeper than {MAX_JSON_DEPTH} levels")
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


def _skip(result: Notification, problem: Exception) -> None:
    result.skipped.append(str(problem))
    result.ignored.append(f"skipped: {problem}")


def parse_whatsapp(body: bytes, received_at: datetime) -> Notification:
    """A WhatsApp Cloud API notification: customer messages and our messages' statuses.

    A message or status that cannot be read is skipped (listed in ``skipped``): the
    rest of the batch is recorded, and Meta does not resend it.
    """
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
            _whatsapp_value(result, entry.id, value, received_at, where)
    return result


def _whatsapp_value(
    result: Notification, account_id: str, value: WaValue, received_at: datetime, where: str
) -> None:
    for m, raw in enumerate(value.messages):
        try:
            message = WaMessage.model_validate(raw)
            result.add_message(
                _whatsapp_message(account_id, value, message, received_at, f"{where}.messages.{m}")
            )
        except ValidationError as exc:
            _skip(result, _problem(exc, f"{where}.messages.{m}"))
        except InvalidPayload as exc:
            _skip(result, exc)
    result.ignored.extend(f"error {error.code}: {error.title}" for error in value.errors)
    for s, raw in enumerate(value.statuses):
        try:
            status = WaStatus.model_validate(raw)
        except ValidationError as exc:
            _skip(result, _problem(exc, f"{where}.statuses.{s}"))
            continue
        update = _whatsapp_status(status)
        if update is None:
            result.ignored.append(f"status {status.status}")
        else:
            result.statuses.append(update)


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def _whatsapp_contact(value: WaValue, message: WaMessage) -> WaContact | None:
    """The ``contacts[]`` entry of the message's sender (by wa_id or business-scoped id)."""
    for contact in value.contacts:
        if message.from_ and contact.wa_id and _digits(contact.wa_id) == _digits(message.from_):
            return contact
        if message.from_user_id and contact.user_id == message.from_user_id:
            return contact
    return value.contacts[0] if len(value.contacts) == 1 else None


def _whatsapp_phone(raw: str, where: str) -> list[Identity]:
    """A wa_id is the customer's phone number: the phone identity makes SMS and WhatsApp one customer."""
    wa_id = _identity("whatsapp", raw, where)
    return [
        Identity(type="whatsapp", value=wa_id, verified=True),
        Identity(type="phone", value=wa_id, verified=True),
    ]


def _whatsapp_sender(message: WaMessage, contact: WaContact | None, where: str) -> list[Identity]:
    """The sender's identities, phone first: wa_id (and phone) and/or business-scoped user id."""
    found = _whatsapp_phone(message.from_, f"{where}.from") if message.from_ else []
    bsuid = message.from_user_id or (contact.user_id if contact else None)
    if bsuid:
        value = _identity("whatsapp_user", bsuid, f"{where}.from_user_id")
        found.append(Identity(type="whatsapp_user", value=value, verified=True))
    if not found:
        raise InvalidPayload(f"{where}.from: neither from nor from_user_id")
    return found


@dataclass
class _Content:
    """What one message says, by its type."""

    text: str
    attachments: list[Attachment] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    kind: MessageKind = "message"
    #: Identities the content links to the sender (a changed number).
    identities: list[Identity] = field(default_factory=list)


def _whatsapp_message(
    account_id: str, value: WaValue, message: WaMessage, received_at: datetime, where: str
) -> MessageReceived:
    contact = _whatsapp_contact(value, message)
    sender, *identities = _whatsapp_sender(message, contact, where)
    name = contact.profile.name if contact and contact.profile and contact.profile.name else None
    content = _whatsapp_content(message, where)
    metadata = {
        "whatsapp_type": message.type,
        "phone_number_id": value.metadata.phone_number_id,
        "waba_id": account_id,
        **_whatsapp_facts(value, message),
        **content.metadata,
    }
    return _message_event(
        where,
        kind=content.kind,
        channel="whatsapp",
        provider=PROVIDER,
        provider_message_id=message.id,
        sender=sender,
        identities=(*identities, *content.identities),
        display_name=_clip(name, 200) or None,
        recipient=value.metadata.phone_number_id,
        text=_clip(content.text, MAX_TEXT),
        attachments=tuple(content.attachments),
        sent_at=message.timestamp,
        received_at=received_at,
        metadata={k: _clip(v, 1000) for k, v in metadata.items()},
    )


def _whatsapp_facts(value: WaValue, message: WaMessage) -> dict[str, str]:
    facts = {}
    if value.metadata.display_phone_number:
        facts["display_phone_number"] = value.metadata.display_phone_number
    if message.context and message.context.id:
        facts["reply_to"] = message.context.id
    code = next((e.code for e in message.errors if e.code), None)
    if code:
        facts["error_code"] = code
    return facts


def _whatsapp_content(message: WaMessage, where: str) -> _Content:
    """Text, structured attachments and facts of one WhatsApp message (see :data:`_WA_CONTENT`)."""
    read = _WA_CONTENT.get(message.type)
    content = read(message, where) if read is not None else None
    if content is None:
        content = _Content(f"[{message.type}]")
    if message.referral is not None:
        content.attachments.append(_wa_referral(message.referral))
    return content


def _wa_text(message: WaMessage, where: str) -> _Content | None:
    return _Content(message.text.body) if message.text is not None else None


def _wa_media(message: WaMessage, where: str) -> _Content | None:
    kind = message.type
    media: WaMedia | None = getattr(message, kind, None)
    if media is None:
        return None
    details = Media(
        media_type=kind,
        media_id=_clip(media.id, 200) or None,
        mime_type=_clip(media.mime_type, 100) or None,
        caption=_clip(media.caption, 2000) or None,
        filename=_clip(media.filename, 200) or None,
    )
    attachment = Attachment(
        type=_clip(media.mime_type or kind, 100),
        url=WHATSAPP_MEDIA_SCHEME + _clip(media.id, 200) if media.id else "",
        name=media.filename,
        content=details,
    )
    return _Content(media.caption or f"[{kind}]", [attachment])


def _wa_location(message: WaMessage, where: str) -> _Content | None:
    place = message.location
    if place is None:
        return None
    label = ", ".join(part for part in (place.name, place.address) if part)
    text = f"[location {place.latitude},{place.longitude}]" + (f" {label}" if label else "")
    details = Location(
        latitude=place.latitude,
        longitude=place.longitude,
        name=_clip(place.name, 200) or None,
        address=_clip(place.address, 2000) or None,
    )
    return _Content(text, [Attachment(type="location", name=details.name, content=details)])


def _wa_card(card: WaCard) -> ContactCard:
    name = card.name.formatted_name if card.name else None
    if not name and card.name:
        name = " ".join(part for part in (card.name.first_name, card.name.last_name) if part)
    return ContactCard(
        name=_clip(name, 200),
        phones=tuple(_clip(p.phone or p.wa_id, 200) for p in card.phones if p.phone or p.wa_id)[:20],
        emails=tuple(_clip(e.email, 200) for e in card.emails if e.email)[:20],
        organization=_clip(card.org.company, 200) or None if card.org else None,
    )


def _wa_contacts(message: WaMessage, where: str) -> _Content | None:
    cards = [_wa_card(card) for card in message.contacts[:20]]
    if not cards:
        return None
    lines = ["[contact] " + ", ".join(part for part in (c.name, *c.phones, *c.emails) if part) for c in cards]
    attachments = [Attachment(type="contact", name=c.name or None, content=c) for c in cards]
    return _Content("\n".join(lines), attachments)


def _wa_interactive(message: WaMessage, where: str) -> _Content | None:
    if message.interactive is None:
        return None
    reply = message.interactive.button_reply or message.interactive.list_reply
    if reply is None:
        return _Content(f"[interactive {message.interactive.type}]")
    title = reply.title or reply.description or "[interactive]"
    details = ChosenReply(
        title=_clip(title, 200), reply_id=_clip(reply.id, 200) or None, description=reply.description
    )
    extra = {"reply_id": reply.id} if reply.id else {}
    return _Content(title, [Attachment(type="reply", name=details.title, content=details)], extra)


def _wa_button(message: WaMessage, where: str) -> _Content | None:
    if message.button is None:
        return None
    title = message.button.text or message.button.payload or "[button]"
    details = ChosenReply(title=_clip(title, 200), reply_id=_clip(message.button.payload, 200) or None)
    extra = {"button_payload": message.button.payload} if message.button.payload else {}
    return _Content(title, [Attachment(type="reply", name=details.title, content=details)], extra)


def _wa_order(message: WaMessage, where: str) -> _Content | None:
    if message.order is None:
        return None
    items = tuple(
        OrderItem(
            product_id=_clip(item.product_retailer_id, 200),
            quantity=item.quantity,
            price=item.item_price,
            currency=_clip(item.currency, 3) or None,
        )
        for item in message.order.product_items[:100]
    )
    details = Order(
        catalog_id=message.order.catalog_id, items=items, note=_clip(message.order.text, 2000) or None
    )
    listed = ", ".join(f"{i.quantity} x {i.product_id}" for i in items)
    text = f"[order] {listed}" + (f" - {details.note}" if details.note else "")
    return _Content(text, [Attachment(type="order", content=details)])


def _wa_referral(referral: WaReferral) -> Attachment:
    details = AdReferral(
        source_type=_clip(referral.source_type, 200) or None,
        source_id=_clip(referral.source_id, 200) or None,
        source_url=_clip(referral.source_url, MAX_URL) or None,
        headline=_clip(referral.headline, 200) or None,
        body=_clip(referral.body, 2000) or None,
    )
    return Attachment(type="referral", name=details.headline, content=details)


def _wa_reaction(message: WaMessage, where: str) -> _Content | None:
    """A gesture on an earlier message: recorded against it, never answered."""
    if message.reaction is None or not message.reaction.message_id:
        return None
    emoji = message.reaction.emoji or ""
    text = f"[reaction {emoji}]" if emoji else "[reaction removed]"
    facts = {"reaction_to": message.reaction.message_id, "reaction": emoji}
    return _Content(text, metadata=facts, kind="reaction")


def _wa_system(message: WaMessage, where: str) -> _Content | None:
    """The customer changed their number or identity: an event on the profile, not a request."""
    system = message.system
    if system is None:
        return None
    facts = {"system_type": system.type or "", "system_body": system.body or ""}
    linked: list[Identity] = []
    if system.new_wa_id:  # user_changed_number: the new number is the same customer
        linked = _whatsapp_phone(system.new_wa_id, f"{where}.system.new_wa_id")
        facts["new_wa_id"] = linked[0].value
    if system.new_user_id:
        value = _identity("whatsapp_user", system.new_user_id, f"{where}.system.new_user_id")
        linked.append(Identity(type="whatsapp_user", value=value, verified=True))
    if system.identity:  # customer_identity_changed: the security code changed
        facts["identity_hash"] = system.identity
    text = system.body or f"[system {system.type}]"
    return _Content(text, metadata={k: v for k, v in facts.items() if v}, kind="system", identities=linked)


#: WhatsApp ``messages[].type`` -> how its content reads; an unknown type is kept as ``[type]``.
_WA_CONTENT: dict[str, Callable[[WaMessage, str], _Content | None]] = {
    "text": _wa_text,
    **{kind: _wa_media for kind in WHATSAPP_MEDIA_TYPES},
    "location": _wa_location,
    "contacts": _wa_contacts,
    "interactive": _wa_interactive,
    "button": _wa_button,
    "order": _wa_order,
    "reaction": _wa_reaction,
    "system": _wa_system,
}


def _whatsapp_status(status: WaStatus) -> StatusUpdate | None:
    mapped = WHATSAPP_STATUSES.get(status.status)
    if mapped is None:
        return None
    code = next((e.code for e in status.errors if e.code), None)
    return StatusUpdate(status.id, mapped, status.timestamp, code, status.biz_opaque_callback_data)  # type: ignore[arg-type]


def parse_messenger(body: bytes, received_at: datetime) -> Notification:
    """A Messenger (``page``) or Instagram (``instagram``) notification.

    Echoes of the page's own messages, reactions, edits, referrals and other gestures
    are left out; deliveries and reads become statuses of the messages they name. An
    event that cannot be read is skipped; the rest is recorded.
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
        for i, raw in enumerate(entry.messaging):
            where = f"entry.{e}.messaging.{i}"
            try:
                event = MsEvent.model_validate(raw)
                _messenger_event(result, channel, entry, event, received_at, where)
            except ValidationError as exc:
                _skip(result, _problem(exc, where))
            except InvalidPayload as exc:
                _skip(result, exc)
    return result


def _messenger_left_out(entry: MsEntry, event: MsEvent) -> str | None:
    """Why an event that is not a receipt is no customer message (None when it is one)."""
    if event.message is None and event.postback is None:
        return "other event"  # reactions, edits, referrals, opt-ins, ...
    sender = event.sender.id if event.sender else None
    if (event.message is not None and event.message.is_echo) or (sender and sender == entry.id):
        return "echo"  # sent by the page or account itself
    if not sender:
        return "sender without id"  # the chat plugin's user_ref
    if event.message is not None and event.message.is_deleted:
        return "deleted"
    return None


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
    reason = _messenger_left_out(entry, event)
    if reason is not None:
        result.ignored.append(reason)
        return
    if at is None:
        raise InvalidPayload(f"{where}.timestamp: Field required")
    sender_id = _identity(channel, (event.sender.id if event.sender else None) or "", f"{where}.sender.id")
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


def _messenger_attachments(message: MsMessage) -> list[Attachment]:
    attachments = []
    for attachment in message.attachments:
        url = (attachment.payload.url if attachment.payload else None) or attachment.url
        if url and len(url) <= MAX_URL:
            attachments.append(Attachment(type=attachment.type, url=url, name=attachment.title or None))
    return attachments


def _messenger_message(message: MsMessage) -> tuple[str, str, list[Attachment], dict[str, str]]:
    text = message.text or " ".join(f"[{kind}]" for kind in sorted({a.type for a in message.attachments}))
    if not text and message.is_unsupported:
        text = "[unsupported]"
    metadata = {"event": "message"}
    if message.quick_reply and message.quick_reply.payload:
        metadata["quick_reply_payload"] = message.quick_reply.payload
    if message.reply_to and message.reply_to.mid:
        metadata["reply_to"] = message.reply_to.mid
    return message.mid, text, _messenger_attachments(message), metadata


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
