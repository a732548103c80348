from __future__ import annotations

import pytest

from shared.models import RoutingDecision
from shared.routing import classify, customer_reply, decide


@pytest.mark.parametrize(
    ("text", "intent", "queue"),
    [
        ("My invoice is wrong", "billing", "billing"),
        ("Ich habe eine falsche Rechnung bekommen", "billing", "billing"),
        ("I want to cancel my contract", "cancellation", "retention"),
        ("Ich möchte kündigen", "cancellation", "retention"),
        ("What are your opening hours?", "opening_hours", "general"),
        ("The app is not working", "technical", "technical"),
        ("Hello there", "general", "general"),
        ("The billboard outside is nice", "general", "general"),
    ],
)
def test_classify(text: str, intent: str, queue: str) -> None:
    found = classify(text)
    assert (found.name, found.queue) == (intent, queue)


def test_routine_question_is_answered_automatically() -> None:
    decision = decide("when are you open on Saturday?", "webchat#1", "t")
    assert decision.automated
    assert "Saturday" in (customer_reply(decision, None, None) or "")


def test_customer_waiting_in_the_same_queue_is_not_acknowledged_twice() -> None:
    first = decide("invoice wrong", "m1", "t1")
    second = decide("any news on the invoice?", "m2", "t2")
    assert customer_reply(first, None, "Ana") == (
        "Thanks, Ana! It is with our billing team now; someone will reply here shortly."
    )
    assert customer_reply(second, first, "Ana") is None
    moved = decide("then I want to cancel", "m3", "t3")
    assert customer_reply(moved, second, None) is not None


def test_decision_says_why() -> None:
    decision = decide("refund please", "m1", "t")
    assert decision == RoutingDecision(
        queue="billing",
        intent="billing",
        reason="intent 'billing' goes to the billing queue",
        automated=False,
        message_id="m1",
        decided_at="t",
    )
