"""Profile merge, routing, notify and the agent API under moto, fed by the real bus and queues.

A web chat message is posted to the webchat handler; each consumer is then invoked with
the batch SQS really holds (put there by the EventBridge rules), as Lambda would.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from functions.agent_api.handler import handler as agent_api
from functions.webchat.handler import handler as webchat
from tests.helpers import context, http_event
from tests.helpers.pipeline import drain, open_session, run_pipeline, say, verified_ana

AGENT = {"sub": "agent-7", "exp": "4102444800"}


def api(path: str, route: str, claims: dict[str, str] | None = AGENT, **params: Any) -> tuple[int, Any]:
    response = agent_api(http_event("GET", route, claims=claims, **params), context("agent-api"))
    return response["statusCode"], json.loads(response["body"])


def test_verified_message_becomes_customer_conversation_and_acknowledgement(stack: dict[Any, str]) -> None:
    session = open_session(verified_ana())
    say(session, "m-1", "My invoice is wrong")
    run_pipeline(stack)

    status, found = api("/customers", "/customers", query={"identity": "account:acct-42"})
    assert status == 200
    [customer] = found["customers"]
    identities = {(i["type"], i["value"], i["verified"]) for i in customer["identities"]}
    assert identities == {
        ("webchat", session["session_id"], True),
        ("account", "acct-42", True),
        ("email", "ana@example.com", True),
    }
    status, by_email = api("/customers", "/customers", query={"identity": "email:ANA@example.com"})
    assert by_email["customers"][0]["customer_id"] == customer["customer_id"]

    status, listed = api(
        "/customers/x/conversations",
        "/customers/{customer_id}/conversations",
        path_parameters={"customer_id": customer["customer_id"]},
    )
    [summary] = listed["conversations"]
    status, conversation = api(
        "/conversations/x",
        "/conversations/{conversation_id}",
        path_parameters={"conversation_id": summary["conversation_id"]},
    )
    assert status == 200
    assert conversation["status"] == "queued"
    assert conversation["routing"]["queue"] == "billing"
    [inbound, ack] = conversation["messages"]
    assert (inbound["direction"], inbound["channel"], inbound["text"]) == (
        "inbound",
        "webchat",
        "My invoice is wrong",
    )
    assert ack["direction"] == "outbound"
    assert "billing team" in ack["text"]
    assert ack["text"].startswith("Thanks, Ana!")

    # The acknowledgement reached the session, and the delivery log says so.
    response = webchat(
        http_event(
            "GET",
            "/webchat/sessions/{session_id}/messages",
            path_parameters={"session_id": session["session_id"]},
            headers={"authorization": f"Bearer {session['token']}"},
        ),
        context("webchat"),
    )
    shown = json.loads(response["body"])["messages"]
    assert [m["direction"] for m in shown] == ["inbound", "outbound"]
    outbox = boto3.client("dynamodb").scan(TableName=stack[("table", "outbox")])["Items"]
    assert [item["status"]["S"] for item in outbox] == ["sent"]


def test_redelivered_events_have_no_second_effect(stack: dict[Any, str]) -> None:
    session = open_session(verified_ana())
    say(session, "m-1", "My invoice is wrong")
    say(session, "m-1", "My invoice is wrong")  # the browser resent it
    sqs = boto3.client("sqs")
    for queue in ("profile-merge", "routing", "notify"):
        # Deliver every message of this stage twice, as SQS may.
        url = stack[("queue", queue)]
        bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
        for body in bodies:
            sqs.send_message(QueueUrl=url, MessageBody=body)
        while drain(stack, queue)["count"]:
            pass
    _, found = api("/customers", "/customers", query={"identity": "account:acct-42"})
    [customer] = found["customers"]
    _, listed = api(
        "/c",
        "/customers/{customer_id}/conversations",
        path_parameters={"customer_id": customer["customer_id"]},
    )
    [summary] = listed["conversations"]
    assert summary["message_count"] == 2
    _, conversation = api(
        "/c",
        "/conversations/{conversation_id}",
        path_parameters={"conversation_id": summary["conversation_id"]},
    )
    assert [m["direction"] for m in conversation["messages"]] == ["inbound", "outbound"]


def test_second_session_of_same_verified_customer_joins_the_same_conversation(stack: dict[Any, str]) -> None:
    first = open_session(verified_ana())
    say(first, "m-1", "My invoice is wrong")
    run_pipeline(stack)
    second = open_session(verified_ana())
    say(second, "m-1", "Any news on my invoice?")
    run_pipeline(stack)
    _, found = api("/customers", "/customers", query={"identity": "account:acct-42"})
    [customer] = found["customers"]
    assert {i["value"] for i in customer["identities"] if i["type"] == "webchat"} == {
        first["session_id"],
        second["session_id"],
    }
    _, listed = api(
        "/c",
        "/customers/{customer_id}/conversations",
        path_parameters={"customer_id": customer["customer_id"]},
    )
    assert len(listed["conversations"]) == 1
    _, conversation = api(
        "/c",
        "/conversations/{conversation_id}",
        path_parameters={"conversation_id": listed["conversations"][0]["conversation_id"]},
    )
    # Same queue: the customer is not acknowledged a second time.
    assert [m["direction"] for m in conversation["messages"]] == ["inbound", "outbound", "inbound"]


def test_anonymous_sessions_are_separate_customers(stack: dict[Any, str]) -> None:
    a, b = open_session({"email": "ana@example.com"}), open_session({"email": "ana@example.com"})
    say(a, "m-1", "hello")
    say(b, "m-1", "hello")
    run_pipeline(stack)
    # A claimed e-mail finds nobody: claims never identify a customer.
    _, found = api("/customers", "/customers", query={"identity": "email:ana@example.com"})
    assert found["customers"] == []
    _, by_session = api("/customers", "/customers", query={"identity": f"webchat:{a['session_id']}"})
    [customer] = by_session["customers"]
    assert {"type": "email", "value": "ana@example.com", "verified": False}.items() <= next(
        i for i in customer["identities"] if i["type"] == "email"
    ).items()


def test_routine_question_is_answered_by_the_bot(stack: dict[Any, str]) -> None:
    session = open_session()
    say(session, "m-1", "What are your opening hours?")
    run_pipeline(stack)
    _, found = api("/customers", "/customers", query={"identity": f"webchat:{session['session_id']}"})
    _, listed = api(
        "/c",
        "/customers/{customer_id}/conversations",
        path_parameters={"customer_id": found["customers"][0]["customer_id"]},
    )
    summary = listed["conversations"][0]
    assert summary["status"] == "bot"
    assert summary["routing"]["automated"] is True


def test_poison_message_is_reported_as_failed(stack: dict[Any, str]) -> None:
    sqs = boto3.client("sqs")
    sqs.send_message(QueueUrl=stack[("queue", "profile-merge")], MessageBody='{"detail": "not an event"}')
    assert len(drain(stack, "profile-merge")["batchItemFailures"]) == 1


@pytest.mark.parametrize("claims", [None, {}, {"exp": "4102444800"}])
def test_agent_api_needs_verified_claims(stack: dict[Any, str], claims: dict[str, str] | None) -> None:
    status, _ = api("/customers", "/customers", claims=claims, query={"identity": "email:a@b.co"})
    assert status == 401


def test_agent_api_bad_input(stack: dict[Any, str]) -> None:
    assert api("/customers", "/customers", query={"identity": "nonsense"})[0] == 400
    assert api("/customers", "/customers", query={"identity": "phone:abc"})[0] == 400
    assert api("/customers", "/customers")[0] == 400
    assert api("/c", "/customers/{customer_id}", path_parameters={"customer_id": "cus_nobody"})[0] == 404
    assert (
        api("/c", "/conversations/{conversation_id}", path_parameters={"conversation_id": "conv_none"})[0]
        == 404
    )


def test_openapi_lists_the_routes(stack: dict[Any, str]) -> None:
    status, spec = api("/openapi.json", "/openapi.json", claims=None)
    assert status == 200
    assert {"/customers", "/customers/{customer_id}", "/conversations/{conversation_id}"} <= set(
        spec["paths"]
    )
