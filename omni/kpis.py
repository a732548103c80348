"""``omni kpis``: the customer-experience KPIs of the running local stack (docs/kpis.md).

Asks the agent API (``GET /kpis``) of the stack ``omni local`` started - its address is
in the state file ``.omni/local.json`` - with a local agent token, and prints each KPI.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

#: The order and labels of the printed KPIs.
LABELS = (
    ("conversations_started", "conversations started"),
    ("conversations_resolved", "conversations resolved"),
    ("journey_completion_rate", "journey completion rate"),
    ("first_contact_resolution_rate", "first-contact resolution (FCR)"),
    ("automated_resolution_rate", "automated resolution rate"),
    ("first_response_p50_s", "first response p50 (s)"),
    ("first_response_p90_s", "first response p90 (s)"),
    ("resolution_time_p50_s", "resolution time p50 (s)"),
    ("resolution_time_p90_s", "resolution time p90 (s)"),
    ("channel_switches_per_conversation", "channel switches per conversation"),
    ("repeat_contacts", "repeat contacts (7 days)"),
    ("repeat_contact_rate", "repeat contact rate"),
    ("reopened", "reopened"),
    ("handed_over", "handed over to a human queue"),
    ("stalled_handovers", "stalled hand-overs"),
    ("ces_average", "CES average (1-7)"),
    ("ces_answers", "CES answers"),
    ("ces_response_rate", "CES response rate"),
    ("csat_average", "CSAT average (1-5)"),
    ("csat_satisfied_rate", "CSAT satisfied (4-5)"),
    ("csat_answers", "CSAT answers"),
    ("csat_response_rate", "CSAT response rate"),
)
RATES = {key for key, _ in LABELS if key.endswith("_rate")}


def format_value(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key in RATES:
        return f"{float(value) * 100:.1f} %"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def format_report(report: dict[str, Any]) -> list[str]:
    scope = f"{report['from_day']} .. {report['to_day']}"
    for name in ("channel", "intent"):
        if report.get(name):
            scope += f"  {name}={report[name]}"
    lines = [f"KPIs {scope} (UTC days; definitions: docs/kpis.md)"]
    kpis = report["kpis"]
    width = max(len(label) for _, label in LABELS)
    lines += [f"  {label:<{width}}  {format_value(key, kpis.get(key))}" for key, label in LABELS]
    by_reason = report.get("handed_over_by_reason") or {}
    if by_reason:
        lines.append("  hand-overs by reason: " + ", ".join(f"{r} {n}" for r, n in by_reason.items()))
    return lines


def fetch(base_url: str, token: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
    url = f"{base_url.rstrip('/')}/kpis?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(  # noqa: S310 - our own stack's URL
        url, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        body = error.read()
        try:
            answer = json.loads(body or b"{}")
        except ValueError:
            answer = {"message": body[:200].decode("utf-8", "replace")}
        # A refused token: the JWT authorizer says why in this header, not in the body.
        if error.headers.get("WWW-Authenticate") and isinstance(answer, dict):
            answer["www-authenticate"] = error.headers["WWW-Authenticate"]
        return error.code, answer


def cmd_kpis(args: argparse.Namespace, out: TextIO) -> int:
    from omni.local.auth import issue_agent_token  # noqa: PLC0415
    from omni.local.state import read_state  # noqa: PLC0415

    base_url = args.base_url or (read_state(Path(args.state_file)) or {}).get("base_url")
    if not base_url:
        print(
            f"omni kpis: no running local stack found ({args.state_file} is missing); "
            "start one with `omni local`, or pass --base-url URL",
            file=sys.stderr,
        )
        return 1
    today = datetime.now(UTC).date().isoformat()
    params = {"from": args.from_day or today, "to": args.to_day or args.from_day or today}
    if args.channel:
        params["channel"] = args.channel
    if args.intent:
        params["intent"] = args.intent
    try:
        status, body = fetch(base_url, issue_agent_token(args.agent, 300), params)
    except OSError as exc:
        print(f"omni kpis: cannot reach {base_url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        reason = f" (www-authenticate: {body['www-authenticate']})" if "www-authenticate" in body else ""
        print(f"omni kpis: {status} {body.get('message', body)}{reason}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(body, out, indent=2, sort_keys=True)
        out.write("\n")
    else:
        out.write("\n".join(format_report(body)) + "\n")
    return 0


def register(commands: Any) -> None:
    """Add ``omni kpis`` to the CLI's sub-commands."""
    kpis = commands.add_parser("kpis", help="print the customer-experience KPIs of the running local stack")
    kpis.add_argument("--from", dest="from_day", help="first day YYYY-MM-DD, UTC (default: today)")
    kpis.add_argument("--to", dest="to_day", help="last day YYYY-MM-DD, included (default: --from)")
    kpis.add_argument("--channel", help="only conversations opened on this channel")
    kpis.add_argument("--intent", help="only conversations with this intent")
    kpis.add_argument("--json", action="store_true", help="print the API's answer as JSON (with counters)")
    kpis.add_argument("--agent", default="omni-cli", help=argparse.SUPPRESS)
    kpis.add_argument(
        "--base-url", help="the stack's HTTP API (default: from the state file of `omni local`)"
    )
    kpis.add_argument("--state-file", default=str(Path(".omni") / "local.json"), help=argparse.SUPPRESS)
    kpis.set_defaults(run=cmd_kpis)
