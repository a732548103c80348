"""The ``omni`` command.

``omni topology [--json]``  the declared topology (fast: imports the topology only)
``omni local [--host] [--port] [--stage] [--demo]``  the whole stack on an AWS emulator
``omni token --agent ID [--ttl]``  an agent JWT the local API accepts
``omni outbox [--endpoint URL] [--stage]``  the deliveries logged by the running local stack
``omni dlq list|show|redrive``  the dead-letter queues, locally or on AWS (omni/dlq.py)
``omni replay --from ISO --to ISO``  replay the bus archive (omni/replay.py)
``omni knowledge sync DIR [--endpoint URL --token JWT]``  load articles (omni/knowledge.py)

Heavy modules (boto3, moto) are imported inside the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO


def _topology() -> Any:
    from topology import TOPOLOGY  # noqa: PLC0415

    return TOPOLOGY


# --------------------------------------------------------------------------- #
# omni topology
# --------------------------------------------------------------------------- #
def topology_summary(topology: Any) -> str:
    lines = [f"bus {topology.bus.name}"]
    for fn in topology.functions:
        lines += _function_summary(fn)
    lines += [_rule_summary(rule) for rule in topology.rules]
    lines += [
        f"queue {queue.name}: batch {queue.batch_size}, visibility {queue.visibility_timeout_s} s, "
        f"DLQ {queue.dlq_name} after {queue.max_receive_count} receives"
        for queue in topology.queues
    ]
    lines += [_table_summary(table) for table in topology.tables]
    lines.extend(f"secret {secret.name} (locally ${secret.local_env_var})" for secret in topology.secrets)
    return "\n".join(lines)


def _function_summary(fn: Any) -> list[str]:
    triggers: list[str] = [
        route.route_key + (" [agent]" if route.auth == "agent" else "") for route in fn.routes
    ]
    if fn.queue:
        triggers.append(f"queue {fn.queue}")
    triggers.extend(f"schedule {s.name} {s.expression}" for s in fn.schedules)
    lines = [f"function {fn.name}  ({fn.handler}, {fn.memory_mb} MB, {fn.timeout_s} s)"]
    lines.extend(f"    <- {trigger}" for trigger in triggers)
    if fn.grants:
        grants = ", ".join(f"{g.kind} {g.resource} ({g.access})" for g in fn.grants)
        lines.append(f"    may use {grants}")
    return lines


def _rule_summary(rule: Any) -> str:
    matched = [*rule.detail_types] + [
        f"{f.detail_type} if {f.field} in {list(f.values)}" for f in rule.filtered
    ]
    return f"rule {rule.name}: {', '.join(matched)} -> queue {rule.target_queue}"


def _table_summary(table: Any) -> str:
    keys = table.partition_key + (f" / {table.sort_key}" if table.sort_key else "")
    extra = "".join(f", GSI {g.name}" for g in table.gsis)
    ttl = f", TTL {table.ttl_attribute}" if table.ttl_attribute else ""
    return f"table {table.name}: {keys}{extra}{ttl}"


def cmd_topology(args: argparse.Namespace, out: TextIO) -> int:
    topology = _topology()
    if args.json:
        json.dump(topology.to_dict(), out, indent=2)
        out.write("\n")
    else:
        out.write(topology_summary(topology) + "\n")
    return 0


# --------------------------------------------------------------------------- #
# omni local
# --------------------------------------------------------------------------- #
def cmd_local(args: argparse.Namespace, out: TextIO) -> int:
    import errno  # noqa: PLC0415
    import logging  # noqa: PLC0415
    import signal  # noqa: PLC0415
    import threading  # noqa: PLC0415

    logging.basicConfig(
        level=os.environ.get("OMNI_LOCAL_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from omni.local.runtime import LocalRuntime  # noqa: PLC0415
    from omni.local.state import DEFAULT_STATE_FILE  # noqa: PLC0415

    # Powertools reads POWERTOOLS_LOG_LEVEL before the functions' LOG_LEVEL.
    os.environ["POWERTOOLS_LOG_LEVEL"] = args.log_level
    if args.log_level in ("WARNING", "ERROR"):
        # Metrics (EMF) go to stdout like logs; keep the quiet default readable.
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    runtime = LocalRuntime(host=args.host, port=args.port, stage=args.stage, state_file=DEFAULT_STATE_FILE)
    try:
        try:
            runtime.start()
        except Exception as exc:
            if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
                hint = f"port {args.port} is in use; try --port"
            else:
                hint = f"{type(exc).__name__}: {exc}"
            logging.getLogger("omni.local").debug("start failed", exc_info=True)
            print(f"omni local: cannot start: {hint}", file=sys.stderr)
            return 1
        print(
            f"  AWS emulator {runtime.endpoint_url}; agent console: {runtime.base_url}/console/; "
            "agent token: omni token --agent ID; deliveries: omni outbox; Ctrl-C stops",
            file=out,
            flush=True,
        )
        print(
            f"  web chat demo shop (chat as a customer, answer in the console): "
            f"{runtime.base_url}/widget/demo.html",
            file=out,
            flush=True,
        )
        if args.demo:
            threading.Thread(
                target=_play_demo, args=(runtime.base_url,), name="omni-demo", daemon=True
            ).start()
        while not stop.wait(0.5):
            pass
        print("omni local: stopping", file=out, flush=True)
    finally:
        runtime.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _play_demo(base_url: str) -> None:
    try:
        import importlib  # noqa: PLC0415

        demo = importlib.import_module("omni.demo")
    except ModuleNotFoundError as exc:
        if exc.name not in {"omni.demo", "omni"}:
            raise
        print(
            "omni local --demo: the demo (omni/demo.py) is not available in this version; "
            "the stack keeps serving without it.",
            file=sys.stderr,
            flush=True,
        )
        return
    # The demo's narration reads on its own: the access log (one line per request, the
    # widget's polls included) pauses while it plays; warnings and errors still show.
    import logging  # noqa: PLC0415

    access_log = logging.getLogger("omni.local.http")
    level = access_log.level
    access_log.setLevel(max(logging.WARNING, access_log.getEffectiveLevel()))
    try:
        # The assistant's part first (it loads examples/knowledge), then the journey and the week.
        demo.play_with_assistant(base_url, history=True)
    except Exception as exc:
        print(f"omni local --demo: the demo failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    finally:
        access_log.setLevel(level)


# --------------------------------------------------------------------------- #
# omni token
# --------------------------------------------------------------------------- #
def cmd_token(args: argparse.Namespace, out: TextIO) -> int:
    from omni.local.auth import issue_agent_token  # noqa: PLC0415

    if args.agent == "me":
        print(
            "omni token: 'me' cannot be an agent id: in the agent API, /agents/me stands for the agent "
            "the token belongs to. Use another id, e.g. --agent ines (the agent the demo sets up).",
            file=sys.stderr,
        )
        return 2
    out.write(issue_agent_token(args.agent, args.ttl) + "\n")
    return 0


# --------------------------------------------------------------------------- #
# omni outbox
# --------------------------------------------------------------------------- #
def _plain(value: Any) -> Any:
    from decimal import Decimal  # noqa: PLC0415

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "replace")
    return value


def _field(item: dict[str, Any], *names: str) -> str:
    for name in names:
        value = item.get(name)
        if value in (None, ""):
            continue
        if isinstance(value, dict):
            if "type" in value and "value" in value:
                return f"{value['type']}:{value['value']}"
            return json.dumps(value, sort_keys=True)
        if isinstance(value, list):
            return json.dumps(value)
        return str(value)
    return "-"


def format_deliveries(items: list[dict[str, Any]], *, width: int = 100) -> list[str]:
    """One readable line per delivery, oldest first (newest last)."""
    rows = sorted(items, key=lambda item: str(item.get("created_at") or ""))
    lines = []
    for item in rows:
        text = " ".join(_field(item, "text", "body", "message").split())
        if len(text) > width:
            text = text[: width - 1] + "…"
        lines.append(
            "  ".join(
                (
                    _field(item, "created_at"),
                    _field(item, "channel"),
                    _field(item, "recipient", "to", "address"),
                    _field(item, "status"),
                    text,
                )
            )
        )
    return lines


def cmd_outbox(args: argparse.Namespace, out: TextIO) -> int:
    from omni.local.state import read_state  # noqa: PLC0415

    state = read_state(Path(args.state_file)) or {}
    endpoint = args.endpoint or state.get("endpoint_url")
    if not endpoint:
        print(
            f"omni outbox: no running local stack found ({args.state_file} is missing); "
            "start one with `omni local`, or pass --endpoint URL",
            file=sys.stderr,
        )
        return 1
    stage = args.stage or state.get("stage") or "local"
    region = state.get("region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from omni.local.provision import physical_name  # noqa: PLC0415

    table = physical_name(stage, "outbox")
    try:
        items = _scan_table(_dynamodb_client(endpoint, region), table)
    except (BotoCoreError, ClientError) as exc:
        print(f"omni outbox: cannot read table {table} at {endpoint}: {exc}", file=sys.stderr)
        return 1
    return _print_deliveries(items, table, as_json=args.json, out=out)


def _dynamodb_client(endpoint: str, region: str) -> Any:
    """A DynamoDB client of the local stack (the emulator's fake credentials unless real ones are set)."""
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415

    from omni.local.emulator import FAKE_CREDENTIALS  # noqa: PLC0415

    fake = not os.environ.get("AWS_ACCESS_KEY_ID")
    session = boto3.session.Session(
        region_name=region,
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"] if fake else None,
        aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"] if fake else None,
    )
    return session.client(
        "dynamodb",
        endpoint_url=endpoint,
        config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2}),
    )


def _scan_table(client: Any, table: str) -> list[dict[str, Any]]:
    from boto3.dynamodb.types import TypeDeserializer  # noqa: PLC0415

    deserializer = TypeDeserializer()
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table):
        items.extend(
            {key: _plain(deserializer.deserialize(value)) for key, value in raw.items()}
            for raw in page.get("Items", [])
        )
    return items


def _print_deliveries(items: list[dict[str, Any]], table: str, *, as_json: bool, out: TextIO) -> int:
    if as_json:
        json.dump(
            sorted(items, key=lambda item: str(item.get("created_at") or "")), out, indent=2, default=str
        )
        out.write("\n")
        return 0
    if not items:
        out.write(f"no deliveries in {table}\n")
        return 0
    for line in format_deliveries(items):
        out.write(line + "\n")
    return 0


# --------------------------------------------------------------------------- #
def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omni", description="Omnichannel customer service on your AWS account."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    topology = commands.add_parser("topology", help="show the declared topology")
    topology.add_argument("--json", action="store_true", help="print it as JSON")
    topology.set_defaults(run=cmd_topology)

    local = commands.add_parser("local", help="run the whole stack locally on an AWS emulator")
    local.add_argument("--host", default="127.0.0.1", help="address of the HTTP API (default 127.0.0.1)")
    local.add_argument("--port", type=int, default=8080, help="port of the HTTP API (default 8080)")
    local.add_argument("--stage", default="local", help="stage in physical names omni-<stage>-<name>")
    local.add_argument("--demo", action="store_true", help="play the demo conversation once started")
    local.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level of the functions' JSON logs (default WARNING: the demo stays readable)",
    )
    local.set_defaults(run=cmd_local)

    token = commands.add_parser("token", help="print an agent JWT for the local API")
    token.add_argument(
        "--agent", required=True, help="the agent id (the token's sub), e.g. ines; any id but 'me'"
    )
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires (default 3600)")
    token.set_defaults(run=cmd_token)

    outbox = commands.add_parser("outbox", help="list the deliveries of the running local stack")
    outbox.add_argument("--endpoint", help="AWS emulator URL (default: from the state file of `omni local`)")
    outbox.add_argument("--stage", help="stage of the stack (default: from the state file, else local)")
    outbox.add_argument("--state-file", default=str(Path(".omni") / "local.json"), help=argparse.SUPPRESS)
    outbox.add_argument("--json", action="store_true", help="print the raw items as JSON")
    outbox.set_defaults(run=cmd_outbox)

    from omni.kpis import register as register_kpis  # noqa: PLC0415

    register_kpis(commands)

    from omni.knowledge import register as register_knowledge  # noqa: PLC0415

    register_knowledge(commands)

    from omni.dlq import register as register_dlq  # noqa: PLC0415
    from omni.replay import register as register_replay  # noqa: PLC0415

    register_dlq(commands)
    register_replay(commands)

    from omni.repair import register as register_repair  # noqa: PLC0415

    register_repair(commands)

    send = commands.add_parser("send", help="act as a provider: send a signed webhook to the stack")
    channels = send.add_subparsers(dest="channel", required=True, metavar="CHANNEL")
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["send"]:
        from omni.send import register_all  # noqa: PLC0415 - only `omni send` pays for the senders

        register_all(channels)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    try:
        return int(args.run(args, sys.stdout))
    except BrokenPipeError:  # `omni outbox | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
