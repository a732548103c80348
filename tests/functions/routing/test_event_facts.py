"""Routing decides on what ``message.recorded`` carries and on a cheap read of META; it reads
again (strongly consistent) whenever that could be out of date, and decides on the current state.

* the event carries the customer's profile facts: routing does not read the profile (an
  event without them, published by an earlier version, makes it read the profile);
* META is read eventually consistent; the decision is written with the condition that META is
  at the version read: a stale read fails it, and the message is routed on a fresh read;
* the routed marker is not read before the decision: a redelivery fails on it and is answered
  again from the decision recorded;
* agents: the agent who last served the customer is looked up only when some agent could take
  the conversation.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest

from functions.routing import handler as routing_module
from shared.contracts.events import MessageRecorded, format_timestamp, utc_now
from shared.platform import aws
from shared.repositories.agents import AgentRepository
from shared.repositories.conversations import ConversationRepository
from tests.helpers.pipeline import drain, open_session, say, verified_ana

INVOICE = "I was charged twice on my invoice, please help"


@contextmanager
def dynamo_calls(stack: dict[Any, str]) -> Iterator[Counter[str]]:
    """``<table> <operation> <sort key kind> <consistent|eventual>`` of every DynamoDB request."""
    tables = {name: kind for (what, kind), name in stack.items() if what == "table"}
    calls: Counter[str] = Counter()
    client = aws.client("dynamodb")

    def count(model: Any, params: dict[str, Any], **_: Any) -> None:
        name = params.get("TableName") or next(iter(params.get("RequestItems") or {"": 0}))
        table = tables.get(name, "?")
        sk = str(params.get("Key", {}).get("sk", {}).get("S", "")).split("#")[0]
        read = "consistent" if params.get("ConsistentRead") else "eventual"
        calls[f"{table} {model.name} {sk} {read}".replace("  ", " ")] += 1

    client.meta.events.register("before-parameter-build.dynamodb", count)
    try:
        yield calls
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb", count)


def pending_recorded(stack: dict[Any, str]) -> dict[str, Any]:
    """The ``message.recorded`` detail waiting in the routing queue (left there)."""
    sqs = boto3.client("sqs")
    url = stack[("queue", "routing")]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=0)["Messages"]
    return dict(json.loads(messages[0]["Body"])["detail"])


def notifications(stack: dict[Any, str]) -> int:
    """How many notifications routing asked for (drained from the notify queue, not sent)."""
    sqs = boto3.client("sqs")
    url = stack[("queue", "notify")]
    count = 0
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return count
        for m in messages:
            count += 1
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def first_message(stack: dict[Any, str], message_id: str = "m1") -> dict[str, Any]:
    session = open_session(verified_ana())
    say(session, message_id, INVOICE)
    assert drain(stack, "profile-merge")["batchItemFailures"] == []
    return session


@pytest.fixture(autouse=True)
def fresh_router(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routing_module, "_router", None)


def test_the_event_carries_the_profile_facts_and_routing_reads_no_profile(stack: dict[Any, str]) -> None:
    session = first_message(stack)
    detail = pending_recorded(stack)
    assert detail["customer"]["display_name"] == "Ana Lima"
    with dynamo_calls(stack) as calls:
        assert drain(stack, "routing")["batchItemFailures"] == []
    # Handed over to billing: the hand-over context lists the customer's identities (one query);
    # the profile item itself is not read.
    assert not [c for c in calls if c.startswith("customers GetItem")], calls
    assert notifications(stack) == 1  # the acknowledgement
    say(session, "m2", "and the second invoice too")
    assert drain(stack, "profile-merge")["batchItemFailures"] == []
    with dynamo_calls(stack) as calls:
        assert drain(stack, "routing")["batchItemFailures"] == []
    assert not [c for c in calls if c.startswith("customers")], calls
    # META is not read at all: the event carries the conversation's facts and version (its
    # version condition guards the write); nor is the routed marker (its condition guards it too).
    assert not [c for c in calls if c.startswith("conversations GetItem META")], calls
    assert not [c for c in calls if c.startswith("conversations GetItem SEEN")], calls
    assert not [c for c in calls if c.startswith("conversations GetItem META consistent")], calls
    # Nobody works the billing queue: who served the customer last is not looked up.
    assert not [c for c in calls if c.startswith("agents GetItem")], calls


def test_an_event_without_profile_facts_reads_the_profile(stack: dict[Any, str]) -> None:
    first_message(stack)
    detail = pending_recorded(stack)
    detail.pop("customer")
    old = MessageRecorded.model_validate(detail)
    router = routing_module.router()
    with dynamo_calls(stack) as calls:
        events = router.route(old, format_timestamp(utc_now()))
    assert calls["customers GetItem PROFILE consistent"] == 1, calls
    reply = next(e for _, e in events if hasattr(e, "text"))
    assert "Ana" in reply.text  # addressed by the name on the profile


def test_a_stale_read_of_meta_falls_back_and_decides_on_the_current_state(
    stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    session = first_message(stack)
    conversation_id = pending_recorded(stack)["conversation_id"]
    conversations = ConversationRepository()
    # What a lagging replica may still return later: META before anything was routed.
    stale = conversations.get_meta(conversation_id)
    assert stale is not None
    assert stale["status"] == "open"
    assert drain(stack, "routing")["batchItemFailures"] == []
    notifications(stack)
    # An agent comes online and takes the conversation.
    AgentRepository().save("agent-1", "Alex", {"billing": 5}, 3, format_timestamp(utc_now()))
    events = routing_module.router().desk.set_status("agent-1", "available", format_timestamp(utc_now()))[1]
    assert [t for t, _ in events] == ["agent.assigned"]
    # The customer writes again; the cheap read still shows the conversation as it was opened.
    say(session, "m2", "hello? " + INVOICE)
    assert drain(stack, "profile-merge")["batchItemFailures"] == []
    original = ConversationRepository.get_meta

    def lagging(self: ConversationRepository, cid: str, consistent: bool = True) -> dict[str, Any] | None:
        return dict(stale) if not consistent and cid == conversation_id else original(self, cid, consistent)

    monkeypatch.setattr(ConversationRepository, "get_meta", lagging)
    assert drain(stack, "routing")["batchItemFailures"] == []
    current = original(conversations, conversation_id)
    assert current is not None
    assert (current["status"], current["assigned_agent"]) == ("assigned", "agent-1")
    assert notifications(stack) == 0  # the message is the agent's to answer: no acknowledgement


def test_a_redelivered_event_asks_for_the_same_reply_again(stack: dict[Any, str]) -> None:
    first_message(stack)
    detail = pending_recorded(stack)
    event = MessageRecorded.model_validate(detail)
    router = routing_module.router()
    now = format_timestamp(utc_now())
    first = router.route(event, now)
    again = router.route(event, now)
    ids = [getattr(e, "notification_id", None) for _, e in first]
    assert [getattr(e, "notification_id", None) for _, e in again] == ids
    assert ids[0] == f"route:{event.message_id}"


def test_agents_last_served_is_read_only_when_an_agent_could_take_it(stack: dict[Any, str]) -> None:
    first_message(stack)
    with dynamo_calls(stack) as calls:
        assert drain(stack, "routing")["batchItemFailures"] == []
    assert calls["agents Query eventual"] == 1, calls  # nobody has the skill: nothing more
    assert not [c for c in calls if c.startswith(("agents GetItem", "agents BatchGetItem"))], calls
    agents = AgentRepository()
    agents.save("agent-2", "Bo", {"billing": 3}, 2, format_timestamp(utc_now()))
    assert agents.skill_members("billing") == ["agent-2"]
