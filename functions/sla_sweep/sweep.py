"""SLA sweep: stalled hand-overs, overflow to broader queues, assignment as a safety net.

Runs on a schedule. Per queue it queries the sparse ``waiting`` index for conversations
whose customer has waited longer than the queue allows - for an agent (``sla_minutes``)
or for the agent's reply (``reply_sla_minutes``) - and emits ``conversation.stalled``
once per wait (a conditional claim on the conversation, given back if publishing fails).
Conversations still queued after ``overflow_after_minutes`` move to ``overflow_to``.
Conversations the bot answered whose customer stayed silent for
``bot_resolution.after_minutes`` are resolved by the bot (:mod:`shared.services.bot_resolution`).
No table scans: every read is a query on an index partition of one queue (or one shard
of the ``bot-answered`` index).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel

from shared.contracts.events import ConversationStalled, format_timestamp
from shared.contracts.names import CONVERSATION_STALLED
from shared.domain.routing_rules import QueueRule
from shared.domain.waits import overdue_wait, shortest_sla_minutes, sla_seconds
from shared.repositories.conversations import ConversationRepository, ConversationState
from shared.services.bot_resolution import answered_before, resolve_as_bot, silent_since_answer
from shared.services.desk import Desk

Publish = Callable[[Sequence[tuple[str, BaseModel]]], None]


@dataclass
class SweepResult:
    stalled: list[ConversationStalled] = field(default_factory=list)
    overflowed: list[str] = field(default_factory=list)
    assigned: int = 0
    #: Conversations resolved by the bot (the customer stayed silent after its answer).
    bot_resolved: list[str] = field(default_factory=list)


def is_stalled(item: ConversationState | Mapping[str, Any], queue: QueueRule, now: datetime) -> bool:
    """Waiting longer than its SLA and not reported for this wait yet (pure)."""
    state = ConversationState.of(item)
    since = state.waiting_since
    if not since or state.stalled_for == since:
        return False
    return overdue_wait(since, state.wait_kind, queue, now) is not None


def sweep(conversations: ConversationRepository, desk: Desk, publish: Publish, now: datetime) -> SweepResult:
    result = SweepResult()
    stamp = format_timestamp(now)
    for queue in desk.rules.queues.values():
        shortest = shortest_sla_minutes(queue)
        before = format_timestamp(now - timedelta(minutes=shortest))
        for waiting in conversations.waiting(queue.name, before):
            if not is_stalled(waiting, queue, now):
                continue
            since = str(waiting.waiting_since)
            if not conversations.mark_stalled(waiting.conversation_id, since, stamp):
                continue  # reported by a concurrent sweep, or the wait ended meanwhile
            kind: Literal["agent", "reply"] = "reply" if waiting.wait_kind == "reply" else "agent"
            event = ConversationStalled(
                conversation_id=waiting.conversation_id,
                customer_id=waiting.customer_id,
                queue=queue.name,
                wait_kind=kind,
                waiting_since=since,
                waited_seconds=int((now - datetime.fromisoformat(since)).total_seconds()),
                sla_seconds=sla_seconds(queue, kind),
                assigned_agent=waiting.assigned_agent,
                priority=waiting.priority,
                detected_at=stamp,
            )
            try:
                publish([(CONVERSATION_STALLED, event)])
            except Exception:
                conversations.unmark_stalled(waiting.conversation_id, since)
                raise
            result.stalled.append(event)
        if queue.overflow_to and queue.overflow_after_minutes is not None:
            cutoff = format_timestamp(now - timedelta(minutes=queue.overflow_after_minutes))
            for waiting in conversations.waiting(queue.name, cutoff):
                if waiting.status == "queued" and waiting.queue == queue.name:
                    events = desk.overflow(waiting.conversation_id, queue.name, queue.overflow_to, stamp)
                    publish(events)
                    result.overflowed.append(waiting.conversation_id)
                    result.assigned += len(events)
    for queue in desk.rules.queues.values():
        events = desk.assign_queue(queue.name, stamp)
        publish(events)
        result.assigned += len(events)
    result.bot_resolved = resolve_silent(conversations, desk, publish, now)
    return result


def resolve_silent(
    conversations: ConversationRepository, desk: Desk, publish: Publish, now: datetime
) -> list[str]:
    """Resolve as ``bot`` the conversations the bot answered whose customer has not written
    since, ``bot_resolution.after_minutes`` after the answer."""
    minutes = desk.rules.bot_resolution.after_minutes
    before = format_timestamp(now - timedelta(minutes=minutes))
    stamp = format_timestamp(now)
    resolved: list[str] = []
    for answered in answered_before(conversations, before):
        conversation_id = answered.conversation_id
        events = resolve_as_bot(
            conversations,
            desk.customers,
            conversation_id,
            stamp,
            reason=f"the customer did not write again within {minutes} min of the automated answer",
            eligible=silent_since_answer,
            answered_at=answered.bot_answered_at,
        )
        if events:
            publish(events)
            resolved.append(conversation_id)
    return resolved
