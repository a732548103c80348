"""Agents, their skills and capacity, in the ``agents`` table.

Items (``pk`` / ``sk``):

* ``AGENT#<id>`` / ``PROFILE`` - name, skills (skill -> proficiency 1-10), capacity
  (``max_concurrent``), status (available/away/offline), ``active_count`` and the set of
  ``active`` conversation ids;
* ``SKILL#<skill>`` / ``AGENT#<id>`` - the agent has that skill (with its proficiency):
  the candidates for a queue are one query, never a scan;
* ``SERVED#<customer id>`` / ``LAST`` - the agent who last served the customer, and when
  (sticky assignment).

Capacity is enforced by DynamoDB, not by a read before the write: taking a conversation
is a conditional update (``active_count < max_concurrent`` and the agent available) in
the same transaction as the conversation's change, so two assignments racing for the
last slot cannot both win.
"""

from typing import Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from shared.platform import settings
from shared.repositories.dynamo import (
    CONDITION_FAILED,
    DynamoTable,
    cancellation_codes,
    deserialise,
    serialise,
)

PROFILE = "PROFILE"
AgentStatus = Literal["available", "away", "offline"]


class Agent(BaseModel):
    model_config = ConfigDict(defer_build=True)

    agent_id: str
    name: str | None = None
    #: Skill -> proficiency (1 lowest, 10 highest).
    skills: dict[str, int] = Field(default_factory=dict)
    max_concurrent: int = 3
    status: AgentStatus = "offline"
    status_at: str | None = None
    active_count: int = 0
    active_conversations: list[str] = Field(default_factory=list)

    @property
    def has_capacity(self) -> bool:
        return self.active_count < self.max_concurrent


class AgentNotFound(LookupError):
    pass


def agent_pk(agent_id: str) -> str:
    return f"AGENT#{agent_id}"


def skill_pk(skill: str) -> str:
    return f"SKILL#{skill}"


def served_pk(customer_id: str) -> str:
    return f"SERVED#{customer_id}"


def _agent(item: dict[str, Any]) -> Agent:
    return Agent(
        agent_id=item["agent_id"],
        name=item.get("name"),
        skills={k: int(v) for k, v in item.get("skills", {}).items()},
        max_concurrent=int(item.get("max_concurrent", 0)),
        status=item.get("status", "offline"),
        status_at=item.get("status_at"),
        active_count=int(item.get("active_count", 0)),
        active_conversations=list(item.get("active", [])),
    )


class AgentRepository:
    def __init__(self, table: DynamoTable | None = None) -> None:
        self.table = table or DynamoTable(settings.AGENTS_TABLE)

    # -- reads ------------------------------------------------------------- #
    def get(self, agent_id: str) -> Agent | None:
        item = self.table.get({"pk": agent_pk(agent_id), "sk": PROFILE})
        return _agent(item) if item else None

    def get_many(self, agent_ids: list[str]) -> list[Agent]:
        found: list[Agent] = []
        for start in range(0, len(agent_ids), 100):
            keys = [serialise({"pk": agent_pk(a), "sk": PROFILE}) for a in agent_ids[start : start + 100]]
            request: dict[str, Any] = {self.table.name: {"Keys": keys, "ConsistentRead": True}}
            while request:
                response = self.table.client.batch_get_item(RequestItems=request)
                found += [_agent(deserialise(raw)) for raw in response["Responses"].get(self.table.name, [])]
                request = response.get("UnprocessedKeys") or {}
        return found

    def with_skill(self, skill: str) -> list[Agent]:
        """Every agent with ``skill`` (their current status and load read consistently)."""
        members = self.skill_members(skill)
        return self.get_many(members) if members else []

    def skill_members(self, skill: str) -> list[str]:
        """The ids of the agents with ``skill`` (one query, eventually consistent: membership
        changes only when an agent is saved; their status and load are read consistently).

        Not cached per container: the query costs half a read unit, and a cache would make the
        reads of a message depend on when the container last looked.
        """
        members = self.table.query_all(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": skill_pk(skill)}},
        )
        return [str(m["agent_id"]) for m in members]

    def last_served(self, customer_id: str) -> tuple[str, str] | None:
        """``(agent id, when)`` of the agent who last served the customer (a preference for
        ranking, so read eventually consistent)."""
        item = self.table.get({"pk": served_pk(customer_id), "sk": "LAST"}, consistent=False)
        return (item["agent_id"], item["at"]) if item else None

    # -- writes ------------------------------------------------------------ #
    def save(
        self, agent_id: str, name: str | None, skills: dict[str, int], max_concurrent: int, now: str
    ) -> Agent:
        """Create or update an agent's name, skills and capacity (status and load are kept)."""
        current = self.get(agent_id)
        actions: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.table.name,
                    "Key": serialise({"pk": agent_pk(agent_id), "sk": PROFILE}),
                    "UpdateExpression": (
                        "SET agent_id = :id, #name = :name, skills = :skills, max_concurrent = :max, "
                        "updated_at = :now, #status = if_not_exists(#status, :offline), "
                        "active_count = if_not_exists(active_count, :zero)"
                    ),
                    "ExpressionAttributeNames": {"#name": "name", "#status": "status"},
                    "ExpressionAttributeValues": serialise(
                        {
                            ":id": agent_id,
                            ":name": name or agent_id,
                            ":skills": skills,
                            ":max": max_concurrent,
                            ":now": now,
                            ":offline": "offline",
                            ":zero": 0,
                        }
                    ),
                }
            }
        ]
        for skill, proficiency in skills.items():
            actions.append(
                {
                    "Put": {
                        "TableName": self.table.name,
                        "Item": serialise(
                            {
                                "pk": skill_pk(skill),
                                "sk": agent_pk(agent_id),
                                "agent_id": agent_id,
                                "proficiency": proficiency,
                            }
                        ),
                    }
                }
            )
        for skill in set(current.skills if current else {}) - set(skills):
            actions.append(
                {
                    "Delete": {
                        "TableName": self.table.name,
                        "Key": serialise({"pk": skill_pk(skill), "sk": agent_pk(agent_id)}),
                    }
                }
            )
        self.table.client.transact_write_items(TransactItems=actions)
        saved = self.get(agent_id)
        assert saved is not None
        return saved

    def set_status(self, agent_id: str, status: AgentStatus, now: str) -> Agent:
        response = self.table.conditional(
            "update_item",
            Key=serialise({"pk": agent_pk(agent_id), "sk": PROFILE}),
            UpdateExpression="SET #status = :status, status_at = :now",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=serialise({":status": status, ":now": now}),
            ReturnValues="ALL_NEW",
        )
        if response is None:
            raise AgentNotFound(agent_id)
        return _agent(deserialise(response["Attributes"]))

    # -- transaction items --------------------------------------------------- #
    def take(self, agent_id: str, conversation_id: str, require_available: bool = True) -> dict[str, Any]:
        """Transaction item: the agent takes the conversation, if available and under capacity."""
        condition = "active_count < max_concurrent AND NOT contains(active, :c)"
        values: dict[str, Any] = {":one": 1, ":c": conversation_id, ":cs": {conversation_id}}
        if require_available:
            condition = "#status = :available AND " + condition
            values[":available"] = "available"
        update: dict[str, Any] = {
            "TableName": self.table.name,
            "Key": serialise({"pk": agent_pk(agent_id), "sk": PROFILE}),
            "UpdateExpression": "SET active_count = active_count + :one ADD active :cs",
            "ConditionExpression": condition,
            "ExpressionAttributeValues": serialise(values),
        }
        if require_available:
            update["ExpressionAttributeNames"] = {"#status": "status"}
        return {"Update": update}

    def release(self, agent_id: str, conversation_id: str) -> dict[str, Any]:
        """Transaction item: the conversation no longer counts against the agent's capacity."""
        return {
            "Update": {
                "TableName": self.table.name,
                "Key": serialise({"pk": agent_pk(agent_id), "sk": PROFILE}),
                "UpdateExpression": "SET active_count = active_count - :one DELETE active :cs",
                "ConditionExpression": "contains(active, :c)",
                "ExpressionAttributeValues": serialise(
                    {":one": 1, ":c": conversation_id, ":cs": {conversation_id}}
                ),
            }
        }

    def remember_served(self, customer_id: str, agent_id: str, at: str) -> dict[str, Any]:
        """Transaction item: ``agent_id`` served the customer at ``at`` (sticky assignment)."""
        return {
            "Put": {
                "TableName": self.table.name,
                "Item": serialise(
                    {"pk": served_pk(customer_id), "sk": "LAST", "agent_id": agent_id, "at": at}
                ),
            }
        }


def is_capacity_conflict(error: ClientError) -> bool:
    return CONDITION_FAILED in cancellation_codes(error)
