"""Agent API: the signed-in agent (status, conversations) and agent records (supervisors only).

Agents are records in the ``agents`` table: skills with proficiency, capacity, status.
A supervisor (a token whose ``cognito:groups`` claim contains ``supervisors``) creates and
updates them with ``PUT /agents/{agent_id}``; each agent sets their own status.
"""

import re
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Field

from functions.agent_api.deps import SUPERVISORS, agent_id, conversations, is_supervisor, json_body
from functions.agent_api.desk import agents, desk, now, publish
from shared.contracts.models import ConversationSummary
from shared.platform.http import documented, error
from shared.repositories.agents import Agent, AgentNotFound

router = APIGatewayHttpRouter()
Skill = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,40}$")]


class StatusBody(BaseModel):
    model_config = ConfigDict(defer_build=True)

    status: Literal["available", "away", "offline"]


class AgentBody(BaseModel):
    model_config = ConfigDict(defer_build=True)

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    #: Skill name -> proficiency 1-10; any other key is refused, so the schema says so too.
    skills: Annotated[
        dict[Skill, Annotated[int, Field(ge=1, le=10)]],
        Field(min_length=1, max_length=20, json_schema_extra={"additionalProperties": False}),
    ]
    max_concurrent: Annotated[int, Field(ge=1, le=50)]


class AgentConversations(BaseModel):
    model_config = ConfigDict(defer_build=True)

    agent_id: str
    conversations: list[ConversationSummary]


def _is_supervisor() -> bool:
    return is_supervisor(router)


@router.get("/agents/me", responses=documented(200, Agent, 401, 404))
def me() -> Response[dict[str, Any]]:
    found = agents.get(agent_id(router))
    if found is None:
        return error(404, "you are not set up as an agent yet; ask a supervisor")
    return json_body(200, found)


@router.put("/agents/me/status", responses=documented(200, Agent, 400, 401, 404))
def set_status(body: StatusBody) -> Response[dict[str, Any]]:
    """Available agents get queued conversations at once, up to their capacity."""
    try:
        agent, events = desk().set_status(agent_id(router), body.status, now())
    except AgentNotFound:
        return error(404, "you are not set up as an agent yet; ask a supervisor")
    publish(events)
    return json_body(200, agent)


@router.get("/agents/me/conversations", responses=documented(200, AgentConversations, 401, 404))
def my_conversations() -> Response[dict[str, Any]]:
    found = agents.get(agent_id(router))
    if found is None:
        return error(404, "you are not set up as an agent yet; ask a supervisor")
    return json_body(
        200,
        AgentConversations(
            agent_id=found.agent_id, conversations=conversations.get_many(found.active_conversations)
        ),
    )


@router.put("/agents/<target>", responses=documented(200, Agent, 400, 401, 403))
def save_agent(target: str, body: AgentBody) -> Response[dict[str, Any]]:
    if not _is_supervisor():
        return error(403, f"only members of the {SUPERVISORS} group may change agents")
    if not re.fullmatch(r"[\w.@:-]{1,200}", target) or target == "me":
        return error(400, f"{target!r} is not a valid agent id")
    return json_body(200, agents.save(target, body.name, dict(body.skills), body.max_concurrent, now()))
