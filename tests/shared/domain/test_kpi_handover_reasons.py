"""Hand-overs by reason: the reason read from routing's decision, its counters in the report."""

from __future__ import annotations

from typing import Any

import pytest

from shared.domain.kpis import HANDOVER_REASONS, handover_reason, report, sum_counters


@pytest.mark.parametrize(
    ("routing", "reason"),
    [
        ({"intent": "billing", "handover_reason": "asked_for_person"}, "asked_for_person"),
        ({"intent": "orders", "automated": False, "handover_reason": "no_bot_answer"}, "no_bot_answer"),
        ({"intent": "billing", "automated": False, "handover_reason": "intent"}, "intent"),
        # Decisions recorded before routing named the reason.
        ({"intent": "billing", "automated": False, "escalated": True}, "asked_for_person"),
        ({"intent": "general", "automated": False}, "not_understood"),
        ({"intent": "billing", "queue": "billing"}, "intent"),
        # No decision that handed over: an agent took the conversation otherwise.
        ({"intent": "opening_hours", "automated": True}, "other"),
        (None, "other"),
        ({}, "other"),
        ({"intent": "billing", "handover_reason": "made-up"}, "intent"),
    ],
)
def test_the_reason_of_a_hand_over(routing: dict[str, Any] | None, reason: str) -> None:
    assert handover_reason(routing) == reason
    assert reason in HANDOVER_REASONS


def test_the_report_gives_hand_overs_by_reason_from_summed_counters() -> None:
    rows = [
        {"started": 3, "escalated": 2, "handover_asked_for_person": 1, "handover_intent": 1},
        {"started": 2, "escalated": 2, "handover_asked_for_person": 1, "handover_not_understood": 1},
    ]
    computed = report(sum_counters(rows))
    assert computed.handed_over_by_reason == {"asked_for_person": 2, "intent": 1, "not_understood": 1}
    assert sum(computed.handed_over_by_reason.values()) == computed.kpis["handed_over"] == 4
    assert computed.counters["handover_asked_for_person"] == 2
    assert computed.as_dict()["handed_over_by_reason"] == computed.handed_over_by_reason
    assert report(sum_counters([])).handed_over_by_reason == {}
