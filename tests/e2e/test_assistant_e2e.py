"""The assistant on the local stack, over HTTP only: the example knowledge base is loaded with
``omni knowledge sync`` (through the agent API), then customers write on web chat."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from omni.knowledge import sync
from omni.local.auth import issue_agent_token
from omni.local.runtime import LocalRuntime
from shared.channels.webchat import compute_user_hash
from topology import TOPOLOGY

pytestmark = pytest.mark.e2e
KNOWLEDGE = Path(__file__).resolve().parents[2] / "examples" / "knowledge"
SUPERVISOR = {"cognito:groups": ["supervisors"]}


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(port=0, stage="e2e-assistant") as running:
        token = issue_agent_token("kb-admin", 600, extra_claims=SUPERVISOR)
        assert sync(KNOWLEDGE, running.base_url, token, out=io.StringIO()) >= 7
        deadline = time.monotonic() + 30
        while True:
            listing = api(running, "GET", "/knowledge/articles").json()
            if listing["articles"] and all(a["indexed"] for a in listing["articles"]):
                break
            assert time.monotonic() < deadline, listing
            running.wait_idle(timeout=10)
        yield running


def api(
    runtime: LocalRuntime, method: str, path: str, body: Any = None, who: str = "ana"
) -> requests.Response:
    extra = SUPERVISOR if who == "supervisor" else None
    token = issue_agent_token(who, 600, extra_claims=extra)
    return requests.request(
        method,
        f"{runtime.base_url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def session(runtime: LocalRuntime) -> dict[str, Any]:
    account = f"acct-{uuid.uuid4().hex[:8]}"
    secret = TOPOLOGY.secret("webchat-identity").local_default
    customer = {"account_id": account, "user_hash": compute_user_hash(secret, account)}
    response = requests.post(f"{runtime.base_url}/webchat/sessions", json={"customer": customer}, timeout=10)
    assert response.status_code == 201, response.text
    return {**response.json(), "account": account}


def chat(runtime: LocalRuntime, chat_session: dict[str, Any], text: str) -> list[dict[str, Any]]:
    """Write ``text``; the session's outbound messages once the stack is idle."""
    response = requests.post(
        f"{runtime.base_url}/webchat/sessions/{chat_session['session_id']}/messages",
        json={"message_id": uuid.uuid4().hex[:12], "text": text, "sent_at": datetime.now(UTC).isoformat()},
        headers={"Authorization": f"Bearer {chat_session['token']}"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    runtime.wait_idle(timeout=30)
    shown = requests.get(
        f"{runtime.base_url}/webchat/sessions/{chat_session['session_id']}/messages",
        headers={"Authorization": f"Bearer {chat_session['token']}"},
        timeout=10,
    ).json()["messages"]
    return [m for m in shown if m["direction"] == "outbound"]


def conversation(runtime: LocalRuntime, chat_session: dict[str, Any]) -> dict[str, Any]:
    customer = api(runtime, "GET", f"/customers?identity=account:{chat_session['account']}").json()
    customer_id = customer["customers"][0]["customer_id"]
    found = api(runtime, "GET", f"/customers/{customer_id}/conversations").json()
    latest = found["conversations"][0]["conversation_id"]
    return dict(api(runtime, "GET", f"/conversations/{latest}").json())


def test_writes_to_the_knowledge_base_are_for_supervisors(runtime: LocalRuntime) -> None:
    article = "---\ntitle: Test\nlanguage: en\n---\nText."
    assert api(runtime, "PUT", "/knowledge/articles/test", {"markdown": article}).status_code == 403
    assert api(runtime, "DELETE", "/knowledge/articles/returns").status_code == 403
    bad = api(runtime, "PUT", "/knowledge/articles/test", {"markdown": "no front matter"}, who="supervisor")
    assert bad.status_code == 400
    assert "front matter" in bad.json()["message"]
    listed = api(runtime, "GET", "/knowledge/articles").json()["articles"]
    assert {"returns", "passwort", "gift-cards"} <= {a["article_id"] for a in listed}


def test_a_question_phrased_differently_is_answered_with_a_citation(runtime: LocalRuntime) -> None:
    customer = session(runtime)
    replies = chat(runtime, customer, "How do I send back a jacket I ordered?")
    assert "30 days" in replies[-1]["text"]
    found = conversation(runtime, customer)
    assert found["status"] == "bot"
    bot = [m for m in found["messages"] if m["direction"] == "outbound"][-1]
    assert bot["citations"] == [{"article_id": "returns", "title": "Returning an item"}]
    assert found["routing"]["citations"][0]["article_id"] == "returns"


def test_an_uncovered_question_goes_to_a_person_with_a_summary(runtime: LocalRuntime) -> None:
    customer = session(runtime)
    chat(runtime, customer, "Do you sell spare parts for the X200 coffee machine?")
    found = conversation(runtime, customer)
    assert found["status"] == "queued"
    assert found["routing"]["queue"] == "general"
    assert found["routing"]["handover_reason"] == "low_confidence"
    summary = found["handover"]["assistant_summary"]
    assert "X200 coffee machine" in summary
    assert found["handover"]["handover_reason"] == "low_confidence"


def test_asking_for_a_person_hands_over_at_once(runtime: LocalRuntime) -> None:
    customer = session(runtime)
    chat(runtime, customer, "I want to talk to a person")
    found = conversation(runtime, customer)
    assert found["status"] == "queued"
    assert found["routing"]["handover_reason"] == "asked_for_person"
    assert found["handover"]["assistant_summary"]
    assert not [m for m in found["messages"] if m.get("citations")]


def test_a_german_question_gets_a_german_answer_from_a_german_article(runtime: LocalRuntime) -> None:
    customer = session(runtime)
    replies = chat(runtime, customer, "Ich habe mein Passwort vergessen, was kann ich tun?")
    assert "Anmeldeseite" in replies[-1]["text"]
    bot = [m for m in conversation(runtime, customer)["messages"] if m["direction"] == "outbound"][-1]
    assert bot["citations"] == [{"article_id": "passwort", "title": "Passwort zurücksetzen"}]


def test_an_article_saying_ignore_previous_instructions_is_treated_as_text(runtime: LocalRuntime) -> None:
    customer = session(runtime)
    replies = chat(runtime, customer, "How long is a gift card valid?")
    # The article's "instruction" is quoted like any other text; the bot's behaviour is unchanged.
    assert "three years" in replies[-1]["text"]
    found = conversation(runtime, customer)
    assert found["status"] == "bot"
    assert found["routing"]["citations"] == [{"article_id": "gift-cards", "title": "Gift cards"}]
    replies = chat(runtime, customer, "What does shipping to Austria cost?")
    assert "Austria" in replies[-1]["text"]


def test_two_unhelpful_answers_in_a_row_hand_over(runtime: LocalRuntime) -> None:
    customer = session(runtime)
    chat(runtime, customer, "I forgot my password, how do I get a new one?")
    chat(runtime, customer, "I forgot my password, how can I get a new one??")
    assert conversation(runtime, customer)["status"] == "bot"
    chat(runtime, customer, "I forgot my password! How do I get a new one?")
    found = conversation(runtime, customer)
    assert found["status"] == "queued"
    assert found["routing"]["handover_reason"] == "unhelpful_answers"
    assert found["handover"]["citations"] == [] or found["handover"]["assistant_summary"]


def test_the_demo_shows_an_answer_with_its_source_and_a_handover_with_its_summary(
    runtime: LocalRuntime,
) -> None:
    from omni import demo  # noqa: PLC0415

    out = io.StringIO()
    demo.play_with_assistant(runtime.base_url, out=out)
    printed = out.getvalue()
    assert "source:    Returning an item (returns), shown on the message" in printed
    assert "hand-over summary: The customer asked:" in printed


def assistant_kpis(runtime: LocalRuntime) -> dict[str, Any]:
    today = datetime.now(UTC).date().isoformat()
    response = api(runtime, "GET", f"/kpis?from={today}&to={today}")
    assert response.status_code == 200, response.text
    return dict(response.json()["assistant"])


def test_the_kpis_count_answers_citations_feedback_and_handovers_by_reason(runtime: LocalRuntime) -> None:
    before = assistant_kpis(runtime)
    customer = session(runtime)
    chat(runtime, customer, "How do I send back a jacket I ordered?")
    # "Thanks, that's all" right after an answer: resolved by the bot, and the answer helped.
    chat(runtime, customer, "Thanks, that's all")
    chat(runtime, session(runtime), "I want to talk to a person")
    after = assistant_kpis(runtime)
    assert after["answers"] - before["answers"] == 1
    assert after["conversations"] - before["conversations"] == 1
    assert after["resolved"] - before["resolved"] == 1
    assert after["feedback_answers"] - before["feedback_answers"] == 1
    assert after["helpful_rate"] is not None
    assert after["helpful_rate"] > 0
    reasons = before["handovers_by_reason"]
    assert after["handovers_by_reason"]["asked_for_person"] - reasons.get("asked_for_person", 0) == 1
    assert after["citations_per_answer"] >= 1
    # The extractive answerer (local) uses no model: no tokens, no cost.
    assert after["model_cost_usd"] == before["model_cost_usd"] == 0
