"""Delivery receipts end to end on the local stack: an agent's SMS reply goes out (local
outbound mode: the outbox holds the Twilio request and a simulated Message SID), Twilio's
signed status callback for that SID arrives, and the conversation timeline shows the
reply as delivered; a late ``sent`` callback does not move it back."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from omni.local.auth import issue_agent_token
from omni.local.runtime import LocalRuntime
from omni.send import twilio as sender
from shared.platform.http import PUBLIC_BASE_URL_ENV
from shared.repositories.dynamo import deserialise
from topology import TOPOLOGY

pytestmark = pytest.mark.e2e

STAGE = "delivery-e2e"
TOKEN = TOPOLOGY.secret("twilio-auth-token").local_default
PHONE = "+351910000077"
AGENT = "rita"


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(port=0, stage=STAGE) as running:
        yield running


def agent(runtime: LocalRuntime, who: str, method: str, path: str, body: Any = None) -> requests.Response:
    extra = {"cognito:groups": ["supervisors"]} if who == "supervisor" else None
    token = issue_agent_token(who, 600, extra_claims=extra)
    return requests.request(
        method,
        f"{runtime.base_url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def twilio_post(runtime: LocalRuntime, path: str, params: list[tuple[str, str]]) -> int:
    result = sender.post_signed(runtime.base_url, path, params, TOKEN, os.environ[PUBLIC_BASE_URL_ENV])
    return result.status


def outbox_item(runtime: LocalRuntime, notification_id: str) -> dict[str, Any]:
    items = runtime.client("dynamodb").scan(TableName=runtime.physical[("table", "outbox")])["Items"]
    [item] = [deserialise(i) for i in items if i["notification_id"]["S"] == notification_id]
    return item


def reply_in(conversation: dict[str, Any], notification_id: str) -> dict[str, Any]:
    [message] = [m for m in conversation["messages"] if m["message_id"] == notification_id]
    return message


def test_an_sms_reply_shows_delivered_after_twilio_says_so(runtime: LocalRuntime) -> None:
    setup = agent(
        runtime,
        "supervisor",
        "PUT",
        f"/agents/{AGENT}",
        {"name": "Rita", "skills": {"general": 5}, "max_concurrent": 2},
    )
    assert setup.status_code == 200, setup.text
    assert agent(runtime, AGENT, "PUT", "/agents/me/status", {"status": "available"}).status_code == 200

    # The customer texts and asks for a person: the conversation is assigned to Rita.
    inbound = sender.sms_payload(sender.new_sid("SM"), PHONE, "I want to talk to a person please")
    assert twilio_post(runtime, sender.SMS_PATH, inbound) == 200
    runtime.wait_idle(timeout=30)
    deadline = time.monotonic() + 20
    mine: list[dict[str, Any]] = []
    while not mine and time.monotonic() < deadline:
        mine = agent(runtime, AGENT, "GET", "/agents/me/conversations").json()["conversations"]
        if not mine:
            time.sleep(0.2)
    [conversation] = mine
    conversation_id = conversation["conversation_id"]
    assert agent(runtime, AGENT, "POST", f"/conversations/{conversation_id}/accept").status_code == 200

    # Rita replies; notify sends it on SMS (locally: into the outbox, with a simulated SID).
    reply = agent(runtime, AGENT, "POST", f"/conversations/{conversation_id}/messages", {"text": "On it!"})
    assert reply.status_code == 202, reply.text
    notification_id = reply.json()["notification_id"]
    runtime.wait_idle(timeout=30)
    item = outbox_item(runtime, notification_id)
    assert (item["status"], item["channel"]) == ("sent", "sms")
    message_sid = item["provider_message_id"]
    assert message_sid.startswith("SM")
    timeline = agent(runtime, AGENT, "GET", f"/conversations/{conversation_id}").json()
    assert reply_in(timeline, notification_id)["status"] == "sent"

    # Twilio reports the delivery: the outbox and the timeline say delivered.
    delivered = sender.sms_status_payload(message_sid, "delivered", PHONE)
    assert twilio_post(runtime, sender.SMS_STATUS_PATH, delivered) == 200
    runtime.wait_idle(timeout=30)
    assert outbox_item(runtime, notification_id)["status"] == "delivered"
    timeline = agent(runtime, AGENT, "GET", f"/conversations/{conversation_id}").json()
    assert reply_in(timeline, notification_id)["status"] == "delivered"

    # A late "sent" callback (Twilio does not promise order) changes nothing.
    late = sender.sms_status_payload(message_sid, "sent", PHONE)
    assert twilio_post(runtime, sender.SMS_STATUS_PATH, late) == 200
    runtime.wait_idle(timeout=30)
    timeline = agent(runtime, AGENT, "GET", f"/conversations/{conversation_id}").json()
    assert reply_in(timeline, notification_id)["status"] == "delivered"
    assert outbox_item(runtime, notification_id)["status"] == "delivered"
