"""The pure KPI math: histogram buckets and percentiles, CES and CSAT answers, closing
messages, the report; the rules' bot-resolution and survey settings; the KPI rule's filter."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from moto.events.models import EventPattern

from shared.domain.kpis import (
    bucket_bound,
    bucket_counter,
    bucket_of,
    day_of,
    percentile,
    report,
    sum_counters,
    within_window,
)
from shared.domain.routing_rules import DEFAULT_PATH, RoutingConfigError, load_rules, parse_rules
from shared.domain.surveys import (
    CES_QUESTIONS,
    CSAT_QUESTIONS,
    ces_question,
    could_be_score,
    is_closing,
    parse_ces,
    parse_csat,
    parse_score,
    survey_question,
)
from shared.platform.observability import mask_pii
from topology import CONVERSATION_RESOLVED, MESSAGE_RECORDED, NOTIFICATION_REQUESTED, TOPOLOGY


def test_buckets_are_log_spaced_and_hold_their_bounds() -> None:
    assert bucket_of(0) == bucket_of(1) == 0
    assert bucket_of(2) == 4
    assert bucket_bound(4) == 2
    assert bucket_of(60) == 24  # 2^(24/4) = 64 >= 60 > 2^(23/4) = 53.8
    for value in (1.5, 7, 60, 3600, 86_400):
        index = bucket_of(value)
        assert bucket_bound(index - 1) < value <= bucket_bound(index)
    assert bucket_of(10**12) == 87
    assert bucket_counter("frt", 4) == "frt_b04"


def test_percentiles_from_bucket_counts() -> None:
    # 10 values: 5 of 2 s, 4 of 64 s, 1 of 1024 s.
    buckets = {bucket_of(2): 5, bucket_of(64): 4, bucket_of(1024): 1}
    assert percentile(buckets, 0.5) == 2  # the 5th smallest
    assert percentile(buckets, 0.6) == 64  # the 6th
    assert percentile(buckets, 0.9) == 64  # the 9th
    assert percentile(buckets, 0.95) == 1024
    assert percentile({}, 0.5) is None


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("7", 7),
        ("1", 1),
        (" 6! ", 6),
        ("seven", 7),
        ("Five", 5),
        ("sieben", 7),
        ("Fünf", 5),
        ("zwei", 2),
        ("I'd say 6", 6),
        ("6 out of 7", 6),
        ("ich würde eine 4 geben", 4),
        ("6 von 7", 6),
    ],
)
def test_ces_answers_in_english_and_german(text: str, score: int) -> None:
    assert parse_ces(text) == score


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "8",
        "10",
        "neun",
        "nine",
        "",
        "3 or 4",
        "my invoice is still wrong",
        "Order 12345",
        "7 7 7 7 7 7 7 7 7",
    ],
)
def test_out_of_range_and_other_replies_are_not_answers(text: str) -> None:
    assert parse_ces(text) is None


def test_ces_question_in_the_conversations_language() -> None:
    assert ces_question("de") == CES_QUESTIONS["de"]
    assert "1" in ces_question("de")
    assert ces_question("en-GB") == CES_QUESTIONS["en"]
    assert ces_question(None) == ces_question("pt") == CES_QUESTIONS["en"]


def test_days_and_windows_are_utc() -> None:
    assert day_of("2026-11-24T23:30:00+01:00") == "2026-11-24"
    assert day_of("2026-11-24T23:30:00.000000Z") == "2026-11-24"
    assert within_window("2026-11-01T00:00:00Z", "2026-11-08T00:00:00Z")
    assert not within_window("2026-11-01T00:00:00Z", "2026-11-08T00:00:01Z")
    assert not within_window("2026-11-02T00:00:00Z", "2026-11-01T00:00:00Z")


def test_report_from_counters_ten_conversations_seven_first_contact() -> None:
    rows = [
        {
            "pk": "KPI#2026-11",
            "sk": "2026-11-01#billing#sms",
            "day": "2026-11-01",
            "intent": "billing",
            "channel": "sms",
            "started": 6,
            "resolved": 6,
            "fcr": 4,
            "switches": 3,
            "repeat": 1,
            "frt_b04": 3,
            "rt_b24": 5,
            "rt_b40": 1,
            "ces_asked": 5,
            "ces_count": 2,
            "ces_sum": 13,
            "ces_6": 1,
            "ces_7": 1,
        },
        {
            "pk": "KPI#2026-11",
            "sk": "2026-11-02#general#webchat",
            "day": "2026-11-02",
            "intent": "general",
            "channel": "webchat",
            "started": 4,
            "resolved": 4,
            "fcr": 3,
            "automated": 2,
            "stalled": 1,
            "frt_b24": 2,
        },
    ]
    kpis = report(sum_counters(rows)).kpis
    assert (kpis["conversations_started"], kpis["conversations_resolved"]) == (10, 10)
    assert kpis["first_contact_resolution_rate"] == 0.7
    assert kpis["journey_completion_rate"] == 1.0
    assert kpis["automated_resolution_rate"] == 0.2
    assert kpis["channel_switches_per_conversation"] == 0.3
    assert kpis["repeat_contact_rate"] == 0.1
    assert kpis["stalled_handovers"] == 1
    assert (kpis["first_response_p50_s"], kpis["first_response_p90_s"]) == (2.0, 64.0)
    assert (kpis["resolution_time_p50_s"], kpis["resolution_time_p90_s"]) == (64.0, 1024.0)
    assert (kpis["ces_average"], kpis["ces_answers"], kpis["ces_response_rate"]) == (6.5, 2, 0.4)


def test_an_empty_report_has_no_rates() -> None:
    kpis = report(sum_counters([])).kpis
    assert kpis["first_contact_resolution_rate"] is None
    assert kpis["ces_average"] is None
    assert kpis["conversations_started"] == 0


def test_pii_is_masked_in_log_text() -> None:
    line = '{"message": "from +4915112345678 and ana.lima@example.com", "wa": "4915112345678"}'
    masked = mask_pii(line)
    assert "4915112345678" not in masked
    assert "ana.lima" not in masked
    assert "+49*********78" in masked
    assert "a***@example.com" in masked
    # Timestamps, ids and correlation ids stay readable.
    kept = '{"timestamp": "2026-11-25T09:03:38.123456Z", "correlation_id": "webchat#m-1", "id": "cus_1a2b"}'
    assert mask_pii(kept) == kept


def test_omni_kpis_prints_rates_as_percent_and_needs_a_running_stack(tmp_path: Any) -> None:
    from omni.cli import main  # noqa: PLC0415
    from omni.kpis import format_report  # noqa: PLC0415

    answer = {
        "from_day": "2026-11-01",
        "to_day": "2026-11-30",
        "channel": "sms",
        "intent": None,
        **report(
            sum_counters(
                [
                    {"started": 10, "resolved": 8, "fcr": 6, "frt_b20": 4},
                    {"csat_asked": 4, "csat_count": 3, "csat_sum": 12, "csat_satisfied": 2, "csat_5": 1},
                ]
            )
        ).as_dict(),
    }
    printed = "\n".join(format_report(answer))
    assert "KPIs 2026-11-01 .. 2026-11-30  channel=sms" in printed
    rows = {line.split("  ")[1].strip(): line.rsplit("  ", 1)[1] for line in printed.splitlines()[1:]}
    assert rows["first-contact resolution (FCR)"] == "75.0 %"
    assert rows["journey completion rate"] == "80.0 %"
    assert rows["first response p90 (s)"] == "32"
    assert rows["CES average (1-7)"] == "-"
    assert (rows["CSAT average (1-5)"], rows["CSAT satisfied (4-5)"]) == ("4", "66.7 %")
    assert (rows["CSAT answers"], rows["CSAT response rate"]) == ("3", "75.0 %")
    assert answer["counters"]["csat_5"] == 1
    assert main(["kpis", "--state-file", str(tmp_path / "missing.json")]) == 1


# --------------------------------------------------------------------------- #
# CSAT, closing messages, the rules, the KPI rule's content filter
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("text", "score"),
    [("5", 5), ("four", 4), ("Eins", 1), ("I'd say 3", 3), ("4 von 5", 4), ("5 out of 5", 5)],
)
def test_csat_answers_are_1_to_5(text: str, score: int) -> None:
    assert parse_csat(text) == score
    assert parse_score("csat", text) == score


@pytest.mark.parametrize("text", ["6", "0", "seven", "12", "7 but my invoice is still wrong", "3 or 4"])
def test_csat_out_of_range_and_sentences_are_not_answers(text: str) -> None:
    assert parse_csat(text) is None


def test_a_score_like_text_is_recognised_without_knowing_the_survey() -> None:
    assert could_be_score("6")
    assert could_be_score("sieben")
    assert not could_be_score("12")
    assert not could_be_score("7 but my invoice is still wrong")


def test_survey_question_with_score_links() -> None:
    links = {score: f"https://x/links/ces?t=T&score={score}" for score in range(1, 8)}
    text = survey_question("ces", "de-AT", links)
    assert text.startswith(CES_QUESTIONS["de"])
    assert "Oder wählen Sie Ihre Antwort:" in text
    assert text.splitlines()[-1] == "7: https://x/links/ces?t=T&score=7"
    assert survey_question("csat", "fr") == CSAT_QUESTIONS["en"]
    assert survey_question("csat", "en") == CSAT_QUESTIONS["en"]


CLOSING = load_rules(DEFAULT_PATH).bot_resolution.closing


@pytest.mark.parametrize(
    "text",
    [
        "thanks, that's all",
        "Thank you so much!",
        "thx",
        "Danke!",
        "vielen Dank, das war's",
        "ok danke",
        "Cheers 👍",
    ],
)
def test_closing_messages(text: str) -> None:
    assert is_closing(text, CLOSING)


@pytest.mark.parametrize(
    "text",
    [
        "ok",
        "thanks, but my invoice is still wrong",
        "danke, aber wann kommt das Paket?",
        "",
        "that's all",
        "6",
    ],
)
def test_messages_that_do_not_close(text: str) -> None:
    assert not is_closing(text, CLOSING)


def test_rules_bot_resolution_and_survey_are_validated() -> None:
    data = tomllib.loads(Path(DEFAULT_PATH).read_text())
    rules = parse_rules(data)
    assert (rules.survey, rules.bot_resolution.after_minutes) == ("ces", 30)
    assert "danke" in rules.bot_resolution.closing["de"].thanks
    bad = copy.deepcopy(data)
    bad["survey"] = "nps"
    bad["bot_resolution"]["after_minutes"] = 0
    bad["bot_resolution"]["closing"]["fr"] = {"thanks": ["merci"]}
    bad["bot_resolution"]["closing"]["en"]["thanks"] = []
    with pytest.raises(RoutingConfigError) as raised:
        parse_rules(bad)
    problems = "\n".join(raised.value.problems)
    assert "survey: must be one of ['ces', 'csat'], not 'nps'" in problems
    assert "bot_resolution.after_minutes: must be at least 1, not 0" in problems
    assert "bot_resolution.closing.fr: unknown language 'fr'" in problems
    assert "bot_resolution.closing.en.thanks" in problems
    csat = copy.deepcopy(data)
    csat["survey"] = "csat"
    assert parse_rules(csat).survey == "csat"


def _event(detail_type: str, **detail: Any) -> dict[str, Any]:
    return {"source": "omni.test", "detail-type": detail_type, "detail": detail}


def test_the_kpi_rule_lets_only_events_that_can_move_a_counter_through() -> None:
    [rule] = [r for r in TOPOLOGY.rules if r.name == "kpi-events"]
    pattern = EventPattern.load(json.dumps(rule.event_pattern))
    recorded = {"new_conversation": False, "channel_switch": False, "reopened": False, "survey": None}
    passes = [
        _event(MESSAGE_RECORDED, **{**recorded, "channel_switch": True}),
        _event(MESSAGE_RECORDED, **{**recorded, "reopened": True}),
        _event(MESSAGE_RECORDED, **{**recorded, "survey": "ces", "survey_score": 6}),
        _event(NOTIFICATION_REQUESTED, kind="acknowledgement", first_handover=True),
        _event(NOTIFICATION_REQUESTED, kind="reply", first_response=True),
        *(_event(t, conversation_id="c") for t in rule.detail_types),
    ]
    blocked = [
        _event(MESSAGE_RECORDED, **recorded),
        _event(MESSAGE_RECORDED, **{**recorded, "new_conversation": True}),
        _event(NOTIFICATION_REQUESTED, kind="reply", first_response=False),
        _event(NOTIFICATION_REQUESTED, kind="acknowledgement", first_handover=False),
        _event(NOTIFICATION_REQUESTED, kind="notification", first_response=False),
        _event("message.received", channel_switch=True),
        {**_event(CONVERSATION_RESOLVED), "source": "aws.events"},
    ]
    assert all(pattern.matches_event(e) for e in passes)
    assert not any(pattern.matches_event(e) for e in blocked)
    assert set(rule.detail_types) == {
        "agent.assigned",
        "conversation.stalled",
        "conversation.resolved",
        "conversation.reopened",
        "feedback.submitted",
    }
