"""The pure KPI math: histogram buckets and percentiles, CES answers, the report."""

from __future__ import annotations

from typing import Any

import pytest

from shared.kpis import (
    CES_QUESTIONS,
    bucket_bound,
    bucket_counter,
    bucket_of,
    ces_question,
    day_of,
    parse_ces,
    percentile,
    report,
    sum_counters,
    within_window,
)
from shared.observability import mask_pii


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
        **report(sum_counters([{"started": 10, "resolved": 8, "fcr": 6, "frt_b20": 4}])).as_dict(),
    }
    printed = "\n".join(format_report(answer))
    assert "KPIs 2026-11-01 .. 2026-11-30  channel=sms" in printed
    rows = {line.split("  ")[1].strip(): line.rsplit("  ", 1)[1] for line in printed.splitlines()[1:]}
    assert rows["first-contact resolution (FCR)"] == "75.0 %"
    assert rows["journey completion rate"] == "80.0 %"
    assert rows["first response p90 (s)"] == "32"
    assert rows["CES average (1-7)"] == "-"
    assert main(["kpis", "--state-file", str(tmp_path / "missing.json")]) == 1
