"""The issue's whole journey on the local stack, over HTTP, hotline leg included.

A customer texts the company from their phone (the bot answers), then chats on the
website signed in with their account: the bot answers a routine question, the
customer asks for a person about their invoice, the billing agent accepts and sees
the context. The agent links the two profiles (the customer says in the chat that
they texted from that number; the agent finds the SMS profile and merges it into the
chat profile through the customer API). The customer then calls the hotline from
that phone: the signed Twilio voice webhook enqueues the call in ``billing``, the call
lands in the same conversation, still with the same agent, who resolves it. Every
transition is visible in ``GET /conversations/{id}``.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from twilio.request_validator import RequestValidator

from omni.local.auth import issue_agent_token
from omni.local.runtime import LocalRuntime
from omni.send import twilio as sender
from shared.channels.webchat import compute_user_hash
from shared.platform.http import PUBLIC_BASE_URL_ENV
from topology import TOPOLOGY

pytestmark = pytest.mark.e2e

PHONE = "+4915112349876"
TWILIO_TOKEN = TOPOLOGY.secret("twilio-auth-token").local_default


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(port=0, stage="e2e-journey") as running:
        yield running


def agent(runtime: LocalRuntime, who: str, method: str, path: str, body: Any = None, **kw: Any) -> Any:
    extra = {"cognito:groups": ["supervisors"]} if who == "supervisor" else None
    token = issue_agent_token(who, 600, extra_claims=extra)
    response = requests.request(
        method,
        f"{runtime.base_url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
        **kw,
    )
    assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text}"
    return response.json()


def twilio_post(runtime: LocalRuntime, path: str, params: list[tuple[str, str]]) -> requests.Response:
    signed_url = os.environ[PUBLIC_BASE_URL_ENV].rstrip("/") + path
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(signed_url, dict(params))
    response = requests.post(
        f"{runtime.base_url}{path}",
        data=params,
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response


def chat(runtime: LocalRuntime, session: dict[str, Any], message_id: str, text: str) -> None:
    response = requests.post(
        f"{runtime.base_url}/webchat/sessions/{session['session_id']}/messages",
        json={"message_id": message_id, "text": text, "sent_at": datetime.now(UTC).isoformat()},
        headers={"Authorization": f"Bearer {session['token']}"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    runtime.wait_idle(timeout=30)


def last_shown(runtime: LocalRuntime, session: dict[str, Any]) -> str:
    response = requests.get(
        f"{runtime.base_url}/webchat/sessions/{session['session_id']}/messages",
        headers={"Authorization": f"Bearer {session['token']}"},
        timeout=10,
    )
    return str(response.json()["messages"][-1]["text"])


def test_chat_bot_then_billing_agent_then_the_hotline_call_lands_with_the_same_agent(
    runtime: LocalRuntime,
) -> None:
    agent(
        runtime,
        "supervisor",
        "PUT",
        "/agents/jonas",
        {"name": "Jonas", "skills": {"billing": 9, "general": 3}, "max_concurrent": 3},
    )
    assert (
        agent(runtime, "jonas", "PUT", "/agents/me/status", {"status": "available"})["status"] == "available"
    )

    # 0. Earlier, the customer texted from their phone; the bot answered there.
    twilio_post(runtime, sender.SMS_PATH, sender.sms_payload(sender.new_sid("SM"), PHONE, "Opening hours?"))
    runtime.wait_idle(timeout=30)
    [sms_customer] = agent(runtime, "jonas", "GET", "/customers", params={"identity": f"phone:{PHONE}"})[
        "customers"
    ]

    # 1. Signed in on the website, the customer asks a routine question: the bot answers.
    secret = TOPOLOGY.secret("webchat-identity").local_default
    customer = {
        "account_id": "acct-journey",
        "email": "mia.journey@example.com",
        "name": "Mia Braun",
        "user_hash": compute_user_hash(secret, "acct-journey"),
    }
    session = requests.post(
        f"{runtime.base_url}/webchat/sessions", json={"customer": customer}, timeout=10
    ).json()
    chat(runtime, session, "j-1", "When are you open on Saturday? What are your opening hours?")
    assert last_shown(runtime, session).startswith("We are open Monday to Friday")

    # 2. "I want to talk to a person about my invoice": billing queue, assigned to Jonas.
    chat(runtime, session, "j-2", "I want to talk to a person about my invoice")
    assert "billing team" in last_shown(runtime, session)
    [mine] = agent(runtime, "jonas", "GET", "/agents/me/conversations")["conversations"]
    conversation_id = mine["conversation_id"]
    assert (mine["status"], mine["queue"], mine["assigned_agent"]) == ("assigned", "billing", "jonas")

    # 3. Jonas accepts and sees the context summary.
    accepted = agent(runtime, "jonas", "POST", f"/conversations/{conversation_id}/accept")
    assert accepted["status"] == "active"
    handover = accepted["handover"]
    assert (handover["intent"], handover["queue"], handover["display_name"]) == (
        "billing",
        "billing",
        "Mia Braun",
    )
    assert "asked for a person" in handover["summary"]
    assert "invoice" in handover["summary"]
    assert handover["bot_answers"][0].startswith("We are open")

    # 4. The customer says they will call from the phone they texted from; Jonas finds that
    #    profile by the number and merges it into the chat customer's.
    chat(runtime, session, "j-3", f"I will call you from {PHONE}, I texted you from it this morning")
    chat_customer = mine["customer_id"]
    assert sms_customer["customer_id"] != chat_customer
    merged = agent(
        runtime,
        "jonas",
        "POST",
        f"/customers/{chat_customer}/merge",
        {"other_customer_id": sms_customer["customer_id"]},
    )
    assert merged["customer"]["customer_id"] == chat_customer
    [owner] = agent(runtime, "jonas", "GET", "/customers", params={"identity": f"phone:{PHONE}"})["customers"]
    assert owner["customer_id"] == chat_customer

    # 5. The call: TwiML enqueues it in billing, and it lands in Jonas's conversation.
    call_sid = sender.new_sid("CA")
    answer = twilio_post(runtime, sender.VOICE_PATH, sender.incoming_call_payload(call_sid, PHONE))
    assert answer.headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(answer.content)
    assert [child.tag for child in root] == ["Say", "Enqueue"]
    assert root[1].text == "billing"
    twilio_post(
        runtime, sender.VOICE_STATUS_PATH, sender.call_status_payload(call_sid, PHONE, "completed", 95)
    )
    runtime.wait_idle(timeout=30)

    during = agent(runtime, "jonas", "GET", f"/conversations/{conversation_id}")
    assert (during["status"], during["assigned_agent"], during["queue"]) == ("active", "jonas", "billing")
    assert "voice" in during["channels"]
    calls = [m["text"] for m in during["messages"] if m["channel"] == "voice"]
    assert "Incoming call" in calls
    assert any(switch["to_channel"] == "voice" for switch in during["channel_switches"])
    # The earlier SMS thread came along with the merge.
    assert ("sms", "Opening hours?") in [(m["channel"], m["text"]) for m in during["messages"]]
    assert [
        c["conversation_id"]
        for c in agent(runtime, "jonas", "GET", "/agents/me/conversations")["conversations"]
    ] == [conversation_id]

    # 6. Jonas resolves; every transition is on the conversation.
    resolved = agent(
        runtime, "jonas", "POST", f"/conversations/{conversation_id}/resolve", {"resolution": "refund issued"}
    )
    assert resolved["status"] == "resolved"
    final = agent(runtime, "jonas", "GET", f"/conversations/{conversation_id}")
    assert [(t["from_status"], t["to_status"]) for t in final["transitions"]] == [
        ("new", "open"),
        ("open", "bot"),
        ("bot", "queued"),
        ("queued", "assigned"),
        ("assigned", "active"),
        ("active", "resolved"),
    ]
    assert final["resolution"] == "refund issued"
    assert final["transitions"][-1]["agent_id"] == "jonas"
    assert agent(runtime, "jonas", "GET", "/agents/me/conversations")["conversations"] == []
