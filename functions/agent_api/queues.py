"""Agent API: a queue - what waits in it, in the order it is served, and its SLA."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict

from functions.agent_api.deps import conversations, json_body
from functions.agent_api.desk import agents, desk
from shared.contracts.models import ConversationSummary
from shared.platform.http import documented, error
from shared.repositories.conversations import summary_of

router = APIGatewayHttpRouter()


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
        ),
    )
