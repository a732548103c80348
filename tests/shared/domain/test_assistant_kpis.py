"""The assistant's KPI math and its "was this helpful?" signal (pure)."""

from __future__ import annotations

from shared.domain.assistant import (
    HELPFUL,
    UNHELPFUL,
    AssistantState,
    after_bot_answer,
    feedback_on_answer,
    load_config,
)
from shared.domain.kpis import assistant_kpis, handover_counter, report, sum_counters


def test_handover_counters_are_named_by_reason() -> None:
    assert handover_counter("low_confidence") == "ai_handover_low_confidence"
    assert handover_counter("Weird reason!") == "ai_handover_weird_reason_"


def test_assistant_kpis_from_counters() -> None:
    counters = {
        "ai_answers": 4,
        "ai_conversations": 3,
        "ai_resolved": 2,
        "ai_citations": 6,
        "ai_input_tokens": 3200,
        "ai_output_tokens": 320,
        "ai_cost_nusd": 1_200_000,
        "ai_helpful": 3,
        "ai_unhelpful": 1,
        "ai_handover_low_confidence": 2,
        "ai_handover_asked_for_person": 1,
    }
    kpis = assistant_kpis(counters)
    assert kpis["assistant_answers"] == 4
    assert kpis["assistant_resolution_rate"] == round(2 / 3, 4)
    assert kpis["assistant_handovers"] == 3
    assert kpis["assistant_handovers_low_confidence"] == 2
    assert kpis["citations_per_answer"] == 1.5
    assert kpis["tokens_per_answer"] == 880
    assert kpis["model_cost_usd"] == 0.0012
    assert kpis["model_cost_per_answer_usd"] == 0.0003
    assert kpis["assistant_helpful_rate"] == 0.75


def test_without_answers_the_ratios_are_unknown() -> None:
    kpis = report(sum_counters([])).kpis
    assert kpis["assistant_answers"] == 0
    assert kpis["citations_per_answer"] is None
    assert kpis["model_cost_per_answer_usd"] is None
    assert kpis["assistant_helpful_rate"] is None


def test_the_assistant_counters_are_summed_across_rows() -> None:
    rows = [{"ai_answers": 1, "ai_handover_sensitive_topic": 1}, {"ai_answers": 2, "intent": "general"}]
    total = sum_counters(rows)
    assert total["ai_answers"] == 3
    assert total["ai_handover_sensitive_topic"] == 1


def test_the_customers_reaction_to_an_answer() -> None:
    config = load_config()
    before = AssistantState(terms=("password", "reset"), answers=1)

    def reaction(text: str) -> str | None:
        return feedback_on_answer(config, before, after_bot_answer(config, before, text, True), text)

    assert reaction("That doesn't help at all") == UNHELPFUL
    assert reaction("password reset") == UNHELPFUL  # the same question again
    assert reaction("Perfect, that helped") == HELPFUL
    assert reaction("Das hat geholfen") == HELPFUL
    assert reaction("not helpful") == UNHELPFUL
    assert reaction("And how long does shipping take?") is None
