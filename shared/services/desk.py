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

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from shared.contracts.events import AgentAssigned, ConversationResolved, format_timestamp
from shared.contracts.models import Handover, RoutingDecision, Transition
from shared.contracts.names import AGENT_ASSIGNED, CONVERSATION_RESOLVED
from shared.domain.handover import build_handover
from shared.domain.routing_rules import RoutingRules, load_rules
from shared.repositories.agents import Agent, AgentNotFound, AgentRepository, AgentStatus
from shared.repositories.conversations import (
    QUEUE_ATTRIBUTES,
    WAIT_ATTRIBUTES,
    Change,
    ConversationNotFound,
    ConversationRepository,
    IllegalTransition,
    conversation_id_of,
    queue_rank,
)
from shared.repositories.customers import CustomerRepository

Events = list[tuple[str, BaseModel]]
#: Most conversations one call hands to a freed-up agent (bounded work per request).
MAX_PULL = 10


class AgentUnavailable(Exception):
    """The agent is not available or has no free capacity."""

    def __init__(self, agent_id: str) -> None:
        super().__init__(f"agent {agent_id} is not available or is at capacity")
        self.agent_id = agent_id


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


def _wait_fields(queue: str, since: str, kind: str) -> dict[str, Any]:
    return {"wait_queue": queue, "waiting_since": since, "wait_kind": kind}


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
        self, meta: dict[str, Any], queue: str, priority: int, now: str, by: str, reason: str
    ) -> Change:
        """The change that puts the conversation in ``queue`` (or re-ranks it there)."""
        if queue not in self.rules.queues:
            raise UnknownQueue(queue)
        status = meta.get("status", "open")
        if status == "queued" and meta.get("queue") == queue:
            priority = max(priority, int(meta.get("priority", 0)))
            since = meta.get("waiting_since") or now
            ranked = {"priority": priority, "queue_rank": queue_rank(priority, since)}
            # Only what changes: an unchanged rank leaves the queue's index entry alone.
            return Change(set={k: v for k, v in ranked.items() if meta.get(k) != v})
        # No ``queued_at``: ``waiting_since`` says when it was queued (META stays under 1 KB).
        return Change(
            set={
                "status": "queued",
                "queue": queue,
                "priority": priority,
                "queued_in": queue,
                "queue_rank": queue_rank(priority, now),
                **_wait_fields(queue, now, "agent"),
            },
            remove=("stalled_for", "assigned_agent", "assigned_at", "accepted_at"),
            transition=Transition(
                at=now, from_status=status, to_status="queued", by=by, reason=reason, queue=queue
            ),
        )

    def handover(
        self,
        customer_id: str,
        conversation_id: str,
        decision: RoutingDecision,
        profile: dict[str, Any],
        now: str,
        meta: dict[str, Any] | None = None,
    ) -> Handover:
        """The hand-over context; ``meta``: the conversation's META item when the caller has it."""
        if meta is None:
            meta = self.conversations.get_meta(conversation_id) or {}
        return build_handover(
            customer_id,
            self.customers.get(customer_id),
            profile,
            self.conversations.messages(conversation_id, limit=self.rules.history_messages),
            decision,
            self.rules.priority.vip_tag,
            meta.get("previous_conversation_id"),
            now,
        )

    # -- assignment ------------------------------------------------------------ #
    def _sticky(self, customer_id: str, now: str) -> str | None:
        served = self.agents.last_served(customer_id)
        if served is None:
            return None
        cutoff = format_timestamp(datetime.fromisoformat(now) - timedelta(days=self.rules.sticky_agent_days))
        return served[0] if served[1] >= cutoff else None

    def assign_waiting(self, conversation_id: str, now: str, meta: dict[str, Any] | None = None) -> Events:
        """Hand a queued conversation to the best eligible agent, if there is one.

        ``meta``: the conversation's META as the caller just wrote it (not read again; the
        assignment itself is written with the condition that it is still queued). The agent
        who last served the customer is looked up only when some agent is eligible.
        """
        if meta is None:
            meta = self.conversations.get_meta(conversation_id)
        if meta is None or meta.get("status") != "queued":
            return []
        queue = self.rules.queues.get(meta.get("queue", ""))
        if queue is None:
            return []
        agents = self.agents.with_skill(queue.skill)
        if not rank_agents(agents, queue.skill, None):
            return []  # nobody can take it now: it waits in the queue
        sticky = self._sticky(meta["customer_id"], now)
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
        expect: Callable[[dict[str, Any]], None],
        by: str = "routing",
        release: str | None = None,
        to_status: str = "assigned",
        require_available: bool = True,
    ) -> tuple[str, BaseModel]:
        def decide(meta: dict[str, Any]) -> Change:
            expect(meta)
            fields: dict[str, Any] = {"status": to_status, "assigned_agent": agent_id, "assigned_at": now}
            if to_status == "active":
                fields.update({"accepted_at": now, **_wait_fields(meta["queue"], now, "reply")})
            also = [self.agents.take(agent_id, conversation_id, require_available)]
            if release:
                also.append(self.agents.release(release, conversation_id))
            return Change(
                set=fields,
                remove=(*QUEUE_ATTRIBUTES, "stalled_for"),
                transition=Transition(
                    at=now,
                    from_status=meta["status"],
                    to_status=to_status,
                    by=by,
                    reason=reason,
                    queue=meta.get("queue"),
                    agent_id=agent_id,
                ),
                also=also,
                on_conflict=lambda i: (
                    AgentUnavailable(agent_id)
                    if i == 0
                    else IllegalTransition(f"agent {release} no longer holds the conversation")
                ),
            )

        meta, _ = self.conversations.update_meta(conversation_id, decide)
        handover = self.conversations.get_handover(conversation_id) or {}
        return (
            AGENT_ASSIGNED,
            AgentAssigned(
                conversation_id=conversation_id,
                customer_id=meta["customer_id"],
                agent_id=agent_id,
                queue=meta.get("queue") or self.rules.default_queue,
                intent=(meta.get("routing") or {}).get("intent"),
                priority=int(meta.get("priority", 0)),
                reason=reason,
                assigned_at=now,
                handover_summary=handover.get("summary", ""),
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
        meta = self.conversations.get_meta(conversation_id)
        if meta is not None and meta.get("status") == "queued":
            # Picked from the queue by the agent: taken and accepted at once.
            return [
                self._assign(
                    conversation_id,
                    agent_id,
                    "picked from the queue",
                    now,
                    _expect_queued,
                    by=by,
                    to_status="active",
                    require_available=False,
                )
            ]

        def decide(meta: dict[str, Any]) -> Change:
            status, holder = meta.get("status"), meta.get("assigned_agent")
            if status == "active" and holder == agent_id:
                return Change(noop=True)
            if status == "resolved":
                raise IllegalTransition("the conversation is resolved")
            if status in ("assigned", "active") and holder != agent_id:
                raise IllegalTransition(f"the conversation is assigned to agent {holder}")
            if status != "assigned":
                raise IllegalTransition(f"the conversation is not waiting for an agent (status {status})")
            return Change(
                set={"status": "active", "accepted_at": now, **_wait_fields(meta["queue"], now, "reply")},
                remove=("stalled_for",),
                transition=Transition(
                    at=now,
                    from_status="assigned",
                    to_status="active",
                    by=by,
                    reason="accepted",
                    queue=meta.get("queue"),
                    agent_id=agent_id,
                ),
            )

        self.conversations.update_meta(conversation_id, decide)
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

        def decide(meta: dict[str, Any]) -> Change:
            _expect_held_by(agent_id)(meta)
            change = self.enqueue_change(
                {**meta, "status": "transferring"},
                str(queue),
                int(meta.get("priority", 0)),
                now,
                by=by,
                reason=f"transferred to the {queue} queue",
            )
            assert change.transition is not None
            change.transition.from_status = meta["status"]
            change.also = [self.agents.release(agent_id, conversation_id)]
            change.on_conflict = lambda _: IllegalTransition("you no longer hold the conversation")
            return change

        self.conversations.update_meta(conversation_id, decide)
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

        def decide(meta: dict[str, Any]) -> Change:
            status, holder = meta.get("status"), meta.get("assigned_agent")
            if status == "resolved":
                raise IllegalTransition("the conversation is already resolved")
            if holder and holder != agent_id:
                raise IllegalTransition(f"the conversation is assigned to agent {holder}")
            profile = self.customers.get_profile(meta["customer_id"]) or {}
            also: list[dict[str, Any]] = []
            if holder:
                also.append(self.agents.release(holder, conversation_id))
            if profile.get("open_conversation_id") == conversation_id:
                also.append(self.conversations.close_for_customer(meta["customer_id"], conversation_id))
            also.append(self.agents.remember_served(meta["customer_id"], agent_id, now))
            return Change(
                set={
                    "status": "resolved",
                    "resolved_at": now,
                    "resolution": resolution,
                    "resolved_by": resolver,
                },
                remove=("assigned_agent", *QUEUE_ATTRIBUTES, *WAIT_ATTRIBUTES),
                transition=Transition(
                    at=now,
                    from_status=str(status),
                    to_status="resolved",
                    by=by,
                    reason=resolution,
                    queue=meta.get("queue"),
                    agent_id=agent_id,
                ),
                also=also,
                # A lost race (released elsewhere, profile changed): read again and redo.
                on_conflict=lambda _: _Retry(),
            )

        for _ in range(3):
            try:
                meta, _ = self.conversations.update_meta(conversation_id, decide)
                break
            except _Retry:
                continue
        else:
            raise IllegalTransition("the conversation kept changing; try again")
        return [resolved_event(meta, now, by), *self.assign_next_for_agent(agent_id, now)]

    def _holder_for_supervisor(self, conversation_id: str, supervisor_id: str) -> str:
        """Whom a supervisor acts for: the agent holding the conversation (else themselves).

        Read before the change; the change's own check still requires that agent to hold it
        when it is written, so a concurrent transfer makes it a 409, never a wrong release.
        """
        meta = self.conversations.get_meta(conversation_id)
        if meta is None:
            raise ConversationNotFound(conversation_id)
        holder = meta.get("assigned_agent")
        return str(holder) if holder and meta.get("status") in ("assigned", "active") else supervisor_id

    # -- overflow ------------------------------------------------------------ #
    def overflow(self, conversation_id: str, from_queue: str, to_queue: str, now: str) -> Events:
        """Move a conversation still waiting in ``from_queue`` to the broader ``to_queue``."""

        def decide(meta: dict[str, Any]) -> Change:
            if meta.get("status") != "queued" or meta.get("queue") != from_queue:
                return Change(noop=True)
            change = self.enqueue_change(
                {**meta, "status": "overflow"},
                to_queue,
                int(meta.get("priority", 0)),
                now,
                by="sla-sweep",
                reason=f"waited past the {from_queue} queue's overflow threshold",
            )
            assert change.transition is not None
            change.transition.from_status = "queued"
            # The customer's wait goes on: keep when it started.
            since = meta.get("waiting_since") or now
            change.set.update(
                {"waiting_since": since, "queue_rank": queue_rank(int(meta.get("priority", 0)), since)}
            )
            change.remove = tuple(a for a in change.remove if a != "stalled_for")
            change.set["overflowed_from"] = from_queue
            return change

        _, change = self.conversations.update_meta(conversation_id, decide)
        return [] if change.noop else self.assign_waiting(conversation_id, now)


def resolved_event(meta: dict[str, Any], resolved_at: str, resolved_by: str) -> tuple[str, BaseModel]:
    """``conversation.resolved`` for the META item as it was just before the resolution."""
    routing = meta.get("routing") or {}
    # ``transitions``/``channel_switches``: the lists an earlier version kept on META.
    transitions = meta.get("transitions") or []
    legacy_reopens = sum(1 for t in transitions if t.get("from_status") == "resolved")
    return (
        CONVERSATION_RESOLVED,
        ConversationResolved(
            conversation_id=meta["conversation_id"],
            customer_id=meta["customer_id"],
            intent=routing.get("intent") or "general",
            channels=tuple(meta.get("channels") or ()),
            channel_switches=int(meta.get("switch_count", 0)) + len(meta.get("channel_switches") or ()),
            opened_at=meta["opened_at"],
            resolved_at=resolved_at,
            resolved_by=resolved_by,
            escalated=bool(routing.get("escalated") or meta.get("handover") or meta.get("queue")),
            reopened=int(meta.get("reopen_count", 0)) + legacy_reopens,
            language=routing.get("language"),
        ),
    )


class _Retry(Exception):
    pass


def _expect_queued(meta: dict[str, Any]) -> None:
    if meta.get("status") != "queued":
        raise IllegalTransition(f"the conversation is not queued (status {meta.get('status')})")


def _expect_held_by(agent_id: str) -> Callable[[dict[str, Any]], None]:
    def check(meta: dict[str, Any]) -> None:
        status, holder = meta.get("status"), meta.get("assigned_agent")
        if status == "resolved":
            raise IllegalTransition("the conversation is resolved")
        if status not in ("assigned", "active") or holder != agent_id:
            who = f"agent {holder}" if holder else "nobody"
            raise IllegalTransition(f"the conversation is assigned to {who}, not to you")

    return check
