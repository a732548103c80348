"""``omni dlq list|show|redrive`` and ``omni replay`` against the whole topology in moto.

The commands run as a person runs them (``omni.cli.main``), against the emulated account
of the ``stack`` fixture with ``--aws --stage test`` (moto answers every AWS call).
Poison messages really reach the dead-letter queues: they are received and failed
``maxReceiveCount`` times, and SQS moves them. The checks count what lands where: each
redriven message in the source queue exactly once, the DLQ empty, and a redriven message
whose consumer now succeeds recorded once in its conversation.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from functions.webchat.handler import handler as webchat
from omni.cli import build_parser, main
from tests.faults.support import Ledger, client_error, inject, invoke, receive, run_until_empty, settle
from tests.helpers import context, eventbridge_envelope, http_event
from topology import TOPOLOGY

Stack = dict[Any, str]
AWS = ["--aws", "--stage", "test", "--region", "us-east-1"]


def omni(capsys: pytest.CaptureFixture[str], *words: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(words))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def url(name: str) -> str:
    return boto3.client("sqs").get_queue_url(QueueName=f"omni-test-{name}")["QueueUrl"]


def drain(queue_url: str) -> list[dict[str, Any]]:
    """Every message of a queue (received and deleted)."""
    sqs = boto3.client("sqs")
    found: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not got:
            return found
        for message in got:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        found += got


def count(queue_url: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def poison(queue: str, bodies: list[str]) -> None:
    """Send ``bodies`` to ``queue`` and fail them until SQS moves them to its DLQ."""
    sqs = boto3.client("sqs")
    source = url(queue)
    for body in bodies:
        sqs.send_message(QueueUrl=source, MessageBody=body)
    exhaust(source, TOPOLOGY.queue(queue).max_receive_count)


def exhaust(source: str, max_receive_count: int) -> None:
    """Receive and fail every message of ``source`` until none is left there (they are in the DLQ)."""
    sqs = boto3.client("sqs")
    for _ in range(max_receive_count + 2):
        got = sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
            "Messages", []
        )
        while got:
            got = sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
                "Messages", []
            )
    assert count(source) == 0


# --------------------------------------------------------------------------- #
def test_list_shows_every_dlq_with_its_count_and_oldest_age(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    poison("routing", ["not an event", '{"detail-type": "x"}', "[]"])
    code, out, err = omni(capsys, "dlq", "list", *AWS)
    assert code == 0, err
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("  omni-")}
    assert set(lines) == {f"omni-test-{q.dlq_name}" for q in TOPOLOGY.queues}
    assert lines["omni-test-routing-dlq"][1:3] == ["3", "0"]
    assert lines["omni-test-routing-dlq"][3].endswith("s")  # seconds old, sampled (moto has no metric)
    assert "(sampled)" in " ".join(lines["omni-test-routing-dlq"])
    assert lines["omni-test-notify-dlq"][1:4] == ["0", "0", "-"]
    assert out.rstrip().endswith("3 message(s) in dead-letter queues")

    code, out, _ = omni(capsys, "dlq", "list", "--json", *AWS)
    rows = {row["queue"]: row for row in json.loads(out)}
    assert rows["routing"]["visible"] == 3
    assert rows["routing"]["age_source"] == "sample"
    assert 0 <= rows["routing"]["oldest_age_s"] < 120
    assert count(url("routing-dlq")) == 3  # listing moved nothing


def test_redrive_moves_each_poison_message_back_exactly_once(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    bodies = [f"poison {n}" for n in range(13)]
    poison("notify", bodies)
    assert count(url("notify-dlq")) == 13

    # moto has no StartMessageMoveTask: the command falls back to moving them one by one.
    code, out, err = omni(capsys, "dlq", "redrive", "notify", *AWS)
    assert code == 0, err
    assert "moved 13, failed 0" in out
    assert count(url("notify-dlq")) == 0
    moved = [m["Body"] for m in drain(url("notify"))]
    assert sorted(moved) == sorted(bodies)  # each once: none lost, none duplicated


def test_redrive_max_moves_only_that_many(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    poison("kpi", [f"k{n}" for n in range(5)])
    code, out, err = omni(capsys, "dlq", "redrive", "kpi-dlq", "--max", "2", *AWS)
    assert code == 0, err
    assert "moved 2, failed 0" in out
    assert count(url("kpi-dlq")) == 3
    assert len(drain(url("kpi"))) == 2


def test_a_failed_send_leaves_the_message_in_the_dlq(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    poison("kpi", ["a", "b"])

    def refuse_sends(client: Any, operation: str, params: dict[str, Any], call: Any) -> Any:
        if operation == "SendMessage":
            raise client_error("KMS.AccessDeniedException", operation)
        return call(params)

    with inject(refuse_sends):
        code, out, err = omni(capsys, "dlq", "redrive", "kpi", "--one-by-one", *AWS)
    assert code == 1
    assert "moved 0, failed 2" in out
    assert "KMS.AccessDeniedException" in err
    assert count(url("kpi-dlq")) == 2  # nothing lost
    assert count(url("kpi")) == 0


def test_redrive_uses_an_sqs_move_task_where_the_endpoint_has_one(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def move_tasks(client: Any, operation: str, params: dict[str, Any], call: Any) -> Any:
        if operation == "StartMessageMoveTask":
            calls.append((operation, params))
            return {"TaskHandle": "handle-1"}
        if operation == "ListMessageMoveTasks":
            calls.append((operation, params))
            return {"Results": [{"Status": "COMPLETED", "ApproximateNumberOfMessagesMoved": 4}]}
        return call(params)

    with inject(move_tasks):
        code, out, err = omni(capsys, "dlq", "redrive", "routing", *AWS)
    assert code == 0, err
    assert "SQS move task COMPLETED: 4 message(s) moved" in out
    sqs = boto3.client("sqs")
    arn = {
        q: sqs.get_queue_attributes(QueueUrl=url(q), AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for q in ("routing", "routing-dlq")
    }
    assert calls[0] == (
        "StartMessageMoveTask",
        {"SourceArn": arn["routing-dlq"], "DestinationArn": arn["routing"]},
    )
    assert calls[1][0] == "ListMessageMoveTasks"


# --------------------------------------------------------------------------- #
def post_webchat_message(text: str) -> str:
    response = webchat(http_event("POST", "/webchat/sessions", body={}), context("webchat"))
    session = json.loads(response["body"])
    response = webchat(
        http_event(
            "POST",
            "/webchat/sessions/{session_id}/messages",
            path_parameters={"session_id": session["session_id"]},
            body={"message_id": "m-1", "text": text, "sent_at": datetime.now(UTC).isoformat()},
            headers={"authorization": f"Bearer {session['token']}"},
        ),
        context("webchat"),
    )
    assert response["statusCode"] == 202, response
    return f"webchat#{session['session_id']}:m-1"


def test_show_then_redrive_to_a_consumer_that_now_succeeds_records_the_message_once(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = Ledger("dlq redrive")
    ledger.expect(post_webchat_message("My parcel never arrived"))

    # Profile merge fails (DynamoDB down) on every receive: SQS moves the event to the DLQ.
    def dynamodb_down(client: Any, operation: str, params: dict[str, Any], call: Any) -> Any:
        if client.meta.service_model.service_name == "dynamodb":
            raise client_error("InternalServerError", operation)
        return call(params)

    failures = 0
    with inject(dynamodb_down):
        for _ in range(TOPOLOGY.queue("profile-merge").max_receive_count + 2):
            records = receive(stack, "profile-merge")
            if not records:
                continue
            failed = invoke("profile-merge", records)
            failures += len(failed)
            settle(stack, "profile-merge", records, failed)
    assert failures == TOPOLOGY.queue("profile-merge").max_receive_count
    assert count(url("profile-merge")) == 0
    assert count(url("profile-merge-dlq")) == 1

    # What Lambda ships to the consumer's log group: the warning shared/platform/consumer.py logs.
    sqs = boto3.client("sqs")
    [peek] = sqs.receive_message(QueueUrl=url("profile-merge-dlq"), VisibilityTimeout=0)["Messages"]
    logs = boto3.client("logs")
    group = "/aws/lambda/omni-test-profile-merge"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    logged = {
        "level": "WARNING",
        "message": "record failed; SQS will redeliver it, then move it to the dead-letter queue",
        "message_id": peek["MessageId"],
        "receive_count": "3",
        "error_type": "ClientError",
        "error": "An error occurred (InternalServerError) when calling the TransactWriteItems operation",
    }
    logs.put_log_events(
        logGroupName=group,
        logStreamName="s",
        logEvents=[{"timestamp": int(time.time() * 1000), "message": json.dumps(logged)}],
    )

    code, out, err = omni(capsys, "dlq", "show", "profile-merge", "--json", *AWS)
    assert code == 0, err
    [letter] = json.loads(out)
    assert letter["message_id"] == peek["MessageId"]
    assert letter["detail_type"] == "message.received"
    assert letter["receive_count"] >= 1
    assert letter["reason"] == f"ClientError: {logged['error']}"
    assert json.loads(letter["body"])["detail"]["channel"] == "webchat"
    code, out, err = omni(capsys, "dlq", "show", "profile-merge", *AWS)
    assert code == 0, err
    assert "detail-type message.received" in out
    assert "reason ClientError:" in out
    assert count(url("profile-merge-dlq")) == 1  # showing moved nothing

    # The crash case: the event is also back in the source queue (sent, not yet deleted).
    sqs.send_message(QueueUrl=url("profile-merge"), MessageBody=letter["body"])
    code, out, err = omni(capsys, "dlq", "redrive", "profile-merge", *AWS)
    assert code == 0, err
    assert "moved 1, failed 0" in out
    assert count(url("profile-merge-dlq")) == 0

    assert run_until_empty(stack) == 0  # the consumer now succeeds
    ledger.count(stack[("table", "conversations")]).assert_exactly_once()


# --------------------------------------------------------------------------- #
def test_an_unknown_queue_or_a_missing_stack_is_a_clear_error(
    stack: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    code, _, err = omni(capsys, "dlq", "show", "nope", *AWS)
    assert code == 1
    assert "no declared queue 'nope'" in err
    assert "profile-merge" in err
    code, _, err = omni(capsys, "dlq", "list", "--state-file", str(tmp_path / "missing.json"))
    assert code == 1
    assert "no running local stack found" in err
    code, _, err = omni(capsys, "dlq", "list", "--aws")
    assert code == 1
    assert "--stage STAGE or --outputs FILE" in err


def test_queue_urls_can_come_from_the_stack_outputs(
    stack: Stack, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    poison("proactive", ["p"])
    outputs = tmp_path / "outputs.json"
    outputs.write_text(
        json.dumps(
            {
                "busName": "omni-test-events",
                "queueUrls": {q.name: url(q.name) for q in TOPOLOGY.queues},
                "deadLetterQueueUrls": {q.name: url(q.dlq_name) for q in TOPOLOGY.queues},
            }
        )
    )
    code, out, err = omni(capsys, "dlq", "redrive", "proactive", "--aws", "--outputs", str(outputs))
    assert code == 0, err
    assert "moved 1, failed 0" in out
    assert [m["Body"] for m in drain(url("proactive"))] == ["p"]


# --------------------------------------------------------------------------- #
def test_replay_starts_an_archive_replay_to_the_rules_of_a_detail_type(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    events = boto3.client("events")
    bus = events.describe_event_bus(Name="omni-test-events")
    archive = events.create_archive(ArchiveName="omni-test-events-archive", EventSourceArn=bus["Arn"])
    detail = {"channel": "webchat", "text": "hello"}
    envelope = json.loads(eventbridge_envelope("message.received", detail))
    events.put_events(
        Entries=[
            {
                "EventBusName": "omni-test-events",
                "Source": "omni.webchat",
                "DetailType": "message.received",
                "Detail": json.dumps(envelope["detail"]),
            }
        ]
    )
    drain(url("profile-merge"))  # the live delivery

    start = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    end = datetime.now(UTC).isoformat()
    code, out, err = omni(
        capsys,
        "replay",
        "--from",
        start,
        "--to",
        end,
        "--detail-type",
        "message.received",
        "--name",
        "again",
        *AWS,
    )
    assert code == 0, err
    assert out.startswith("replay again ")
    replay = events.describe_replay(ReplayName="again")
    assert replay["EventSourceArn"] == archive["ArchiveArn"]
    rule = events.describe_rule(Name="omni-test-message-received", EventBusName="omni-test-events")
    assert replay["Destination"] == {"Arn": bus["Arn"], "FilterArns": [rule["Arn"]]}
    replayed = [json.loads(m["Body"]) for m in drain(url("profile-merge"))]
    assert [(e["detail-type"], e["detail"]) for e in replayed] == [("message.received", detail)]
    assert replayed[0]["replay-name"] == "again"

    code, _, err = omni(capsys, "replay", "--from", end, "--to", start, *AWS)
    assert code == 1
    assert "--to must be after --from" in err
    code, _, err = omni(capsys, "replay", "--from", start, "--to", end, "--detail-type", "nope", *AWS)
    assert code == 1
    assert "no rule receives 'nope'" in err


def test_replay_without_an_archive_says_so(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = omni(capsys, "replay", "--from", "2026-11-25T08:00:00Z", "--to", "2026-11-25T09:00", *AWS)
    assert code == 1
    assert "no archive omni-test-events-archive" in err


# --------------------------------------------------------------------------- #
def test_the_running_local_stack_is_found_through_its_state_file(tmp_path: Any) -> None:
    from omni.dlq import format_age, resolve_target  # noqa: PLC0415
    from omni.local.state import write_state  # noqa: PLC0415

    state = tmp_path / "local.json"
    write_state(state, {"stage": "dev", "region": "eu-west-3", "endpoint_url": "http://127.0.0.1:4566"})
    parser = build_parser(["dlq", "list"])
    target = resolve_target(parser.parse_args(["dlq", "list", "--state-file", str(state)]))
    assert (target.endpoint_url, target.stage, target.region) == ("http://127.0.0.1:4566", "dev", "eu-west-3")
    assert target.physical("notify-dlq") == "omni-dev-notify-dlq"
    target = resolve_target(
        parser.parse_args(["dlq", "list", "--aws", "--stage", "prod", "--region", "eu-west-1"])
    )
    assert (target.endpoint_url, target.stage, target.region) == (None, "prod", "eu-west-1")
    assert [format_age(s) for s in (None, 5, 65, 7260, 90000)] == ["-", "5s", "1m 5s", "2h 1m", "1d 1h"]
