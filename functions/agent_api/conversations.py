"""Agent API: conversations - read one, and work on it (accept, reply, note, transfer, resolve).

Illegal transitions (resolving twice, accepting a conversation assigned to someone else,
replying to an erased customer, ...) answer 409 with the reason.
"""

import re
from typing import Annotated, Any, Self

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Header
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from functions.agent_api.deps import agent_id, conversations, customers, is_supervisor, json_body
from functions.agent_api.desk import agents, desk, now, publish
from shared.contracts.events import NotificationRequested
from shared.contracts.models import Conversation, Note
from shared.contracts.names import NOTIFICATION_REQUESTED
from shared.platform.http import documented, error
from shared.platform.ids import new_id
from shared.repositories.agents import AgentNotFound
from shared.repositories.conversations import ConversationNotFound, IllegalTransition
from shared.services.desk import AgentUnavailable, UnknownQueue

router = APIGatewayHttpRouter()


class ReplyBody(BaseModel):
    model_config = ConfigDict(defer_build=True)

    text: Annotated[str, Field(min_length=1, max_length=4096)]


class NoteBody(BaseModel):
    model_config = ConfigDict(defer_build=True)

    text: Annotated[str, Field(min_length=1, max_length=10_000)]


class TransferBody(BaseModel):
    model_config = ConfigDict(defer_build=True)

    queue: Annotated[str, Field(min_length=1, max_length=60)] | None = None
    agent_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.queue is None) == (self.agent_id is None):
            raise ValueError("give exactly one of 'queue' and 'agent_id'")
        return self


class ResolveBody(BaseModel):
    model_config = ConfigDict(defer_build=True)

    resolution: Annotated[str, Field(min_length=1, max_length=1000)]


class Accepted(BaseModel):
    model_config = ConfigDict(defer_build=True)

    notification_id: str
    conversation_id: str


def _current(conversation_id: str, status: int = 200) -> Response[dict[str, Any]]:
    conversation = conversations.get(conversation_id)
    if conversation is None:
        return error(404, f"no conversation {conversation_id}")
    return json_body(status, conversation)


def _act(conversation_id: str, action: Any) -> Response[dict[str, Any]]:
    """Run a desk action; map its refusals to 404/409/400 and publish what it produced."""
    try:
        events = action()
    except ConversationNotFound:
        return error(404, f"no conversation {conversation_id}")
    except IllegalTransition as exc:
        return error(409, exc.reason)
    except AgentUnavailable as exc:
        return error(409, str(exc))
    except AgentNotFound as exc:
        return error(404, f"no agent {exc}")
    except UnknownQueue as exc:
        return error(400, f"unknown queue {exc}")
    publish(events)
    return _current(conversation_id)


@router.get("/conversations/<conversation_id>", responses=documented(200, Conversation, 401, 404))
def get_conversation(conversation_id: str) -> Response[dict[str, Any]]:
    return _current(conversation_id)


@router.post(
    "/conversations/<conversation_id>/accept", responses=documented(200, Conversation, 401, 404, 409)
)
def accept(conversation_id: str) -> Response[dict[str, Any]]:
    me = agent_id(router)
    return _act(conversation_id, lambda: desk().accept(conversation_id, me, now()))


@router.post(
    "/conversations/<conversation_id>/messages", responses=documented(202, Accepted, 400, 401, 404, 409)
)
def reply(
    conversation_id: str,
    body: ReplyBody,
    idempotency_key: Annotated[str | None, Header(alias="idempotency-key", max_length=100)] = None,
) -> Response[dict[str, Any]]:
    """A reply to the customer, delivered by notify on the channel the customer last used."""
    me = agent_id(router)
    state = conversations.state(conversation_id)
    if state is None:
        return error(404, f"no conversation {conversation_id}")
    if state.status == "resolved":
        return error(409, "the conversation is resolved")
    if state.assigned_agent != me:
        holder = state.assigned_agent
        return error(
            409, f"the conversation is assigned to {'agent ' + holder if holder else 'nobody'}, not to you"
        )
    if state.status != "active":
        return error(409, "accept the conversation before replying")
    profile = customers.get_profile(state.customer_id)
    if profile is None or profile.get("erased_at") or profile.get("erased"):
        return error(409, "the customer's data was erased; nobody can be reached")
    key = re.sub(r"[^A-Za-z0-9_.:-]", "_", idempotency_key) if idempotency_key else new_id("r")
    request = NotificationRequested(
        notification_id=f"agent:{me}:{conversation_id}:{key}",
        customer_id=state.customer_id,
        conversation_id=conversation_id,
        kind="reply",
        text=body.text,
        author=f"agent:{me}",
        author_name=first_name(me),
        # The first response, unless the bot answered before (then that one was; KPIs).
        first_response=not state.bot_answered_before,
    )
    publish([(NOTIFICATION_REQUESTED, request)])
    return json_body(202, Accepted(notification_id=request.notification_id, conversation_id=conversation_id))


def first_name(agent: str) -> str | None:
    """The first word of the agent's name (what web chat shows the customer), None without one."""
    record = agents.get(agent)
    words = (record.name or "").split() if record else []
    return words[0][:100] if words else None


@router.post("/conversations/<conversation_id>/notes", responses=documented(201, Conversation, 400, 401, 404))
def add_note(conversation_id: str, body: NoteBody) -> Response[dict[str, Any]]:
    """Any agent who can see the conversation may leave an internal note (held or not, by anyone);
    the customer never sees it."""
    note = Note(note_id=new_id("note"), author=f"agent:{agent_id(router)}", text=body.text, at=now())
    try:
        conversations.add_note(conversation_id, note)
    except ConversationNotFound:
        return error(404, f"no conversation {conversation_id}")
    return _current(conversation_id, 201)


@router.post(
    "/conversations/<conversation_id>/transfer", responses=documented(200, Conversation, 400, 401, 404, 409)
)
def transfer(conversation_id: str, body: TransferBody) -> Response[dict[str, Any]]:
    """The holder hands the conversation on; a supervisor may do it for whoever holds it."""
    me, supervisor = agent_id(router), is_supervisor(router)
    return _act(
        conversation_id,
        lambda: desk().transfer(
            conversation_id, me, now(), queue=body.queue, to_agent=body.agent_id, supervisor=supervisor
        ),
    )


@router.post(
    "/conversations/<conversation_id>/resolve", responses=documented(200, Conversation, 400, 401, 404, 409)
)
def resolve(conversation_id: str, body: ResolveBody) -> Response[dict[str, Any]]:
    """The holder resolves it; a supervisor may resolve a conversation another agent holds."""
    me, supervisor = agent_id(router), is_supervisor(router)
    return _act(
        conversation_id,
        lambda: desk().resolve(conversation_id, me, body.resolution, now(), supervisor=supervisor),
    )
