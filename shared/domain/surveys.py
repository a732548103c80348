"""Surveys and closing messages: pure rules, no I/O.

The CES and CSAT questions (with score links for e-mail and web chat), the parsing of
a survey answer ("6", "seven", "sieben"; CES 1-7, CSAT 1-5), and whether a message
closes a conversation the bot answered ("thanks, that's all").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

#: A survey asked after a conversation's resolution.
Survey = Literal["ces", "csat"]

CES_MIN, CES_MAX = 1, 7
CSAT_MIN, CSAT_MAX = 1, 5
#: Score scale of each survey.
SCALES = {"ces": (CES_MIN, CES_MAX), "csat": (CSAT_MIN, CSAT_MAX)}
#: A CSAT answer of 4 or 5 counts as satisfied.
CSAT_SATISFIED = 4


# --------------------------------------------------------------------------- #
# The questions and the answers
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
