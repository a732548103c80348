"""Queues, agents and assignment: who works on a conversation, and every change of who.

:func:`rank_agents` is the pure choice: the agent who last served the customer (sticky,
within ``sticky_agent_days``, if available, under capacity and skilled for the queue),
else the most proficient available agent with the fewest active conversations.

:class:`Desk` applies choices and the agents' actions (accept, transfer, resolve, status)
to the conversation and the agents in one DynamoDB transaction each: the conversation's
META item is guarded by its version, the agent's load by ``active_count <
max_concurrent`` - so capacity holds even when assignments race, and a conversation is
never taken twice. Each method returns the events to publish (``agent.assigned``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from shared.contracts.events import AgentAssigned, ConversationResolved, format_timestamp
from shared.contracts.models import Handover, RoutingDecision
from shared.contracts.names import AGENT_ASSIGNED, CONVERSATION_RESOLVED
from shared.domain.handover import build_handover
from shared.domain.routing_rules import RoutingRules, load_rules
from shared.repositories.agent_errors import AgentUnavailable
from shared.repositories.agents import Agent, AgentNotFound, AgentRepository, AgentStatus
from shared.repositories.conversation_aggregates import ConversationState, ResolutionRaced
from shared.repositories.conversations import (
    Change,
    ConversationNotFound,
    ConversationRepository,
    IllegalTransition,
    conversation_id_of,
)
from shared.repositories.customers import CustomerRepository

Events = list[tuple[str, BaseModel]]
#: Most conversations one call hands to a freed-up agent (bounded work per request).
MAX_PULL = 10


__all__ = ["AgentUnavailable", "Desk", "UnknownQueue", "rank_agents", "resolved_event"]

#: A conversation's state as the caller has it: typed, or (the router, until it moves to typed
#: facts) the META item.
StateLike = ConversationState | Mapping[str, Any]


class UnknownQueue(ValueError):
    pass


def rank_agents(agents: Sequence[Agent], skill: str, sticky_agent: str | None) -> list[tuple[Agent, str]]:
    """Eligible agents for a queue's ``skill``, best first, each with why (``sticky``/``best_match``)."""
    eligible = [a for a in agents if a.status == "available" and a.has_capacity and skill in a.skills]
    eligible.sort(key=lambda a: (-a.skills[skill], a.active_count, a.status_at or "", a.agent_id))
    ranked = [(a, "best_match") for a in eligible]
    for i, (agent, _) in enumerate(ranked):
        if agent.agent_id == sticky_agent:
            ranked.insert(0, (ranked.pop(i)[0], "sticky"))
            break
    return ranked


class Desk:
    def __init__(
        self,
        conversations: ConversationRepository,
        agents: AgentRepository,
        customers: CustomerRepository,
        rules: RoutingRules | None = None,
    ) -> None:
        self.conversations = conversations
        self.agents = agents
        self.customers = customers
        self.rules = rules or load_rules()

    # -- queueing ------------------------------------------------------------ #
    def enqueue_change(
        self, meta: StateLike, queue: str, priority: int, now: str, by: str, reason: str
    ) -> Change:
        """The change that puts the conversation in ``queue`` (or re-ranks it there), for the
        callers that add to it before writing (the router's decision, a proactive hand-over)."""
        if queue not in self.rules.queues:
            raise UnknownQueue(queue)
        return self.conversations.queue_change(ConversationState.of(meta), queue, priority, now, by, reason)

    def handover(
        self,
        customer_id: str,
        conversation_id: str,
        decision: RoutingDecision,
        profile: dict[str, Any],
        now: str,
        meta: StateLike | None = None,
    ) -> Handover:
        """The hand-over context; ``meta``: the conversation's state when the caller has it."""
        state = ConversationState.of(meta) if meta is not None else self.conversations.state(conversation_id)
        return build_handover(
            customer_id,
            self.customers.get(customer_id),
            profile,
            self.conversations.messages(conversation_id, limit=self.rules.history_messages),
            decision,
            self.rules.priority.vip_tag,
            state.previous_conversation_id if state is not None else None,
            now,
        )

    # -- assignment ------------------------------------------------------------ #
    def _sticky(self, customer_id: str, now: str) -> str | None:
        served = self.agents.last_served(customer_id)
        if served is None:
            return None
        cutoff = format_timestamp(datetime.fromisoformat(now) - timedelta(days=self.rules.sticky_agent_days))
        return served[0] if served[1] >= cutoff else None

    def assign_waiting(self, conversation_id: str, now: str, meta: StateLike | None = None) -> Events:
        """Hand a queued conversation to the best eligible agent, if there is one.

        ``meta``: the conversation's state as the caller just wrote it (not read again; the
        assignment itself is written with the condition that it is still queued). The agent
        who last served the customer is looked up only when some agent is eligible.
        """
        state = ConversationState.of(meta) if meta is not None else self.conversations.state(conversation_id)
        if state is None or state.status != "queued":
            return []
        queue = self.rules.queues.get(state.queue or "")
        if queue is None:
            return []
        agents = self.agents.with_skill(queue.skill)
        if not rank_agents(agents, queue.skill, None):
            return []  # nobody can take it now: it waits in the queue
        sticky = self._sticky(state.customer_id, now)
        for agent, reason in rank_agents(agents, queue.skill, sticky):
            try:
                return [self._assign(conversation_id, agent.agent_id, reason, now, _expect_queued)]
            except AgentUnavailable:
                continue  # taken up by another assignment meanwhile: try the next one
            except IllegalTransition:
                return []  # no longer queued (assigned by a concurrent call)
        return []

    def _assign(
        self,
        conversation_id: str,
        agent_id: str,
        reason: str,
        now: str,
        expect: Callable[[ConversationState], None],
        by: str = "routing",
        release: str | None = None,
        accept: bool = False,
        require_available: bool = True,
    ) -> tuple[str, BaseModel]:
        def attempt(state: ConversationState) -> bool:
            expect(state)
            return self.conversations.assign(
                state,
                agent_id,
                now,
                agents=self.agents,
                by=by,
                reason=reason,
                accept=accept,
                release=release,
                require_available=require_available,
            )

        state = self.conversations.apply(conversation_id, attempt)
        return (
            AGENT_ASSIGNED,
            AgentAssigned(
                conversation_id=conversation_id,
                customer_id=state.customer_id,
                agent_id=agent_id,
                queue=state.queue or self.rules.default_queue,
                intent=state.intent,
                priority=state.priority,
                reason=reason,
                assigned_at=now,
                handover_summary=self.conversations.handover_summary(conversation_id),
            ),
        )

    def assign_next_for_agent(self, agent_id: str, now: str) -> Events:
        """Give a freed-up agent the best waiting conversations of their queues, up to capacity."""
        events: Events = []
        for _ in range(MAX_PULL):
            agent = self.agents.get(agent_id)
            if agent is None or agent.status != "available" or not agent.has_capacity:
                break
            best: tuple[str, int, str] | None = None
            for queue in self.rules.queues_for_skills(agent.skills):
                head = self.conversations.queued(queue.name, limit=1, full=False)
                if head:
                    candidate = (
                        head[0]["queue_rank"],
                        -agent.skills[queue.skill],
                        conversation_id_of(head[0]),
                    )
                    best = candidate if best is None or candidate < best else best
            if best is None:
                break
            try:
                events.append(self._assign(best[2], agent_id, "best_match", now, _expect_queued))
            except AgentUnavailable:
                break
            except IllegalTransition:
                continue  # another agent took it first: look again
        return events

    def assign_queue(self, queue: str, now: str, limit: int = 20) -> Events:
        """Assign what waits in ``queue`` while agents are free (the sweep's safety net)."""
        events: Events = []
        for item in self.conversations.queued(queue, limit=limit, full=False):
            assigned = self.assign_waiting(conversation_id_of(item), now)
            if not assigned:
                break
            events += assigned
        return events

    # -- the agent's actions ----------------------------------------------------- #
    def set_status(self, agent_id: str, status: AgentStatus, now: str) -> tuple[Agent, Events]:
        agent = self.agents.set_status(agent_id, status, now)
        events = self.assign_next_for_agent(agent_id, now) if status == "available" else []
        return (self.agents.get(agent_id) or agent), events

    def accept(self, conversation_id: str, agent_id: str, now: str) -> Events:
        by = f"agent:{agent_id}"
        current = self.conversations.state(conversation_id)
        if current is not None and current.status == "queued":
            # Picked from the queue by the agent: taken and accepted at once.
            return [
                self._assign(
                    conversation_id,
                    agent_id,
                    "picked from the queue",
                    now,
                    _expect_queued,
                    by=by,
                    accept=True,
                    require_available=False,
                )
            ]

        def attempt(state: ConversationState) -> bool:
            status, holder = state.status, state.assigned_agent
            if status == "active" and holder == agent_id:
                return True
            if status == "resolved":
                raise IllegalTransition("the conversation is resolved")
            if status in ("assigned", "active") and holder != agent_id:
                raise IllegalTransition(f"the conversation is assigned to agent {holder}")
            if status != "assigned":
                raise IllegalTransition(f"the conversation is not waiting for an agent (status {status})")
            return self.conversations.accept(state, agent_id, now, by=by)

        self.conversations.apply(conversation_id, attempt)
        return []

    def transfer(
        self,
        conversation_id: str,
        agent_id: str,
        now: str,
        queue: str | None = None,
        to_agent: str | None = None,
        supervisor: bool = False,
    ) -> Events:
        """``agent_id`` hands the conversation to ``to_agent`` or back to ``queue``. A
        ``supervisor`` may do it for the agent who holds it (recorded as done by them)."""
        by = f"agent:{agent_id}"
        if queue is not None and queue not in self.rules.queues:
            raise UnknownQueue(queue)
        if supervisor:
            agent_id = self._holder_for_supervisor(conversation_id, agent_id)
        if to_agent is not None:
            if to_agent == agent_id:
                raise IllegalTransition("the conversation is already yours")
            if self.agents.get(to_agent) is None:
                raise AgentNotFound(to_agent)
            events = [
                self._assign(
                    conversation_id,
                    to_agent,
                    "transfer",
                    now,
                    _expect_held_by(agent_id),
                    by=by,
                    release=agent_id,
                )
            ]
            return events + self.assign_next_for_agent(agent_id, now)

        def attempt(state: ConversationState) -> bool:
            _expect_held_by(agent_id)(state)
            return self.conversations.transfer_to_queue(
                state,
                str(queue),
                now,
                agents=self.agents,
                holder=agent_id,
                by=by,
                reason=f"transferred to the {queue} queue",
            )

        self.conversations.apply(conversation_id, attempt)
        return self.assign_waiting(conversation_id, now) + self.assign_next_for_agent(agent_id, now)

    def resolve(
        self, conversation_id: str, agent_id: str, resolution: str, now: str, supervisor: bool = False
    ) -> Events:
        """The agent who holds the conversation (or, for a ``supervisor``, whoever holds it)
        resolves it; the resolution is recorded as done by ``agent_id``."""
        by = f"agent:{agent_id}"
        resolver = agent_id
        if supervisor:
            agent_id = self._holder_for_supervisor(conversation_id, agent_id)

        def attempt(state: ConversationState) -> bool:
            holder = state.assigned_agent
            if state.status == "resolved":
                raise IllegalTransition("the conversation is already resolved")
            if holder and holder != agent_id:
                raise IllegalTransition(f"the conversation is assigned to agent {holder}")
            profile = self.customers.profile(state.customer_id)
            return self.conversations.resolve(
                state,
                now,
                resolution,
                agents=self.agents,
                agent_id=agent_id,
                resolved_by=resolver,
                by=by,
                open_conversation=profile.open_conversation_id if profile is not None else None,
            )

        for _ in range(3):
            try:
                # A lost race (released elsewhere, profile changed): read again and redo.
                state = self.conversations.apply(conversation_id, attempt)
                break
            except ResolutionRaced:
                continue
        else:
            raise IllegalTransition("the conversation kept changing; try again")
        return [resolved_event(state, now, by), *self.assign_next_for_agent(agent_id, now)]

    def _holder_for_supervisor(self, conversation_id: str, supervisor_id: str) -> str:
        """Whom a supervisor acts for: the agent holding the conversation (else themselves).

        Read before the change; the change's own check still requires that agent to hold it
        when it is written, so a concurrent transfer makes it a 409, never a wrong release.
        """
        state = self.conversations.state(conversation_id)
        if state is None:
            raise ConversationNotFound(conversation_id)
        holder = state.assigned_agent
        return holder if holder and state.status in ("assigned", "active") else supervisor_id

    # -- overflow ------------------------------------------------------------ #
    def overflow(self, conversation_id: str, from_queue: str, to_queue: str, now: str) -> Events:
        """Move a conversation still waiting in ``from_queue`` to the broader ``to_queue``."""

        moved: list[bool] = []

        def attempt(state: ConversationState) -> bool:
            moved.clear()
            if state.status != "queued" or state.queue != from_queue:
                return True
            moved.append(True)
            return self.conversations.overflow(
                state,
                to_queue,
                now,
                overflowed_from=from_queue,
                by="sla-sweep",
                reason=f"waited past the {from_queue} queue's overflow threshold",
            )

        self.conversations.apply(conversation_id, attempt)
        return self.assign_waiting(conversation_id, now) if moved else []


def resolved_event(meta: StateLike, resolved_at: str, resolved_by: str) -> tuple[str, BaseModel]:
    """``conversation.resolved`` for the conversation as it was just before the resolution."""
    state = ConversationState.of(meta)
    return (
        CONVERSATION_RESOLVED,
        ConversationResolved(
            conversation_id=state.conversation_id,
            customer_id=state.customer_id,
            intent=state.intent or "general",
            channels=state.channels,
            channel_switches=state.switch_count,
            opened_at=state.opened_at,
            resolved_at=resolved_at,
            resolved_by=resolved_by,
            escalated=state.escalated,
            reopened=state.reopen_count,
            language=state.language,
        ),
    )


def _expect_queued(state: ConversationState) -> None:
    if state.status != "queued":
        raise IllegalTransition(f"the conversation is not queued (status {state.status})")


def _expect_held_by(agent_id: str) -> Callable[[ConversationState], None]:
    def check(state: ConversationState) -> None:
        status, holder = state.status, state.assigned_agent
        if status == "resolved":
            raise IllegalTransition("the conversation is resolved")
        if status not in ("assigned", "active") or holder != agent_id:
            who = f"agent {holder}" if holder else "nobody"
            raise IllegalTransition(f"the conversation is assigned to {who}, not to you")

    return check
