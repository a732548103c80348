"""``omni send email``: a mail arriving through Amazon SES receiving.

Posts the raw message to the local runtime's SES emulation (``POST /_local/email/<function>``,
see :mod:`omni.local.email`): it is stored in the inbound bucket the way the receipt
rule's S3 action stores it, and the e-mail function is invoked asynchronously with the
Lambda action's event. SES's verdicts are ``PASS`` unless an option says otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote, urlencode

from omni.send import add_common_arguments, base_url, http

CONTROL_PATH = "/_local/email"
VERDICTS = ("spf", "dkim", "dmarc", "spam", "virus")
STATUSES = ("PASS", "FAIL", "GRAY", "PROCESSING_FAILED", "DISABLED")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "email",
        help="receive a raw e-mail (.eml) as Amazon SES would",
        description="Receive a raw RFC 5322 message the way SES receiving does: stored in the "
        "inbound bucket, then the e-mail function invoked asynchronously with SES's event.",
    )
    add_common_arguments(parser)
    parser.add_argument("file", nargs="?", help="the raw message (.eml); '-' reads standard input")
    parser.add_argument(
        "--redeliver",
        metavar="KEY",
        help="deliver a mail already in the bucket again (a key under the prefix keeps its message id)",
    )
    for verdict in VERDICTS:
        parser.add_argument(
            f"--{verdict}",
            type=str.upper,
            choices=STATUSES,
            help=f"SES's {verdict.upper()} verdict (default PASS)",
        )
    parser.add_argument(
        "--dmarc-policy",
        choices=("none", "quarantine", "reject"),
        help="the sender's policy, with --dmarc FAIL",
    )
    parser.add_argument(
        "--to",
        action="append",
        metavar="ADDRESS",
        help="an envelope recipient (repeatable; default: the message's To and Cc addresses)",
    )
    parser.add_argument("--function", default="email", help="the function with the e-mail trigger")
    parser.set_defaults(run=send_email)


def _query(args: argparse.Namespace) -> str:
    params: list[tuple[str, str]] = [
        (verdict, getattr(args, verdict)) for verdict in VERDICTS if getattr(args, verdict)
    ]
    if args.dmarc_policy:
        params.append(("dmarc_policy", args.dmarc_policy))
    params.extend(("to", address) for address in args.to or ())
    return urlencode(params)


def send_email(args: argparse.Namespace, out: TextIO) -> int:
    if bool(args.file) == bool(args.redeliver):
        out.write("give the .eml file, or --redeliver KEY\n")
        return 2
    url = f"{base_url(args)}{CONTROL_PATH}/{quote(args.function, safe='')}"
    query = _query(args)
    if query:
        url = f"{url}?{query}"
    if args.redeliver:
        body = json.dumps({"key": args.redeliver}).encode()
        result = http("POST", url, body, {"Content-Type": "application/json"})
    else:
        try:
            raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
        except OSError as exc:
            out.write(f"cannot read {args.file}: {exc.strerror or exc}\n")
            return 2
        result = http("POST", url, raw, {"Content-Type": "message/rfc822"})
    out.write(f"{result.describe()}\n")
    return 0 if result.status == 202 else 1
