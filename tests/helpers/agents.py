"""Call the agent API handler as an agent or a supervisor, and set up agents and conversations."""

from __future__ import annotations

import json
from typing import Any

from functions.agent_api.handler import handler as agent_api
from tests.helpers import context, http_event


def conv(method: str, action: str, conversation_id: str, agent: str, body: Any = None) -> tuple[int, Any]:
    route = "/conversations/{conversation_id}" + (f"/{action}" if action else "")
    return call(method, route, agent, body, path_parameters={"conversation_id": conversation_id})


def add_agent(agent_id: str, skills: dict[str, int], cap: int = 2, status: str | None = "available") -> None:
    status_code, _ = call(
        "PUT",
        "/agents/{agent_id}",
        "sup-1",
        {"name": agent_id.title(), "skills": skills, "max_concurrent": cap},
        path_parameters={"agent_id": agent_id},
    )
    assert status_code == 200
    if status:
        assert call("PUT", "/agents/me/status", agent_id, {"status": status})[0] == 200


def conversation_of(session: dict[str, Any]) -> str:
    status, found = call(
        "GET", "/customers", "agent-x", query={"identity": f"webchat:{session['session_id']}"}
    )
    assert status == 200, found
    customer = found["customers"][0]
    return str(customer["open_conversation_id"])


def call(method: str, route: str, agent: str | None, body: Any = None, **params: Any) -> tuple[int, Any]:
    who = SUPERVISOR if agent == "sup-1" else claims(agent) if agent else None
    path_parameters = params.pop("path_parameters", {})
    response = agent_api(
        http_event(method, route, claims=who, body=body, path_parameters=path_parameters, **params),
        context("agent-api"),
    )
    return response["statusCode"], json.loads(response["body"])


SUPERVISOR = {"sub": "sup-1", "exp": "4102444800", "cognito:groups": "[supervisors]"}


def claims(agent: str) -> dict[str, str]:
    return {"sub": agent, "exp": "4102444800"}
