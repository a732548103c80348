"""Routing decisions, pure: who answers a message - an automated answer, or which human queue, how urgently.

The rules are configuration (``shared/domain/routing_rules.toml``, see :mod:`shared.domain.routing_rules`).
Intent detection goes through the :class:`Classifier` interface; the built-in
:class:`KeywordClassifier` matches the configured keywords and patterns per language, and
a hosted model can be plugged in later by implementing the same one method. Asking for a
person ("agent", "Mensch", "Mitarbeiter") always escalates to a human queue.

Nothing here reads or writes: :class:`functions.routing.router.Router` applies a decision to
the conversation and says what to publish.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from functions.routing.orders import OrderStatus
from shared.contracts.events import ConversationFacts, MessageRecorded, format_timestamp
from shared.contracts.models import ConversationSummary, RoutingDecision
from shared.domain.routing_rules import IntentRule, RoutingRules


@dataclass(frozen=True)
class Classification:
    #: The first configured intent that matched, or None.
    intent: str | None
    language: str
    #: The customer asked for a person.
    escalate: bool
    #: What matched (for the decision's reason).
    matched: str | None = None


class Classifier(Protocol):
    """Recognises the intent of a message. Implement this to plug in a hosted model."""

    def classify(self, text: str) -> Classification: ...


class KeywordClassifier:
    """The configured keywords and patterns, tried in the order of the rules file."""

    def __init__(self, rules: RoutingRules) -> None:
        self.rules = rules
        self._intents = [(intent.name, intent.matcher.compiled()) for intent in rules.intents]
        self._escalation = rules.escalation.compiled()

    def classify(self, text: str) -> Classification:
        lowered = text.lower()
        intent, intent_language, matched = None, None, None
        for name, patterns in self._intents:
            hit = next(((lang, p) for lang, p in patterns if p.search(lowered)), None)
            if hit is not None:
                intent, intent_language, matched = name, hit[0], hit[1].pattern
                break
        escalation = next((lang for lang, p in self._escalation if p.search(lowered)), None)
        language = detect_language(self.rules, lowered, intent_language or escalation)
        return Classification(
            intent=intent, language=language, escalate=escalation is not None, matched=matched
        )


def detect_language(rules: RoutingRules, text: str, hint: str | None = None) -> str:
    """The declared language with the most marker words; else ``hint``; else the default."""
    words = re.findall(r"\w+", text.lower())
    scores = {lang: sum(w in markers for w in words) for lang, markers in rules.languages.items()}
    best = max(scores.values(), default=0)
    leaders = [lang for lang, score in scores.items() if score == best]
    if best > 0 and len(leaders) == 1:
        return leaders[0]
    if hint in rules.languages:
        return hint
    if re.search(r"[äöüß]", text):
        return "de" if "de" in rules.languages else rules.default_language
    return rules.default_language


def priority_of(
    rules: RoutingRules,
    text: str,
    tags: Sequence[str],
    intent: str | None,
    history: Sequence[ConversationSummary],
    now: str,
    conversation_id: str,
) -> tuple[int, list[str]]:
    """Priority from the profile (``vip`` tag), repeat contact on the same intent, negative words."""
    rule = rules.priority
    score, reasons = 0, []
    if rule.vip_tag in {t.lower() for t in tags}:
        score += rule.vip
        reasons.append(f"{rule.vip_tag} customer")
    if intent is not None and _repeat_contact(rules, intent, history, now, conversation_id):
        score += rule.repeat_contact
        reasons.append(f"contacted us about {intent} within {rule.repeat_contact_days} days")
    lowered = text.lower()
    negative = next((p.pattern for _, p in rule.negative_words.compiled() if p.search(lowered)), None)
    if negative is not None:
        score += rule.negative
        reasons.append("negative words")
    return min(score, rule.max), reasons


def _repeat_contact(
    rules: RoutingRules,
    intent: str,
    history: Sequence[ConversationSummary],
    now: str,
    conversation_id: str,
) -> bool:
    """Another conversation about ``intent`` within the configured days."""
    since = format_timestamp(datetime.fromisoformat(now) - timedelta(days=rules.priority.repeat_contact_days))
    return any(
        past.conversation_id != conversation_id
        and past.routing is not None
        and past.routing.intent == intent
        and (past.last_message_at or past.opened_at) >= since
        for past in history
    )


def intent_of(rules: RoutingRules, classification: Classification) -> IntentRule | None:
    """The configured intent the classification names, if any."""
    return next((i for i in rules.intents if i.name == classification.intent), None)


def decide(
    rules: RoutingRules,
    classification: Classification,
    message_id: str,
    decided_at: str,
    priority: tuple[int, list[str]] = (0, []),
    order: OrderStatus | None = None,
    order_lookup_available: bool = False,
) -> RoutingDecision:
    """The routing decision for one classified message (pure)."""
    intent = intent_of(rules, classification)
    queue = (intent.queue if intent and intent.queue else None) or rules.default_queue
    name = intent.name if intent else "general"
    base: dict[str, Any] = {
        "queue": queue,
        "intent": name,
        "message_id": message_id,
        "decided_at": decided_at,
        "language": classification.language,
        "priority": priority[0],
        "priority_reasons": list(priority[1]),
        "escalated": classification.escalate,
        "rules_version": rules.version,
    }
    if classification.escalate:
        reason = f"the customer asked for a person; intent '{name}' goes to the {queue} queue"
        return RoutingDecision(reason=reason, automated=False, handover_reason="asked_for_person", **base)
    if intent is not None and intent.action == "template" and intent.template:
        answer = rules.render(intent.template, classification.language)
        reason = f"routine question '{name}' answered automatically"
        return RoutingDecision(reason=reason, automated=True, answer=answer, **base)
    if intent is not None and intent.action == "order_status":
        return _order_status(rules, classification.language, order, order_lookup_available, base)
    if intent is None:
        reason = f"no intent recognised; goes to the {queue} queue"
        return RoutingDecision(reason=reason, automated=False, handover_reason="not_understood", **base)
    reason = f"intent '{name}' goes to the {queue} queue"
    return RoutingDecision(reason=reason, automated=False, handover_reason="intent", **base)


def _order_status(
    rules: RoutingRules,
    language: str,
    order: OrderStatus | None,
    order_lookup_available: bool,
    base: dict[str, Any],
) -> RoutingDecision:
    """An order-status question: answered from the order lookup, else handed to the queue."""
    if order is not None:
        answer = rules.render(
            "order_status", language, order_id=order.order_id, status=order.status, eta=order.eta
        )
        reason = f"order status of {order.order_id} answered from the order lookup"
        return RoutingDecision(reason=reason, automated=True, answer=answer, **base)
    why = "no order found" if order_lookup_available else "no order lookup configured"
    reason = f"order status: {why}; goes to the {base['queue']} queue"
    return RoutingDecision(reason=reason, automated=False, handover_reason="no_bot_answer", **base)


def customer_reply(
    rules: RoutingRules,
    decision: RoutingDecision,
    previous: RoutingDecision | None,
    first_name: str | None,
    already_waiting: bool = False,
) -> str | None:
    """What the customer hears now: the automated answer, an acknowledgement, or nothing.

    A customer already waiting in the same queue is not acknowledged again.
    """
    if decision.automated:
        return decision.answer
    if acknowledged_before(decision, previous, already_waiting):
        return None
    language = decision.language
    greeting = (
        rules.render("greeting_named", language, first_name=first_name)
        if first_name
        else rules.render("greeting", language)
    )
    return rules.render(
        "acknowledgement", language, greeting=greeting, team=rules.label(decision.queue, language)
    )


def acknowledged_before(
    decision: RoutingDecision, previous: RoutingDecision | None, already_waiting: bool
) -> bool:
    """The customer waits in the queue ``decision`` sends them to, and was told so: no reply."""
    return (
        not decision.automated
        and already_waiting
        and previous is not None
        and not previous.automated
        and previous.queue == decision.queue
    )


def for_automatic_mail(decision: RoutingDecision, automated: str) -> RoutingDecision:
    """A machine sent the message (RFC 3834): it goes to people, never answered by the bot."""
    if not decision.automated:
        return decision
    return decision.model_copy(
        update={
            "automated": False,
            "answer": None,
            "reason": f"automatic mail ({automated}) is never answered automatically; "
            f"goes to the {decision.queue} queue",
        }
    )


def not_acknowledged(rules: RoutingRules, facts: ConversationFacts, event: MessageRecorded, now: str) -> bool:
    """No acknowledgement for this message: a machine sent it, or the conversation was
    acknowledged within the configured window (whatever the channel). A resolution closes the
    window: a customer who writes again after it (the conversation reopened) has a new request,
    which is acknowledged."""
    if event.automated:
        return True
    window = rules.acknowledgement_window_minutes
    last = facts.acknowledged_at
    closed = facts.resolved_at or facts.reopened_at
    if not window or last is None:
        return False
    try:
        if closed and epoch_seconds(str(closed)) >= int(last):
            return False
        return int(last) > epoch_seconds(now) - window * 60
    except (TypeError, ValueError):
        return False


def epoch_seconds(timestamp: str) -> int:
    """An ISO 8601 timestamp as whole seconds since the epoch (``ack_at``)."""
    return int(datetime.fromisoformat(timestamp).timestamp())
