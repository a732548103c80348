"""The assistant's rules (pure): when it may answer, when it hands over, what its answer looks like.

The configuration is ``shared/domain/assistant.toml`` (company configuration, like the
routing rules). The answer contract is :class:`AssistantReply`; both answerers (Bedrock
Converse in the cloud, the extractive answerer locally) return it. See docs/assistant.md.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from shared.contracts.models import Citation
from shared.domain.knowledge import Hit, Index, cosine, plain_text, tokenize
from shared.domain.routing_rules import keyword_pattern

DEFAULT_PATH = Path(__file__).with_name("assistant.toml")

# Hand-over reasons (the KPI "hand-overs by reason" counts these).
ASKED_FOR_PERSON = "asked_for_person"
ESCALATION_RULE = "escalation_rule"
SENSITIVE_TOPIC = "sensitive_topic"
UNHELPFUL_ANSWERS = "unhelpful_answers"
LOW_CONFIDENCE = "low_confidence"
NOT_ANSWERABLE = "not_answerable"
ASSISTANT_ERROR = "assistant_error"
HANDOVER_REASONS = (
    ASKED_FOR_PERSON,
    ESCALATION_RULE,
    SENSITIVE_TOPIC,
    UNHELPFUL_ANSWERS,
    LOW_CONFIDENCE,
    NOT_ANSWERABLE,
    ASSISTANT_ERROR,
)
REASON_TEXT = {
    ASKED_FOR_PERSON: "the customer asked for a person",
    ESCALATION_RULE: "an escalation rule applies",
    SENSITIVE_TOPIC: "a sensitive topic",
    UNHELPFUL_ANSWERS: "the bot's answers did not help",
    LOW_CONFIDENCE: "the knowledge base has no confident answer",
    NOT_ANSWERABLE: "the passages do not answer the question",
    ASSISTANT_ERROR: "the assistant could not answer (model error)",
}
#: Weight of vector similarity in the hybrid score (cloud, when the index has embeddings).
VECTOR_WEIGHT = 0.5
#: Vector similarity is computed over at most this many chunks (the lexical best when more).
MAX_VECTOR_CANDIDATES = 400
MAX_ANSWER_CHARS = 900
MAX_TERMS_KEPT = 12


class AssistantConfigError(ValueError):
    pass


@dataclass(frozen=True)
class AssistantConfig:
    answer_intents: frozenset[str] = frozenset({"general"})
    min_confidence: float = 0.5
    max_passages: int = 4
    unhelpful_in_a_row: int = 2
    repeat_similarity: float = 0.6
    unhelpful: tuple[re.Pattern[str], ...] = ()
    sensitive: tuple[re.Pattern[str], ...] = ()
    #: The customer says the answer helped (the "was this helpful?" signal, docs/assistant.md).
    helpful: tuple[re.Pattern[str], ...] = ()


def _patterns(raw: Any, where: str, problems: list[str]) -> tuple[re.Pattern[str], ...]:
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected a table of languages")
        return ()
    out: list[re.Pattern[str]] = []
    for lang, words in raw.items():
        if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words):
            problems.append(f"{where}.{lang}: expected a list of non-empty strings")
            continue
        out += [keyword_pattern(w) for w in words]
    return tuple(out)


def parse_config(data: dict[str, Any], source: str = "<assistant>") -> AssistantConfig:
    problems: list[str] = []
    known = {
        "answer_intents",
        "min_confidence",
        "max_passages",
        "unhelpful_in_a_row",
        "repeat_similarity",
        "unhelpful",
        "sensitive",
        "helpful",
    }
    if set(data) - known:
        problems.append(f"unknown keys {sorted(set(data) - known)}")
    intents = data.get("answer_intents", ["general"])
    if not isinstance(intents, list) or not all(isinstance(i, str) for i in intents):
        problems.append("answer_intents: expected a list of intent names")
        intents = []
    numbers: dict[str, float] = {}
    for key, low, high in (
        ("min_confidence", 0.0, 1.0),
        ("repeat_similarity", 0.0, 1.0),
        ("max_passages", 1, 20),
        ("unhelpful_in_a_row", 1, 10),
    ):
        value = data.get(key, getattr(AssistantConfig, key))
        if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
            problems.append(f"{key}: expected a number from {low} to {high}, not {value!r}")
            value = getattr(AssistantConfig, key)
        numbers[key] = value
    unhelpful = _patterns(data.get("unhelpful", {}), "unhelpful", problems)
    sensitive = _patterns(data.get("sensitive", {}), "sensitive", problems)
    helpful = _patterns(data.get("helpful", {}), "helpful", problems)
    if problems:
        raise AssistantConfigError(
            f"invalid assistant configuration in {source}:\n  " + "\n  ".join(problems)
        )
    return AssistantConfig(
        answer_intents=frozenset(intents),
        min_confidence=float(numbers["min_confidence"]),
        max_passages=int(numbers["max_passages"]),
        unhelpful_in_a_row=int(numbers["unhelpful_in_a_row"]),
        repeat_similarity=float(numbers["repeat_similarity"]),
        unhelpful=unhelpful,
        sensitive=sensitive,
        helpful=helpful,
    )


def load_config(path: str | Path | None = None) -> AssistantConfig:
    where = Path(path) if path else DEFAULT_PATH
    with where.open("rb") as handle:
        return parse_config(tomllib.load(handle), str(where))


# --------------------------------------------------------------------------- #
# The answer contract
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with its hybrid score (0..1)."""

    article_id: str
    title: str
    heading: str
    text: str
    language: str
    score: float


@dataclass(frozen=True)
class AssistantReply:
    """What both answerers return (the structured result of docs/assistant.md)."""

    answerable: bool
    answer: str | None
    citations: tuple[Citation, ...] = ()
    handover_reason: str | None = None
    confidence: float = 0.0
    #: For the agent when handing over: what was asked and answered.
    summary: str | None = None
    model: str = "extractive"
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class MalformedAnswer(ValueError):
    """The model's answer is not the JSON object the prompt asks for."""


def parse_model_answer(
    text: str, passages: Sequence[Passage]
) -> tuple[bool, str | None, list[str], str | None]:
    """``(answerable, answer, article ids, hand-over reason)`` from the model's JSON.

    Only ids of passages the model was given are kept; an answer that cites none of them,
    or is empty, is not an answer.
    """
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise MalformedAnswer("no JSON object in the model's answer")
    try:
        data = json.loads(text[start : end + 1])
    except ValueError as error:
        raise MalformedAnswer(f"invalid JSON: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("answerable"), bool):
        raise MalformedAnswer("'answerable' (true/false) is missing")
    answer = data.get("answer")
    ids = data.get("article_ids", [])
    if answer is not None and not isinstance(answer, str):
        raise MalformedAnswer("'answer' must be a string")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise MalformedAnswer("'article_ids' must be a list of strings")
    given = {p.article_id for p in passages}
    cited = [i for i in dict.fromkeys(ids) if i in given]
    reason = data.get("handover_reason")
    reason = str(reason)[:200] if reason else None
    if data["answerable"] and (not answer or not answer.strip() or not cited):
        return False, None, [], reason or NOT_ANSWERABLE
    return (
        bool(data["answerable"]),
        (answer.strip() if data["answerable"] and answer else None),
        cited,
        reason,
    )


def citations_for(ids: Sequence[str], passages: Sequence[Passage]) -> tuple[Citation, ...]:
    titles = {p.article_id: p.title for p in passages}
    return tuple(Citation(article_id=i, title=titles[i]) for i in ids if i in titles)


# --------------------------------------------------------------------------- #
# Retrieval (hybrid)
# --------------------------------------------------------------------------- #


def retrieve(
    index: Index,
    text: str,
    *,
    language: str | None,
    channel: str | None = None,
    query_vector: Sequence[float] | None = None,
    limit: int = 4,
) -> list[Passage]:
    """The best passages: lexical coverage, blended with vector similarity when both the index and
    the query have embeddings (the vectors of at most :data:`MAX_VECTOR_CANDIDATES` chunks)."""
    use_vectors = bool(query_vector) and index.embeddings is not None
    lexical = index.search(
        text, language=language, channel=channel, limit=MAX_VECTOR_CANDIDATES if use_vectors else limit
    )
    if not use_vectors:
        return [_passage(h, h.coverage) for h in lexical]
    assert query_vector is not None
    assert index.embeddings is not None
    coverage = {h.chunk.chunk_id: h.coverage for h in lexical}
    numbers = {c.chunk_id: n for n, c in enumerate(index.chunks)}
    from shared.domain.knowledge import allowed  # noqa: PLC0415 - same module family, kept local

    eligible = [n for n, c in enumerate(index.chunks) if allowed(c, language, channel)]
    if len(eligible) > MAX_VECTOR_CANDIDATES:
        eligible = [numbers[h.chunk.chunk_id] for h in lexical]
    scored = []
    for n in eligible:
        chunk = index.chunks[n]
        similarity = max(0.0, cosine(query_vector, index.embeddings[n]))
        blended = VECTOR_WEIGHT * similarity + (1 - VECTOR_WEIGHT) * coverage.get(chunk.chunk_id, 0.0)
        scored.append((round(blended, 6), chunk))
    scored.sort(key=lambda s: (-s[0], s[1].chunk_id))
    return [
        Passage(c.article_id, c.title, c.heading, c.text, c.language, score) for score, c in scored[:limit]
    ]


def _passage(hit: Hit, score: float) -> Passage:
    c = hit.chunk
    return Passage(c.article_id, c.title, c.heading, c.text, c.language, score)


# --------------------------------------------------------------------------- #
# The extractive answerer (local, and whenever Bedrock is not configured)
# --------------------------------------------------------------------------- #


def extractive_answer(passages: Sequence[Passage], config: AssistantConfig) -> AssistantReply:
    """The best passage as the answer when it is confident enough; deterministic."""
    if not passages or passages[0].score < config.min_confidence:
        top = passages[0].score if passages else 0.0
        return AssistantReply(False, None, handover_reason=LOW_CONFIDENCE, confidence=top)
    best = passages[0]
    answer = plain_text(best.text)
    if len(answer) > MAX_ANSWER_CHARS:
        cut = answer.rfind(". ", 0, MAX_ANSWER_CHARS)
        answer = answer[: cut + 1] if cut > 0 else answer[: MAX_ANSWER_CHARS - 1] + "…"
    return AssistantReply(
        True,
        answer,
        citations=(Citation(article_id=best.article_id, title=best.title),),
        confidence=best.score,
    )


def extractive_summary(
    question: str, reason: str, previous_answers: int, citations: Sequence[Citation]
) -> str:
    """The hand-over summary without a model: what was asked, what the bot did, why a person."""
    asked = question.strip().replace("\n", " ")
    asked = asked if len(asked) <= 200 else asked[:199] + "…"
    parts = [f'The customer asked: "{asked}".']
    if previous_answers:
        parts.append(f"The bot answered {previous_answers} time(s) before.")
    if citations:
        parts.append(
            "Articles consulted: " + ", ".join(f"{c.title} ({c.article_id})" for c in citations) + "."
        )
    parts.append(f"Handed over: {REASON_TEXT.get(reason, reason)}.")
    return " ".join(parts)


# --------------------------------------------------------------------------- #
# Knowing when to hand over
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class AssistantState:
    """Kept on the conversation (small): the bot's answers in a row that did not help, and the
    terms of the question it answered last (a repeated question means the answer did not help)."""

    unhelpful: int = 0
    terms: tuple[str, ...] = ()
    answers: int = 0
    citations: tuple[str, ...] = field(default_factory=tuple)

    def to_item(self) -> dict[str, Any]:
        return {
            "unhelpful": self.unhelpful,
            "terms": list(self.terms),
            "answers": self.answers,
            "citations": list(self.citations),
        }

    @classmethod
    def from_item(cls, raw: Any) -> AssistantState:
        if not isinstance(raw, dict):
            return cls()
        return cls(
            unhelpful=int(raw.get("unhelpful", 0)),
            terms=tuple(str(t) for t in raw.get("terms", ())),
            answers=int(raw.get("answers", 0)),
            citations=tuple(str(c) for c in raw.get("citations", ())),
        )


def question_terms(text: str) -> tuple[str, ...]:
    return tuple(sorted(set(tokenize(text))))[:MAX_TERMS_KEPT]


def said_unhelpful(config: AssistantConfig, text: str) -> bool:
    lowered = text.lower().replace("\u2019", "'")
    return any(p.search(lowered) for p in config.unhelpful)


def said_helpful(config: AssistantConfig, text: str) -> bool:
    lowered = text.lower().replace("\u2019", "'")
    return any(p.search(lowered) for p in config.helpful) and not said_unhelpful(config, text)


#: The customer's reaction to the assistant's previous answer (the "was this helpful?" signal).
HELPFUL = "helpful"
UNHELPFUL = "unhelpful"


def feedback_on_answer(
    config: AssistantConfig, before: AssistantState, after: AssistantState, text: str
) -> str | None:
    """:data:`HELPFUL`, :data:`UNHELPFUL` or None: what the customer's message right after an
    assistant answer says about it (``before``/``after``: the state around :func:`after_bot_answer`)."""
    if after.unhelpful > before.unhelpful:
        return UNHELPFUL
    if said_helpful(config, text):
        return HELPFUL
    return None


def is_sensitive(config: AssistantConfig, text: str) -> bool:
    lowered = text.lower()
    return any(p.search(lowered) for p in config.sensitive)


def similarity(a: Sequence[str], b: Sequence[str]) -> float:
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb) if sa and sb else 0.0


def after_bot_answer(
    config: AssistantConfig, state: AssistantState, text: str, bot_answered_last: bool
) -> AssistantState:
    """The state once the customer's new message is read: one more unhelpful answer when they
    say so or ask the same again right after a bot answer; otherwise the count starts over."""
    terms = question_terms(text)
    if bot_answered_last and (
        said_unhelpful(config, text) or similarity(terms, state.terms) >= config.repeat_similarity
    ):
        return replace(state, unhelpful=state.unhelpful + 1)
    return replace(state, unhelpful=0)


def handover_before_answering(
    config: AssistantConfig,
    text: str,
    *,
    asked_for_person: bool,
    escalation: bool,
    state: AssistantState,
) -> str | None:
    """Why the conversation goes to a person before any answer is attempted, or None."""
    if asked_for_person:
        return ASKED_FOR_PERSON
    if escalation:
        return ESCALATION_RULE
    if is_sensitive(config, text):
        return SENSITIVE_TOPIC
    if state.unhelpful >= config.unhelpful_in_a_row:
        return UNHELPFUL_ANSWERS
    return None


def answered_state(state: AssistantState, text: str, reply: AssistantReply) -> AssistantState:
    """The state after the bot answered ``text`` with ``reply``."""
    return AssistantState(
        unhelpful=state.unhelpful,
        terms=question_terms(text) or state.terms,
        answers=state.answers + 1,
        citations=tuple(c.article_id for c in reply.citations)[:4],
    )
