"""``omni repair duplicates``: merge the duplicate customers unauthenticated e-mail left behind.

Finds the active profiles that hold only claimed identities and share one (what every
unauthenticated mail created before claimed senders resolved to one profile per address)
and proposes merging each group into one (see :mod:`shared.services.profiles.repair`).

* ``--dry-run`` prints the proposals and changes nothing;
* otherwise it asks before applying (``--yes`` answers for scripts); each applied merge is
  an ordinary merge: audited (cause ``repair:duplicates``), listed under the customer's
  merges, reversible with ``POST /customers/{id}/unmerge``;
* idempotent: a second run finds nothing to do.

Where: the running ``omni local`` by default, ``--endpoint URL --stage S`` for another
emulator, ``--aws --stage S`` (or ``--aws --outputs FILE`` with ``pulumi stack output --json``,
whose ``tableNames`` name the tables) for a deployed stack, with the environment's AWS
credentials.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from omni.dlq import DlqError, Target, add_target_arguments, resolve_target


def _tables(target: Target) -> tuple[Any, Any]:
    """The customers repository and conversation merger of the target's tables."""
    from shared.platform import settings  # noqa: PLC0415
    from shared.repositories.conversation_merge import ConversationMerger  # noqa: PLC0415
    from shared.repositories.customers import CustomerRepository  # noqa: PLC0415
    from shared.repositories.dynamo import DynamoTable  # noqa: PLC0415

    names = target.outputs.get("tableNames") or {}
    client = target.client("dynamodb")

    def table(env_var: str, name: str) -> DynamoTable:
        return DynamoTable(env_var, table_name=str(names.get(name) or target.physical(name)), client=client)

    customers = CustomerRepository(table(settings.CUSTOMERS_TABLE, "customers"))
    merger = ConversationMerger(table(settings.CONVERSATIONS_TABLE, "conversations"))
    return customers, merger


def _describe(proposal: Any) -> str:
    merged = ", ".join(proposal.merged_ids)
    return f"merge {merged} into {proposal.survivor_id}  (sharing {', '.join(proposal.identities)})"


def _confirmed(args: argparse.Namespace, count: int, out: TextIO) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        out.write("not applied: confirm with --yes (or run it in a terminal to be asked)\n")
        return False
    out.write(f"apply {count} merge(s)? [y/N] ")
    out.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def cmd_duplicates(args: argparse.Namespace, out: TextIO) -> int:
    from shared.contracts.events import format_timestamp, utc_now  # noqa: PLC0415
    from shared.services.profiles.repair import apply_repair, find_duplicates  # noqa: PLC0415

    try:
        target = resolve_target(args)
    except DlqError as exc:
        print(f"omni repair: {exc}", file=sys.stderr)
        return 1
    customers, merger = _tables(target)
    proposals = find_duplicates(customers)
    merges = sum(len(p.merged_ids) for p in proposals)
    if args.json and args.dry_run:
        json.dump([p.__dict__ for p in proposals], out, indent=2, default=list)
        out.write("\n")
        return 0
    if not proposals:
        out.write(f"no duplicate customers in {target.where}: nothing to repair\n")
        return 0
    out.write(f"{merges} merge(s) proposed in {target.where}:\n")
    for proposal in proposals:
        out.write(f"  {_describe(proposal)}\n")
    if args.dry_run:
        out.write("dry run: nothing changed\n")
        return 0
    if not _confirmed(args, merges, out):
        return 1
    result = apply_repair(customers, merger, proposals, format_timestamp(utc_now()))
    for survivor, merged, merge_id in result.merged:
        out.write(f"merged {merged} into {survivor} ({merge_id}; undo: POST /customers/{survivor}/unmerge)\n")
    for survivor, other, reason in result.skipped:
        out.write(f"skipped {other} -> {survivor}: {reason}\n")
    return 0 if not result.skipped else 1


def register(commands: Any) -> None:
    """Add ``omni repair duplicates`` to the CLI's sub-commands."""
    repair = commands.add_parser("repair", help="one-off repairs of stored data (local or AWS)")
    actions = repair.add_subparsers(dest="action", required=True, metavar="ACTION")
    duplicates = actions.add_parser(
        "duplicates",
        help="merge the customers that share a claimed e-mail address and nothing verified",
    )
    duplicates.add_argument("--dry-run", action="store_true", help="print the proposed merges only")
    duplicates.add_argument("--yes", action="store_true", help="apply without asking")
    duplicates.add_argument("--json", action="store_true", help="with --dry-run: print the proposals as JSON")
    add_target_arguments(duplicates)
    duplicates.set_defaults(run=cmd_duplicates)
