"""Agent API: a queue - what waits in it, in the order it is served, its SLA, and the waits
longer than the SLA (for an agent, or for an assigned agent's reply)."""

from datetime import timedelta
from typing import Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict

from functions.agent_api.deps import conversations, json_body
from functions.agent_api.desk import agents, desk
from shared.contracts.events import format_timestamp, utc_now
from shared.contracts.models import ConversationSummary
from shared.domain.routing_rules import QueueRule
from shared.domain.waits import overdue_wait, shortest_sla_minutes, sla_seconds
from shared.platform.http import documented, error
from shared.repositories.conversations import summary_of

router = APIGatewayHttpRouter()
#: Overdue waits listed per queue (the oldest first): one bounded query on the ``waiting`` index.
MAX_STALLED = 50


class StalledWait(BaseModel):
    """A customer waiting longer than the queue's SLA: for an agent, or for the reply of the
    agent the conversation is assigned to."""

    model_config = ConfigDict(defer_build=True)

    conversation_id: str
    customer_id: str
    wait_kind: Literal["agent", "reply"]
    waiting_since: str
    waited_seconds: int
    sla_seconds: int
    status: str | None = None
    assigned_agent: str | None = None
    priority: int = 0


class QueueView(BaseModel):
    model_config = ConfigDict(defer_build=True)

    queue: str
    skill: str
    sla_minutes: int
    reply_sla_minutes: int
    overflow_to: str | None = None
    overflow_after_minutes: int | None = None
    #: Agents with the queue's skill who are available and have free capacity.
    agents_free: int
    agents_available: int
    #: Waiting for an agent, highest priority and longest waiting first.
    waiting: list[ConversationSummary]
    #: Waiting longer than the SLA, for an agent or for an assigned agent's reply, oldest first
    #: (at most 50).
    stalled: list[StalledWait]


@router.get("/queues/<queue>", responses=documented(200, QueueView, 401, 404))
def get_queue(queue: str) -> Response[dict[str, Any]]:
    rule = desk().rules.queues.get(queue)
    if rule is None:
        return error(404, f"no queue {queue}")
    members = agents.with_skill(rule.skill)
    available = [a for a in members if a.status == "available"]
    return json_body(
        200,
        QueueView(
            queue=rule.name,
            skill=rule.skill,
            sla_minutes=rule.sla_minutes,
            reply_sla_minutes=rule.reply_sla_minutes,
            overflow_to=rule.overflow_to,
            overflow_after_minutes=rule.overflow_after_minutes,
            agents_free=sum(a.has_capacity for a in available),
            agents_available=len(available),
            waiting=[summary_of(item) for item in conversations.queued(queue, limit=100)],
            stalled=_stalled(rule),
        ),
    )


def _stalled(rule: QueueRule) -> list[StalledWait]:
    now = utc_now()
    before = format_timestamp(now - timedelta(minutes=shortest_sla_minutes(rule)))
    found: list[StalledWait] = []
    for waiting in conversations.waiting(rule.name, before, limit=MAX_STALLED):
        waited = overdue_wait(waiting.waiting_since, waiting.wait_kind, rule, now)
        if waited is None or waiting.waiting_since is None:
            continue  # a wait of the kind with the longer SLA, not overdue yet
        kind: Literal["agent", "reply"] = "reply" if waiting.wait_kind == "reply" else "agent"
        found.append(
            StalledWait(
                conversation_id=waiting.conversation_id,
                customer_id=waiting.customer_id,
                wait_kind=kind,
                waiting_since=waiting.waiting_since,
                waited_seconds=waited,
                sla_seconds=sla_seconds(rule, kind),
                status=waiting.status,
                assigned_agent=waiting.assigned_agent,
                priority=waiting.priority,
            )
        )
    return found
