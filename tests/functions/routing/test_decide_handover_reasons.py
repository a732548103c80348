"""Routing names why a decision hands the conversation to a person (the KPIs count hand-overs by it)."""

from __future__ import annotations

import pytest

from functions.routing.decide import KeywordClassifier, decide
from functions.routing.orders import OrderStatus
from shared.domain.routing_rules import DEFAULT_PATH, load_rules

RULES = load_rules(DEFAULT_PATH)
CLASSIFIER = KeywordClassifier(RULES)
NOW = "2026-11-25T08:00:00.000000Z"


@pytest.mark.parametrize(
    ("text", "lookup", "reason"),
    [
        ("I want to talk to a person about my invoice", False, "asked_for_person"),
        ("Can I speak to an agent?", False, "asked_for_person"),
        ("opening hours please, or a human", False, "asked_for_person"),
        ("My invoice is wrong", False, "intent"),
        ("Ich möchte kündigen", False, "intent"),
        ("Hello there", False, "not_understood"),
        ("Where is my order?", True, "no_bot_answer"),  # no order found
        ("Where is my order?", False, "no_bot_answer"),  # no order look-up configured
    ],
)
def test_a_hand_over_names_its_reason(text: str, lookup: bool, reason: str) -> None:
    decision = decide(RULES, CLASSIFIER.classify(text), "m1", NOW, order_lookup_available=lookup)
    assert not decision.automated
    assert decision.handover_reason == reason


@pytest.mark.parametrize("text", ["What are your opening hours?", "Where is my order?"])
def test_automated_answers_name_no_hand_over_reason(text: str) -> None:
    order = OrderStatus(order_id="A-1", status="shipped", eta="tomorrow")
    decision = decide(RULES, CLASSIFIER.classify(text), "m1", NOW, order=order, order_lookup_available=True)
    assert decision.automated
    assert decision.handover_reason is None
