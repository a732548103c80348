"""The routing marker on META (``routed_seq``), written with the decision in one conditional update.

Recording numbers a conversation's inbound messages and ``message.recorded`` carries the
number; routing records the number it routed with the decision. These tests show that what
the ``SEEN`` marker (and its transaction) protected still holds without it: a redelivered or
duplicated event is routed once and asks for the same reply, a redelivered ``message.received``
carries the same number, and an earlier message arriving after a later one was routed does
not overwrite the later decision.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import botocore.client

from shared.repositories.conversations import ConversationRepository
from tests.helpers.agents import conversation_of
from tests.helpers.pipeline import drain, open_session, run_pipeline, say


@contextmanager
def dynamodb_writes() -> Iterator[list[tuple[str, str]]]:
    """``(operation, kind of item)`` of every DynamoDB write made meanwhile (kind: the sort
    key's prefix, e.g. ``META``, ``SEEN``, ``MSG``)."""
    writes: list[tuple[str, str]] = []
    original = botocore.client.BaseClient._make_api_call

    def call(client: Any, operation: str, params: dict[str, Any]) -> Any:
        if client.meta.service_model.service_name == "dynamodb" and operation in (
            "PutItem",
            "UpdateItem",
            "DeleteItem",
            "TransactWriteItems",
        ):
            actions = (
                [next(iter(a.values())) for a in params["TransactItems"]]
                if operation == "TransactWriteItems"
                else [params]
            )
            for action in actions:
                key = action.get("Key") or action.get("Item") or {}
                writes.append((operation, str(key.get("sk", {}).get("S", "?")).split("#")[0]))
        return original(client, operation, params)

    botocore.client.BaseClient._make_api_call = call  # type: ignore[method-assign]
    try:
        yield writes
    finally:
        botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign]


def take(stack: dict[Any, str], queue: str) -> list[str]:
    """The bodies of the messages waiting in ``queue`` (removed from it)."""
    sqs = boto3.client("sqs")
    url = stack[("queue", queue)]
    bodies: list[str] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def put(stack: dict[Any, str], queue: str, *bodies: str) -> None:
    sqs = boto3.client("sqs")
    for body in bodies:
        sqs.send_message(QueueUrl=stack[("queue", queue)], MessageBody=body)


def detail(body: str) -> dict[str, Any]:
    return dict(json.loads(body)["detail"])


def outbound(conversation_id: str) -> list[str]:
    conversation = ConversationRepository().get(conversation_id)
    assert conversation is not None
    return [m.text for m in conversation.messages if m.direction == "outbound"]


def test_an_ordinary_decision_is_one_conditional_update_and_no_transaction(stack: dict[Any, str]) -> None:
    session = open_session()  # no agent has the skill: the conversation stays queued
    say(session, "m-1", "I want to talk to a person about my invoice")
    run_pipeline(stack)
    say(session, "m-2", "my invoice is still wrong, a person please")
    drain(stack, "profile-merge")
    with dynamodb_writes() as writes:
        assert drain(stack, "routing")["count"] == 1
    # Same queue, no change of status, no new hand-over: the decision and its marker only.
    assert writes == [("UpdateItem", "META")]
    meta = ConversationRepository().get_meta(conversation_of(session)) or {}
    assert (meta["routed_seq"], meta["routed_quiet"], meta["in_seq"]) == (2, True, 2)


def test_a_duplicated_and_a_redelivered_event_are_routed_once_with_the_same_reply(
    stack: dict[Any, str],
) -> None:
    session = open_session()
    say(session, "m-1", "What are your opening hours?")
    drain(stack, "profile-merge")
    [event] = take(stack, "routing")
    assert detail(event)["sequence"] == 1
    put(stack, "routing", event, event)  # the same event twice in one batch
    assert drain(stack, "routing")["count"] == 2
    put(stack, "routing", event)  # and once more later (a crash before the delete)
    assert drain(stack, "routing")["count"] == 1
    # Each delivery asks for the same notification (same id): notify sends it once.
    requests = take(stack, "notify")
    assert len(requests) == 3
    assert len({detail(r)["notification_id"] for r in requests}) == 1
    put(stack, "notify", *requests)
    while drain(stack, "notify")["count"]:
        pass
    conversation_id = conversation_of(session)
    assert len(outbound(conversation_id)) == 1
    meta = ConversationRepository().get_meta(conversation_id) or {}
    conversation = ConversationRepository().get(conversation_id)
    assert conversation is not None
    assert [t.to_status for t in conversation.transitions] == ["open", "bot"]
    assert meta["routed_seq"] == 1


def test_a_redelivered_message_keeps_its_number_and_is_counted_once(stack: dict[Any, str]) -> None:
    session = open_session()
    say(session, "m-1", "What are your opening hours?")
    say(session, "m-2", "And do you ship to Portugal?")
    received = take(stack, "profile-merge")
    assert len(received) == 2
    put(stack, "profile-merge", *received, received[0])  # the first one delivered twice
    while drain(stack, "profile-merge")["count"]:
        pass
    recorded = take(stack, "routing")
    numbers = sorted((detail(r)["message_id"].rsplit(":", 1)[-1], detail(r)["sequence"]) for r in recorded)
    assert numbers == [("m-1", 1), ("m-1", 1), ("m-2", 2)]
    meta = ConversationRepository().get_meta(conversation_of(session)) or {}
    assert (meta["message_count"], meta["in_seq"]) == (2, 2)


def test_an_earlier_message_routed_after_a_later_one_does_not_overwrite_its_decision(
    stack: dict[Any, str],
) -> None:
    session = open_session()
    say(session, "m-1", "What are your opening hours?")
    say(session, "m-2", "I want to talk to a person about my invoice")
    while drain(stack, "profile-merge")["count"]:
        pass
    events = {detail(b)["sequence"]: b for b in take(stack, "routing")}
    put(stack, "routing", events[2])
    assert drain(stack, "routing")["count"] == 1
    put(stack, "routing", events[1])  # overtaken in the queue
    assert drain(stack, "routing")["count"] == 1
    requests = take(stack, "notify")
    assert [detail(r)["notification_id"].rsplit(":", 1)[-1] for r in requests] == ["m-2"]
    meta = ConversationRepository().get_meta(conversation_of(session)) or {}
    assert (meta["status"], meta["queue"], meta["routed_seq"]) == ("queued", "billing", 2)
    assert meta["routing"]["message_id"].endswith("m-2")
