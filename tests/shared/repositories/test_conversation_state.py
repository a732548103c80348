"""The conversation's state (META) typed, and the repository's named writes of it.

:class:`ConversationState` reads the META item of today and of earlier versions (the lists they
kept inside META); each write (``assign``, ``accept``, ``transfer_to_queue``, ``overflow``,
``resolve``, ``resolve_by_bot``, ``stop_bot_clock``, ``enqueue``) is conditional on the version of
the state it was decided on and writes its companions (the agent's load, the customer's open
conversation, the history) in the same transaction; ``record_routing`` records the router's
decision the same way, deciding again on the current state after a lost race.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.contracts.events import ConversationFacts
from shared.contracts.models import RoutingDecision, Transition
from shared.repositories.agent_errors import AgentUnavailable
from shared.repositories.agents import AgentRepository
from shared.repositories.conversation_aggregates import (
    ACKNOWLEDGED_AT,
    BOT_ATTRIBUTES,
    ConversationState,
    ResolutionRaced,
)
from shared.repositories.conversation_keys import conversation_pk
from shared.repositories.conversations import ConversationRepository, IllegalTransition, RoutingRecord
from shared.repositories.customers import PROFILE, customer_pk
from shared.repositories.dynamo import serialise

T0 = "2026-11-25T10:00:00.000Z"
T1 = "2026-11-25T10:05:00.000Z"
T2 = "2026-11-25T10:10:00.000Z"


# -- ConversationState.of ---------------------------------------------------------------- #
def test_the_state_of_a_meta_item_of_today() -> None:
    state = ConversationState.of(
        {
            "pk": "CONV#c1",
            "sk": "META",
            "conversation_id": "c1",
            "customer_id": "cust-1",
            "status": "active",
            "version": 7,
            "opened_at": T0,
            "opened_on": "sms",
            "queue": "billing",
            "priority": 2,
            "assigned_agent": "ana",
            "waiting_since": T1,
            "wait_kind": "reply",
            "routing": {"intent": "billing", "language": "de", "escalated": True},
            "previous_routing": {"automated": True},
            "channels": ["sms", "email"],
            "switch_count": 1,
            "reopen_count": 2,
            "last_inbound_at": T1,
            "last_inbound_channel": "email",
            "reply_to": {"type": "email", "value": "a@example.com"},
        }
    )
    assert (state.conversation_id, state.customer_id, state.status, state.version) == (
        "c1",
        "cust-1",
        "active",
        7,
    )
    assert (state.queue, state.priority, state.assigned_agent) == ("billing", 2, "ana")
    assert (state.waiting_since, state.wait_kind) == (T1, "reply")
    assert (state.intent, state.language, state.escalated) == ("billing", "de", True)
    assert state.bot_answered_before  # the decision before the latest one was the bot's
    assert (state.channels, state.switch_count, state.reopen_count) == (("sms", "email"), 1, 2)
    assert state.reply_to == {"type": "email", "value": "a@example.com"}
    assert not state.on_bot_clock
    assert state.legacy_handover is None
    with pytest.raises(AttributeError):
        state.status = "resolved"  # type: ignore[misc]
    with pytest.raises(TypeError):
        state.routing["intent"] = "other"  # type: ignore[index]


def test_the_state_of_an_old_meta_item_counts_its_lists() -> None:
    """An earlier version kept the history, the channel switches and the hand-over inside META."""
    state = ConversationState.of(
        {
            "conversation_id": "c1",
            "customer_id": "cust-1",
            "status": "open",
            "version": 3,
            "opened_at": T0,
            "reopen_count": 1,
            "transitions": [
                {"from_status": "open", "to_status": "resolved"},
                {"from_status": "resolved", "to_status": "open"},
            ],
            "channel_switches": [{"from": "sms", "to": "email"}, {"from": "email", "to": "sms"}],
            "handover": {"summary": "wants a refund"},
        }
    )
    assert state.reopen_count == 2  # one counted, one listed
    assert state.switch_count == 2
    assert state.legacy_handover == {"summary": "wants a refund"}
    assert state.escalated  # a hand-over inside META says it was handed to humans
    assert state.queue is None
    assert state.priority == 0
    assert state.routing == {}


def test_the_state_of_an_index_item_holds_what_it_projects() -> None:
    """The ``bot-answered`` index projects the keys only: the conversation comes from ``pk``."""
    state = ConversationState.of(
        {"pk": "CONV#c9", "sk": "META", "bot_answered_in": "bot#1", "bot_answered_at": T0}
    )
    assert (state.conversation_id, state.bot_answered_at, state.on_bot_clock) == ("c9", T0, True)
    assert state.customer_id == ""
    assert state.status == "open"
    assert state.version == 0
    assert ConversationState.of(state) is state


def test_the_state_holds_the_surveys_and_the_merge() -> None:
    state = ConversationState.of(
        {
            "conversation_id": "c1",
            "status": "merged",
            "merged_into": "c2",
            "survey_pending": {"survey": "csat", "resolved_at": T0},
            "csat": {"message_id": "m1", "score": 4},
            "nps": {"message_id": "m2", "score": 9},
        }
    )
    assert state.merged_into == "c2"
    assert state.survey_pending == {"survey": "csat", "resolved_at": T0}
    assert dict(state.survey_answers) == {"csat": {"message_id": "m1", "score": 4}}  # only known surveys
    assert ConversationState.of({"conversation_id": "c1"}).survey_pending is None


@pytest.mark.parametrize(
    ("item", "silent"),
    [
        ({"status": "bot", "bot_answered_at": T1, "bot_last_inbound": T0, "last_inbound_at": T0}, True),
        ({"status": "bot", "bot_answered_at": T1, "bot_last_inbound": T0, "last_inbound_at": T2}, False),
        ({"status": "bot", "bot_last_inbound": T0, "last_inbound_at": T0}, False),
        ({"status": "queued", "bot_answered_at": T1, "bot_last_inbound": T0, "last_inbound_at": T0}, False),
    ],
)
def test_silent_since_the_bot_answered(item: dict[str, Any], silent: bool) -> None:
    assert ConversationState.of({"conversation_id": "c1", **item}).silent_since_bot_answer() is silent


# -- the writes, on moto ----------------------------------------------------------------- #
def _setup(customer_open: bool = True) -> tuple[ConversationRepository, AgentRepository]:
    conversations, agents = ConversationRepository(), AgentRepository()
    customers = conversations.customers
    customers.table.client.put_item(
        TableName=customers.table.name,
        Item=serialise({"pk": customer_pk("cust-1"), "sk": PROFILE, "customer_id": "cust-1"}),
    )
    assert conversations.open_for("cust-1", "c1", T0, "sms")
    if not customer_open:
        customers.table.client.update_item(
            TableName=customers.table.name,
            Key=serialise({"pk": customer_pk("cust-1"), "sk": PROFILE}),
            UpdateExpression="REMOVE open_conversation_id",
        )
    for agent_id in ("ana", "ben", "cleo"):
        agents.save(agent_id, agent_id.title(), {"billing": 5}, 1, T0)
        agents.set_status(agent_id, "available", T0)
    return conversations, agents


def _state(conversations: ConversationRepository) -> ConversationState:
    state = conversations.state("c1")
    assert state is not None
    return state


def _meta(conversations: ConversationRepository) -> dict[str, Any]:
    meta = conversations.get_meta("c1")
    assert meta is not None
    return meta


def _history(conversations: ConversationRepository) -> list[tuple[str, str, str]]:
    items = conversations.table.query_all(
        KeyConditionExpression="pk = :pk AND begins_with(sk, :h)",
        ExpressionAttributeValues={":pk": {"S": conversation_pk("c1")}, ":h": {"S": "HIST#"}},
    )
    return [(i["from_status"], i["to_status"], i["by"]) for i in items]


def _queued(conversations: ConversationRepository) -> ConversationState:
    assert conversations.enqueue(_state(conversations), "billing", 3, T1, by="routing", reason="billing")
    return _state(conversations)


def test_enqueue_puts_it_in_the_queue_and_a_second_time_writes_nothing(stack: dict[Any, str]) -> None:
    conversations, _ = _setup()
    state = _queued(conversations)
    meta = _meta(conversations)
    assert (meta["status"], meta["queued_in"], meta["queue_rank"]) == ("queued", "billing", f"6#{T1}")
    assert (meta["wait_queue"], meta["waiting_since"], meta["wait_kind"]) == ("billing", T1, "agent")
    assert _history(conversations) == [("open", "queued", "routing")]
    assert conversations.enqueue(state, "billing", 1, T2, by="routing", reason="again")  # lower: no change
    assert _meta(conversations)["version"] == state.version
    assert conversations.enqueue(state, "billing", 5, T2, by="routing", reason="urgent")
    meta = _meta(conversations)
    assert (meta["priority"], meta["queue_rank"], meta["waiting_since"]) == (5, f"4#{T1}", T1)


def test_a_write_on_an_old_state_is_refused_and_apply_reads_again(stack: dict[Any, str]) -> None:
    conversations, agents = _setup()
    stale = _state(conversations)
    _queued(conversations)
    assert not conversations.accept(stale, "ana", T2, by="agent:ana")  # the version moved
    seen: list[int] = []

    def attempt(state: ConversationState) -> bool:
        seen.append(state.version)
        return conversations.assign(state, "ana", T2, agents=agents, by="routing", reason="best_match")

    written = conversations.apply("c1", attempt, known=stale)
    assert seen == [stale.version, stale.version + 1]
    assert written.status == "queued"
    assert _meta(conversations)["status"] == "assigned"


def test_assign_takes_the_agents_capacity_with_it(stack: dict[Any, str]) -> None:
    conversations, agents = _setup()
    state = _queued(conversations)
    assert conversations.assign(state, "ana", T2, agents=agents, by="routing", reason="best_match")
    meta = _meta(conversations)
    assert (meta["status"], meta["assigned_agent"], meta["assigned_at"]) == ("assigned", "ana", T2)
    assert not {"queued_in", "queue_rank", "stalled_for"} & set(meta)
    assert meta["waiting_since"] == T1  # the customer still waits for an agent's first word
    ana = agents.get("ana")
    assert ana is not None
    assert (ana.active_count, ana.active_conversations) == (1, ["c1"])
    assert _history(conversations)[-1] == ("queued", "assigned", "routing")


def test_assign_to_an_agent_at_capacity_raises_and_writes_nothing(stack: dict[Any, str]) -> None:
    conversations, agents = _setup()
    state = _queued(conversations)
    agents.table.client.transact_write_items(TransactItems=[agents.take("ana", "other")])
    with pytest.raises(AgentUnavailable):
        conversations.assign(state, "ana", T2, agents=agents, by="routing", reason="best_match")
    assert _meta(conversations)["status"] == "queued"


def test_picked_from_the_queue_is_taken_and_accepted_at_once(stack: dict[Any, str]) -> None:
    conversations, agents = _setup()
    state = _queued(conversations)
    agents.set_status("ana", "away", T1)
    assert conversations.assign(
        state, "ana", T2, agents=agents, by="agent:ana", reason="picked", accept=True, require_available=False
    )
    meta = _meta(conversations)
    assert (meta["status"], meta["accepted_at"], meta["wait_kind"], meta["waiting_since"]) == (
        "active",
        T2,
        "reply",
        T2,
    )


def test_accept_starts_the_wait_for_the_agents_reply(stack: dict[Any, str]) -> None:
    conversations, agents = _setup()
    assert conversations.assign(_queued(conversations), "ana", T1, agents=agents, by="routing", reason="x")
    assert conversations.accept(_state(conversations), "ana", T2, by="agent:ana")
    meta = _meta(conversations)
    assert (meta["status"], meta["accepted_at"], meta["wait_kind"], meta["waiting_since"]) == (
        "active",
        T2,
        "reply",
        T2,
    )
    assert _history(conversations)[-1] == ("assigned", "active", "agent:ana")


def test_a_transfer_to_an_agent_releases_the_holder(stack: dict[Any, str]) -> None:
    conversations, agents = _setup()
    assert conversations.assign(_queued(conversations), "ana", T1, agents=agents, by="routing", reason="x")
    held = _state(conversations)
    assert conversations.assign(
        held, "ben", T2, agents=agents, by="agent:ana", reason="transfer", release="ana"
    )
    ana, ben = agents.get("ana"), agents.get("ben")
    assert ana is not None
    assert ben is not None
    assert (ana.active_count, ben.active_count) == (0, 1)
    assert _meta(conversations)["assigned_agent"] == "ben"
    again = _state(conversations)
    with pytest.raises(IllegalTransition):  # ana no longer holds it
        conversations.assign(
            again, "cleo", T2, agents=agents, by="agent:ana", reason="transfer", release="ana"
        )


def test_a_transfer_to_a_queue_queues_it_anew_and_releases_the_holder(stack: dict[Any, str]) -> None:
    conversations, agents = _setup()
    assert conversations.assign(_queued(conversations), "ana", T1, agents=agents, by="routing", reason="x")
    held = _state(conversations)
    assert conversations.transfer_to_queue(
        held, "general", T2, agents=agents, holder="ana", by="agent:ana", reason="to general"
    )
    meta = _meta(conversations)
    assert (meta["status"], meta["queue"], meta["queued_in"], meta["waiting_since"]) == (
        "queued",
        "general",
        "general",
        T2,
    )
    assert "assigned_agent" not in meta
    assert meta["priority"] == 3
    ana = agents.get("ana")
    assert ana is not None
    assert ana.active_count == 0
    assert _history(conversations)[-1] == ("assigned", "queued", "agent:ana")
    with pytest.raises(IllegalTransition):  # ana holds nothing now
        conversations.transfer_to_queue(
            _state(conversations), "billing", T2, agents=agents, holder="ana", by="agent:ana", reason="again"
        )


def test_overflow_keeps_the_customers_wait(stack: dict[Any, str]) -> None:
    conversations, _ = _setup()
    _queued(conversations)
    assert conversations.mark_stalled("c1", T1, T2)
    state = _state(conversations)
    assert conversations.overflow(
        state, "general", T2, overflowed_from="billing", by="sla-sweep", reason="waited too long"
    )
    meta = _meta(conversations)
    assert (meta["queue"], meta["queued_in"], meta["overflowed_from"]) == ("general", "general", "billing")
    assert (meta["waiting_since"], meta["queue_rank"], meta["stalled_for"]) == (T1, f"6#{T1}", T1)
    assert _history(conversations)[-1] == ("queued", "queued", "sla-sweep")


def test_resolve_releases_closes_and_remembers_in_one_transaction(stack: dict[Any, str]) -> None:
    conversations, agents = _setup()
    assert conversations.assign(_queued(conversations), "ana", T1, agents=agents, by="routing", reason="x")
    state = _state(conversations)
    assert conversations.resolve(
        state,
        T2,
        "refunded",
        agents=agents,
        agent_id="ana",
        resolved_by="ana",
        by="agent:ana",
        open_conversation="c1",
    )
    meta = _meta(conversations)
    assert (meta["status"], meta["resolved_at"], meta["resolution"], meta["resolved_by"]) == (
        "resolved",
        T2,
        "refunded",
        "ana",
    )
    assert not {
        "assigned_agent",
        "queued_in",
        "queue_rank",
        "wait_queue",
        "waiting_since",
        "wait_kind",
    } & set(meta)
    ana = agents.get("ana")
    assert ana is not None
    assert ana.active_count == 0
    assert agents.last_served("cust-1") == ("ana", T2)
    profile = conversations.customers.profile("cust-1")
    assert profile is not None
    assert profile.open_conversation_id is None
    assert _history(conversations)[-1] == ("assigned", "resolved", "agent:ana")


def test_resolve_after_the_holder_was_released_elsewhere_is_a_race(stack: dict[Any, str]) -> None:
    conversations, agents = _setup()
    assert conversations.assign(_queued(conversations), "ana", T1, agents=agents, by="routing", reason="x")
    state = _state(conversations)
    agents.table.client.transact_write_items(TransactItems=[agents.release("ana", "c1")])
    with pytest.raises(ResolutionRaced):
        conversations.resolve(
            state,
            T2,
            "done",
            agents=agents,
            agent_id="ana",
            resolved_by="ana",
            by="agent:ana",
            open_conversation="c1",
        )
    assert _meta(conversations)["status"] == "assigned"


def _answered_by_bot(conversations: ConversationRepository) -> ConversationState:
    from shared.repositories.conversations import Change  # noqa: PLC0415 - the router's write, as it does it

    fields = {"bot_answered_in": "bot#0", "bot_answered_at": T1, "bot_last_inbound": T0}
    conversations.update_meta("c1", lambda _: Change(set={"status": "bot", **fields}))
    return _state(conversations)


def test_resolve_by_bot_stops_the_clock_and_closes_the_customers_conversation(stack: dict[Any, str]) -> None:
    conversations, _ = _setup()
    state = _answered_by_bot(conversations)
    assert state.on_bot_clock
    assert conversations.resolve_by_bot(
        state, T2, "the customer closed it", open_conversation="c1", closed_by="sms#9"
    )
    meta = _meta(conversations)
    assert (meta["status"], meta["resolved_by"], meta["closed_by"]) == ("resolved", "bot", "sms#9")
    assert not set(BOT_ATTRIBUTES) & set(meta)
    profile = conversations.customers.profile("cust-1")
    assert profile is not None
    assert profile.open_conversation_id is None


def test_resolve_by_bot_when_the_customer_opened_another_is_a_race(stack: dict[Any, str]) -> None:
    conversations, _ = _setup(customer_open=False)
    state = _answered_by_bot(conversations)
    with pytest.raises(ResolutionRaced):  # the profile says c1 is open, it is not any more
        conversations.resolve_by_bot(state, T2, "silent", open_conversation="c1")
    assert conversations.resolve_by_bot(state, T2, "silent", open_conversation=None)
    assert "closed_by" not in _meta(conversations)


def test_stop_bot_clock_removes_the_index_entry_only(stack: dict[Any, str]) -> None:
    conversations, _ = _setup()
    state = _answered_by_bot(conversations)
    assert conversations.stop_bot_clock(state)
    meta = _meta(conversations)
    assert meta["status"] == "bot"
    assert meta["version"] == state.version + 1
    assert not set(BOT_ATTRIBUTES) & set(meta)


def test_a_proactive_action_hands_over_once_with_its_context(stack: dict[Any, str]) -> None:
    from shared.contracts.models import Handover, RoutingDecision  # noqa: PLC0415

    conversations, _ = _setup()
    decision = RoutingDecision(
        queue="sales",
        intent="pricing",
        reason="proactive: pricing",
        automated=False,
        message_id="p1",
        decided_at=T1,
    )
    handover = Handover.model_validate(
        {
            "customer_id": "cust-1",
            "summary": "Proactive: looked at pricing",
            "intent": "pricing",
            "queue": "sales",
            "created_at": T1,
        }
    )
    state = _state(conversations)
    assert conversations.proactive_action(
        state,
        "p1",
        T1,
        by="proactive",
        reason="proactive: pricing",
        queue="sales",
        priority=1,
        handover=handover,
        decision=decision,
    )
    meta = _meta(conversations)
    assert (meta["status"], meta["queue"], meta["proactive_actions"]) == ("queued", "sales", ["p1"])
    assert meta["routing"]["intent"] == "pricing"
    assert conversations.handover_summary("c1") == "Proactive: looked at pricing"
    assert _state(conversations).proactive_actions == ("p1",)
    # Already queued: a second action is only recorded.
    assert conversations.proactive_action(_state(conversations), "p2", T2, by="proactive", reason="")
    meta = _meta(conversations)
    assert (meta["queue"], meta["proactive_actions"]) == ("sales", ["p1", "p2"])
    assert _history(conversations) == [("open", "queued", "proactive")]


# -- routing's decision -------------------------------------------------------------------- #
def _decision(automated: bool = False) -> RoutingDecision:
    return RoutingDecision(
        queue="billing",
        intent="billing",
        reason="billing question",
        automated=automated,
        message_id="sms#1",
        decided_at=T1,
        priority=2,
    )


def _facts(conversations: ConversationRepository) -> ConversationFacts:
    facts = conversations.conversation_facts("c1")
    assert facts is not None
    return facts


def test_record_routing_queues_and_marks_the_message_in_one_update(stack: dict[Any, str]) -> None:
    conversations, _ = _setup()
    facts = _facts(conversations)
    written = conversations.record_routing(
        facts,
        lambda current: RoutingRecord(
            decision=_decision(), at=T1, sequence=1, enqueue=True, acknowledged_at=1_700_000_000
        ),
        RuntimeError,
    )
    assert written is not None
    meta = _meta(conversations)
    assert (written.status, written.queue, written.version) == ("queued", "billing", facts.version + 1)
    assert (meta["status"], meta["queue"], meta["version"]) == ("queued", "billing", facts.version + 1)
    assert meta["routing"]["queue"] == "billing"
    assert meta[ACKNOWLEDGED_AT] == 1_700_000_000
    after = _facts(conversations)
    assert after.routed_seq == 1
    assert after.routing is not None
    assert after.routing.message_id == "sms#1"


def test_record_routing_answered_by_the_bot_starts_its_clock(stack: dict[Any, str]) -> None:
    conversations, _ = _setup()
    facts = _facts(conversations)
    transition = Transition(at=T1, from_status="open", to_status="bot", by="routing", reason="answered")
    written = conversations.record_routing(
        facts,
        lambda current: RoutingRecord(
            decision=_decision(automated=True), at=T1, sequence=1, answered_by_bot=True, transition=transition
        ),
        RuntimeError,
    )
    assert written is not None
    assert written.status == "bot"
    assert written.on_bot_clock
    assert _state(conversations).on_bot_clock
    assert ("open", "bot", "routing") in _history(conversations)


def test_record_routing_decides_again_on_the_current_state_after_a_lost_race(stack: dict[Any, str]) -> None:
    conversations, _ = _setup()
    facts = _facts(conversations)
    _queued(conversations)  # META moved on since the facts were read
    seen: list[tuple[bool, int, str]] = []

    def record(current: ConversationFacts) -> RoutingRecord:
        seen.append((current is facts, current.version, current.status))
        return RoutingRecord(decision=_decision(), at=T2, sequence=1, enqueue=True)

    written = conversations.record_routing(facts, record, RuntimeError)
    now = _state(conversations)
    assert seen == [(True, facts.version, "open"), (False, now.version - 1, "queued")]
    assert written is not None
    assert written.version == now.version


def test_record_routing_with_nothing_to_record_writes_nothing(stack: dict[Any, str]) -> None:
    conversations, _ = _setup()
    before = _meta(conversations)
    assert conversations.record_routing(_facts(conversations), lambda current: None, RuntimeError) is None
    assert _meta(conversations) == before


def test_record_routing_of_a_message_routed_meanwhile_raises_the_callers_exception(
    stack: dict[Any, str],
) -> None:
    class RoutedMeanwhile(Exception):
        pass

    conversations, _ = _setup()
    record = lambda current: RoutingRecord(decision=_decision(), at=T1, quiet=True)  # noqa: E731
    assert conversations.record_routing(_facts(conversations), record, RoutedMeanwhile) is not None
    with pytest.raises(RoutedMeanwhile):  # its SEEN marker says it was routed
        conversations.record_routing(_facts(conversations), record, RoutedMeanwhile)
