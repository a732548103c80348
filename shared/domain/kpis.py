"""Customer-experience KPIs: the pure math (definitions in ``docs/kpis.md``).

Counters live per UTC day, intent and channel (``shared/repositories/kpis.py``); the KPI
function (``functions/kpi``) adds to them as events happen. Everything here is pure:
the histogram buckets of first-response and resolution times, percentiles read from
bucket counters, the KPI report computed from summed counters, and the parsing of a
survey answer ("6", "seven", "sieben"; CES 1-7, CSAT 1-5), the survey question (with
score links for e-mail and web chat), and whether a message closes a conversation the
bot answered ("thanks, that's all").
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

#: Buckets grow by 2^(1/4) (~19 %): bucket ``i`` holds values in (2^((i-1)/4), 2^(i/4)] seconds.
BUCKETS_PER_DOUBLING = 4
#: Bucket 0 holds everything up to 1 s; the last one everything above 2^(87/4) s (~ 39 days).
BUCKET_COUNT = 88
#: Window of first-contact resolution and repeat contacts.
FCR_WINDOW = timedelta(days=7)
CES_MIN, CES_MAX = 1, 7
CSAT_MIN, CSAT_MAX = 1, 5
#: Score scale of each survey.
SCALES = {"ces": (CES_MIN, CES_MAX), "csat": (CSAT_MIN, CSAT_MAX)}
#: A CSAT answer of 4 or 5 counts as satisfied.
CSAT_SATISFIED = 4

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
# CES: the question and the answer
# --------------------------------------------------------------------------- #

CES_QUESTIONS = {
    "en": (
        "How easy was it to get your issue solved? Reply with a number from 1 (very difficult) "
        "to 7 (very easy)."
    ),
    "de": (
        "Wie einfach war es, Ihr Anliegen zu lösen? Antworten Sie mit einer Zahl von 1 (sehr schwierig) "
        "bis 7 (sehr einfach)."
    ),
}

CSAT_QUESTIONS = {
    "en": (
        "How satisfied are you with how we handled your request? Reply with a number from 1 "
        "(very dissatisfied) to 5 (very satisfied)."
    ),
    "de": (
        "Wie zufrieden sind Sie damit, wie wir Ihr Anliegen bearbeitet haben? Antworten Sie mit einer "
        "Zahl von 1 (sehr unzufrieden) bis 5 (sehr zufrieden)."
    ),
}
QUESTIONS = {"ces": CES_QUESTIONS, "csat": CSAT_QUESTIONS}
#: The line before the score links (e-mail, web chat).
LINKS_INTRO = {"en": "Or choose your answer:", "de": "Oder wählen Sie Ihre Antwort:"}

_NUMBER_WORDS = {
    # English
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    # German
    "eins": 1,
    "ein": 1,
    "zwei": 2,
    "drei": 3,
    "vier": 4,
    "fünf": 5,
    "fuenf": 5,
    "sechs": 6,
    "sieben": 7,
}
#: Words that may surround the score without changing it ("7 points", "eine 6", "I'd say 6").
_FILLER = {
    "i",
    "id",
    "i'd",
    "say",
    "would",
    "give",
    "it",
    "a",
    "an",
    "score",
    "points",
    "point",
    "out",
    "of",
    "ich",
    "würde",
    "wuerde",
    "sagen",
    "geben",
    "eine",
    "punkte",
    "punkt",
    "von",
    "note",
    "rating",
    "is",
    "ist",
    "es",
    "war",
    "was",
    "my",
    "meine",
    "answer",
    "antwort",
}


def _base_language(language: str | None) -> str:
    return (language or "en").split("-")[0].lower()


def ces_question(language: str | None) -> str:
    """The CES question in the conversation's language (English when there is none for it)."""
    return survey_question("ces", language)


def survey_question(survey: str, language: str | None, links: Mapping[int, str] | None = None) -> str:
    """The ``survey`` question in ``language`` (English when there is none for it), followed by
    one line per score link when ``links`` (score -> URL) are given."""
    texts = QUESTIONS[survey]
    base = _base_language(language)
    text = texts.get(base, texts["en"])
    if links:
        intro = LINKS_INTRO.get(base, LINKS_INTRO["en"])
        text += "\n\n" + intro + "\n" + "\n".join(f"{score}: {links[score]}" for score in sorted(links))
    return text


def parse_ces(text: str) -> int | None:
    """The score 1-7 a reply gives, or None when the reply is not an answer (see :func:`parse_score`)."""
    return parse_score("ces", text)


def parse_csat(text: str) -> int | None:
    """The score 1-5 a reply gives, or None when the reply is not an answer."""
    return parse_score("csat", text)


def parse_score(survey: str, text: str) -> int | None:
    """The score a reply gives on ``survey``'s scale, or None when the reply is not an answer.

    An answer is one number (digits or a number word in English or German) with at most
    filler words around it: "6", "7!", "seven", "Sieben", "I'd say 5", "6 out of 7". Out of
    range (CES "0", "9", "10"; CSAT "6"), two different numbers, or a sentence about
    something else ("7 but my invoice is still wrong") are not answers.
    """
    low, high = SCALES[survey]
    words = re.findall(r"[^\W_]+(?:'[^\W_]+)?", text.lower())
    if not words or len(words) > 8:
        return None
    scores: list[int] = []
    for word in words:
        if word.isdigit():
            scores.append(int(word))
        elif word in _NUMBER_WORDS:
            scores.append(_NUMBER_WORDS[word])
        elif word not in _FILLER:
            return None
    # "6 out of 7" / "6 von 7": the scale's maximum after "of"/"von" is not a second answer.
    if len(scores) == 2 and scores[1] == high and any(w in ("of", "von") for w in words):
        scores = scores[:1]
    if len(set(scores)) != 1:
        return None
    score = scores[0]
    return score if low <= score <= high else None


def could_be_score(text: str) -> bool:
    """Whether ``text`` parses as an answer on any survey's scale (cheap; no I/O)."""
    return any(parse_score(survey, text) is not None for survey in SCALES)


def is_closing(text: str, closing: Mapping[str, object]) -> bool:
    """Whether ``text`` closes a conversation the bot answered: only closing words, at least one
    of them a thanks word, in one configured language (``closing``: language ->
    :class:`shared.domain.routing_rules.Closing`)."""
    words = re.findall(r"[^\W_]+(?:'[^\W_]+)?", text.lower())
    if not words or len(words) > 12:
        return False
    for rule in closing.values():
        thanks: frozenset[str] = getattr(rule, "thanks", frozenset())
        allowed = thanks | getattr(rule, "words", frozenset())
        if all(w in allowed for w in words) and any(w in thanks for w in words):
            return True
    return False


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

    def as_dict(self) -> dict[str, object]:
        return {"kpis": self.kpis, "counters": self.counters}


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
                or key.startswith(("ces_", "csat_"))
            ):
                total[key] = total.get(key, 0) + int(value)
    return total


def histogram(counters: Mapping[str, int], name: str) -> dict[int, int]:
    prefix = f"{name}_b"
    return {int(key[len(prefix) :]): value for key, value in counters.items() if key.startswith(prefix)}


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
    out_counters = {key: value for key, value in c.items() if not key.startswith(("frt_b", "rt_b"))}
    out_counters.update({f"ces_{k}": v for k, v in ces_distribution.items()})
    out_counters.update({f"csat_{k}": v for k, v in csat_distribution.items()})
    return KpiReport(counters=out_counters, kpis=kpis)
