"""The web chat function under moto: sessions, messages, tokens, bad input."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from functions.webchat.handler import handler
from shared.channels.webchat import compute_user_hash
from tests.helpers import context, http_event
from topology import TOPOLOGY

SESSIONS = "/webchat/sessions"
MESSAGES = "/webchat/sessions/{session_id}/messages"
IDENTITY_SECRET = TOPOLOGY.secret("webchat-identity").local_default


def call(event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = handler(event, context("webchat"))
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else {}


def open_session(customer: dict[str, Any] | None = None) -> dict[str, Any]:
    status, body = call(http_event("POST", SESSIONS, body={"customer": customer} if customer else None))
    assert status == 201, body
    return body


def post(
    session: dict[str, Any], message: dict[str, Any], token: str | None = None
) -> tuple[int, dict[str, Any]]:
    return call(
        http_event(
            "POST",
            MESSAGES,
            path_parameters={"session_id": session["session_id"]},
            body=message,
            headers={"authorization": f"Bearer {token or session['token']}"},
        )
    )


def bus_events(stack: dict[Any, str]) -> list[dict[str, Any]]:
    """What reached the profile-merge queue through the bus rule."""
    sqs = boto3.client("sqs")
    messages = sqs.receive_message(QueueUrl=stack[("queue", "profile-merge")], MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in messages.get("Messages", [])]


MESSAGE = {"message_id": "m-1", "text": "Hello, my invoice is wrong", "sent_at": "2026-11-25T08:00:00Z"}


def test_anonymous_session_message_is_published(stack: dict[Any, str]) -> None:
    session = open_session()
    assert session["verified"] is False
    status, body = post(session, MESSAGE)
    assert (status, body["duplicate"]) == (202, False)
    [event] = bus_events(stack)
    assert event["detail-type"] == "message.received"
    detail = event["detail"]
    assert detail["channel"] == "webchat"
    assert detail["sender"] == {"type": "webchat", "value": session["session_id"], "verified": True}
    assert detail["provider_message_id"] == f"{session['session_id']}:m-1"
    assert detail["identities"] == []


def test_verified_customer_identities_travel_with_the_message(stack: dict[Any, str]) -> None:
    user_hash = compute_user_hash(IDENTITY_SECRET, "acct-42")
    session = open_session(
        {"account_id": "acct-42", "email": "Ana@Example.com", "name": "Ana", "user_hash": user_hash}
    )
    assert session["verified"] is True
    post(session, MESSAGE)
    [event] = bus_events(stack)
    assert event["detail"]["identities"] == [
        {"type": "account", "value": "acct-42", "verified": True},
        {"type": "email", "value": "ana@example.com", "verified": True},
    ]
    assert event["detail"]["display_name"] == "Ana"


def test_claimed_identity_without_user_hash_is_not_verified(stack: dict[Any, str]) -> None:
    session = open_session({"email": "ana@example.com"})
    post(session, MESSAGE)
    [event] = bus_events(stack)
    assert event["detail"]["identities"] == [{"type": "email", "value": "ana@example.com", "verified": False}]


def test_wrong_user_hash_is_refused(stack: dict[Any, str]) -> None:
    status, body = call(
        http_event("POST", SESSIONS, body={"customer": {"account_id": "acct-42", "user_hash": "0" * 64}})
    )
    assert status == 401, body
    assert "user_hash" in body["message"]


def test_duplicate_message_is_stored_once_and_listed_once(stack: dict[Any, str]) -> None:
    session = open_session()
    assert post(session, MESSAGE)[1]["duplicate"] is False
    assert post(session, MESSAGE)[1]["duplicate"] is True
    status, body = call(
        http_event(
            "GET",
            MESSAGES,
            path_parameters={"session_id": session["session_id"]},
            headers={"authorization": f"Bearer {session['token']}"},
        )
    )
    assert status == 200
    assert [m["message_id"] for m in body["messages"]] == ["m-1"]
    assert body["messages"][0]["direction"] == "inbound"


@pytest.mark.parametrize("token", ["", "not-a-token", "forged"])
def test_bad_tokens_get_401(stack: dict[Any, str], token: str) -> None:
    session = open_session()
    forged = session["token"][:-4] + ("AAAA" if not session["token"].endswith("AAAA") else "BBBB")
    status, body = post(session, MESSAGE, token=forged if token == "forged" else token or " ")
    assert status == 401, body


def test_token_of_another_session_gets_401(stack: dict[Any, str]) -> None:
    mine, other = open_session(), open_session()
    status, _ = post(mine, MESSAGE, token=other["token"])
    assert status == 401


def test_missing_authorization_gets_401(stack: dict[Any, str]) -> None:
    session = open_session()
    status, _ = call(
        http_event("POST", MESSAGES, path_parameters={"session_id": session["session_id"]}, body=MESSAGE)
    )
    assert status == 401


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ({"text": "hi", "sent_at": "2026-11-25T08:00:00Z"}, "message_id"),
        ({"message_id": "m", "text": "", "sent_at": "2026-11-25T08:00:00Z"}, "text"),
        ({"message_id": "m", "text": "hi", "sent_at": "yesterday"}, "sent_at"),
        ({"message_id": "m", "text": "hi", "sent_at": "2026-11-25T08:00:00"}, "sent_at"),
        ({"message_id": "m", "text": "hi", "sent_at": "2026-11-25T08:00:00Z", "extra": 1}, "extra"),
    ],
)
def test_malformed_body_gets_400_with_reason(
    stack: dict[Any, str], message: dict[str, Any], field: str
) -> None:
    session = open_session()
    status, body = post(session, message)
    assert status == 400
    assert field in body["message"]


def test_invalid_json_gets_400(stack: dict[Any, str]) -> None:
    session = open_session()
    event = http_event(
        "POST",
        MESSAGES,
        path_parameters={"session_id": session["session_id"]},
        body='{"message_id": ',
        headers={"authorization": f"Bearer {session['token']}", "content-type": "application/json"},
    )
    status, _ = call(event)
    assert status == 400


def test_oversized_body_gets_413(stack: dict[Any, str]) -> None:
    session = open_session()
    status, body = post(session, {**MESSAGE, "text": "x" * 20_000})
    assert status == 413
    assert "limit" in body["message"]


def test_wrong_content_type_gets_415(stack: dict[Any, str]) -> None:
    session = open_session()
    event = http_event(
        "POST",
        MESSAGES,
        path_parameters={"session_id": session["session_id"]},
        body="message_id=m&text=hi",
        headers={
            "authorization": f"Bearer {session['token']}",
            "content-type": "application/x-www-form-urlencoded",
        },
    )
    status, _ = call(event)
    assert status == 415
