"""Hostile bodies on every JSON route: 400 for bodies that do not parse or nest too deeply,
415 for other content types (``multipart/form-data`` without a boundary included) - never 500."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from functions.agent_api.handler import handler as agent_api
from functions.webchat.handler import handler as webchat
from functions.whatsapp import handler as whatsapp
from shared.platform.http import MAX_JSON_DEPTH, json_depth
from tests.helpers import context, http_event
from tests.helpers.meta import signature

AGENT = {"sub": "agent-1", "exp": "4102444800"}
CONVERSATION = {"conversation_id": "c-1"}


def nested(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def agent_call(method: str, route: str, body: str, content_type: str) -> dict[str, Any]:
    params = {"conversation_id": "c-1"} if "{conversation_id}" in route else {}
    params |= {"agent_id": "agent-1"} if "{agent_id}" in route else {}
    params |= {"customer_id": "cus-1"} if "{customer_id}" in route else {}
    event = http_event(
        method, route, body=body, headers={"content-type": content_type}, claims=AGENT, path_parameters=params
    )
    return agent_api(event, context("agent-api"))


AGENT_WRITE_ROUTES = [
    ("POST", "/conversations/{conversation_id}/accept"),
    ("POST", "/conversations/{conversation_id}/messages"),
    ("POST", "/conversations/{conversation_id}/notes"),
    ("POST", "/conversations/{conversation_id}/transfer"),
    ("POST", "/conversations/{conversation_id}/resolve"),
    ("PATCH", "/customers/{customer_id}"),
    ("POST", "/customers/{customer_id}/merge"),
    ("POST", "/customers/{customer_id}/unmerge"),
    ("POST", "/customers/{customer_id}/identities/confirm"),
    ("POST", "/notifications"),
    ("PUT", "/agents/me/status"),
    ("PUT", "/agents/{agent_id}"),
]


def test_depth_scan_ignores_brackets_in_strings() -> None:
    assert json_depth('{"a": "[[[[{{{{", "b": [1, [2]]}') == 3
    assert json_depth('"\\"[["') == 0
    assert json_depth(nested(5_000)) == MAX_JSON_DEPTH + 1  # stops counting past the limit


@pytest.mark.parametrize(("method", "route"), AGENT_WRITE_ROUTES)
def test_agent_api_refuses_hostile_bodies_with_4xx(stack: dict[Any, str], method: str, route: str) -> None:
    deep = agent_call(method, route, nested(5_000), "application/json")
    assert deep["statusCode"] == 400, deep
    assert "deeper than 64" in json.loads(deep["body"])["message"]
    assert agent_call(method, route, nested(MAX_JSON_DEPTH + 1), "application/json")["statusCode"] == 400
    assert agent_call(method, route, '{"text": ', "application/json")["statusCode"] == 400
    no_boundary = agent_call(method, route, "--x\r\n\r\n", "multipart/form-data")
    assert no_boundary["statusCode"] == 415, no_boundary
    assert agent_call(method, route, "a=1", "application/x-www-form-urlencoded")["statusCode"] == 415


def test_a_body_within_the_depth_limit_reaches_the_route(stack: dict[Any, str]) -> None:
    route = "/conversations/{conversation_id}/notes"
    response = agent_call(
        "POST", route, json.dumps({"text": "fine", "x": json.loads(nested(10))}), "application/json"
    )
    assert response["statusCode"] not in (400, 415, 500), response  # validated by the route itself


PUBLIC: list[tuple[str, Callable[..., dict[str, Any]], str, str, dict[str, str]]] = [
    ("webchat", webchat, "POST", "/webchat/sessions", {}),
    ("webchat", webchat, "POST", "/webchat/sessions/{session_id}/messages", {"session_id": "s-1"}),
]


@pytest.mark.parametrize(("function", "handler", "method", "route", "params"), PUBLIC)
def test_web_chat_refuses_hostile_bodies_without_credentials(
    stack: dict[Any, str],
    function: str,
    handler: Callable[..., dict[str, Any]],
    method: str,
    route: str,
    params: dict[str, str],
) -> None:
    def send(body: str, content_type: str) -> int:
        event = http_event(
            method, route, body=body, headers={"content-type": content_type}, path_parameters=params
        )
        return int(handler(event, context(function))["statusCode"])

    assert send("[" * 5_000 + "]" * 5_000, "application/json") == 400
    assert send("[" * 900 + "]" * 900, "application/json") == 400
    assert send("{", "application/json") == 400
    assert send("--x", "multipart/form-data") == 415


def test_whatsapp_webhook_refuses_a_deep_signed_body_with_400(stack: dict[Any, str]) -> None:
    body = nested(5_000)
    headers = {"content-type": "application/json", "x-hub-signature-256": signature(body.encode())}
    response = whatsapp.handler(
        http_event("POST", "/webhooks/whatsapp", body=body, headers=headers), context("whatsapp")
    )
    assert response["statusCode"] == 400


@pytest.mark.parametrize(
    ("method", "route"),
    [
        ("DELETE", "/conversations/{conversation_id}/notes"),
        ("PATCH", "/conversations/{conversation_id}/accept"),
        ("PUT", "/notifications"),
    ],
)
def test_a_method_the_api_does_not_route_is_404_as_at_the_gateway(
    stack: dict[Any, str], method: str, route: str
) -> None:
    """API Gateway answers 404 for a method a path has no route for, before any function runs
    (locally too, tests/local/test_local_http.py); the functions answer the same if ever reached."""
    response = agent_call(method, route, "{}", "application/json")
    assert response["statusCode"] == 404, response


def test_web_chat_answers_404_for_a_method_it_does_not_route(stack: dict[Any, str]) -> None:
    event = http_event("DELETE", "/webchat/sessions", body="{}", headers={"content-type": "application/json"})
    assert webchat(event, context("webchat"))["statusCode"] == 404
