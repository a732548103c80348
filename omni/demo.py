"""The demo journey ``make run`` plays against the running stack, over plain HTTP.

It does what the real parties do: a supervisor sets up the agent ``ines`` (offline, so
nothing is assigned to her), the company's site signs the logged-in customer's account
id (``user_hash``), the browser widget opens a session and writes, the stack answers;
later the customer writes again from another device; finally the agent, with a bearer
token, reads the unified customer and the conversation's timeline. ``ines`` stays set up:
``omni token --agent ines`` is a token for the README's examples and the console.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import quote

from omni.local.auth import issue_agent_token
from shared.channels.webchat import compute_user_hash
from topology import TOPOLOGY

ACCOUNT_ID = "acct-1001"
EMAIL = "ana.lima@example.com"
NAME = "Ana Lima"
REPLY_TIMEOUT_S = 20.0
#: The agent the demo sets up; the README's examples use her token.
AGENT_ID = "ines"
AGENT_NAME = "Ines"
#: The group API Gateway's JWT authorizer passes in ``cognito:groups`` for supervisors.
SUPERVISORS_GROUP = "supervisors"


class DemoError(RuntimeError):
    pass


def _request(
    method: str, url: str, body: Any = None, token: str | None = None, expect: int = 200
) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - our own URL
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, payload = error.code, error.read()
    if status != expect:
        raise DemoError(f"{method} {url} answered {status}: {payload[:300]!r}")
    return json.loads(payload) if payload else {}


def identity_secret() -> str:
    secret = TOPOLOGY.secret("webchat-identity")
    return os.environ.get(secret.local_env_var) or secret.local_default


def set_up_agent(base_url: str) -> dict[str, Any]:
    """What a supervisor does once: ``PUT /agents/ines`` with every queue's skill."""
    from shared.domain.routing_rules import load_rules  # noqa: PLC0415

    skills = {rule.skill: 5 for rule in load_rules().queues.values()}
    supervisor = issue_agent_token(
        "demo-supervisor", 60, extra_claims={"cognito:groups": [SUPERVISORS_GROUP]}
    )
    body = {"name": AGENT_NAME, "skills": skills, "max_concurrent": 3}
    return _request("PUT", f"{base_url}/agents/{AGENT_ID}", body, token=supervisor)


def open_session(base_url: str) -> dict[str, Any]:
    # What the company's web server does for a logged-in customer: sign the account id.
    user_hash = compute_user_hash(identity_secret(), ACCOUNT_ID)
    customer = {"account_id": ACCOUNT_ID, "email": EMAIL, "name": NAME, "user_hash": user_hash}
    return _request("POST", f"{base_url}/webchat/sessions", {"customer": customer}, expect=201)


def say(base_url: str, session: dict[str, Any], text: str) -> str:
    message_id = uuid.uuid4().hex[:12]
    sent_at = datetime.now(UTC).isoformat()
    _request(
        "POST",
        f"{base_url}/webchat/sessions/{session['session_id']}/messages",
        {"message_id": message_id, "text": text, "sent_at": sent_at},
        token=session["token"],
        expect=202,
    )
    return message_id


def wait_for_reply(
    base_url: str, session: dict[str, Any], after: int, timeout_s: float = REPLY_TIMEOUT_S
) -> list[dict[str, Any]]:
    """Poll the session like the widget does until more than ``after`` outbound messages show."""
    deadline = time.monotonic() + timeout_s
    url = f"{base_url}/webchat/sessions/{session['session_id']}/messages"
    while True:
        messages = _request("GET", url, token=session["token"])["messages"]
        if sum(m["direction"] == "outbound" for m in messages) > after:
            return messages
        if time.monotonic() > deadline:
            raise DemoError(f"no reply in the session after {timeout_s:.0f} s")
        time.sleep(0.2)


def fetch_timeline(base_url: str, agent_token: str) -> dict[str, Any]:
    identity = quote(f"account:{ACCOUNT_ID}", safe="")
    found = _request("GET", f"{base_url}/customers?identity={identity}", token=agent_token)
    if not found["customers"]:
        raise DemoError("the agent API does not know the customer")
    customer = found["customers"][0]
    listed = _request(
        "GET", f"{base_url}/customers/{customer['customer_id']}/conversations", token=agent_token
    )
    conversations = [
        _request("GET", f"{base_url}/conversations/{c['conversation_id']}", token=agent_token)
        for c in listed["conversations"]
    ]
    return {"customer": customer, "conversations": conversations}


def format_timeline(timeline: dict[str, Any]) -> list[str]:
    customer = timeline["customer"]
    lines = [f"Customer {customer['customer_id']}  {customer.get('display_name') or ''}".rstrip()]
    for identity in sorted(customer["identities"], key=lambda i: (i["type"], i["value"])):
        proof = "verified" if identity["verified"] else "claimed"
        lines.append(f"  {identity['type']:<9} {identity['value']:<36} {proof}")
    for conversation in timeline["conversations"]:
        routing = conversation.get("routing") or {}
        lines.append("")
        lines.append(
            f"Conversation {conversation['conversation_id']}  status={conversation['status']}"
            + (f"  queue={routing['queue']} ({routing['reason']})" if routing else "")
        )
        for message in conversation["messages"]:
            arrow = "<-" if message["direction"] == "inbound" else "->"
            who = message.get("author") or ("customer" if message["direction"] == "inbound" else "bot")
            lines.append(
                f"  {message['timestamp'][11:19]} {arrow} {message['channel']:<8} {who:<8} {message['text']}"
            )
        for switch in conversation.get("channel_switches", []):
            lines.append(
                f"  channel switch {switch['from_channel']} -> {switch['to_channel']} at {switch['at']}"
            )
    return lines


def play(base_url: str, out: TextIO = sys.stdout) -> dict[str, Any]:
    """Play the journey; print each step and the unified timeline; return the timeline."""

    def step(text: str) -> None:
        print(text, file=out, flush=True)

    agent = set_up_agent(base_url)
    skills = ", ".join(sorted(agent["skills"]))
    step(f"\n== Demo: a supervisor sets up the agent {agent['agent_id']} (offline; skills: {skills})")
    step(f"== A logged-in customer writes on web chat ({base_url})")
    laptop = open_session(base_url)
    step(f"   web chat session {laptop['session_id']} opened (identity verified: {laptop['verified']})")
    say(base_url, laptop, "Hi, I was charged twice for my November invoice.")
    step("   customer: Hi, I was charged twice for my November invoice.")
    messages = wait_for_reply(base_url, laptop, after=0)
    step(f"   stack:    {[m for m in messages if m['direction'] == 'outbound'][-1]['text']}")

    step("== Later, the same customer writes again from the app on their phone (a new session)")
    phone = open_session(base_url)
    say(base_url, phone, "Any update? I still see two charges on my card.")
    step("   customer: Any update? I still see two charges on my card.")
    deadline = time.monotonic() + REPLY_TIMEOUT_S
    agent_token = issue_agent_token(AGENT_ID, 600)
    # Same queue, so no second acknowledgement: wait until the message is in the conversation.
    while sum(c["message_count"] for c in fetch_timeline(base_url, agent_token)["conversations"]) < 3:
        if time.monotonic() > deadline:
            raise DemoError("the second message did not reach the conversation")
        time.sleep(0.2)
    timeline = fetch_timeline(base_url, agent_token)

    step("== What the agent sees (GET /customers, /customers/{id}/conversations, /conversations/{id}):\n")
    for line in format_timeline(timeline):
        step("   " + line if line else "")
    step(
        f"\nTry it yourself as {AGENT_ID}: TOKEN=$(.venv/bin/omni token --agent {AGENT_ID}); "
        f"curl -H \"Authorization: Bearer $TOKEN\" '{base_url}/customers?identity=account:{ACCOUNT_ID}'"
    )
    step(f"The agent console: {base_url}/console/ (sign in as {AGENT_ID}).")
    step("Deliveries so far: .venv/bin/omni outbox\n")
    return timeline
