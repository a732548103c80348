"""The assistant's step in routing: answer from the knowledge base, or hand over with a reason.

Called by :class:`functions.routing.router.Router` with the keyword rules' decision. Template
answers and the order lookup (the tool for account-specific questions) keep their decision.
A message the rules send to a human queue is handed over at once when the customer asked
for a person or an escalation rule applies (an intent the assistant does not answer, such as
billing disputes or cancellations, or negative tone); a sensitive topic or two unhelpful bot
answers in a row hand over too. Otherwise the assistant answers (with its citations) or says
why it cannot, and the hand-over carries a summary and the articles it consulted.
See docs/assistant.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.contracts.events import ConversationFacts, MessageRecorded
from shared.contracts.models import Citation, RoutingDecision
from shared.domain.assistant import (
    ASKED_FOR_PERSON,
    ESCALATION_RULE,
    LOW_CONFIDENCE,
    NOT_ANSWERABLE,
    REASON_TEXT,
    AssistantState,
    after_bot_answer,
    answered_state,
    extractive_summary,
    feedback_on_answer,
    handover_before_answering,
)
from shared.services.assistant import Assistant

NEGATIVE = "negative words"
#: Hand-over reasons routing's own rules decided: its reason text already says them.
_ROUTING_REASONS = frozenset({ASKED_FOR_PERSON, ESCALATION_RULE})


@dataclass(frozen=True)
class Assisted:
    decision: RoutingDecision
    #: The conversation's new assistant state (``META.assistant``), None: unchanged.
    state: dict[str, Any] | None = None
    #: For the hand-over: a summary of what was asked and answered, and the articles consulted.
    summary: str | None = None
    citations: tuple[Citation, ...] = ()


def assist(
    assistant: Assistant, event: MessageRecorded, facts: ConversationFacts, decision: RoutingDecision
) -> Assisted:
    if decision.automated:
        return Assisted(decision)  # a template or the order lookup answered
    previous = facts.routing
    bot_answered_last = facts.status == "bot" and previous is not None and previous.automated
    before = AssistantState.from_item(facts.assistant.model_dump() if facts.assistant is not None else None)
    state = after_bot_answer(assistant.config, before, event.text, bot_answered_last)
    # The "was this helpful?" signal: the customer's message right after an assistant answer.
    feedback = (
        feedback_on_answer(assistant.config, before, state, event.text)
        if bot_answered_last and facts.routing_cited
        else None
    )
    reason = handover_before_answering(
        assistant.config,
        event.text,
        asked_for_person=decision.escalated,
        escalation=decision.intent not in assistant.config.answer_intents
        or NEGATIVE in decision.priority_reasons,
        state=state,
    )
    citations: tuple[Citation, ...] = ()
    summary = None
    said: str | None = None  # the model's own words for why it cannot answer
    if reason is None:
        reply = assistant.answer(event.text, decision.language, event.channel)
        if reply.answerable and reply.answer:
            ids = ", ".join(c.article_id for c in reply.citations)
            answered = decision.model_copy(
                update={
                    "automated": True,
                    "answer": reply.answer,
                    "reason": f"answered from the knowledge base ({ids})",
                    "citations": list(reply.citations),
                    "confidence": round(reply.confidence, 4),
                    "assistant_model": reply.model,
                    "input_tokens": reply.input_tokens,
                    "output_tokens": reply.output_tokens,
                    "cost_usd": reply.cost_usd,
                    "assistant_feedback": feedback,
                }
            )
            return Assisted(answered, answered_state(state, event.text, reply).to_item())
        # A model may word its reason freely: the decision (and the KPI counters) keep one of the
        # known reasons, the model's own words stay in the human-readable ``reason`` below.
        said = reply.handover_reason
        reason = said if said in REASON_TEXT else (NOT_ANSWERABLE if said else LOW_CONFIDENCE)
        citations, summary = reply.citations, reply.summary
        extra = {
            "confidence": round(reply.confidence, 4),
            "assistant_model": reply.model,
            "input_tokens": reply.input_tokens,
            "output_tokens": reply.output_tokens,
            "cost_usd": reply.cost_usd,
        }
    else:
        extra = {}
    summary = summary or extractive_summary(event.text, reason, state.answers, citations)
    handed = decision.model_copy(
        update={
            "handover_reason": reason,
            "reason": decision.reason
            if reason in _ROUTING_REASONS
            else (
                f"{decision.reason} (assistant: {REASON_TEXT.get(reason, reason)}"
                + (f": {said}" if reason == NOT_ANSWERABLE and said and said not in REASON_TEXT else "")
                + ")"
            ),
            "assistant_feedback": feedback,
            **extra,
        }
    )
    return Assisted(handed, {**state.to_item(), "unhelpful": 0}, summary, citations)
