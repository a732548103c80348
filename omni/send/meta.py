"""``omni send whatsapp | whatsapp-status | messenger | instagram | meta-verify``: act as Meta.

Builds the notifications Meta's webhooks deliver (WhatsApp Cloud API, Messenger,
Instagram) in their documented shape, signs each with the app secret as
``X-Hub-Signature-256`` and posts it; ``meta-verify`` performs the subscription
handshake. Reuse ``--message-id`` and ``--timestamp`` to replay a notification the way
Meta retries one.
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
import urllib.parse
from typing import Any, TextIO

from omni.send import add_common_arguments, base_url, http, secret_value
from shared.channels import meta

DEFAULT_PHONE_NUMBER_ID = "100000000000001"
DEFAULT_DISPLAY_PHONE_NUMBER = "15550000001"
DEFAULT_WABA_ID = "100000000000000"
DEFAULT_PAGE_ID = "100000000000002"
DEFAULT_INSTAGRAM_ACCOUNT_ID = "17841400000000001"
WHATSAPP_TYPES = ("text", "image", "audio", "video", "document", "location", "interactive", "button")
_MIME_TYPES = {
    "image": "image/jpeg",
    "audio": "audio/ogg; codecs=opus",
    "video": "video/mp4",
    "document": "application/pdf",
}


# --------------------------------------------------------------------------- #
# Payloads as Meta sends them
# --------------------------------------------------------------------------- #
def _whatsapp_notification(value: dict[str, Any], waba_id: str = DEFAULT_WABA_ID) -> dict[str, Any]:
    return {
        "object": meta.WHATSAPP_OBJECT,
        "entry": [{"id": waba_id, "changes": [{"value": value, "field": "messages"}]}],
    }


def _whatsapp_metadata(phone_number_id: str, display_phone_number: str) -> dict[str, str]:
    return {"display_phone_number": display_phone_number, "phone_number_id": phone_number_id}


def whatsapp_message(
    wa_id: str,
    text: str,
    *,
    kind: str = "text",
    name: str | None = None,
    message_id: str | None = None,
    timestamp: int | None = None,
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
    display_phone_number: str = DEFAULT_DISPLAY_PHONE_NUMBER,
    media_id: str | None = None,
    filename: str | None = None,
    latitude: float = 52.520008,
    longitude: float = 13.404954,
    payload: str | None = None,
) -> dict[str, Any]:
    """A WhatsApp Cloud API ``messages`` notification carrying one customer message."""
    message: dict[str, Any] = {
        "from": wa_id,
        "id": message_id or f"wamid.{secrets.token_hex(16).upper()}",
        "timestamp": str(timestamp if timestamp is not None else int(time.time())),
        "type": kind,
    }
    if kind in _MIME_TYPES:
        message[kind] = _whatsapp_media(kind, text, media_id, filename)
    elif kind == "location":
        message["location"] = _whatsapp_location(text, latitude, longitude)
    else:
        message[kind] = _whatsapp_content(kind, text, payload)
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": _whatsapp_metadata(phone_number_id, display_phone_number),
        "contacts": [{"profile": {"name": name} if name else {}, "wa_id": wa_id}],
        "messages": [message],
    }
    return _whatsapp_notification(value)


def _whatsapp_media(kind: str, text: str, media_id: str | None, filename: str | None) -> dict[str, Any]:
    media: dict[str, Any] = {
        "mime_type": _MIME_TYPES[kind],
        "sha256": secrets.token_hex(32),
        "id": media_id or str(secrets.randbelow(10**15) + 10**15),
    }
    if text and kind != "audio":
        media["caption"] = text
    if kind == "document":
        media["filename"] = filename or "document.pdf"
    return media


def _whatsapp_location(name: str, latitude: float, longitude: float) -> dict[str, Any]:
    location: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    if name:
        location["name"] = name
    return location


def _whatsapp_content(kind: str, text: str, payload: str | None) -> dict[str, Any]:
    """The content of a text, interactive (button reply) or button message."""
    if kind == "text":
        return {"body": text}
    if kind == "interactive":
        return {"type": "button_reply", "button_reply": {"id": payload or "reply-1", "title": text}}
    if kind == "button":
        return {"payload": payload or text, "text": text}
    raise ValueError(f"unknown WhatsApp message type {kind!r}")


def whatsapp_status(
    message_id: str,
    status: str,
    *,
    recipient: str | None = None,
    timestamp: int | None = None,
    error_code: int | None = None,
    phone_number_id: str = DEFAULT_PHONE_NUMBER_ID,
    display_phone_number: str = DEFAULT_DISPLAY_PHONE_NUMBER,
) -> dict[str, Any]:
    """A WhatsApp Cloud API ``messages`` notification carrying one status of a message we sent."""
    entry: dict[str, Any] = {
        "id": message_id,
        "status": status,
        "timestamp": str(timestamp if timestamp is not None else int(time.time())),
    }
    if recipient:
        entry["recipient_id"] = recipient
    if status == "failed":
        code = error_code if error_code is not None else 131026
        entry["errors"] = [{"code": code, "title": "Message undeliverable"}]
    value = {
        "messaging_product": "whatsapp",
        "metadata": _whatsapp_metadata(phone_number_id, display_phone_number),
        "statuses": [entry],
    }
    return _whatsapp_notification(value)


def messenger_event(
    channel: str,
    sender_id: str,
    text: str,
    *,
    account_id: str | None = None,
    message_id: str | None = None,
    timestamp_ms: int | None = None,
    postback: bool = False,
    payload: str | None = None,
    attachment_type: str | None = None,
    attachment_url: str | None = None,
    echo: bool = False,
) -> dict[str, Any]:
    """A Messenger (``page``) or Instagram (``instagram``) notification with one messaging event."""
    object_name = next(name for name, served in meta.MESSENGER_OBJECTS.items() if served == channel)
    account = account_id or (DEFAULT_PAGE_ID if channel == "messenger" else DEFAULT_INSTAGRAM_ACCOUNT_ID)
    at = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    mid = message_id or f"m_{secrets.token_urlsafe(24)}"
    event: dict[str, Any] = {
        "sender": {"id": account if echo else sender_id},
        "recipient": {"id": sender_id if echo else account},
        "timestamp": at,
    }
    if postback:
        event["postback"] = {"mid": mid, "title": text, "payload": payload or text}
    else:
        event["message"] = _messenger_message(mid, text, payload, attachment_type, attachment_url, echo)
    return {"object": object_name, "entry": [{"id": account, "time": at, "messaging": [event]}]}


def _messenger_message(
    mid: str,
    text: str,
    payload: str | None,
    attachment_type: str | None,
    attachment_url: str | None,
    echo: bool,
) -> dict[str, Any]:
    message: dict[str, Any] = {"mid": mid}
    if text:
        message["text"] = text
    if attachment_url:
        message["attachments"] = [{"type": attachment_type or "image", "payload": {"url": attachment_url}}]
    if payload:
        message["quick_reply"] = {"payload": payload}
    if echo:
        message["is_echo"] = True
    return message


# --------------------------------------------------------------------------- #
# Sending
# --------------------------------------------------------------------------- #
def post_signed(url: str, payload: dict[str, Any], app_secret: str | None = None) -> Any:
    """POST ``payload`` as Meta does: JSON, signed with the app secret."""
    body = json.dumps(payload).encode()
    signature = meta.sign(app_secret or secret_value("meta-app-secret"), body)
    return http("POST", url, body, {"Content-Type": "application/json", "X-Hub-Signature-256": signature})


def _report(out: TextIO, result: Any) -> int:
    out.write(f"{result.describe()}\n")
    return 0 if result.status == 200 else 1


def send_whatsapp(args: argparse.Namespace, out: TextIO) -> int:
    if args.type in ("text", "interactive", "button") and not args.text:
        out.write(f"a {args.type} message needs its text\n")
        return 2
    payload = whatsapp_message(
        args.sender.lstrip("+"),
        args.text,
        kind=args.type,
        name=args.name,
        message_id=args.message_id,
        timestamp=args.timestamp,
        phone_number_id=args.phone_number_id,
        media_id=args.media_id,
        filename=args.filename,
        latitude=args.latitude,
        longitude=args.longitude,
        payload=args.payload,
    )
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    out.write(f"message {message['id']} timestamp {message['timestamp']}\n")
    return _report(out, post_signed(f"{base_url(args)}/webhooks/whatsapp", payload))


def send_whatsapp_status(args: argparse.Namespace, out: TextIO) -> int:
    payload = whatsapp_status(
        args.id,
        args.status,
        recipient=args.to.lstrip("+") if args.to else None,
        timestamp=args.timestamp,
        error_code=args.error_code,
        phone_number_id=args.phone_number_id,
    )
    return _report(out, post_signed(f"{base_url(args)}/webhooks/whatsapp", payload))


def _send_messenger(channel: str, sender_id: str, args: argparse.Namespace, out: TextIO) -> int:
    if not args.text and not args.attachment_url:
        out.write("give the message text or --attachment-url\n")
        return 2
    payload = messenger_event(
        channel,
        sender_id,
        args.text,
        account_id=args.account_id,
        message_id=args.message_id,
        timestamp_ms=args.timestamp,
        postback=args.postback,
        payload=args.payload,
        attachment_type=args.attachment_type,
        attachment_url=args.attachment_url,
        echo=args.echo,
    )
    event = payload["entry"][0]["messaging"][0]
    mid = (event.get("message") or event.get("postback") or {}).get("mid")
    out.write(f"message {mid} timestamp {event['timestamp']}\n")
    return _report(out, post_signed(f"{base_url(args)}/webhooks/messenger", payload))


def send_messenger(args: argparse.Namespace, out: TextIO) -> int:
    return _send_messenger("messenger", args.psid, args, out)


def send_instagram(args: argparse.Namespace, out: TextIO) -> int:
    return _send_messenger("instagram", args.igsid, args, out)


def send_verify(args: argparse.Namespace, out: TextIO) -> int:
    challenge = args.challenge or str(secrets.randbelow(10**9))
    query = urllib.parse.urlencode(
        {
            "hub.mode": "subscribe",
            "hub.verify_token": args.token or secret_value("meta-verify-token"),
            "hub.challenge": challenge,
        }
    )
    result = http("GET", f"{base_url(args)}/webhooks/{args.hook}?{query}")
    out.write(f"{result.describe()}\n")
    return 0 if result.status == 200 and result.body.decode() == challenge else 1


# --------------------------------------------------------------------------- #
# Sub-commands
# --------------------------------------------------------------------------- #
def _replay_arguments(parser: argparse.ArgumentParser, unit: str) -> None:
    parser.add_argument(
        "--message-id", help="the provider's message id (default: random; reuse it to resend)"
    )
    parser.add_argument(
        "--timestamp", type=int, help=f"unix time in {unit} (default: now; reuse it to resend)"
    )


def _messenger_arguments(parser: argparse.ArgumentParser, account_help: str) -> None:
    add_common_arguments(parser)
    parser.add_argument(
        "text", nargs="?", default="", help="the message (a postback's title with --postback)"
    )
    parser.add_argument("--account-id", help=account_help)
    parser.add_argument("--postback", action="store_true", help="a tapped button instead of a typed message")
    parser.add_argument("--payload", help="the postback's payload, or a quick reply's payload")
    parser.add_argument("--attachment-url", help="attach a file by its URL")
    parser.add_argument(
        "--attachment-type", choices=("image", "video", "audio", "file"), help="the attachment's type"
    )
    parser.add_argument("--echo", action="store_true", help="an echo of a message the page sent (ignored)")
    _replay_arguments(parser, "milliseconds")


def register(subparsers: Any) -> None:
    wa = subparsers.add_parser("whatsapp", help="a customer's WhatsApp message, as the Cloud API delivers it")
    add_common_arguments(wa)
    wa.add_argument("text", nargs="?", default="", help="the message (a caption for media)")
    wa.add_argument(
        "--from", dest="sender", required=True, help="the customer's wa_id: international number, no +"
    )
    wa.add_argument("--name", help="the customer's WhatsApp profile name")
    wa.add_argument("--type", choices=WHATSAPP_TYPES, default="text", help="the message type (default text)")
    wa.add_argument("--media-id", help="the media id of an image/audio/video/document")
    wa.add_argument("--filename", help="a document's file name")
    wa.add_argument("--latitude", type=float, default=52.520008, help="a location's latitude")
    wa.add_argument("--longitude", type=float, default=13.404954, help="a location's longitude")
    wa.add_argument("--payload", help="a button's payload or an interactive reply's id")
    wa.add_argument("--phone-number-id", default=DEFAULT_PHONE_NUMBER_ID, help="our business number's id")
    _replay_arguments(wa, "seconds")
    wa.set_defaults(run=send_whatsapp)

    status = subparsers.add_parser("whatsapp-status", help="a delivery status of a WhatsApp message we sent")
    add_common_arguments(status)
    status.add_argument("--id", required=True, help="the wamid of our message")
    status.add_argument("--status", required=True, choices=("sent", "delivered", "read", "failed"))
    status.add_argument("--error-code", type=int, help="Meta's error code of a failed message")
    status.add_argument("--to", help="the customer's wa_id")
    status.add_argument("--phone-number-id", default=DEFAULT_PHONE_NUMBER_ID, help="our business number's id")
    status.add_argument("--timestamp", type=int, help="unix time in seconds (default: now)")
    status.set_defaults(run=send_whatsapp_status)

    messenger = subparsers.add_parser("messenger", help="a customer's Messenger message to our page")
    messenger.add_argument("--psid", required=True, help="the customer's page-scoped id")
    _messenger_arguments(messenger, f"our page's id (default {DEFAULT_PAGE_ID})")
    messenger.set_defaults(run=send_messenger)

    instagram = subparsers.add_parser("instagram", help="a customer's Instagram direct message")
    instagram.add_argument("--igsid", required=True, help="the customer's Instagram-scoped id")
    _messenger_arguments(instagram, f"our Instagram account's id (default {DEFAULT_INSTAGRAM_ACCOUNT_ID})")
    instagram.set_defaults(run=send_instagram)

    verify = subparsers.add_parser("meta-verify", help="Meta's webhook subscription handshake")
    add_common_arguments(verify)
    verify.add_argument("--hook", choices=("whatsapp", "messenger"), default="whatsapp")
    verify.add_argument("--token", help="the verify token to present (default: the stack's)")
    verify.add_argument("--challenge", help="the challenge to expect back (default: random)")
    verify.set_defaults(run=send_verify)
