"""``omni replay --from ISO --to ISO [--detail-type X]``: replay the bus archive (EventBridge StartReplay).

The deployed bus archives every event (``omni-<stage>-<bus>-archive``, retention from the
topology). A replay puts the archived events of the window back on the bus; with
``--detail-type`` only to the rules that receive that detail-type (StartReplay's
``FilterArns``), so only their consumers see them again. Every consumer is idempotent, so
events that were processed already are recorded once.

Where the stack is: the same options as ``omni dlq`` (``--aws --stage S`` for a deployed
stack). ``omni local`` does not archive events, so locally the command says so.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from omni.dlq import DlqError, Target, add_target_arguments, resolve_target


def parse_time(value: str) -> datetime:
    """An ISO 8601 time; without a zone it is UTC."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 time (2026-11-25T08:00:00Z)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def archive_name(target: Target) -> str:
    from topology import TOPOLOGY  # noqa: PLC0415

    bus = str(target.outputs.get("busName") or target.physical(TOPOLOGY.bus.name))
    return f"{bus}-archive"


def rules_for(detail_type: str) -> list[str]:
    """The declared rules that receive ``detail_type``."""
    from topology import TOPOLOGY  # noqa: PLC0415

    return [rule.name for rule in TOPOLOGY.rules if detail_type in rule.detail_types]


def start_replay(
    target: Target, start: datetime, end: datetime, detail_type: str | None, name: str | None
) -> dict[str, Any]:
    from botocore.exceptions import ClientError  # noqa: PLC0415

    from topology import TOPOLOGY  # noqa: PLC0415

    if end <= start:
        raise DlqError("--to must be after --from")
    events = target.client("events")
    archive = archive_name(target)
    try:
        described = events.describe_archive(ArchiveName=archive)
    except ClientError as exc:
        if "NotFound" in str(exc.response.get("Error", {}).get("Code", "")):
            hint = (
                "`omni local` does not archive the bus's events: "
                "replay a deployed stack with --aws --stage STAGE"
                if target.endpoint_url
                else "is the stage right, and does the topology keep an archive (archive_retention_days > 0)?"
            )
            raise DlqError(f"no archive {archive} in {target.where}; {hint}") from None
        raise
    bus_arn = str(described["EventSourceArn"])
    destination: dict[str, Any] = {"Arn": bus_arn}
    if detail_type:
        rules = rules_for(detail_type)
        if not rules:
            known = sorted({t for rule in TOPOLOGY.rules for t in rule.detail_types})
            raise DlqError(f"no rule receives {detail_type!r}; the detail-types are: {', '.join(known)}")
        bus_name = bus_arn.rsplit("/", 1)[-1]
        destination["FilterArns"] = [
            events.describe_rule(Name=target.physical(rule), EventBusName=bus_name)["Arn"] for rule in rules
        ]
    replay = name or f"omni-{target.stage}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    response = events.start_replay(
        ReplayName=replay[:64],
        Description=f"omni replay {start.isoformat()} .. {end.isoformat()}"
        + (f" ({detail_type})" if detail_type else ""),
        EventSourceArn=str(described["ArchiveArn"]),
        EventStartTime=start,
        EventEndTime=end,
        Destination=destination,
    )
    return {
        "name": replay[:64],
        "arn": response.get("ReplayArn"),
        "state": response.get("State"),
        **destination,
    }


def cmd_replay(args: argparse.Namespace, out: TextIO) -> int:
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        target = resolve_target(args)
        started = start_replay(target, args.from_time, args.to_time, args.detail_type, args.name)
    except DlqError as exc:
        print(f"omni replay: {exc}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as exc:
        print(f"omni replay: {exc}", file=sys.stderr)
        return 1
    rules = started.get("FilterArns")
    out.write(
        f"replay {started['name']} {started['state'] or 'STARTING'}: events of "
        f"{args.from_time.isoformat()} .. {args.to_time.isoformat()} back onto {started['Arn']}"
        + (f" for {len(rules)} rule(s)" if rules else " for every rule")
        + f"\nfollow it with: aws events describe-replay --replay-name {started['name']}\n"
    )
    return 0


def register(commands: Any) -> None:
    """Add ``omni replay`` to the CLI's sub-commands."""
    replay = commands.add_parser(
        "replay", help="replay the bus archive of a window (EventBridge StartReplay)"
    )
    replay.add_argument(
        "--from", dest="from_time", type=parse_time, required=True, help="start, ISO 8601 (UTC without zone)"
    )
    replay.add_argument("--to", dest="to_time", type=parse_time, required=True, help="end, ISO 8601")
    replay.add_argument("--detail-type", help="only to the rules that receive this detail-type")
    replay.add_argument("--name", help="the replay's name (default omni-<stage>-<time>)")
    add_target_arguments(replay)
    replay.set_defaults(run=cmd_replay)
