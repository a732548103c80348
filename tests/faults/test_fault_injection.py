"""Faults injected at the AWS client layer while the real handlers run under moto.

Each scenario posts web chat messages (the webchat handler publishes them on the real
bus; the rules put them on the real queues), drives profile merge, routing and notify
with real SQS batches as Lambda would, injects a fault, and counts: messages in,
messages recorded in the conversations table, duplicates (must be 0), losses (must be 0).
"""

from __future__ import annotations

import itertools
import json
import threading
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from functions.webchat.handler import handler as webchat
from tests.faults.support import (
    PIPELINE,
    Ledger,
    client_error,
    dlq_bodies,
    inject,
    invoke,
    receive,
    run_until_empty,
    scan,
    settle,
)
from tests.helpers import context, http_event

Stack = dict[Any, str]


def open_session() -> dict[str, Any]:
    response = webchat(http_event("POST", "/webchat/sessions", body={}), context("webchat"))
    assert response["statusCode"] == 201, response
    return json.loads(response["body"])


def post_message(session: dict[str, Any], message_id: str, text: str) -> dict[str, Any]:
    return webchat(
        http_event(
            "POST",
            "/webchat/sessions/{session_id}/messages",
            path_parameters={"session_id": session["session_id"]},
            body={"message_id": message_id, "text": text, "sent_at": datetime.now(UTC).isoformat()},
            headers={"authorization": f"Bearer {session['token']}"},
        ),
        context("webchat"),
    )


def send_burst(ledger: Ledger, sessions: int, per_session: int) -> list[dict[str, Any]]:
    opened = [open_session() for _ in range(sessions)]
    for n, session in itertools.product(range(per_session), opened):
        response = post_message(session, f"m-{n}", f"My invoice is wrong ({n})")
        assert response["statusCode"] == 202, response
        ledger.expect(f"webchat#{session['session_id']}:m-{n}")
    return opened


def conversation_metas(stack: Stack) -> list[dict[str, Any]]:
    return [i for i in scan(stack[("table", "conversations")]) if i.get("sk") == "META"]


def outbound_ids(stack: Stack) -> list[str]:
    return [
        i["message_id"]
        for i in scan(stack[("table", "conversations")])
        if str(i.get("sk", "")).startswith("MSG#") and i.get("direction") == "outbound"
    ]


def assert_every_conversation_routed_and_acknowledged_once(stack: Stack, sessions: int) -> None:
    metas = conversation_metas(stack)
    assert len(metas) == sessions
    assert all(meta.get("routing") for meta in metas), [m.get("routing") for m in metas]
    acks = outbound_ids(stack)
    assert len(acks) == len(set(acks))
    outbox = scan(stack[("table", "outbox")])
    assert len(outbox) == len({item["notification_id"] for item in outbox})


# --------------------------------------------------------------------------- #
# EventBridge PutEvents: partial failure
# --------------------------------------------------------------------------- #
class PartialPutEvents:
    """The first time an entry is put, every other one fails (``FailedEntryCount`` > 0)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.failed = 0
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, client: Any, operation: str, params: dict[str, Any], call: Any) -> Any:
        if operation != "PutEvents":
            return call(params)
        with self.lock:
            self.calls += 1
            fail = []
            for index, entry in enumerate(params["Entries"]):
                first_time = entry["Detail"] not in self.seen
                self.seen.add(entry["Detail"])
                fail.append(first_time and (index % 2 == 0 or self.calls % 2 == 1))
        passed = [e for e, f in zip(params["Entries"], fail, strict=True) if not f]
        real = iter(call({**params, "Entries": passed})["Entries"] if passed else [])
        results = [
            {"ErrorCode": "ThrottlingException", "ErrorMessage": "injected"} if f else next(real)
            for f in fail
        ]
        with self.lock:
            self.failed += sum(fail)
        return {"FailedEntryCount": sum(fail), "Entries": results}


def test_put_events_partial_failures_are_resent_and_nothing_is_dropped(stack: Stack) -> None:
    ledger = Ledger("PutEvents partial failure")
    fault = PartialPutEvents()
    with inject(fault):
        send_burst(ledger, sessions=4, per_session=3)
        retried = run_until_empty(stack)
    ledger.count(stack[("table", "conversations")])
    ledger.assert_exactly_once(injected_entry_failures=fault.failed, batch_item_failures=retried)
    assert fault.failed >= 12  # every message.received, and message.recorded, failed once
    assert_every_conversation_routed_and_acknowledged_once(stack, sessions=4)


def test_bus_refusing_a_webhook_answers_503_and_the_providers_retry_is_recorded_once(stack: Stack) -> None:
    ledger = Ledger("PutEvents failing every attempt, then the sender retries")

    def refuse(client: Any, operation: str, params: dict[str, Any], call: Any) -> Any:
        if operation != "PutEvents":
            return call(params)
        failed = {"ErrorCode": "InternalFailure", "ErrorMessage": "injected"}
        return {"FailedEntryCount": len(params["Entries"]), "Entries": [failed for _ in params["Entries"]]}

    session = open_session()
    with inject(refuse):
        refused = post_message(session, "m-1", "hello?")
    assert refused["statusCode"] == 503, refused
    assert run_until_empty(stack) == 0
    assert ledger.count(stack[("table", "conversations")]).recorded == []  # nothing half-accepted
    accepted = post_message(session, "m-1", "hello?")  # the browser retries the same message
    assert accepted["statusCode"] == 202, accepted
    ledger.expect(f"webchat#{session['session_id']}:m-1")
    run_until_empty(stack)
    ledger.count(stack[("table", "conversations")]).assert_exactly_once(refused_first=1)


# --------------------------------------------------------------------------- #
# DynamoDB: throttling and conditional-check races
# --------------------------------------------------------------------------- #
THROTTLE_CODES = {
    "TransactWriteItems": "ThrottlingException",
    "PutItem": "ProvisionedThroughputExceededException",
    "UpdateItem": "ProvisionedThroughputExceededException",
}


def test_dynamodb_throttling_is_reported_as_batch_item_failures_then_redelivered(stack: Stack) -> None:
    ledger = Ledger("DynamoDB throttling")
    send_burst(ledger, sessions=5, per_session=3)
    counter = itertools.count()
    throttled: list[str] = []

    def throttle(client: Any, operation: str, params: dict[str, Any], call: Any) -> Any:
        # Every third write is throttled (after botocore's own retries gave up).
        if operation in THROTTLE_CODES and next(counter) % 3 == 1:
            throttled.append(operation)
            raise client_error(THROTTLE_CODES[operation], operation, "Rate exceeded")
        return call(params)

    with inject(throttle):
        retried = run_until_empty(stack)
    ledger.count(stack[("table", "conversations")])
    ledger.assert_exactly_once(throttled_writes=len(throttled), batch_item_failures=retried)
    assert set(throttled) >= {"TransactWriteItems", "PutItem"}, throttled
    assert retried > 0
    assert_every_conversation_routed_and_acknowledged_once(stack, sessions=5)


def test_conditional_check_races_on_conversations_are_retried(stack: Stack) -> None:
    """Another writer bumps the conversation's version just before each append commits."""
    ledger = Ledger("ConditionalCheckFailed races")
    send_burst(ledger, sessions=3, per_session=4)
    races: list[tuple[str, str]] = []

    def race(client: Any, operation: str, params: dict[str, Any], call: Any) -> Any:
        # Transactions (recording, transitions) and the single conditional updates (an ordinary
        # routing decision with its marker) alike.
        budget = {"TransactWriteItems": 20, "UpdateItem": 6}
        if operation in budget and sum(1 for r in races if r[1] == operation) < budget[operation]:
            updates = (
                [i["Update"] for i in params["TransactItems"] if "Update" in i]
                if operation == "TransactWriteItems"
                else [params]
            )
            guarded = [u for u in updates if u.get("ConditionExpression") == "version = :version"]
            if guarded:
                update = guarded[0]
                # A real concurrent write: the META item moves on under the transaction.
                boto3.client("dynamodb").update_item(
                    TableName=update["TableName"],
                    Key=update["Key"],
                    UpdateExpression="SET version = version + :one",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                )
                races.append((update["Key"]["pk"]["S"], operation))
        return call(params)

    with inject(race):
        retried = run_until_empty(stack)
    ledger.count(stack[("table", "conversations")])
    ledger.assert_exactly_once(races=len(races), batch_item_failures=retried)
    assert sum(1 for r in races if r[1] == "TransactWriteItems") == 20
    assert any(r[1] == "UpdateItem" for r in races), races
    assert_every_conversation_routed_and_acknowledged_once(stack, sessions=3)
    # The counters moved once per message although every append was raced.
    messages = [i for i in scan(stack[("table", "conversations")]) if str(i.get("sk", "")).startswith("MSG#")]
    for meta in conversation_metas(stack):
        assert meta["message_count"] == sum(1 for m in messages if m["pk"] == meta["pk"]), meta


def test_customers_claimed_concurrently_end_as_one_profile(stack: Stack) -> None:
    """The same batch handled by two invocations at once: identity claims race for real."""
    ledger = Ledger("same batch, two concurrent invocations")
    send_burst(ledger, sessions=4, per_session=2)
    records = receive(stack, "profile-merge")
    assert len(records) == 8
    barrier = threading.Barrier(2)
    failures: list[set[str]] = []

    def run() -> None:
        barrier.wait()
        failures.append(invoke("profile-merge", records))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    settle(stack, "profile-merge", records, set().union(*failures))
    run_until_empty(stack)
    ledger.count(stack[("table", "conversations")]).assert_exactly_once(
        failed_in_race=sum(len(f) for f in failures)
    )
    customers = [i for i in scan(stack[("table", "customers")]) if i.get("sk") == "PROFILE"]
    assert len(customers) == 4
    assert_every_conversation_routed_and_acknowledged_once(stack, sessions=4)


# --------------------------------------------------------------------------- #
# A consumer crashing after its side effect, before SQS deleted the message
# --------------------------------------------------------------------------- #
def test_crash_after_side_effect_before_delete_has_no_second_effect(stack: Stack) -> None:
    ledger = Ledger("crash after side effect, before delete")
    send_burst(ledger, sessions=3, per_session=2)
    crashed = 0
    for queue in PIPELINE:
        while records := receive(stack, queue):
            assert invoke(queue, records) == set()
            # The container dies here: nothing is deleted; SQS delivers the batch again.
            settle(stack, queue, records, {r["messageId"] for r in records})
            crashed += len(records)
            redelivered = receive(stack, queue)
            assert {r["body"] for r in redelivered} == {r["body"] for r in records}
            assert invoke(queue, redelivered) == set()
            settle(stack, queue, redelivered, set())
    run_until_empty(stack)
    ledger.count(stack[("table", "conversations")]).assert_exactly_once(redelivered=crashed)
    assert_every_conversation_routed_and_acknowledged_once(stack, sessions=3)
    assert len(outbound_ids(stack)) == 3  # one acknowledgement per conversation


# --------------------------------------------------------------------------- #
# Poison messages
# --------------------------------------------------------------------------- #
POISON = [
    "not json at all",
    json.dumps({"detail": "not an event"}),
    json.dumps(
        {
            "version": "0",
            "id": "e-1",
            "detail-type": "message.received",
            "source": "omni.webchat",
            "account": "123456789012",
            "time": "2026-01-01T00:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {"channel": "webchat", "kind": "message"},
        }
    ),
]


def test_poison_messages_end_in_the_dlq_with_the_reason_logged_and_the_pipeline_flows(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.profile_merge import handler as profile_merge  # noqa: PLC0415

    ledger = Ledger("poison messages")
    # What the consumer logs for each failed record (its Powertools logger, spied on).
    logged: list[dict[str, Any]] = []
    log = profile_merge.processor._logger
    warning = log.warning

    def spy(message: str, *args: Any, **kwargs: Any) -> Any:
        if "record failed" in message:
            logged.append(kwargs.get("extra", {}))
        return warning(message, *args, **kwargs)

    monkeypatch.setattr(log, "warning", spy)
    sqs = boto3.client("sqs")
    for body in POISON:
        sqs.send_message(QueueUrl=stack[("queue", "profile-merge")], MessageBody=body)
    send_burst(ledger, sessions=3, per_session=2)
    retried = run_until_empty(stack)
    dead = dlq_bodies(stack, "profile-merge")
    ledger.count(stack[("table", "conversations")])
    ledger.assert_exactly_once(poison_in=len(POISON), dead_lettered=len(dead), batch_item_failures=retried)
    assert sorted(dead) == sorted(POISON)
    from topology import TOPOLOGY  # noqa: PLC0415

    max_receives = TOPOLOGY.queue("profile-merge").max_receive_count
    assert retried == len(POISON) * max_receives
    assert len(logged) == retried
    assert {entry["error_type"] for entry in logged} >= {"ValidationError"}
    assert all(entry["error"] and entry["message_id"] and entry["receive_count"] for entry in logged)
    assert {str(entry["receive_count"]) for entry in logged} == {str(n) for n in range(1, max_receives + 1)}
    assert_every_conversation_routed_and_acknowledged_once(stack, sessions=3)
