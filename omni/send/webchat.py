"""``omni send webchat``: a browser widget writing into a web chat session."""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import UTC, datetime
from typing import Any, TextIO

from omni.send import add_common_arguments, base_url, http, secret_value
from shared.channels.webchat import compute_user_hash


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("webchat", help="write a web chat message (opens a session if needed)")
    add_common_arguments(parser)
    parser.add_argument("text", help="the message")
    parser.add_argument("--session", help="an existing session id (needs --token)")
    parser.add_argument("--token", help="the session's token")
    parser.add_argument("--account-id", help="a logged-in customer's account id (signed with user_hash)")
    parser.add_argument(
        "--email", help="the customer's e-mail (verified only with --account-id or --sign-email)"
    )
    parser.add_argument("--name", help="the customer's name")
    parser.add_argument(
        "--sign-email", action="store_true", help="sign the e-mail when there is no account id"
    )
    parser.add_argument("--message-id", help="the browser's message id (default: random; reuse it to resend)")
    parser.set_defaults(run=send_webchat)


def send_webchat(args: argparse.Namespace, out: TextIO) -> int:
    url = base_url(args)
    session, token = args.session, args.token
    if not session:
        customer: dict[str, str] = {}
        for key in ("account_id", "email", "name"):
            if getattr(args, key):
                customer[key] = getattr(args, key)
        subject = args.account_id or (args.email if args.sign_email else None)
        if subject:
            customer["user_hash"] = compute_user_hash(secret_value("webchat-identity"), subject)
        opened = http(
            "POST",
            f"{url}/webchat/sessions",
            json.dumps({"customer": customer}).encode(),
            {"Content-Type": "application/json"},
        )
        if opened.status != 201:
            out.write(f"opening the session failed: {opened.describe()}\n")
            return 1
        session, token = opened.json()["session_id"], opened.json()["token"]
        out.write(f"session {session}\ntoken {token}\n")
    elif not token:
        out.write("--session needs --token\n")
        return 2
    body = {
        "message_id": args.message_id or uuid.uuid4().hex[:16],
        "text": args.text,
        "sent_at": datetime.now(UTC).isoformat(),
    }
    sent = http(
        "POST",
        f"{url}/webchat/sessions/{session}/messages",
        json.dumps(body).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    out.write(f"{sent.describe()}\n")
    return 0 if sent.status == 202 else 1
