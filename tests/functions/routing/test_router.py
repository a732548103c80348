"""Routing decisions as pure functions: the packaged rules, German and English, table-driven."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest

from functions.routing.decide import (
    Classification,
    KeywordClassifier,
    customer_reply,
    decide,
    detect_language,
    priority_of,
)
from functions.routing.orders import OrderStatus, SampleOrderLookup
from functions.sla_sweep.sweep import is_stalled
from shared.contracts.models import ConversationSummary, Message, RoutingDecision
from shared.domain.handover import build_handover
from shared.domain.routing_rules import DEFAULT_PATH, RoutingConfigError, load_rules, parse_rules
from shared.repositories.agents import Agent
from shared.services.desk import rank_agents

RULES = load_rules(DEFAULT_PATH)
CLASSIFIER = KeywordClassifier(RULES)
NOW = "2026-11-25T08:00:00.000000Z"


def route(text: str, **kwargs: object) -> RoutingDecision:
    return decide(RULES, CLASSIFIER.classify(text), "m1", NOW, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "intent", "queue", "automated", "escalated", "language"),
    [
        ("My invoice is wrong", "billing", "billing", False, False, "en"),
        ("Ich habe eine falsche Rechnung bekommen", "billing", "billing", False, False, "de"),
        ("Warum wurde schon wieder abgebucht?", "billing", "billing", False, False, "de"),
        ("I want to cancel my contract", "cancellation", "retention", False, False, "en"),
        ("Ich möchte kündigen", "cancellation", "retention", False, False, "de"),
        ("Meine Kündigung bitte bestätigen", "cancellation", "retention", False, False, "de"),
        ("What are your opening hours?", "opening_hours", "general", True, False, "en"),
        ("Wie sind Ihre Öffnungszeiten?", "opening_hours", "general", True, False, "de"),
        ("The app is not working", "technical", "technical", False, False, "en"),
        ("Die App funktioniert nicht", "technical", "technical", False, False, "de"),
        ("What does the upgrade cost, what's the price?", "sales", "sales", False, False, "en"),
        ("Hello there", "general", "general", False, False, "en"),
        ("The billboard outside is nice", "general", "general", False, False, "en"),
        # Asking for a person always escalates, to the intent's queue when there is one.
        ("I want to talk to a person about my invoice", "billing", "billing", False, True, "en"),
        ("Can I speak to an agent?", "general", "general", False, True, "en"),
        ("Ich will mit einem Menschen sprechen", "general", "general", False, True, "de"),
        ("Bitte einen Mitarbeiter, es geht um meine Rechnung", "billing", "billing", False, True, "de"),
        ("Öffnungszeiten? Nein, ich will einen Mitarbeiter!", "opening_hours", "general", False, True, "de"),
        ("opening hours please, or a human", "opening_hours", "general", False, True, "en"),
    ],
)
def test_decisions(
    text: str, intent: str, queue: str, automated: bool, escalated: bool, language: str
) -> None:
    decision = route(text)
    assert (decision.intent, decision.queue, decision.automated, decision.escalated, decision.language) == (
        intent,
        queue,
        automated,
        escalated,
        language,
    )
    assert decision.rules_version == RULES.version


def test_automated_answers_come_from_templates_in_the_customers_language() -> None:
    assert route("when are you open on Saturday?").answer == RULES.templates["opening_hours"].texts["en"]
    assert (
        route("Wann habt ihr offen? Öffnungszeiten bitte").answer
        == RULES.templates["opening_hours"].texts["de"]
    )


def test_order_status_uses_the_lookup_or_goes_to_a_person() -> None:
    order = OrderStatus(order_id="A-1", status="shipped", eta="tomorrow")
    answered = route("Where is my order?", order=order, order_lookup_available=True)
    assert answered.automated
    assert answered.answer == "Your order A-1 is shipped; expected delivery: tomorrow."
    missing = route("Where is my order?", order=None, order_lookup_available=True)
    assert (missing.automated, missing.queue, "no order found" in missing.reason) == (False, "sales", True)
    unconfigured = route("Wo ist meine Bestellung?")
    assert (unconfigured.automated, "no order lookup configured" in unconfigured.reason) == (False, True)
    assert SampleOrderLookup().latest_order("cus_123").order_id.startswith("SAMPLE-")  # type: ignore[union-attr]


def test_acknowledgement_once_per_queue_and_in_german() -> None:
    first = route("invoice wrong")
    assert customer_reply(RULES, first, None, "Ana") == (
        "Thanks, Ana! It is with our billing team now; someone will reply here shortly."
    )
    second = route("any news on the invoice?")
    assert customer_reply(RULES, second, first, "Ana", already_waiting=True) is None
    moved = route("then I want to cancel")
    assert customer_reply(RULES, moved, second, None, already_waiting=True) is not None
    german = route("Meine Rechnung ist falsch")
    assert customer_reply(RULES, german, None, None) == (
        "Danke für Ihre Nachricht! Ihr Anliegen liegt jetzt bei unserem Team Rechnungen; "
        "wir melden uns hier in Kürze."
    )


def test_language_detection_falls_back_to_keyword_language_then_default() -> None:
    assert detect_language(RULES, "Kündigung") == "de"  # umlaut, no marker words
    assert detect_language(RULES, "refund", hint="en") == "en"
    assert detect_language(RULES, "xyz") == RULES.default_language


def _summary(conversation_id: str, intent: str, last: str) -> ConversationSummary:
    return ConversationSummary(
        conversation_id=conversation_id,
        customer_id="c",
        status="resolved",
        opened_at=last,
        last_message_at=last,
        routing=RoutingDecision(
            queue="billing", intent=intent, reason="", automated=False, message_id="x", decided_at=last
        ),
    )


@pytest.mark.parametrize(
    ("text", "tags", "history", "expected"),
    [
        ("invoice wrong", [], [], 0),
        ("invoice wrong", ["VIP"], [], 3),
        ("This is unacceptable, my invoice is wrong", [], [], 2),
        ("Das ist eine Frechheit, die Rechnung!", [], [], 2),
        ("invoice wrong", [], [_summary("old", "billing", "2026-11-20T08:00:00.000000Z")], 1),
        ("invoice wrong", [], [_summary("old", "billing", "2026-11-10T08:00:00.000000Z")], 0),  # > 7 days
        ("invoice wrong", [], [_summary("old", "technical", "2026-11-24T08:00:00.000000Z")], 0),
        ("invoice wrong", [], [_summary("this", "billing", "2026-11-24T08:00:00.000000Z")], 0),  # same one
        ("terrible!! invoice", ["vip"], [_summary("old", "billing", "2026-11-24T08:00:00.000000Z")], 6),
    ],
)
def test_priority(text: str, tags: list[str], history: list[ConversationSummary], expected: int) -> None:
    intent = CLASSIFIER.classify(text).intent
    score, reasons = priority_of(RULES, text, tags, intent, history, NOW, "this")
    assert score == expected
    assert len(reasons) == (expected > 0) + (expected >= 5) + (expected == 6)


def test_pluggable_classifier() -> None:
    class Model:
        def classify(self, text: str) -> Classification:
            return Classification(intent="technical", language="de", escalate=False)

    decision = decide(RULES, Model().classify("anything"), "m1", NOW)
    assert (decision.queue, decision.language) == ("technical", "de")


# --------------------------------------------------------------------------- #
# Validation of the rules file
# --------------------------------------------------------------------------- #


def raw_rules() -> dict[str, object]:
    with DEFAULT_PATH.open("rb") as handle:
        return tomllib.load(handle)


def broken(mutate: object) -> RoutingConfigError:
    data = copy.deepcopy(raw_rules())
    mutate(data)  # type: ignore[operator]
    with pytest.raises(RoutingConfigError) as caught:
        parse_rules(data, "test.toml")
    return caught.value


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["intents"][1].update(queue="biling"), "intents[1].queue: unknown queue 'biling'"),
        (lambda d: d["intents"][0].update(action="teleport"), "intents[0].action: must be one of"),
        (
            lambda d: d["intents"][0]["keywords"].update(fr=["annuler"]),
            "intents[0].keywords.fr: unknown language",
        ),
        (
            lambda d: d["intents"][2].update(patterns={"en": ["(unclosed"]}),
            "is not a valid regular expression",
        ),
        (lambda d: d["intents"].append(dict(d["intents"][0])), "duplicate intent 'cancellation'"),
        (lambda d: d["queues"]["billing"].update(overflow_to="nowhere"), "queues.billing.overflow_to"),
        (lambda d: d["queues"]["billing"].pop("sla_minutes"), "queues.billing.sla_minutes: is required"),
        (lambda d: d["queues"]["billing"].update(sla_minutes="ten"), "must be a whole number"),
        (lambda d: d["templates"]["opening_hours"].update(en="Open {when}"), "undeclared variables ['when']"),
        (lambda d: d["templates"].pop("acknowledgement"), "templates.acknowledgement: is required"),
        (lambda d: d.update(escalation={}), "escalation: needs keywords"),
        (lambda d: d.update(default_queue="vip"), "default_queue: unknown queue 'vip'"),
    ],
)
def test_bad_rules_are_refused_with_the_path_of_the_problem(mutate: object, expected: str) -> None:
    error = broken(mutate)
    assert any(expected in problem for problem in error.problems), error.problems
    assert "test.toml" in str(error)


def test_unreadable_rules_file(tmp_path: Path) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text("version = [", encoding="utf-8")
    with pytest.raises(RoutingConfigError, match="not valid TOML"):
        load_rules(bad)
    with pytest.raises(RoutingConfigError, match="does not exist"):
        load_rules(tmp_path / "missing.toml")


# --------------------------------------------------------------------------- #
# Assignment ranking, hand-over, stall detection
# --------------------------------------------------------------------------- #


def agent(agent_id: str, proficiency: int, active: int = 0, status: str = "available", cap: int = 2) -> Agent:
    return Agent(
        agent_id=agent_id,
        skills={"billing": proficiency},
        max_concurrent=cap,
        status=status,  # type: ignore[arg-type]
        active_count=active,
    )


@pytest.mark.parametrize(
    ("agents", "sticky", "expected"),
    [
        ([agent("a", 5), agent("b", 9)], None, [("b", "best_match"), ("a", "best_match")]),
        ([agent("a", 9, active=1), agent("b", 9)], None, [("b", "best_match"), ("a", "best_match")]),
        ([agent("a", 5), agent("b", 9)], "a", [("a", "sticky"), ("b", "best_match")]),
        ([agent("a", 5, active=2), agent("b", 9)], "a", [("b", "best_match")]),  # sticky but full
        ([agent("a", 5, status="away"), agent("b", 3)], "a", [("b", "best_match")]),
        ([agent("a", 5, status="offline")], None, []),
    ],
)
def test_rank_agents(agents: list[Agent], sticky: str | None, expected: list[tuple[str, str]]) -> None:
    assert [(a.agent_id, why) for a, why in rank_agents(agents, "billing", sticky)] == expected


def test_handover_tells_the_agent_what_happened() -> None:
    messages = [
        Message(
            message_id="1", direction="inbound", channel="webchat", text="opening hours?", timestamp="t1"
        ),
        Message(
            message_id="2",
            direction="outbound",
            channel="webchat",
            text="We are open",
            timestamp="t2",
            author="bot",
        ),
        Message(
            message_id="3",
            direction="inbound",
            channel="sms",
            text="I want to talk to a person about my invoice",
            timestamp="t3",
        ),
    ]
    decision = route("I want to talk to a person about my invoice")
    handover = build_handover(
        "cus_1", None, {"display_name": "Ana Lima", "tags": ["vip"]}, messages, decision, "vip", None, NOW
    )
    assert handover.vip
    assert handover.channels == ["webchat", "sms"]
    assert handover.bot_answers == ["We are open"]
    assert handover.summary.startswith("Ana Lima (VIP) wrote on webchat, sms about billing.")
    assert "They asked for a person." in handover.summary
    assert "I want to talk to a person about my invoice" in handover.summary
    assert [m.message_id for m in messages] == ["1", "2", "3"]
    assert [m.text for m in handover.last_messages][-1] == "I want to talk to a person about my invoice"


@pytest.mark.parametrize(
    ("item", "stalled"),
    [
        ({"waiting_since": "2026-11-25T07:49:00.000000Z", "wait_kind": "agent"}, True),  # 11 min > 10
        ({"waiting_since": "2026-11-25T07:51:00.000000Z", "wait_kind": "agent"}, False),
        ({"waiting_since": "2026-11-25T07:49:00.000000Z", "wait_kind": "reply"}, False),  # reply SLA 30
        ({"waiting_since": "2026-11-25T07:29:00.000000Z", "wait_kind": "reply"}, True),
        (
            {
                "waiting_since": "2026-11-25T07:00:00.000000Z",
                "wait_kind": "agent",
                "stalled_for": "2026-11-25T07:00:00.000000Z",
            },
            False,
        ),
    ],
)
def test_is_stalled(item: dict[str, str], stalled: bool) -> None:
    from datetime import datetime  # noqa: PLC0415

    assert is_stalled(item, RULES.queue("billing"), datetime.fromisoformat(NOW)) is stalled
