"""The demo journey ``make run`` plays against the running stack, over plain HTTP.

It does what the real parties do: a supervisor sets up the agent ``ines`` (offline, so
nothing is assigned to her), the company's site signs the logged-in customer's account
id (``user_hash``), the browser widget opens a session and writes, the stack answers;
later the customer writes again from another device; finally the agent, with a bearer
token, reads the unified customer and the conversation's timeline. ``ines`` stays set up:
``omni token --agent ines`` is a token for the README's examples and the console.

``omni local --demo`` then plays a past week of journeys through the same webhooks with the
stack's clock shifted back (:func:`play_history`), so the console's supervisor view has
something real to show.
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
from shared.platform import settings
from shared.platform.http import PUBLIC_BASE_URL_ENV
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


# --------------------------------------------------------------------------- #
# A past week, for the console's supervisor view
# --------------------------------------------------------------------------- #
HISTORY_DAYS = 7
HISTORY_AGENT = "dana"
#: A customer who comes back every four days about billing (a repeat contact).
REGULAR_PHONE = "+14155550100"
DAY_S = 86400
#: What the day's first customer writes: hand-overs for every reason routing names (the
#: customer asks for a person; the intent's rule; the bot's order look-up has no answer).
FIRST_WORDS = (
    "I want to talk to a person about my invoice, I was charged twice.",
    "Hi, my invoice is wrong, I was charged twice.",
    "My parcel has not arrived yet, where is my order?",
)


def _clock(base_url: str, offset_s: int) -> None:
    """Shift the local stack's clock (``POST /_local/clock``): what happens now is booked then."""
    _request("POST", f"{base_url}/_local/clock", {"offset_s": offset_s})


def _sms(base_url: str, phone: str, text: str) -> None:
    from omni.send import twilio  # noqa: PLC0415

    params = twilio.sms_payload(twilio.new_sid("SM"), phone, text)
    token = TOPOLOGY.secret("twilio-auth-token").local_default
    signed = os.environ.get(PUBLIC_BASE_URL_ENV) or base_url
    result = twilio.post_signed(base_url, twilio.SMS_PATH, params, token, signed_base=signed)
    if result.status != 200:
        raise DemoError(f"the SMS webhook answered {result.status}")


def _whatsapp(base_url: str, phone: str, text: str, offset_s: int) -> None:
    from omni.send import meta  # noqa: PLC0415

    payload = meta.whatsapp_message(phone.lstrip("+"), text, timestamp=int(time.time()) + offset_s)
    secret = TOPOLOGY.secret("meta-app-secret").local_default
    result = meta.post_signed(f"{base_url}/webhooks/whatsapp", payload, secret)
    if result.status != 200:
        raise DemoError(f"the WhatsApp webhook answered {result.status}")


def _wait(what: str, check: Any, timeout_s: float = REPLY_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise DemoError(f"timed out waiting for {what}")
        time.sleep(0.25)


def _conversation_of(base_url: str, token: str, phone: str) -> dict[str, Any] | None:
    found = _request("GET", f"{base_url}/customers?identity=phone:{phone}", token=token)["customers"]
    if not found:
        return None
    listed = _request("GET", f"{base_url}/customers/{found[0]['customer_id']}/conversations", token=token)
    conversations = sorted(listed["conversations"], key=lambda c: c["opened_at"])
    return conversations[-1] if conversations else None


def _messages(base_url: str, token: str, phone: str) -> int:
    return int((_conversation_of(base_url, token, phone) or {}).get("message_count", 0))


def _queue(base_url: str, token: str, queue: str) -> list[dict[str, Any]]:
    return list(_request("GET", f"{base_url}/queues/{queue}", token=token)["waiting"])


def _routed(base_url: str, token: str, phone: str) -> dict[str, Any] | None:
    """The customer's latest conversation once routing decided: in a queue, or the bot answered."""
    found = _conversation_of(base_url, token, phone)
    return found if found is not None and found["status"] in ("queued", "bot") else None


def _serve(base_url: str, token: str, phones: list[str]) -> None:
    """The agent picks these customers' conversations from their queues (``accept`` takes a
    queued conversation without the agent being available, so nothing else is assigned to
    them: the demo's web chat customer keeps waiting for ``ines``), answers and resolves them.
    One the bot answered after all (an order look-up configured) its customer closes."""
    for phone in phones:
        conversation = _wait(f"{phone} routed", lambda p=phone: _routed(base_url, token, p))
        if conversation["status"] == "bot":
            _sms(base_url, phone, "thanks, that's all")
            continue
        path = f"{base_url}/conversations/{conversation['conversation_id']}"
        _request("POST", f"{path}/accept", {}, token=token)
        body = {"text": "Thanks for waiting - that is sorted now."}
        _request_with_key(f"{path}/messages", body, token, uuid.uuid4().hex)
        _request("POST", f"{path}/resolve", {"resolution": "sorted"}, token=token)


def _request_with_key(url: str, body: Any, token: str, key: str) -> None:
    data = json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - our own URL
        url,
        data=data,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
            "Idempotency-Key": key,
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        if response.status not in (200, 201, 202):
            raise DemoError(f"POST {url} answered {response.status}")


def play_history(base_url: str, days: int = HISTORY_DAYS, out: TextIO = sys.stdout) -> None:
    """Play a week of journeys, one day at a time with the stack's clock shifted back.

    Every message goes through the providers' webhooks and the whole pipeline (profile
    merge, routing, the KPI function); only the clock says which day it is. Each day: a
    question by SMS an agent resolves (billing, asking for a person about billing, or an
    order's status the bot cannot look up), a login problem on WhatsApp continued by SMS
    (a channel switch), an opening-hours question the bot answers and the customer closes
    ("thanks, that's all"), every four days a regular customer about billing again (a
    repeat contact), every three days a message routing does not understand. The survey
    questions go out as the days are played; the customers answer them at the end (an
    answer counts on its resolution's day). Finally two customers have waited an hour in
    the billing queue and one for the reply of the agent who took theirs (stalled
    hand-overs), and the clock is back. The agent ``dana`` picks
    conversations from the queues without ever being available, so nothing else is
    assigned to her.
    """
    from shared.domain.routing_rules import load_rules  # noqa: PLC0415

    token = issue_agent_token(HISTORY_AGENT, 3600, extra_claims={"cognito:groups": [SUPERVISORS_GROUP]})
    skills = {rule.skill: 5 for rule in load_rules().queues.values()}
    _request(
        "PUT",
        f"{base_url}/agents/{HISTORY_AGENT}",
        {"name": "Dana Park", "skills": skills, "max_concurrent": 10},
        token=token,
    )
    delay_s = max(float(os.environ.get(settings.OMNI_CES_DELAY_S) or "5"), 0.0) + 2.0
    scores = ["6", "5", "7", "4", "6", "3", "7"]
    asked: dict[str, str] = {}  # phone -> score: the customers asked the survey, and their answer
    try:
        for back in range(days, 0, -1):
            offset = -back * DAY_S
            _clock(base_url, offset)
            print(f"   {days - back + 1}/{days}: replaying {back} day(s) ago", file=out, flush=True)
            billing, login, hours, unclear = (f"+1415555{back:02d}{n:02d}" for n in (1, 2, 3, 4))
            _sms(base_url, billing, FIRST_WORDS[back % len(FIRST_WORDS)])
            _whatsapp(base_url, login, "I can't log in, the password reset is not working", offset)
            _sms(base_url, hours, "What are your opening hours on Saturday?")
            handed_over = [billing, login]
            if back % 4 == 2:
                _sms(base_url, REGULAR_PHONE, "The invoice is wrong again, please check the charge.")
                handed_over.append(REGULAR_PHONE)
            if back % 3 == 1:
                _sms(base_url, unclear, "Hello, something odd happened last night, can you look into it?")
                handed_over.append(unclear)
            _wait("the bot's answer", lambda phone=hours: _messages(base_url, token, phone) >= 2)
            _sms(base_url, hours, "thanks, that's all")
            _wait("the login question", lambda phone=login: _messages(base_url, token, phone) >= 1)
            _sms(base_url, login, "Writing from SMS now: still cannot log in.")
            _wait("the switch to SMS", lambda phone=login: _messages(base_url, token, phone) >= 3)
            # The agent gets to them a while later (resolution times of minutes, not seconds).
            _clock(base_url, offset + 60 * (12 + 9 * back))
            _serve(base_url, token, handed_over)
            for i, phone in enumerate([*handed_over, hours]):
                asked[phone] = scores[(back + i) % len(scores)]
        resolved_at = time.monotonic()
        # An hour ago two customers started waiting for an agent, and one for the reply of the
        # agent who took their conversation: stalled hand-overs for the live view.
        _clock(base_url, -3600)
        for n in (1, 2, 3):
            _sms(base_url, f"+14155559{n:03d}", "My payment failed and I was still charged, please help.")
        _wait("three customers in the billing queue", lambda: len(_queue(base_url, token, "billing")) >= 3)
        taken = _wait("+14155559003 routed", lambda: _routed(base_url, token, "+14155559003"))
        _request("POST", f"{base_url}/conversations/{taken['conversation_id']}/accept", {}, token=token)
        # The survey questions went out a few seconds after each resolution: answered now.
        time.sleep(max(0.0, resolved_at + delay_s - time.monotonic()))
        for phone, answer in asked.items():
            _sms(base_url, phone, answer)
    finally:
        _clock(base_url, 0)


def play(base_url: str, out: TextIO = sys.stdout, *, history: bool = False) -> dict[str, Any]:
    """Play the journey; print each step and the unified timeline; return the timeline.

    ``history`` (what ``omni local --demo`` asks for): then play a past week of journeys for
    the console's supervisor view (:func:`play_history`), after the journey so its
    narration shows first, and say when the supervisor view has its data."""
    started = time.monotonic()

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
    if history:
        journey_s = time.monotonic() - started
        step("== Meanwhile: a past week of journeys for the supervisor view (the clock shifted back)")
        play_history(base_url, out=out)
        step(
            f"== The supervisor view has a week of data now: {base_url}/console/#supervisor "
            f"(sign in with 'supervisor' ticked). Demo played in {time.monotonic() - started:.0f} s "
            f"(the journey {journey_s:.0f} s).\n"
        )
    return timeline
