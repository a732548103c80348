"""Customer-experience KPIs: the pure math (definitions in ``docs/kpis.md``).

Counters live per UTC day, intent and channel (``shared/repositories/kpis.py``); the KPI
function (``functions/kpi``) adds to them as events happen. Everything here is pure:
the histogram buckets of first-response and resolution times, percentiles read from
bucket counters and the KPI report computed from summed counters. The surveys (the
question, parsing an answer) and closing messages are :mod:`shared.domain.surveys`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import get_args

from shared.contracts.models import HandoverReason
from shared.domain.surveys import CES_MAX, CES_MIN, CSAT_MAX, CSAT_MIN

#: Buckets grow by 2^(1/4) (~19 %): bucket ``i`` holds values in (2^((i-1)/4), 2^(i/4)] seconds.
BUCKETS_PER_DOUBLING = 4
#: Bucket 0 holds everything up to 1 s; the last one everything above 2^(87/4) s (~ 39 days).
BUCKET_COUNT = 88
#: Window of first-contact resolution and repeat contacts.
FCR_WINDOW = timedelta(days=7)

#: Histograms kept per day: first-response time and resolution time.
HISTOGRAMS = ("frt", "rt")

#: Plain counters (see docs/kpis.md for when each one moves).
COUNTERS = (
    "started",
    "resolved",
    "fcr",
    "reopened",
    "repeat",
    "switches",
    "automated",
    "escalated",
    "stalled",
    "ces_asked",
    "ces_count",
    "ces_sum",
    "csat_asked",
    "csat_count",
    "csat_sum",
    "csat_satisfied",
)


#: Hand-overs by reason: one counter ``handover_<reason>`` per reason (the ``escalated``
#: counter is their sum). The routing decision's reasons (``HandoverReason`` in
#: shared/contracts/models.py), and ``other`` for a hand-over without a routing decision that
#: handed over (an agent took a conversation the bot was answering, a proactive one).
HANDOVER_PREFIX = "handover_"
HANDOVER_REASONS: tuple[str, ...] = (*get_args(HandoverReason), "other")


def handover_reason(routing: Mapping[str, object] | None) -> str:
    """Why the conversation was handed to a person, from the routing decision stored on it.

    Decisions routing recorded before it named the reason are read from their other fields:
    the customer asked for a person (``escalated``), no intent recognised (``general``), else the
    intent's rule."""
    if not routing or routing.get("automated"):
        return "other"
    named = routing.get("handover_reason")
    if isinstance(named, str) and named in HANDOVER_REASONS:
        return named
    if routing.get("escalated"):
        return "asked_for_person"
    return "not_understood" if routing.get("intent") in (None, "general") else "intent"


#: The assistant's counters (docs/kpis.md, "The assistant"): answers, the conversations it answered,
#: those it answered and the bot resolved, the citations of its answers, the model's tokens and
#: cost (nano-USD: counters are integers), the "was this helpful?" answers, and the hand-overs by
#: reason (``ai_handover_<reason>``, :func:`handover_counter`).
ASSISTANT_COUNTERS = (
    "ai_answers",
    "ai_conversations",
    "ai_resolved",
    "ai_citations",
    "ai_input_tokens",
    "ai_output_tokens",
    "ai_cost_nusd",
    "ai_helpful",
    "ai_unhelpful",
)
AI_HANDOVER_PREFIX = "ai_handover_"
#: USD in one cost counter unit (nano-USD).
NANO_USD = 1_000_000_000
#: The "was this helpful?" scale: 0 it did not help, 1 it helped.
HELPFUL_SCALE = (0, 1)


def handover_counter(reason: str) -> str:
    """The counter of the assistant's hand-overs for ``reason`` (a short snake_case word)."""
    return (
        AI_HANDOVER_PREFIX + "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in reason.lower())[:40]
    )


def bucket_of(seconds: float) -> int:
    """Index of the histogram bucket that holds ``seconds``."""
    if seconds <= 1:
        return 0
    index = math.ceil(BUCKETS_PER_DOUBLING * math.log2(seconds) - 1e-9)
    return min(index, BUCKET_COUNT - 1)


def bucket_bound(index: int) -> float:
    """Upper bound (seconds) of bucket ``index``."""
    return 2 ** (index / BUCKETS_PER_DOUBLING)


def bucket_counter(histogram: str, index: int) -> str:
    return f"{histogram}_b{index:02d}"


def percentile(buckets: Mapping[int, int], q: float) -> float | None:
    """The ``q`` quantile (0 < q <= 1) from bucket counts: the upper bound of the bucket that
    holds the ``ceil(q * n)``-th smallest value. None without values."""
    total = sum(count for count in buckets.values() if count > 0)
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total - 1e-9))
    seen = 0
    for index in sorted(buckets):
        seen += max(0, buckets[index])
        if seen >= rank:
            return bucket_bound(index)
    return bucket_bound(max(buckets))


# --------------------------------------------------------------------------- #
# Time helpers
# --------------------------------------------------------------------------- #


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def day_of(timestamp: str) -> str:
    """UTC day ``YYYY-MM-DD`` of an ISO timestamp."""
    return parse_time(timestamp).astimezone(UTC).date().isoformat()


def seconds_between(start: str, end: str) -> float:
    return max(0.0, (parse_time(end) - parse_time(start)).total_seconds())


def within_window(earlier: str, later: str, window: timedelta = FCR_WINDOW) -> bool:
    return timedelta(0) <= parse_time(later) - parse_time(earlier) <= window


def days(start: date, end: date) -> list[str]:
    """Every day from ``start`` to ``end``, both included."""
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


# --------------------------------------------------------------------------- #
# The report
# --------------------------------------------------------------------------- #


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator > 0 else None


def _seconds(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


@dataclass(frozen=True)
class KpiReport:
    counters: dict[str, int]
    kpis: dict[str, float | None]
    #: Hand-overs per reason (those with a count), see :data:`HANDOVER_REASONS`.
    handed_over_by_reason: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        return {
            "kpis": self.kpis,
            "counters": self.counters,
            "handed_over_by_reason": self.handed_over_by_reason,
        }


def sum_counters(rows: Iterable[Mapping[str, object]]) -> dict[str, int]:
    """Add up the counter attributes of counter items (plain counters and histogram buckets)."""
    total: dict[str, int] = dict.fromkeys(COUNTERS, 0)
    for row in rows:
        for key, value in row.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if (
                key in COUNTERS
                or key.startswith(tuple(f"{h}_" for h in HISTOGRAMS))
                or key.startswith(("ces_", "csat_", HANDOVER_PREFIX, "ai_"))
            ):
                total[key] = total.get(key, 0) + int(value)
    return total


def histogram(counters: Mapping[str, int], name: str) -> dict[int, int]:
    prefix = f"{name}_b"
    return {int(key[len(prefix) :]): value for key, value in counters.items() if key.startswith(prefix)}


def ai_handovers_by_reason(counters: Mapping[str, int]) -> dict[str, int]:
    """The assistant's own hand-overs by its reason (``ai_handover_<reason>``); every hand-over
    to a person, whatever handed it over, is in ``handed_over_by_reason`` of :func:`report`."""
    return {
        key[len(AI_HANDOVER_PREFIX) :]: int(value)
        for key, value in sorted(counters.items())
        if key.startswith(AI_HANDOVER_PREFIX) and value
    }


def assistant_kpis(counters: Mapping[str, int]) -> dict[str, float | None]:
    """The assistant's KPIs (docs/kpis.md): hand-overs by reason as ``assistant_handovers_<reason>``."""
    c = {key: int(counters.get(key, 0)) for key in ASSISTANT_COUNTERS}
    answers = c["ai_answers"]
    by_reason = ai_handovers_by_reason(counters)
    tokens = c["ai_input_tokens"] + c["ai_output_tokens"]
    feedback = c["ai_helpful"] + c["ai_unhelpful"]
    out: dict[str, float | None] = {
        "assistant_answers": answers,
        "assistant_conversations": c["ai_conversations"],
        "assistant_resolved": c["ai_resolved"],
        "assistant_resolution_rate": _ratio(c["ai_resolved"], c["ai_conversations"]),
        "assistant_handovers": sum(by_reason.values()),
        "citations_per_answer": _ratio(c["ai_citations"], answers),
        "tokens_per_answer": round(tokens / answers, 1) if answers else None,
        "input_tokens_per_answer": round(c["ai_input_tokens"] / answers, 1) if answers else None,
        "output_tokens_per_answer": round(c["ai_output_tokens"] / answers, 1) if answers else None,
        "model_cost_usd": round(c["ai_cost_nusd"] / NANO_USD, 6),
        "model_cost_per_answer_usd": round(c["ai_cost_nusd"] / NANO_USD / answers, 8) if answers else None,
        "assistant_helpful_rate": _ratio(c["ai_helpful"], feedback),
        "assistant_feedback_answers": feedback,
    }
    out.update({f"assistant_handovers_{reason}": count for reason, count in by_reason.items()})
    return out


def report(counters: Mapping[str, int]) -> KpiReport:
    """Every KPI of docs/kpis.md from summed counters."""
    c = {key: int(counters.get(key, 0)) for key in COUNTERS} | dict(counters)
    frt, rt = histogram(c, "frt"), histogram(c, "rt")
    ces_distribution = {str(score): int(c.get(f"ces_{score}", 0)) for score in range(CES_MIN, CES_MAX + 1)}
    csat_distribution = {
        str(score): int(c.get(f"csat_{score}", 0)) for score in range(CSAT_MIN, CSAT_MAX + 1)
    }
    kpis: dict[str, float | None] = {
        "conversations_started": c["started"],
        "conversations_resolved": c["resolved"],
        "journey_completion_rate": _ratio(c["resolved"], c["started"]),
        "first_contact_resolution_rate": _ratio(c["fcr"], c["resolved"]),
        "first_contact_resolutions": c["fcr"],
        "automated_resolution_rate": _ratio(c["automated"], c["resolved"]),
        "reopened": c["reopened"],
        "repeat_contacts": c["repeat"],
        "repeat_contact_rate": _ratio(c["repeat"], c["started"]),
        "channel_switches_per_conversation": _ratio(c["switches"], c["started"]),
        "handed_over": c["escalated"],
        "stalled_handovers": c["stalled"],
        "first_response_p50_s": _seconds(percentile(frt, 0.5)),
        "first_response_p90_s": _seconds(percentile(frt, 0.9)),
        "first_responses": sum(frt.values()),
        "resolution_time_p50_s": _seconds(percentile(rt, 0.5)),
        "resolution_time_p90_s": _seconds(percentile(rt, 0.9)),
        "ces_average": round(c["ces_sum"] / c["ces_count"], 2) if c["ces_count"] else None,
        "ces_answers": c["ces_count"],
        "ces_response_rate": _ratio(c["ces_count"], c["ces_asked"]),
        "csat_average": round(c["csat_sum"] / c["csat_count"], 2) if c["csat_count"] else None,
        "csat_satisfied_rate": _ratio(c["csat_satisfied"], c["csat_count"]),
        "csat_answers": c["csat_count"],
        "csat_response_rate": _ratio(c["csat_count"], c["csat_asked"]),
    }
    kpis.update(assistant_kpis(c))
    out_counters = {key: value for key, value in c.items() if not key.startswith(("frt_b", "rt_b"))}
    out_counters.update({f"ces_{k}": v for k, v in ces_distribution.items()})
    out_counters.update({f"csat_{k}": v for k, v in csat_distribution.items()})
    by_reason = {
        reason: int(c.get(f"{HANDOVER_PREFIX}{reason}", 0))
        for reason in HANDOVER_REASONS
        if c.get(f"{HANDOVER_PREFIX}{reason}", 0)
    }
    return KpiReport(counters=out_counters, kpis=kpis, handed_over_by_reason=by_reason)
