"""``omni send sms | sms-status | voice``: Twilio's webhooks, signed with the local auth token.

The payloads have the parameters Twilio documents for its Messaging and Voice
webhooks, form-encoded, with ``X-Twilio-Signature`` computed over the URL Twilio
would call: ``--public-base-url`` (default ``$OMNI_PUBLIC_BASE_URL``, else the stack's
base URL) plus the path.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, TextIO
from urllib.parse import urlencode

from omni.send import HttpResult, add_common_arguments, base_url, http, secret_value
from shared.channels.twilio import FORM_CONTENT_TYPE, TERMINAL_CALL_STATUSES, compute_signature
from shared.domain.identity import InvalidIdentity, normalise_phone
from shared.platform.http import PUBLIC_BASE_URL_ENV

API_VERSION = "2010-04-01"
#: Our Twilio number in the examples (a fictional 555-01xx number).
OUR_NUMBER = "+14155550100"
ACCOUNT_SID = "AC" + hashlib.sha256(b"omni-local-twilio-account").hexdigest()[:32]
SMS_PATH = "/webhooks/sms"
SMS_STATUS_PATH = "/webhooks/sms/status"
VOICE_PATH = "/webhooks/voice"
VOICE_STATUS_PATH = "/webhooks/voice/status"
TRANSCRIPTION_PATH = "/webhooks/voice/transcription"
MESSAGE_STATUSES = (
    "accepted",
    "scheduled",
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "undelivered",
    "failed",
    "canceled",
)

Params = list[tuple[str, str]]


def sms_sender(raw: str) -> str:
    """``--from`` of ``omni send sms``: refused before anything is sent if the stack would refuse it.

    The SMS webhook accepts only a possible phone number as the sender (an international
    one, or a national one of ``$OMNI_DEFAULT_PHONE_REGION``); the value is sent as typed.
    """
    try:
        normalise_phone(raw)
    except InvalidIdentity as exc:
        raise argparse.ArgumentTypeError(f"{exc} (give it as +<country code><number>)") from exc
    return raw


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two letters, then 32 hex digits."""
    return prefix + uuid.uuid4().hex


# --------------------------------------------------------------------------- #
# Payloads, as Twilio sends them
# --------------------------------------------------------------------------- #
def sms_payload(
    message_sid: str,
    from_number: str,
    text: str,
    to: str = OUR_NUMBER,
    media: Sequence[tuple[str, str]] = (),
) -> Params:
    """The incoming-message webhook; ``media`` is ``(url, content type)`` pairs."""
    params: Params = [
        ("ToCountry", "US"),
        ("ToState", "CA"),
        ("SmsMessageSid", message_sid),
        ("NumMedia", str(len(media))),
        ("ToCity", ""),
        ("FromZip", ""),
        ("SmsSid", message_sid),
        ("FromState", ""),
        ("SmsStatus", "received"),
        ("FromCity", ""),
        ("Body", text),
        ("FromCountry", ""),
        ("To", to),
        ("ToZip", ""),
        ("NumSegments", "1"),
        ("MessageSid", message_sid),
        ("AccountSid", ACCOUNT_SID),
        ("From", from_number),
        ("ApiVersion", API_VERSION),
    ]
    for index, (url, content_type) in enumerate(media):
        params += [(f"MediaContentType{index}", content_type), (f"MediaUrl{index}", url)]
    return params


def sms_status_payload(
    message_sid: str, status: str, to: str, from_number: str = OUR_NUMBER, error_code: str | None = None
) -> Params:
    """The status callback of a message we sent (``to`` is the customer)."""
    params: Params = [
        ("SmsSid", message_sid),
        ("SmsStatus", status),
        ("MessageStatus", status),
        ("To", to),
        ("MessageSid", message_sid),
        ("AccountSid", ACCOUNT_SID),
        ("From", from_number),
        ("ApiVersion", API_VERSION),
    ]
    if error_code:
        params.append(("ErrorCode", error_code))
    return params


def _call_params(call_sid: str, from_number: str, to: str, status: str) -> Params:
    return [
        ("AccountSid", ACCOUNT_SID),
        ("ApiVersion", API_VERSION),
        ("CallSid", call_sid),
        ("CallStatus", status),
        ("Direction", "inbound"),
        ("From", from_number),
        ("To", to),
    ]


def incoming_call_payload(call_sid: str, from_number: str, to: str = OUR_NUMBER) -> Params:
    return _call_params(call_sid, from_number, to, "ringing")


def call_status_payload(
    call_sid: str,
    from_number: str,
    status: str,
    duration_s: int | None = None,
    to: str = OUR_NUMBER,
    at: datetime | None = None,
    sequence: int = 0,
) -> Params:
    params = _call_params(call_sid, from_number, to, status)
    params += [
        ("CallbackSource", "call-progress-events"),
        ("Timestamp", format_datetime(at or datetime.now(UTC))),
        ("SequenceNumber", str(sequence)),
    ]
    if duration_s is not None:
        params.append(("CallDuration", str(duration_s)))
    return params


def transcription_payload(
    call_sid: str,
    from_number: str,
    text: str,
    transcription_sid: str,
    recording_sid: str,
    to: str = OUR_NUMBER,
    status: str = "completed",
) -> Params:
    account = f"https://api.twilio.com/{API_VERSION}/Accounts/{ACCOUNT_SID}"
    params = _call_params(call_sid, from_number, to, "completed")
    params += [
        ("TranscriptionSid", transcription_sid),
        ("TranscriptionText", text),
        ("TranscriptionStatus", status),
        ("TranscriptionType", "fast"),
        ("TranscriptionUrl", f"{account}/Transcriptions/{transcription_sid}"),
        ("RecordingSid", recording_sid),
        ("RecordingUrl", f"{account}/Recordings/{recording_sid}"),
    ]
    return params


def post_signed(
    base: str, path: str, params: Params, auth_token: str, signed_base: str | None = None
) -> HttpResult:
    """POST ``params`` form-encoded to ``base + path``, signed for ``signed_base + path``."""
    signature = compute_signature(auth_token, (signed_base or base).rstrip("/") + path, params)
    return http(
        "POST",
        base.rstrip("/") + path,
        urlencode(params).encode(),
        {"Content-Type": FORM_CONTENT_TYPE, "X-Twilio-Signature": signature},
    )


# --------------------------------------------------------------------------- #
# Commands
# --------------------------------------------------------------------------- #
def register(subparsers: Any) -> None:
    sms = subparsers.add_parser("sms", help="a customer texts our Twilio number (signed webhook)")
    _common(sms)
    sms.add_argument("text", help="the message (STOP, START or HELP change consent)")
    sms.add_argument(
        "--from",
        dest="from_number",
        required=True,
        type=sms_sender,
        help="the customer's phone, e.g. +4915112345678",
    )
    sms.add_argument("--to", default=OUR_NUMBER, help=f"our Twilio number (default {OUR_NUMBER})")
    sms.add_argument("--media-url", action="append", default=[], help="an MMS media URL (repeatable)")
    sms.add_argument("--media-type", action="append", default=[], help="its content type, e.g. image/jpeg")
    sms.add_argument("--sid", help="the MessageSid (default: a new one; reuse it to send a retry)")
    sms.set_defaults(run=send_sms)

    status = subparsers.add_parser(
        "sms-status", help="Twilio reports the delivery status of a message we sent"
    )
    _common(status)
    status.add_argument("--sid", required=True, help="the MessageSid of our message (SM...)")
    status.add_argument("--status", required=True, choices=MESSAGE_STATUSES)
    status.add_argument("--to", default="+15555550123", help="the customer's phone")
    status.add_argument("--error-code", help="Twilio's error code, e.g. 30003 (with undelivered/failed)")
    status.set_defaults(run=send_sms_status)

    voice = subparsers.add_parser(
        "voice", help="a customer calls our Twilio number; optionally the transcription and the call's end"
    )
    _common(voice)
    voice.add_argument("--from", dest="from_number", required=True, help="the caller's phone")
    voice.add_argument("--to", default=OUR_NUMBER, help=f"our Twilio number (default {OUR_NUMBER})")
    voice.add_argument("--sid", help="the CallSid (default: a new one)")
    voice.add_argument("--transcription", help="then: the transcription of what the caller said")
    voice.add_argument(
        "--status", choices=sorted(TERMINAL_CALL_STATUSES), help="then: the call ended with this status"
    )
    voice.add_argument(
        "--duration", type=int, help="the call's duration in seconds (with --status completed)"
    )
    voice.set_defaults(run=send_voice)


def _common(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument(
        "--public-base-url",
        help=f"the base URL Twilio would call, which the signature covers "
        f"(default: ${PUBLIC_BASE_URL_ENV}, else the stack's base URL)",
    )


def _post(args: argparse.Namespace, path: str, params: Params) -> HttpResult:
    base = base_url(args)
    signed_base = args.public_base_url or os.environ.get(PUBLIC_BASE_URL_ENV) or base
    return post_signed(base, path, params, secret_value("twilio-auth-token"), signed_base)


def send_sms(args: argparse.Namespace, out: TextIO) -> int:
    if len(args.media_url) != len(args.media_type):
        out.write("give one --media-type per --media-url\n")
        return 2
    sid = args.sid or new_sid("MM" if args.media_url else "SM")
    params = sms_payload(
        sid, args.from_number, args.text, args.to, list(zip(args.media_url, args.media_type, strict=True))
    )
    result = _post(args, SMS_PATH, params)
    out.write(f"MessageSid {sid}\n{result.describe()}\n")
    return 0 if result.status == 200 else 1


def send_sms_status(args: argparse.Namespace, out: TextIO) -> int:
    params = sms_status_payload(args.sid, args.status, args.to, error_code=args.error_code)
    result = _post(args, SMS_STATUS_PATH, params)
    out.write(f"{result.describe()}\n")
    return 0 if result.status == 200 else 1


def send_voice(args: argparse.Namespace, out: TextIO) -> int:
    if args.duration is not None and args.status is None:
        out.write("--duration needs --status\n")
        return 2
    sid = args.sid or new_sid("CA")
    steps: list[tuple[str, str, Params]] = [
        ("incoming call", VOICE_PATH, incoming_call_payload(sid, args.from_number, args.to))
    ]
    if args.transcription is not None:
        params = transcription_payload(
            sid, args.from_number, args.transcription, new_sid("TR"), new_sid("RE"), args.to
        )
        steps.append(("transcription", TRANSCRIPTION_PATH, params))
    if args.status:
        params = call_status_payload(sid, args.from_number, args.status, args.duration, args.to)
        steps.append(("call status", VOICE_STATUS_PATH, params))
    out.write(f"CallSid {sid}\n")
    for label, path, params in steps:
        result = _post(args, path, params)
        out.write(f"{label}: {result.describe()}\n")
        if result.status != 200:
            return 1
    return 0
