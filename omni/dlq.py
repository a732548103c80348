"""``omni dlq list|show|redrive``: the dead-letter queues of every declared queue, locally and on AWS.

A message lands in a queue's dead-letter queue (DLQ) after ``max_receive_count`` failed
receives (shared/platform/consumer.py logs why, with the SQS message id, in the consumer's log).

* ``omni dlq list``: every DLQ with its approximate message count and the age of its
  oldest message (CloudWatch's ``ApproximateAgeOfOldestMessage`` when it has one, else
  the oldest of a sample of messages);
* ``omni dlq show QUEUE [--max N]``: the messages, each with its receive count, the event's
  detail-type, id and correlation id, and the failure reason the consumer logged (looked up
  in its log group by message id, when the logs are there);
* ``omni dlq redrive QUEUE [--max N]``: moves the messages back to the source queue. Without
  ``--max`` it asks SQS to do it (``StartMessageMoveTask``) and waits for the task; where
  that is not available (the emulator) or with ``--max``, it moves them one by one:
  receive from the DLQ, send to the source queue, then delete from the DLQ. A crash between
  the send and the delete can only deliver a message twice, never lose it, and every
  consumer is idempotent (the message is recorded once).

Where the queues are: by default the running ``omni local`` (its state file
``.omni/local.json`` names the emulator and the stage, like ``omni outbox``); ``--endpoint
URL --stage S`` for another emulator; ``--aws --stage S [--region R]`` for a deployed stack
(physical names ``omni-<stage>-<queue>[-dlq]``, credentials from the environment), or
``--aws --outputs FILE`` with the JSON of ``pulumi stack output --json`` (``queueUrls``,
``deadLetterQueueUrls``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

#: Seconds a message stays hidden from other readers while ``show``/``redrive`` handle it.
HANDLING_VISIBILITY_S = 60
#: How long ``redrive`` waits for an SQS move task before leaving it running.
DEFAULT_WAIT_S = 300
#: Error codes meaning "this endpoint has no message move tasks" (emulators, old regions).
_NO_MOVE_TASKS = {
    "InvalidAction",
    "UnsupportedOperation",
    "NotImplemented",
    "InternalFailure",
    "InternalError",
    "UnknownOperationException",
    "AWS.SimpleQueueService.UnsupportedOperation",
}


class DlqError(Exception):
    """A problem the user can fix (printed without a traceback, exit code 1)."""


# --------------------------------------------------------------------------- #
# Where the stack is
# --------------------------------------------------------------------------- #
@dataclass
class Target:
    """The AWS account (or emulator) and the stage whose queues and bus the commands use."""

    stage: str
    #: What the messages call it: "the local stack at http://..." or "AWS eu-west-3".
    where: str
    endpoint_url: str | None = None
    region: str | None = None
    fake_credentials: bool = False
    #: ``pulumi stack output --json`` when given: queue URLs and the bus name come from it.
    outputs: dict[str, Any] = field(default_factory=dict)
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            import boto3  # noqa: PLC0415
            from botocore.config import Config  # noqa: PLC0415

            from omni.local.emulator import FAKE_CREDENTIALS  # noqa: PLC0415

            session: Any = boto3.session.Session(  # boto3's stubs want a literal service name
                region_name=self.region,
                aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"] if self.fake_credentials else None,
                aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
                if self.fake_credentials
                else None,
            )
            self._clients[service] = session.client(
                service,
                endpoint_url=self.endpoint_url,
                config=Config(connect_timeout=3, read_timeout=20, retries={"max_attempts": 3}),
            )
        return self._clients[service]

    def physical(self, name: str) -> str:
        from omni.local.provision import physical_name  # noqa: PLC0415

        return physical_name(self.stage, name)


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that say where the stack is (shared by ``omni dlq`` and ``omni replay``)."""
    parser.add_argument(
        "--aws", action="store_true", help="a deployed stack, with the AWS credentials of the environment"
    )
    parser.add_argument("--stage", help="stage of the stack (default: from the state file of `omni local`)")
    parser.add_argument("--region", help="AWS region (default: the environment's, or the local stack's)")
    parser.add_argument("--endpoint", help="an AWS emulator URL (default: the running `omni local`)")
    parser.add_argument(
        "--outputs", help="JSON of `pulumi stack output --json` (queue URLs and bus name come from it)"
    )
    parser.add_argument("--state-file", default=str(Path(".omni") / "local.json"), help=argparse.SUPPRESS)


def resolve_target(args: argparse.Namespace) -> Target:
    outputs = _read_outputs(args.outputs) if args.outputs else {}
    if args.aws:
        return _aws_target(args, outputs)
    return _local_target(args, outputs)


def _read_outputs(path: str) -> dict[str, Any]:
    """The JSON ``pulumi stack output --json`` printed into ``path``."""
    try:
        outputs = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DlqError(f"cannot read the stack outputs {path}: {exc}") from None
    if not isinstance(outputs, dict):
        raise DlqError(f"{path} is not the JSON object `pulumi stack output --json` prints")
    return outputs


def _aws_target(args: argparse.Namespace, outputs: dict[str, Any]) -> Target:
    if not args.stage and not outputs:
        raise DlqError("with --aws, say which stack: --stage STAGE or --outputs FILE")
    stage = args.stage or _stage_from_outputs(outputs)
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return Target(stage=stage, where=f"AWS ({region or 'default region'})", region=region, outputs=outputs)


def _local_target(args: argparse.Namespace, outputs: dict[str, Any]) -> Target:
    from omni.local.state import read_state  # noqa: PLC0415

    state = read_state(Path(args.state_file)) or {}
    endpoint = args.endpoint or state.get("endpoint_url")
    if not endpoint:
        raise DlqError(
            f"no running local stack found ({args.state_file} is missing); start one with `omni local`, "
            "pass --endpoint URL, or use --aws --stage STAGE for a deployed stack"
        )
    return Target(
        stage=args.stage or state.get("stage") or "local",
        where=f"the stack at {endpoint}",
        endpoint_url=endpoint,
        region=args.region or state.get("region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        fake_credentials=not os.environ.get("AWS_ACCESS_KEY_ID"),
        outputs=outputs,
    )


def _stage_from_outputs(outputs: dict[str, Any]) -> str:
    bus = str(outputs.get("busName") or "")
    from topology import TOPOLOGY  # noqa: PLC0415

    suffix = f"-{TOPOLOGY.bus.name}"
    if bus.startswith("omni-") and bus.endswith(suffix):
        return bus[len("omni-") : -len(suffix)]
    raise DlqError("the stack outputs have no busName omni-<stage>-...; pass --stage")


# --------------------------------------------------------------------------- #
# Queues
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class QueuePair:
    name: str
    url: str
    dlq_url: str
    consumer: str | None


def declared_queue(name: str) -> Any:
    from topology import TOPOLOGY  # noqa: PLC0415

    wanted = name.removesuffix("-dlq")
    for queue in TOPOLOGY.queues:
        if wanted in (queue.name, queue.dlq_name):
            return queue
    known = ", ".join(q.name for q in TOPOLOGY.queues)
    raise DlqError(f"no declared queue {name!r}; the queues are: {known}")


def queue_pair(target: Target, name: str) -> QueuePair:
    from topology import TOPOLOGY  # noqa: PLC0415

    queue = declared_queue(name)
    consumer = next((fn.name for fn in TOPOLOGY.functions if fn.queue == queue.name), None)
    urls = target.outputs.get("queueUrls") or {}
    dlq_urls = target.outputs.get("deadLetterQueueUrls") or {}
    if queue.name in urls and queue.name in dlq_urls:
        return QueuePair(queue.name, urls[queue.name], dlq_urls[queue.name], consumer)
    sqs = target.client("sqs")
    from botocore.exceptions import ClientError  # noqa: PLC0415

    try:
        url = sqs.get_queue_url(QueueName=target.physical(queue.name))["QueueUrl"]
        dlq_url = sqs.get_queue_url(QueueName=target.physical(queue.dlq_name))["QueueUrl"]
    except ClientError as exc:
        raise DlqError(
            f"queue {target.physical(queue.name)} (or its DLQ) not found in {target.where}: {_message(exc)}"
        ) from None
    return QueuePair(queue.name, url, dlq_url, consumer)


def _message(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error") or {}
    return f"{error.get('Code', type(exc).__name__)}: {error.get('Message', exc)}"


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str((response.get("Error") or {}).get("Code") or "")


def _arn(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


# --------------------------------------------------------------------------- #
# list
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class DlqStatus:
    queue: str
    dlq: str
    visible: int
    in_flight: int
    oldest_age_s: float | None
    #: "metric" (CloudWatch), "sample" (oldest of the messages read) or "" (empty queue).
    age_source: str


def dlq_status(target: Target, pair: QueuePair, now: datetime | None = None) -> DlqStatus:
    sqs = target.client("sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=pair.dlq_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    visible = int(attributes.get("ApproximateNumberOfMessages", 0))
    in_flight = int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))
    dlq_name = pair.dlq_url.rstrip("/").rsplit("/", 1)[-1]
    age, source = None, ""
    if visible or in_flight:
        age = _metric_age(target, dlq_name, now)
        source = "metric"
        if age is None:
            age, source = _sampled_age(sqs, pair.dlq_url, now), "sample"
    return DlqStatus(pair.name, dlq_name, visible, in_flight, age, source)


def _metric_age(target: Target, queue_name: str, now: datetime | None) -> float | None:
    """``ApproximateAgeOfOldestMessage`` of the last 15 minutes (AWS publishes it every minute)."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    end = now or datetime.now(UTC)
    try:
        points = (
            target.client("cloudwatch")
            .get_metric_statistics(
                Namespace="AWS/SQS",
                MetricName="ApproximateAgeOfOldestMessage",
                Dimensions=[{"Name": "QueueName", "Value": queue_name}],
                StartTime=datetime.fromtimestamp(end.timestamp() - 900, UTC),
                EndTime=end,
                Period=60,
                Statistics=["Maximum"],
            )
            .get("Datapoints", [])
        )
    except (BotoCoreError, ClientError):
        return None
    if not points:
        return None
    latest = max(points, key=lambda point: point["Timestamp"])
    return float(latest["Maximum"])


def _sampled_age(sqs: Any, url: str, now: datetime | None) -> float | None:
    """The age of the oldest of up to 10 messages, read and made visible again at once."""
    got = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, AttributeNames=["SentTimestamp"]
    )
    sent = [int(m["Attributes"]["SentTimestamp"]) for m in got.get("Messages", []) if "Attributes" in m]
    if not sent:
        return None
    return max(0.0, (now or datetime.now(UTC)).timestamp() - min(sent) / 1000)


def format_age(seconds: float | None) -> str:
    """``42s``, ``5m 3s``, ``2h 5m``, ``3d 4h``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    total = int(seconds)
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m {total % 60}s"
    if total < 86400:
        return f"{total // 3600}h {total % 3600 // 60}m"
    return f"{total // 86400}d {total % 86400 // 3600}h"


def cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    from topology import TOPOLOGY  # noqa: PLC0415

    target = resolve_target(args)
    rows = [dlq_status(target, queue_pair(target, queue.name)) for queue in TOPOLOGY.queues]
    if args.json:
        json.dump([row.__dict__ for row in rows], out, indent=2)
        out.write("\n")
        return 0
    out.write(f"dead-letter queues of stage {target.stage} in {target.where}\n")
    width = max(len(row.dlq) for row in rows)
    out.write(f"  {'DLQ':<{width}}  {'messages':>8}  {'in flight':>9}  oldest\n")
    for row in rows:
        age = format_age(row.oldest_age_s) + (" (sampled)" if row.age_source == "sample" else "")
        out.write(f"  {row.dlq:<{width}}  {row.visible:>8}  {row.in_flight:>9}  {age}\n")
    total = sum(row.visible + row.in_flight for row in rows)
    out.write(f"{total} message(s) in dead-letter queues\n")
    return 0


# --------------------------------------------------------------------------- #
# show
# --------------------------------------------------------------------------- #
@dataclass
class DeadLetter:
    message_id: str
    receive_count: int
    sent_at: str
    detail_type: str | None
    event_id: str | None
    correlation_id: str | None
    reason: str | None
    body: str


def describe_message(message: dict[str, Any]) -> DeadLetter:
    """What a DLQ message is: the EventBridge event it carries, if its body is one."""
    attributes = message.get("Attributes", {})
    body = message.get("Body", "")
    detail_type = event_id = correlation_id = None
    try:
        event = json.loads(body)
    except ValueError:
        event = None
    if isinstance(event, dict):
        detail_type = event.get("detail-type")
        event_id = event.get("id")
        detail = event.get("detail")
        if isinstance(detail, dict) and detail.get("correlation_id") is not None:
            correlation_id = str(detail["correlation_id"])
    sent_ms = int(attributes.get("SentTimestamp", 0) or 0)
    reason = None
    reason_attribute = (message.get("MessageAttributes") or {}).get("failure_reason")
    if reason_attribute:
        reason = reason_attribute.get("StringValue")
    return DeadLetter(
        message_id=message["MessageId"],
        receive_count=int(attributes.get("ApproximateReceiveCount", 0) or 0),
        sent_at=datetime.fromtimestamp(sent_ms / 1000, UTC).isoformat(timespec="seconds") if sent_ms else "-",
        detail_type=detail_type,
        event_id=event_id,
        correlation_id=correlation_id,
        reason=reason,
        body=body,
    )


def logged_reason(target: Target, consumer: str | None, message_id: str, since_ms: int) -> str | None:
    """The failure the consumer (shared.platform.consumer) logged for ``message_id``, from its log group."""
    if consumer is None:
        return None
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        found = target.client("logs").filter_log_events(
            logGroupName=f"/aws/lambda/{target.physical(consumer)}",
            filterPattern=f'"{message_id}"',
            startTime=max(0, since_ms - 60_000),
            limit=50,
        )
    except (BotoCoreError, ClientError):
        return None
    reason = None
    for event in found.get("events", []):
        try:
            record = json.loads(event.get("message", ""))
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("message_id") == message_id and record.get("error_type"):
            reason = f"{record['error_type']}: {record.get('error', '')}".rstrip(": ")
    return reason


def _receive(sqs: Any, url: str, limit: int, visibility_s: int) -> Iterator[dict[str, Any]]:
    """Up to ``limit`` messages, each once (hidden for ``visibility_s`` while handled)."""
    seen: set[str] = set()
    empty = 0
    while len(seen) < limit and empty < 2:
        got = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=min(10, limit - len(seen)),
            VisibilityTimeout=visibility_s,
            WaitTimeSeconds=1 if empty else 0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = []
        for message in got.get("Messages", []):
            if message["MessageId"] in seen:  # seen already (its visibility ran out): leave it
                _release(sqs, url, message)
            else:
                messages.append(message)
        if not messages:
            empty += 1
            continue
        empty = 0
        for message in messages:
            seen.add(message["MessageId"])
            yield message


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    target = resolve_target(args)
    pair = queue_pair(target, args.queue)
    sqs = target.client("sqs")
    letters: list[DeadLetter] = []
    read: list[dict[str, Any]] = []
    try:
        for message in _receive(sqs, pair.dlq_url, args.max, HANDLING_VISIBILITY_S):
            read.append(message)
            letter = describe_message(message)
            if letter.reason is None:
                since = int(message.get("Attributes", {}).get("SentTimestamp", 0) or 0)
                letter.reason = logged_reason(target, pair.consumer, letter.message_id, since)
            letters.append(letter)
    finally:
        # Reading is not handling: visible again once all are read, for the next show or a redrive.
        for message in read:
            _release(sqs, pair.dlq_url, message)
    if args.json:
        json.dump([letter.__dict__ for letter in letters], out, indent=2)
        out.write("\n")
        return 0
    out.write(f"{len(letters)} message(s) in the DLQ of {pair.name} ({target.where})\n")
    for letter in letters:
        out.write(
            f"- {letter.message_id}  received {letter.receive_count}x  sent {letter.sent_at}\n"
            f"    detail-type {letter.detail_type or '-'}  event {letter.event_id or '-'}  "
            f"correlation {letter.correlation_id or '-'}\n"
            f"    reason {letter.reason or '- (not found in the consumer log)'}\n"
        )
        if args.body:
            out.write(f"    body {letter.body}\n")
    return 0


# --------------------------------------------------------------------------- #
# redrive
# --------------------------------------------------------------------------- #
@dataclass
class RedriveResult:
    moved: int = 0
    failed: int = 0
    #: Sent to the source queue but not deleted from the DLQ (it will be delivered twice).
    duplicated: int = 0
    #: "move-task" (SQS moved them) or "one-by-one".
    method: str = "one-by-one"
    task_status: str | None = None


def redrive_one_by_one(sqs: Any, pair: QueuePair, limit: int) -> RedriveResult:
    """Receive from the DLQ, send to the source queue, delete from the DLQ: one message at a time."""
    result = RedriveResult()
    unsent: list[dict[str, Any]] = []
    try:
        _move_each(sqs, pair, limit, result, unsent)
    finally:
        # Visible again in the DLQ once the run is over (not re-read in this run).
        for message in unsent:
            _release(sqs, pair.dlq_url, message)
    return result


def _move_each(
    sqs: Any, pair: QueuePair, limit: int, result: RedriveResult, unsent: list[dict[str, Any]]
) -> None:
    for message in _receive(sqs, pair.dlq_url, limit, HANDLING_VISIBILITY_S):
        request: dict[str, Any] = {"QueueUrl": pair.url, "MessageBody": message["Body"]}
        if message.get("MessageAttributes"):
            request["MessageAttributes"] = {
                name: {k: v for k, v in value.items() if k in {"DataType", "StringValue", "BinaryValue"}}
                for name, value in message["MessageAttributes"].items()
            }
        try:
            sqs.send_message(**request)
        except Exception as exc:  # counted and reported; the message stays in the DLQ
            print(f"omni dlq redrive: {message['MessageId']} not sent: {_message(exc)}", file=sys.stderr)
            result.failed += 1
            unsent.append(message)
            continue
        try:
            sqs.delete_message(QueueUrl=pair.dlq_url, ReceiptHandle=message["ReceiptHandle"])
        except Exception as exc:  # the copy is in the source queue already
            print(
                f"omni dlq redrive: {message['MessageId']} sent but still in the DLQ ({_message(exc)}); "
                "a later redrive delivers it again, which the idempotent consumer records once",
                file=sys.stderr,
            )
            result.duplicated += 1
        result.moved += 1


def _release(sqs: Any, url: str, message: dict[str, Any]) -> None:
    # If this fails too, the message becomes visible again when its visibility timeout ends.
    with contextlib.suppress(Exception):
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )


def redrive_with_move_task(sqs: Any, pair: QueuePair, wait_s: float) -> RedriveResult | None:
    """Let SQS move every message (``StartMessageMoveTask``); None when the endpoint cannot."""
    from botocore.exceptions import ClientError  # noqa: PLC0415

    dlq_arn, source_arn = _arn(sqs, pair.dlq_url), _arn(sqs, pair.url)
    try:
        sqs.start_message_move_task(SourceArn=dlq_arn, DestinationArn=source_arn)
    except (ClientError, NotImplementedError) as exc:
        if isinstance(exc, NotImplementedError) or _code(exc) in _NO_MOVE_TASKS:
            return None
        raise
    result = RedriveResult(method="move-task", task_status="RUNNING")
    deadline = time.monotonic() + wait_s
    while True:
        tasks = sqs.list_message_move_tasks(SourceArn=dlq_arn, MaxResults=1).get("Results", [])
        task = tasks[0] if tasks else {}
        result.task_status = str(task.get("Status", "RUNNING"))
        result.moved = int(task.get("ApproximateNumberOfMessagesMoved", 0) or 0)
        if result.task_status in {"COMPLETED", "FAILED", "CANCELLED"}:
            if result.task_status == "FAILED":
                print(
                    f"omni dlq redrive: the move task failed: {task.get('FailureReason', '?')}",
                    file=sys.stderr,
                )
            return result
        if time.monotonic() >= deadline:
            return result
        time.sleep(2)


def cmd_redrive(args: argparse.Namespace, out: TextIO) -> int:
    target = resolve_target(args)
    pair = queue_pair(target, args.queue)
    sqs = target.client("sqs")
    result = None
    if args.max is None and not args.one_by_one:
        result = redrive_with_move_task(sqs, pair, args.wait)
    if result is None:
        result = redrive_one_by_one(sqs, pair, args.max if args.max is not None else sys.maxsize)
    if result.method == "move-task":
        out.write(
            f"SQS move task {result.task_status}: {result.moved} message(s) moved from the DLQ of "
            f"{pair.name} back to {pair.name}"
            + ("" if result.task_status == "COMPLETED" else " so far (it keeps running)")
            + "\n"
        )
        return 0 if result.task_status in {"COMPLETED", "RUNNING"} else 1
    out.write(
        f"moved {result.moved}, failed {result.failed} (DLQ of {pair.name} -> {pair.name}, one by one)\n"
    )
    if result.duplicated:
        out.write(f"{result.duplicated} moved message(s) could not be deleted from the DLQ (see above)\n")
    return 0 if result.failed == 0 else 1


# --------------------------------------------------------------------------- #
def _guarded(run: Any) -> Any:
    def wrapper(args: argparse.Namespace, out: TextIO) -> int:
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        try:
            return int(run(args, out))
        except DlqError as exc:
            print(f"omni {args.command}: {exc}", file=sys.stderr)
            return 1
        except (BotoCoreError, ClientError) as exc:
            print(f"omni {args.command}: {_message(exc)}", file=sys.stderr)
            return 1

    return wrapper


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def register(commands: Any) -> None:
    """Add ``omni dlq list|show|redrive`` to the CLI's sub-commands."""
    dlq = commands.add_parser("dlq", help="inspect and redrive the dead-letter queues (local or AWS)")
    actions = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="every DLQ with its message count and the age of the oldest")
    add_target_arguments(listing)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=_guarded(cmd_list))

    show = actions.add_parser("show", help="the messages of one DLQ, with why they failed")
    show.add_argument("queue", help="the declared queue (e.g. profile-merge) or its DLQ")
    show.add_argument("--max", type=_positive, default=10, help="at most N messages (default 10)")
    show.add_argument("--body", action="store_true", help="print each message's body too")
    show.add_argument("--json", action="store_true", help="print JSON")
    add_target_arguments(show)
    show.set_defaults(run=_guarded(cmd_show))

    redrive = actions.add_parser("redrive", help="move the messages of one DLQ back to its source queue")
    redrive.add_argument("queue", help="the declared queue (e.g. profile-merge) or its DLQ")
    redrive.add_argument("--max", type=_positive, help="at most N messages (moved one by one)")
    redrive.add_argument(
        "--one-by-one", action="store_true", help="do not use an SQS message move task, move them one by one"
    )
    redrive.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT_S,
        help="seconds to wait for an SQS move task (default 300)",
    )
    add_target_arguments(redrive)
    redrive.set_defaults(run=_guarded(cmd_redrive))
