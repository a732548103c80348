"""``omni kpis`` prints the hand-overs by reason beside the KPIs."""

from __future__ import annotations

from omni.kpis import format_report
from shared.domain.kpis import report, sum_counters


def test_hand_overs_by_reason_are_printed() -> None:
    counters = {"started": 3, "escalated": 3, "handover_intent": 2, "handover_other": 1}
    computed = report(sum_counters([counters]))
    answer = {"from_day": "2026-11-01", "to_day": "2026-11-07", **computed.as_dict()}
    assert "  hand-overs by reason: intent 2, other 1" in format_report(answer)
    del answer["handed_over_by_reason"]
    assert not any("by reason" in line for line in format_report(answer))
