"""``message.recorded`` carries the conversation's facts and version as recording left them:
routing decides on them without reading META, and writes its decision with the condition that
META is still at that version - when it is not (a later message, an agent's action), routing
reads META again (strongly consistent) and decides once, on the current state.

META stays under 1 KB with the assistant's answer: the answer, its citations and usage are kept
beside it (the ``DECISION`` item), and everything that shows them still does.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from functions.routing import handler as routing_module
from functions.routing.router import Router
from shared.contracts.events import MessageRecorded, NotificationRequested, format_timestamp, utc_now
from shared.contracts.models import Citation
from shared.domain.assistant import AssistantReply, load_config
from shared.repositories.agents import AgentRepository
from shared.repositories.conversations import ConversationRepository
from tests.functions.routing.test_event_facts import INVOICE, dynamo_calls
from tests.helpers.agents import call
from tests.helpers.dynamo_size import WRITE_UNIT, item_size
from tests.helpers.pipeline import drain, open_session, say, verified_ana

CITATIONS = tuple(
    Citation(article_id=f"returns-and-refunds-part-{i}", title=f"Returning an item: part {i} of the guide")
    for i in range(4)
)
ANSWER = "You can send back any item within 30 days of delivery, free of charge, from any post office. " * 3


class CitingAssistant:
    """Answers every question from four articles, with the usage a model reports."""

    config = load_config()

    def answer(self, text: str, language: str, channel: str | None = None) -> AssistantReply:
        return AssistantReply(
            answerable=True,
            answer=ANSWER,
            citations=CITATIONS,
            confidence=0.87312,
            model="anthropic.claude-3-haiku-20240307-v1:0",
            input_tokens=812,
            output_tokens=95,
            cost_usd=0.00031575,
        )


@pytest.fixture(autouse=True)
def fresh_router(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routing_module, "_router", None)


def recorded(stack: dict[Any, str]) -> list[MessageRecorded]:
    """The ``message.recorded`` events waiting in the routing queue (taken off it)."""
    sqs = boto3.client("sqs")
    url = stack[("queue", "routing")]
    found: list[MessageRecorded] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for m in messages:
            found.append(MessageRecorded.model_validate(json.loads(m["Body"])["detail"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return found


def record(stack: dict[Any, str], session: dict[str, Any], message_id: str, text: str) -> MessageRecorded:
    say(session, message_id, text)
    assert drain(stack, "profile-merge")["batchItemFailures"] == []
    (event,) = recorded(stack)
    return event


def meta_of(conversation_id: str) -> dict[str, Any]:
    meta = ConversationRepository().get_meta(conversation_id)
    assert meta is not None
    return meta


def now() -> str:
    return format_timestamp(utc_now())


def test_the_event_carries_the_conversation_as_recorded_and_routing_reads_no_meta(
    stack: dict[Any, str],
) -> None:
    session = open_session(verified_ana())
    event = record(stack, session, "m1", INVOICE)
    facts = event.conversation
    assert facts is not None
    meta = meta_of(event.conversation_id)
    # Exactly META after the recording: its version, status, channels (no read to learn them).
    assert (facts.version, facts.status, facts.channels) == (
        int(meta["version"]),
        meta["status"],
        ["webchat"],
    )
    assert facts.last_inbound_at == meta["last_inbound_at"]
    assert len(event.model_dump_json()) < 4096  # far under EventBridge's 64 KB price unit
    with dynamo_calls(stack) as calls:
        events = routing_module.router().route(event, now())
    assert not [c for c in calls if c.startswith("conversations GetItem META")], calls
    assert [getattr(e, "kind", None) for _, e in events] == ["acknowledgement"]
    routed = meta_of(event.conversation_id)
    assert (routed["status"], routed["queue"], int(routed["routed_seq"])) == ("queued", "billing", 1)
    # The next message: recording's facts show the decision just written.
    later = record(stack, session, "m2", "and the second invoice too")
    assert later.conversation is not None
    assert later.conversation.version == int(meta_of(event.conversation_id)["version"])
    assert (later.conversation.status, later.conversation.routed_seq) == ("queued", 1)
    with dynamo_calls(stack) as calls:
        assert routing_module.router().route(later, now()) == []  # waits, acknowledged before
    assert not [c for c in calls if c.startswith("conversations GetItem META")], calls


def test_stale_facts_fail_the_write_and_the_message_is_routed_once_on_the_current_state(
    stack: dict[Any, str],
) -> None:
    session = open_session(verified_ana())
    router = routing_module.router()
    first = record(stack, session, "m1", INVOICE)
    router.route(first, now())
    second = record(stack, session, "m2", "hello? " + INVOICE)
    assert second.conversation is not None
    assert second.conversation.status == "queued"
    # After the recording, before routing: an agent comes online and takes the conversation.
    AgentRepository().save("agent-1", "Alex", {"billing": 5}, 3, now())
    assert [t for t, _ in router.desk.set_status("agent-1", "available", now())[1]] == ["agent.assigned"]
    taken = meta_of(second.conversation_id)
    assert int(taken["version"]) > second.conversation.version
    with dynamo_calls(stack) as calls:
        events = router.route(second, now())
    assert events == []  # the agent's to answer: no acknowledgement, no re-queueing
    # The write on the event's facts failed on the version; META was read again, consistently.
    assert calls["conversations GetItem META consistent"] >= 1, calls
    assert calls["conversations UpdateItem META eventual"] == 1, calls  # the one failed attempt
    after = meta_of(second.conversation_id)
    assert (after["status"], after["assigned_agent"]) == ("assigned", "agent-1")
    assert after["version"] == taken["version"]  # nothing written over the agent's state


def test_a_later_message_recorded_before_routing_makes_the_facts_stale_and_each_is_routed_once(
    stack: dict[Any, str],
) -> None:
    session = open_session(verified_ana())
    router = routing_module.router()
    first = record(stack, session, "m1", INVOICE)
    second = record(stack, session, "m2", "please, it is urgent")
    assert first.conversation is not None
    assert second.conversation is not None
    assert second.conversation.version > first.conversation.version
    with dynamo_calls(stack) as calls:
        events = router.route(first, now())
    assert calls["conversations GetItem META consistent"] >= 1, calls  # its facts were stale
    assert [getattr(e, "kind", None) for _, e in events] == ["acknowledgement"]
    assert int(meta_of(first.conversation_id)["routed_seq"]) == 1
    assert router.route(second, now()) == []  # queued in billing and told so already
    assert int(meta_of(first.conversation_id)["routed_seq"]) == 2
    status, before = call("GET", f"/conversations/{first.conversation_id}", "agent-x")
    assert status == 200, before
    assert before["transitions"][1]["to_status"] == "queued"  # one decision per message
    assert len([t for t in before["transitions"] if t["by"] == "routing"]) <= 2, before["transitions"]
    # Redeliveries of both: no second decision (nothing written).
    version = meta_of(first.conversation_id)["version"]
    assert router.route(first, now()) == []  # a later message has been routed since
    assert router.route(second, now()) == []
    assert meta_of(first.conversation_id)["version"] == version
    status, after = call("GET", f"/conversations/{first.conversation_id}", "agent-x")
    assert after["transitions"] == before["transitions"]


def test_an_event_without_conversation_facts_reads_meta(stack: dict[Any, str]) -> None:
    session = open_session(verified_ana())
    event = record(stack, session, "m1", INVOICE)
    old = MessageRecorded.model_validate({**event.model_dump(mode="json"), "conversation": None})
    assert old.conversation is None
    with dynamo_calls(stack) as calls:
        events = routing_module.router().route(old, now())
    assert calls["conversations GetItem META eventual"] + calls["conversations GetItem META consistent"] >= 1
    assert [getattr(e, "kind", None) for _, e in events] == ["acknowledgement"]
    assert meta_of(event.conversation_id)["status"] == "queued"
    # An event of a producer that knows no conversation facts at all still parses.
    detail = event.model_dump(mode="json")
    detail.pop("conversation")
    assert MessageRecorded.model_validate(detail).conversation is None


def test_a_redelivered_event_with_facts_routes_once(
    stack: dict[Any, str],
) -> None:
    session = open_session(verified_ana())
    event = record(stack, session, "m1", INVOICE)
    router = routing_module.router()
    first = router.route(event, now())
    version = meta_of(event.conversation_id)["version"]
    again = router.route(event, now())
    assert [getattr(e, "notification_id", None) for _, e in again] == [
        getattr(e, "notification_id", None) for _, e in first
    ]
    assert meta_of(event.conversation_id)["version"] == version  # nothing written again


def citing_router() -> Router:
    base = routing_module.router()
    routing_module._router = Router(
        base.conversations,
        base.customers,
        base.desk,
        rules=base.rules,
        assistant=CitingAssistant(),  # type: ignore[arg-type]
    )
    return routing_module._router


def test_meta_stays_under_one_kb_with_an_answer_citing_several_articles(stack: dict[Any, str]) -> None:
    router = citing_router()
    session = open_session(verified_ana())
    event = record(stack, session, "m1", "How do I return a jacket I ordered?")
    events = router.route(event, now())
    (reply,) = [e for _, e in events if isinstance(e, NotificationRequested) and e.kind == "reply"]
    assert reply.text == ANSWER
    assert [c.article_id for c in reply.citations] == [c.article_id for c in CITATIONS]
    table = boto3.resource("dynamodb").Table(stack[("table", "conversations")])
    meta = table.get_item(Key={"pk": f"CONV#{event.conversation_id}", "sk": "META"})["Item"]
    assert meta["status"] == "bot"
    assert item_size(meta) < WRITE_UNIT, (item_size(meta), meta)
    # The agent API shows the decision whole: its answer, citations, usage and reason.
    status, conversation = call("GET", f"/conversations/{event.conversation_id}", "agent-x")
    assert status == 200, conversation
    routing = conversation["routing"]
    assert routing["answer"] == ANSWER
    assert [c["article_id"] for c in routing["citations"]] == [c.article_id for c in CITATIONS]
    assert (routing["input_tokens"], routing["output_tokens"]) == (812, 95)
    assert routing["reason"].startswith("answered from the knowledge base (returns-and-refunds-part-0")
    # A redelivery asks for the same answer, with its citations and usage (the KPIs count them).
    (again,) = [e for _, e in router.route(event, now()) if isinstance(e, NotificationRequested)]
    assert again.model_dump() == reply.model_dump()
    # "Thanks, that's all" after the cited answer: the answer helped (the feedback event).
    thanks = record(stack, session, "m2", "thanks, that's all")
    closed = router.route(thanks, now())
    assert "feedback.submitted" in [t for t, _ in closed], closed
    # The customer's next question: META still under 1 KB, the assistant's state small.
    session2 = record(stack, open_session(verified_ana()), "m3", "And how do I return shoes?")
    router.route(session2, now())
    meta = table.get_item(Key={"pk": f"CONV#{session2.conversation_id}", "sk": "META"})["Item"]
    assert item_size(meta) < WRITE_UNIT, (item_size(meta), meta)
    assert set(dict(meta["assistant"])) <= {"unhelpful", "terms", "answers"}  # type: ignore[arg-type]
