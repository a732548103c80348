"""Bot resolutions and survey answers through the real bus rules and queues (moto).

Web chat messages go webchat -> profile merge -> routing -> notify, and whatever the
content-filtered ``kpi-events`` rule lets through reaches the KPI function; each consumer
is invoked with the batch SQS really holds, as Lambda would.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.agent_api.handler import handler as agent_api
from functions.kpi.handler import handler as kpi
from functions.notify.handler import handler as notify
from functions.profile_merge.handler import handler as profile_merge
from functions.routing.handler import handler as routing
from functions.sla_sweep.sweep import resolve_silent
from shared.platform.bus import EventPublisher
from shared.repositories.agents import AgentRepository
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository
from shared.services.desk import Desk
from tests.helpers import context, deliver_one_batch, http_event
from tests.helpers.pipeline import open_session, say

CONSUMERS = {"profile-merge": profile_merge, "routing": routing, "notify": notify, "kpi": kpi}
AGENT = {"sub": "supervisor", "exp": "4102444800"}


def drain(stack: dict[Any, str], queue: str) -> int:
    return deliver_one_batch(stack[("queue", queue)], queue, CONSUMERS[queue])


def settle(stack: dict[Any, str]) -> dict[str, int]:
    """Run every consumer until all queues are empty; how many records each one got."""
    seen = dict.fromkeys(CONSUMERS, 0)
    for _ in range(20):
        moved = 0
        for queue in CONSUMERS:
            count = drain(stack, queue)
            seen[queue] += count
            moved += count
        if not moved:
            return seen
    raise AssertionError("the pipeline did not settle")


def get(route: str, **params: Any) -> Any:
    response = agent_api(http_event("GET", route, claims=AGENT, **params), context("agent-api"))
    assert response["statusCode"] == 200, response
    return json.loads(response["body"])


def the_conversation(session: dict[str, Any] | None = None) -> dict[str, Any]:
    session = session or SESSION
    [customer] = get("/customers", query={"identity": f"webchat:{session['session_id']}"})["customers"]
    [summary] = get(
        "/customers/{customer_id}/conversations", path_parameters={"customer_id": customer["customer_id"]}
    )["conversations"]
    return get(
        "/conversations/{conversation_id}", path_parameters={"conversation_id": summary["conversation_id"]}
    )


def today_kpis() -> dict[str, Any]:
    """Yesterday to tomorrow (UTC): a journey whose clock runs past midnight (the sweep acts
    half an hour later) is counted whole whenever the test runs."""
    today = datetime.now(UTC).date()
    first, last = (today - timedelta(days=1)).isoformat(), (today + timedelta(days=1)).isoformat()
    return get("/kpis", query={"from": first, "to": last})


SESSION: dict[str, Any] = {}


def bot_answers(stack: dict[Any, str]) -> dict[str, Any]:
    """A new web chat customer asks a routine question; the bot answers it."""
    session = open_session()
    say(session, "m-1", "What are your opening hours?")
    seen = settle(stack)
    # The question and the bot's answer (its first response) reach the KPI function; the
    # customer's first message moves no counter and is filtered out on the bus.
    assert seen["kpi"] == 1
    assert the_conversation(session)["status"] == "bot"
    return session


@pytest.fixture
def bot_answered(stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch) -> dict[Any, str]:
    monkeypatch.setenv("OMNI_CES_DELAY_S", "0")
    SESSION.clear()
    SESSION.update(bot_answers(stack))
    return stack


def test_thanks_resolves_as_bot_and_the_ces_answer_does_not_reopen(bot_answered: dict[Any, str]) -> None:
    stack = bot_answered
    say(SESSION, "m-2", "Thanks, that's all!")
    seen = settle(stack)
    conversation = the_conversation()
    assert conversation["status"] == "resolved"
    texts = [(m["direction"], m["text"]) for m in conversation["messages"]]
    # No reply to the thanks; the CES question follows the resolution.
    assert texts[-2] == ("inbound", "Thanks, that's all!")
    assert texts[-1][0] == "outbound"
    assert texts[-1][1].startswith("How easy was it")
    assert seen["kpi"] >= 2  # the resolution, the question due

    say(SESSION, "m-3", "6")
    say(SESSION, "m-3", "6")  # the web chat retries: the same message again
    seen = settle(stack)
    # Both deliveries reach routing (profile merge republishes a duplicate), neither is
    # answered: nothing goes to notify.
    assert seen["routing"] == 2
    assert seen["notify"] == 0
    conversation = the_conversation()
    assert conversation["status"] == "resolved"
    assert conversation["ces"]["score"] == 6
    assert conversation["ces"]["via"] == "reply"
    assert [m["text"] for m in conversation["messages"]].count("6") == 1
    assert conversation["messages"][-1]["direction"] == "inbound"

    report = today_kpis()
    k = report["kpis"]
    assert (k["conversations_started"], k["conversations_resolved"], k["reopened"]) == (1, 1, 0)
    assert (k["automated_resolution_rate"], k["first_contact_resolution_rate"]) == (1.0, 1.0)
    assert (k["ces_answers"], k["ces_average"], k["ces_response_rate"]) == (1, 6, 1.0)
    assert k["first_responses"] == 1

    # After the answer the customer writes again: an ordinary message, which reopens it.
    say(SESSION, "m-4", "One more question: do you ship to Portugal?")
    settle(stack)
    assert the_conversation()["status"] != "resolved"
    k = today_kpis()["kpis"]
    assert (k["reopened"], k["first_contact_resolution_rate"], k["ces_answers"]) == (1, 0.0, 1)


def test_a_reply_that_is_no_score_reopens(bot_answered: dict[Any, str]) -> None:
    stack = bot_answered
    sessions = [SESSION, bot_answers(stack)]
    for session, text in zip(sessions, ["7 but my invoice is still wrong", "12"], strict=True):
        say(session, "m-2", "danke")
        settle(stack)
        assert the_conversation(session)["status"] == "resolved"
        say(session, "m-3", text)
        seen = settle(stack)
        conversation = the_conversation(session)
        assert conversation["status"] != "resolved", text
        assert conversation.get("ces") is None
        assert seen["routing"] == 1
        assert seen["notify"] >= 1
    report = today_kpis()
    k = report["kpis"]
    assert (k["reopened"], k["ces_answers"], k["conversations_resolved"]) == (2, 0, 2)
    assert (report["counters"]["ces_asked"], k["ces_response_rate"]) == (2, 0.0)


def test_the_sweep_resolves_as_bot_when_the_customer_stays_silent(bot_answered: dict[Any, str]) -> None:
    stack = bot_answered
    # A second customer the bot answered asks for a person: handed over, never resolved as bot.
    escalated = bot_answers(stack)
    say(escalated, "m-2", "I want to talk to a person")
    settle(stack)
    customers = CustomerRepository()
    conversations = ConversationRepository(customers=customers)
    desk = Desk(conversations, AgentRepository(), customers)
    publisher = EventPublisher(source="omni.sla-sweep")
    now = datetime.now(UTC)
    assert resolve_silent(conversations, desk, publisher.publish, now + timedelta(minutes=29)) == []
    [resolved] = resolve_silent(conversations, desk, publisher.publish, now + timedelta(minutes=31))
    conversation = the_conversation()
    assert conversation["conversation_id"] == resolved
    assert conversation["status"] == "resolved"
    # Looked at once: the index entry went with the resolution.
    assert resolve_silent(conversations, desk, publisher.publish, now + timedelta(minutes=32)) == []
    settle(stack)
    k = today_kpis()["kpis"]
    assert (k["conversations_resolved"], k["automated_resolution_rate"]) == (1, 1.0)
    # The customer comes back within the reopen window: reopened as after any resolution.
    say(SESSION, "m-2", "What are your opening hours on Sunday?")
    settle(stack)
    assert the_conversation()["conversation_id"] == resolved
    assert today_kpis()["kpis"]["reopened"] == 1
    assert the_conversation(escalated)["status"] == "queued"
