"""Agents, assignment, the agent API's write side and the SLA sweep, under moto.

Messages go in through the web chat handler and the real bus and queues (as in
test_pipeline_handlers); ``agent.assigned`` and ``conversation.stalled`` are observed on
the bus through a rule into a queue of the test's own.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from functions.sla_sweep.handler import handler as sla_handler
from functions.sla_sweep.sweep import sweep
from shared.contracts.events import MessageRecorded, format_timestamp, utc_now
from shared.contracts.models import RoutingDecision
from shared.repositories.agents import AgentRepository
from shared.repositories.conversations import Change, ConversationRepository
from shared.repositories.customers import CustomerRepository
from shared.services.desk import Desk
from tests.helpers import context
from tests.helpers.agents import add_agent, call, conv, conversation_of
from tests.helpers.pipeline import drain, open_session, run_pipeline, say, verified_ana
from topology import AGENT_ASSIGNED, CONVERSATION_STALLED


@pytest.fixture
def bus_watch(stack: dict[Any, str]) -> Any:
    """Everything published as agent.assigned / conversation.stalled, read from a queue of ours."""
    sqs, events = boto3.client("sqs"), boto3.client("events")
    url = sqs.create_queue(QueueName="watch")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = stack[("bus", "events")]
    events.put_rule(
        Name="watch",
        EventBusName=bus,
        EventPattern=json.dumps({"detail-type": [AGENT_ASSIGNED, CONVERSATION_STALLED]}),
    )
    events.put_targets(Rule="watch", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])

    def read() -> list[dict[str, Any]]:
        out = []
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for m in messages:
                body = json.loads(m["Body"])
                out.append({"type": body["detail-type"], **body["detail"]})
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return out

    return read


def escalate(text: str = "I want to talk to a person about my invoice", customer: Any = None) -> str:
    session = open_session(customer)
    say(session, "m-1", text)
    run_pipeline(_STACK[0])
    return conversation_of(session)


_STACK: list[Any] = []


@pytest.fixture(autouse=True)
def _remember_stack(stack: dict[Any, str]) -> Any:
    _STACK[:] = [stack]
    yield
    _STACK.clear()


def test_escalation_goes_to_the_best_agent_with_context_and_the_journey_is_recorded(
    stack: dict[Any, str], bus_watch: Any
) -> None:
    add_agent("novice", {"billing": 3})
    add_agent("expert", {"billing": 9, "technical": 5})
    session = open_session(verified_ana())
    say(session, "m-0", "What are your opening hours?")
    run_pipeline(stack)
    say(session, "m-1", "I want to talk to a person about my invoice")
    run_pipeline(stack)
    conversation_id = conversation_of(session)

    status, conversation = conv("GET", "", conversation_id, "expert")
    assert (conversation["status"], conversation["queue"], conversation["assigned_agent"]) == (
        "assigned",
        "billing",
        "expert",
    )
    handover = conversation["handover"]
    assert handover["display_name"] == "Ana Lima"
    assert handover["intent"] == "billing"
    assert "They asked for a person." in handover["summary"]
    assert handover["bot_answers"][0].startswith("We are open")
    assert "account:acct-42" in handover["identities"]
    [assigned] = [e for e in bus_watch() if e["type"] == AGENT_ASSIGNED]
    assert (assigned["agent_id"], assigned["reason"], assigned["queue"]) == (
        "expert",
        "best_match",
        "billing",
    )
    assert assigned["handover_summary"] == handover["summary"]

    _, mine = call("GET", "/agents/me/conversations", "expert")
    assert [c["conversation_id"] for c in mine["conversations"]] == [conversation_id]

    assert conv("POST", "accept", conversation_id, "novice")[0] == 409
    assert conv("POST", "messages", conversation_id, "expert", {"text": "Hi"})[1]["message"] == (
        "accept the conversation before replying"
    )
    status, accepted = conv("POST", "accept", conversation_id, "expert")
    assert (status, accepted["status"], accepted["wait_kind"]) == (200, "active", "reply")
    assert conv("POST", "accept", conversation_id, "expert")[0] == 200  # idempotent

    status, sent = conv(
        "POST", "messages", conversation_id, "expert", {"text": "I see you have a billing problem."}
    )
    assert status == 202
    assert sent["notification_id"].startswith("agent:expert:")
    assert drain(stack, "notify")["batchItemFailures"] == []
    status, note = conv("POST", "notes", conversation_id, "expert", {"text": "refund approved by finance"})
    assert status == 201
    assert note["notes"][0]["author"] == "agent:expert"

    _, conversation = conv("GET", "", conversation_id, "expert")
    reply = conversation["messages"][-1]
    assert (reply["author"], reply["channel"], reply["text"]) == (
        "agent:expert",
        "webchat",
        "I see you have a billing problem.",
    )
    assert conversation["waiting_since"] is None  # answered: the customer no longer waits

    status, resolved = conv("POST", "resolve", conversation_id, "expert", {"resolution": "refund issued"})
    assert (status, resolved["status"], resolved["resolution"]) == (200, "resolved", "refund issued")
    status, again = conv("POST", "resolve", conversation_id, "expert", {"resolution": "again"})
    assert (status, again["message"]) == (409, "the conversation is already resolved")
    assert [(t["from_status"], t["to_status"]) for t in resolved["transitions"]] == [
        ("new", "open"),
        ("open", "bot"),
        ("bot", "queued"),
        ("queued", "assigned"),
        ("assigned", "active"),
        ("active", "resolved"),
    ]
    _, me = call("GET", "/agents/me", "expert")
    assert (me["active_count"], me["active_conversations"]) == (0, [])


def test_queued_conversations_go_to_the_agent_who_frees_up_and_stick_to_them(stack: dict[Any, str]) -> None:
    add_agent("solo", {"billing": 5}, cap=1)
    first = escalate()
    second = escalate("my invoice is wrong")
    assert conv("GET", "", first, "solo")[1]["assigned_agent"] == "solo"
    _, queue = call("GET", "/queues/{queue}", "solo", path_parameters={"queue": "billing"})
    assert [c["conversation_id"] for c in queue["waiting"]] == [second]
    assert (queue["agents_available"], queue["agents_free"]) == (1, 0)
    assert call("GET", "/queues/{queue}", "solo", path_parameters={"queue": "nope"})[0] == 404

    conv("POST", "accept", first, "solo")
    conv("POST", "resolve", first, "solo", {"resolution": "done"})
    # Freed up: the waiting conversation is assigned at once.
    assert conv("GET", "", second, "solo")[1]["assigned_agent"] == "solo"
    assert call("GET", "/queues/{queue}", "solo", path_parameters={"queue": "billing"})[1]["waiting"] == []


def test_sticky_agent_is_preferred_for_a_returning_customer(stack: dict[Any, str]) -> None:
    add_agent("ines", {"billing": 2}, cap=3)
    add_agent("best", {"billing": 9}, status="away")
    first = escalate(customer=verified_ana())
    assert conv("GET", "", first, "ines")[1]["assigned_agent"] == "ines"
    conv("POST", "accept", first, "ines")
    conv("POST", "resolve", first, "ines", {"resolution": "done"})
    call("PUT", "/agents/me/status", "best", {"status": "available"})
    # Outside the reopen window the customer gets a new conversation, linked to the old one.
    customers = CustomerRepository()
    conversations = ConversationRepository(customers=customers)
    old = format_timestamp(utc_now() - timedelta(days=4))
    conversations.update_meta(first, lambda meta: Change(set={"resolved_at": old}))
    second = escalate("my invoice is wrong again", customer=verified_ana())
    assert second != first
    conversation = conv("GET", "", second, "ines")[1]
    assert conversation["previous_conversation_id"] == first
    assert conversation["assigned_agent"] == "ines"  # not the more proficient "best": sticky
    assert conversation["priority"] == 1  # repeat contact about billing within 7 days


def test_a_resolved_conversation_reopens_within_the_window(stack: dict[Any, str]) -> None:
    add_agent("ines", {"billing": 5, "general": 5})
    session = open_session(verified_ana())
    say(session, "m-1", "invoice wrong")
    run_pipeline(stack)
    first = conversation_of(session)
    conv("POST", "accept", first, "ines")
    conv("POST", "resolve", first, "ines", {"resolution": "explained"})
    say(session, "m-2", "sorry, one more thing about the invoice")
    run_pipeline(stack)
    assert conversation_of(session) == first
    conversation = conv("GET", "", first, "ines")[1]
    assert [(t["to_status"], t["by"]) for t in conversation["transitions"]] == [
        ("open", "customer"),
        ("queued", "routing"),
        ("assigned", "routing"),
        ("active", "agent:ines"),
        ("resolved", "agent:ines"),
        ("open", "customer"),
        ("queued", "routing"),
        ("assigned", "routing"),
    ]
    assert conversation["assigned_agent"] == "ines"
    assert conversation["resolved_at"] is None


def test_illegal_transitions_and_bad_input(stack: dict[Any, str]) -> None:
    add_agent("ana", {"billing": 5})
    add_agent("bob", {"technical": 5}, status="away")
    conversation_id = escalate()
    assert conv("POST", "resolve", conversation_id, "bob", {"resolution": "x"})[1]["message"] == (
        "the conversation is assigned to agent ana"
    )
    assert conv("POST", "transfer", conversation_id, "bob", {"queue": "technical"})[0] == 409
    conv("POST", "accept", conversation_id, "ana")
    assert conv("POST", "transfer", conversation_id, "ana", {"agent_id": "bob"})[0] == 409  # away
    assert conv("POST", "transfer", conversation_id, "ana", {"agent_id": "nobody"})[0] == 404
    assert conv("POST", "transfer", conversation_id, "ana", {"queue": "nowhere"})[0] == 400
    assert conv("POST", "transfer", conversation_id, "ana", {"queue": "billing", "agent_id": "bob"})[0] == 400
    assert conv("POST", "transfer", conversation_id, "ana", {})[0] == 400
    assert conv("POST", "messages", conversation_id, "ana", {"text": ""})[0] == 400
    assert conv("POST", "resolve", conversation_id, "ana", {})[0] == 400
    assert conv("POST", "accept", "conv_missing", "ana")[0] == 404
    assert conv("POST", "notes", "conv_missing", "ana", {"text": "x"})[0] == 404
    assert call("PUT", "/agents/me/status", "ana", {"status": "busy"})[0] == 400
    assert call("PUT", "/agents/me/status", "stranger", {"status": "available"})[0] == 404
    assert call("GET", "/agents/me", "stranger")[0] == 404
    forbidden = call(
        "PUT",
        "/agents/{agent_id}",
        "ana",
        {"skills": {"billing": 5}, "max_concurrent": 2},
        path_parameters={"agent_id": "ana"},
    )
    assert forbidden[0] == 403
    bad = call(
        "PUT",
        "/agents/{agent_id}",
        "sup-1",
        {"skills": {"billing": 11}, "max_concurrent": 2},
        path_parameters={"agent_id": "x"},
    )
    assert bad[0] == 400

    # An erased customer cannot be replied to.
    customer_id = conv("GET", "", conversation_id, "ana")[1]["customer_id"]
    boto3.client("dynamodb").update_item(
        TableName=stack[("table", "customers")],
        Key={"pk": {"S": f"CUST#{customer_id}"}, "sk": {"S": "PROFILE"}},
        UpdateExpression="SET erased_at = :t",
        ExpressionAttributeValues={":t": {"S": "2026-11-25T10:00:00Z"}},
    )
    status, refused = conv("POST", "messages", conversation_id, "ana", {"text": "hello?"})
    assert (status, refused["message"]) == (409, "the customer's data was erased; nobody can be reached")


def test_transfer_to_a_queue_and_to_an_agent(stack: dict[Any, str], bus_watch: Any) -> None:
    add_agent("ana", {"billing": 5})
    add_agent("tom", {"technical": 5})
    add_agent("tina", {"technical": 3})
    conversation_id = escalate()
    conv("POST", "accept", conversation_id, "ana")
    status, moved = conv("POST", "transfer", conversation_id, "ana", {"queue": "technical"})
    assert (status, moved["queue"], moved["assigned_agent"], moved["status"]) == (
        200,
        "technical",
        "tom",
        "assigned",
    )
    status, handed = conv("POST", "transfer", conversation_id, "tom", {"agent_id": "tina"})
    assert (status, handed["assigned_agent"]) == (200, "tina")
    assert call("GET", "/agents/me", "tom")[1]["active_count"] == 0
    assert call("GET", "/agents/me", "ana")[1]["active_count"] == 0
    reasons = [(e["agent_id"], e["reason"]) for e in bus_watch() if e["type"] == AGENT_ASSIGNED]
    assert reasons == [("ana", "best_match"), ("tom", "best_match"), ("tina", "transfer")]
    assert [(t["to_status"], t["by"], t["agent_id"]) for t in handed["transitions"][-4:]] == [
        ("active", "agent:ana", "ana"),
        ("queued", "agent:ana", None),
        ("assigned", "routing", "tom"),
        ("assigned", "agent:tom", "tina"),
    ]


def test_capacity_is_never_exceeded_when_assignments_race(stack: dict[Any, str]) -> None:
    customers = CustomerRepository()
    conversations = ConversationRepository(customers=customers)
    agents = AgentRepository()
    desk = Desk(conversations, agents, customers)
    now = format_timestamp(utc_now())
    agents.save("one", "One", {"billing": 5}, 2, now)
    agents.save("two", "Two", {"billing": 4}, 1, now)
    ids = []
    for i in range(12):
        customer_id, conversation_id = f"cus_{i}", f"conv_{i}"
        customers.create(customer_id, [], now)
        assert conversations.open_for(customer_id, conversation_id, now, "webchat")
        decision = RoutingDecision(
            queue="billing",
            intent="billing",
            reason="test",
            automated=False,
            message_id=f"m{i}",
            decided_at=now,
        )
        conversations.update_meta(
            conversation_id,
            lambda meta, d=decision: desk.enqueue_change(meta, d.queue, 0, now, "routing", "test"),
        )
        ids.append(conversation_id)
    agents.set_status("one", "available", now)
    agents.set_status("two", "available", now)
    errors: list[BaseException] = []

    def worker(conversation_id: str) -> None:
        try:
            desk.assign_waiting(conversation_id, now)
            desk.assign_next_for_agent("one", now)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(c,)) for c in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    one, two = agents.get("one"), agents.get("two")
    assert one is not None
    assert two is not None
    assert (one.active_count, len(one.active_conversations)) == (2, 2)
    assert (two.active_count, len(two.active_conversations)) == (1, 1)
    metas = [conversations.get_meta(c) or {} for c in ids]
    holders = sorted(m["assigned_agent"] for m in metas if m["status"] == "assigned")
    assert holders == ["one", "one", "two"]
    assert sorted(one.active_conversations + two.active_conversations) == sorted(
        m["conversation_id"] for m in metas if m["status"] == "assigned"
    )
    assert len(conversations.queued("billing", limit=100)) == 9


def test_sla_sweep_emits_stalled_once_overflows_and_reports(stack: dict[Any, str], bus_watch: Any) -> None:
    queued = escalate()  # billing: SLA 10 min, overflow to general after 20 min
    customers = CustomerRepository()
    conversations = ConversationRepository(customers=customers)
    desk = Desk(conversations, AgentRepository(), customers)
    published: list[Any] = []

    def publish(events: Any) -> None:
        published.extend(events)
        from functions.sla_sweep.handler import publisher  # noqa: PLC0415

        if events:
            publisher.publish(events)

    now = datetime.now(UTC)
    assert sweep(conversations, desk, publish, now + timedelta(minutes=5)).stalled == []
    later = sweep(conversations, desk, publish, now + timedelta(minutes=11))
    assert [s.conversation_id for s in later.stalled] == [queued]
    assert (later.stalled[0].wait_kind, later.stalled[0].queue, later.stalled[0].sla_seconds) == (
        "agent",
        "billing",
        600,
    )
    assert sweep(conversations, desk, publish, now + timedelta(minutes=12)).stalled == []  # once per wait
    overflow = sweep(conversations, desk, publish, now + timedelta(minutes=21))
    assert overflow.overflowed == [queued]
    meta = conversations.get_meta(queued) or {}
    assert (meta["queue"], meta["queued_in"], meta["overflowed_from"]) == ("general", "general", "billing")
    stalled = [e for e in bus_watch() if e["type"] == CONVERSATION_STALLED]
    assert [e["conversation_id"] for e in stalled] == [queued]
    # An agent for the broader queue takes it on the next sweep, then the reply SLA runs.
    add_agent("gina", {"general": 5}, status=None)
    AgentRepository().set_status("gina", "available", format_timestamp(now))
    result = sla_handler({"source": "aws.scheduler"}, context("sla-sweep"))
    assert result["assigned"] == 1
    assert (conversations.get_meta(queued) or {})["assigned_agent"] == "gina"


def test_redelivered_routing_publishes_the_same_and_assigns_once(stack: dict[Any, str]) -> None:
    add_agent("ana", {"billing": 5})
    session = open_session(verified_ana())
    say(session, "m-1", "invoice wrong")
    drain(stack, "profile-merge")
    sqs = boto3.client("sqs")
    url = stack[("queue", "routing")]
    [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    for _ in range(2):
        sqs.send_message(QueueUrl=url, MessageBody=message["Body"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    while drain(stack, "routing")["count"]:
        pass
    event = MessageRecorded(**json.loads(message["Body"])["detail"])
    conversation = ConversationRepository().get(event.conversation_id)
    assert conversation is not None
    assert [t.to_status for t in conversation.transitions] == ["open", "queued", "assigned"]
    assert AgentRepository().get("ana").active_count == 1  # type: ignore[union-attr]


def test_a_supervisor_may_transfer_and_resolve_what_another_agent_holds(stack: dict[Any, str]) -> None:
    add_agent("ana", {"billing": 5}, cap=1)
    add_agent("bob", {"billing": 5}, cap=1)
    first = escalate()
    assert conv("GET", "", first, "ana")[1]["assigned_agent"] == "ana"
    conv("POST", "accept", first, "ana")
    # Another agent may not; a supervisor may, for ana, and ana's capacity is freed.
    assert conv("POST", "transfer", first, "bob", {"agent_id": "bob"})[0] == 409
    status, moved = conv("POST", "transfer", first, "sup-1", {"agent_id": "bob"})
    assert status == 200, moved
    assert moved["assigned_agent"] == "bob"
    assert moved["transitions"][-1]["by"] == "agent:sup-1"
    assert call("GET", "/agents/me", "ana")[1]["active_conversations"] == []

    # Resolving bob's conversation: refused for ana, done by the supervisor for bob.
    assert conv("POST", "resolve", first, "ana", {"resolution": "x"})[0] == 409
    status, resolved = conv("POST", "resolve", first, "sup-1", {"resolution": "refunded by supervisor"})
    assert status == 200, resolved
    assert resolved["status"] == "resolved"
    assert resolved["transitions"][-1]["by"] == "agent:sup-1"
    assert call("GET", "/agents/me", "bob")[1]["active_conversations"] == []
