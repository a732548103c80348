"""How long a customer may wait in a queue, for an agent or for the agent's reply (pure).

A conversation waits from ``waiting_since`` (set when it is queued, or when the customer
wrote to an agent who has not answered since) with a ``wait_kind``: ``agent`` against the
queue's ``sla_minutes``, ``reply`` against its ``reply_sla_minutes``. The SLA sweep reports
overdue waits once (``conversation.stalled``); the supervisor view lists them while they last.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from shared.domain.routing_rules import QueueRule


def sla_seconds(queue: QueueRule, wait_kind: str) -> int:
    return 60 * (queue.sla_minutes if wait_kind == "agent" else queue.reply_sla_minutes)


def shortest_sla_minutes(queue: QueueRule) -> int:
    """The shorter of the queue's two SLAs: no wait younger than this is overdue."""
    return min(queue.sla_minutes, queue.reply_sla_minutes)


def overdue_seconds(item: Mapping[str, object], queue: QueueRule, now: datetime) -> int | None:
    """Seconds a waiting conversation has waited when that is longer than its SLA, else None."""
    since = item.get("waiting_since")
    kind = str(item.get("wait_kind") or "")
    return overdue_wait(since if isinstance(since, str) else None, kind, queue, now)


def overdue_wait(since: str | None, wait_kind: str | None, queue: QueueRule, now: datetime) -> int | None:
    """Seconds a wait of ``wait_kind`` (default ``agent``) that began at ``since`` has lasted
    when that is longer than the queue's SLA for it, else None."""
    if not since:
        return None
    waited = (now - datetime.fromisoformat(since)).total_seconds()
    return int(waited) if waited > sla_seconds(queue, wait_kind or "agent") else None
