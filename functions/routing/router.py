"""Routing: who answers a message - an automated answer, or which human queue, how urgently.

The rules are configuration (``shared/domain/routing_rules.toml``, see :mod:`shared.domain.routing_rules`).
Intent detection goes through the :class:`Classifier` interface; the built-in
:class:`KeywordClassifier` matches the configured keywords and patterns per language, and
a hosted model can be plugged in later by implementing the same one method. Asking for a
person ("agent", "Mensch", "Mitarbeiter") always escalates to a human queue.

Everything down to :func:`decide` and :func:`customer_reply` is pure; :class:`Router`
applies a decision to the conversation (through :class:`shared.services.desk.Desk`) and
says what to publish.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from functions.routing.orders import OrderLookup, OrderStatus
from shared.contracts.events import MessageRecorded, NotificationRequested, format_timestamp
from shared.contracts.models import ConversationSummary, Handover, RoutingDecision, Transition
from shared.contracts.names import NOTIFICATION_REQUESTED
from shared.domain.kpis import is_closing
from shared.domain.routing_rules import RoutingRules, load_rules
from shared.repositories.conversations import Change, ConversationNotFound, ConversationRepository
from shared.services.bot_resolution import BOT, BOT_ATTRIBUTES, answered_fields, resolve_by_bot

if TYPE_CHECKING:
    from shared.services.desk import Desk

#: An agent owns the conversation: new messages are for them, not for the bot.
WITH_AGENT = ("assigned", "active")
#: Message kinds that never change routing (the call itself, its end).
#: Recorded but never answered: calls, and WhatsApp reactions and system messages (no request in them).
NOT_ROUTED = frozenset({"call", "call_status", "reaction", "system"})


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
    if intent is not None:
        since = format_timestamp(datetime.fromisoformat(now) - timedelta(days=rule.repeat_contact_days))
        for past in history:
            last = past.last_message_at or past.opened_at
            if (
                past.conversation_id != conversation_id
                and past.routing
                and past.routing.intent == intent
                and last >= since
            ):
                score += rule.repeat_contact
                reasons.append(f"contacted us about {intent} within {rule.repeat_contact_days} days")
                break
    lowered = text.lower()
    negative = next((p.pattern for _, p in rule.negative_words.compiled() if p.search(lowered)), None)
    if negative is not None:
        score += rule.negative
        reasons.append("negative words")
    return min(score, rule.max), reasons


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
    intent = next((i for i in rules.intents if i.name == classification.intent), None)
    queue = (intent.queue if intent and intent.queue else None) or rules.default_queue
    name = intent.name if intent else "general"
    base = {
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
        return RoutingDecision(queue=queue, reason=reason, automated=False, **base)
    if intent is not None and intent.action == "template" and intent.template:
        answer = rules.render(intent.template, classification.language)
        return RoutingDecision(
            queue=queue,
            reason=f"routine question '{name}' answered automatically",
            automated=True,
            answer=answer,
            **base,
        )
    if intent is not None and intent.action == "order_status":
        if order is not None:
            answer = rules.render(
                "order_status",
                classification.language,
                order_id=order.order_id,
                status=order.status,
                eta=order.eta,
            )
            return RoutingDecision(
                queue=queue,
                reason=f"order status of {order.order_id} answered from the order lookup",
                automated=True,
                answer=answer,
                **base,
            )
        why = "no order found" if order_lookup_available else "no order lookup configured"
        return RoutingDecision(
            queue=queue, reason=f"order status: {why}; goes to the {queue} queue", automated=False, **base
        )
    reason = (
        f"intent '{name}' goes to the {queue} queue"
        if intent
        else f"no intent recognised; goes to the {queue} queue"
    )
    return RoutingDecision(queue=queue, reason=reason, automated=False, **base)


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


#: Conversation attribute: when the last automatic acknowledgement was asked for.
ACKNOWLEDGED_AT = "acknowledged_at"
#: Conversation attribute: the last routed message was automatic mail (its kind); no survey
#: is asked after the resolution of such a conversation.
AUTOMATED_MAIL = "automated_mail"


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


def not_acknowledged(rules: RoutingRules, meta: dict[str, Any], event: MessageRecorded, now: str) -> bool:
    """No acknowledgement for this message: a machine sent it, or the conversation was
    acknowledged within the configured window (whatever the channel)."""
    if event.automated:
        return True
    window = rules.acknowledgement_window_minutes
    last = meta.get(ACKNOWLEDGED_AT)
    if not window or not isinstance(last, str):
        return False
    since = format_timestamp(datetime.fromisoformat(now) - timedelta(minutes=window))
    return last > since


# --------------------------------------------------------------------------- #
# Applying a decision
# --------------------------------------------------------------------------- #


class Router:
    """Routes recorded messages: decision, conversation change, customer reply, assignment."""

    def __init__(
        self,
        conversations: ConversationRepository,
        desk: Desk,
        rules: RoutingRules | None = None,
        classifier: Classifier | None = None,
        orders: OrderLookup | None = None,
    ) -> None:
        self.conversations = conversations
        self.desk = desk
        self.rules = rules or load_rules()
        self.classifier = classifier or KeywordClassifier(self.rules)
        self.orders = orders

    def route(self, event: MessageRecorded, now: str) -> list[tuple[str, BaseModel]]:
        """Route ``event``; the events to publish (a notification, ``agent.assigned``).

        Idempotent: a redelivered event finds its decision recorded (the ``routed_at``
        marker on the message's ``SEEN`` item, written with the decision), asks for the same
        notification (same id; notify sends it once) and only retries the assignment.
        """
        if event.kind in NOT_ROUTED:
            return []  # a call starting or ending says nothing to route on; its queue stays
        if event.survey is not None:
            return []  # the answer to the survey after the resolution: counted, not answered
        meta = self.conversations.get_meta(event.conversation_id)
        if meta is None:
            raise ConversationNotFound(event.conversation_id)
        if meta.get("closed_by") == event.message_id and meta.get("status") == "resolved":
            # The customer's thanks resolved it: say so again (the KPIs count it once).
            from shared.services.desk import resolved_event  # noqa: PLC0415 - a rare redelivery

            return [resolved_event(meta, meta["resolved_at"], BOT)]
        seen = self.conversations.routing_of(event.message_id) or {}
        # ``routed_messages``: the list an earlier version kept on META.
        if seen.get("routed_at") or event.message_id in meta.get("routed_messages", []):
            current = meta.get("routing") or {}
            if current.get("message_id") != event.message_id:
                return []  # routed before, and a later message has been routed since
            decision = RoutingDecision(**current)
            if seen.get("routed_at"):
                quiet = bool(seen.get("routing_quiet"))
                # The decision before this one is not kept: the KPI flags are set as if it
                # were the first (the KPI function counts a first response/hand-over once).
                return self._publishable(event, decision, quiet, now, previous=None, previous_known=False)
            previous_raw = meta.get("previous_routing")
            previous = RoutingDecision(**previous_raw) if previous_raw else None
            quiet = acknowledged_before(decision, previous, bool(meta.get("routing_waited")))
            return self._publishable(event, decision, quiet, now, previous=previous)
        if meta.get("status") in WITH_AGENT:
            return []  # the agent has the conversation; the message is theirs to answer
        if meta.get("status") == BOT and is_closing(event.text, self.rules.bot_resolution.closing):
            return self._closed_by_customer(event, now)
        profile = self.desk.customers.get_profile(event.customer_id) or {}
        classification = self.classifier.classify(event.text)
        # Past conversations matter only for a repeat contact on a recognised intent.
        history = (
            self.conversations.list_for_customer(event.customer_id, limit=20)
            if classification.intent is not None
            else []
        )
        priority = priority_of(
            self.rules,
            event.text,
            list(profile.get("tags", [])),
            classification.intent,
            history,
            now,
            event.conversation_id,
        )
        order = None
        intent = next((i for i in self.rules.intents if i.name == classification.intent), None)
        if (
            intent is not None
            and intent.action == "order_status"
            and not classification.escalate
            and self.orders
        ):
            order = self.orders.latest_order(event.customer_id)
        decision = decide(
            self.rules, classification, event.message_id, now, priority, order, self.orders is not None
        )
        if event.automated:
            decision = for_automatic_mail(decision, event.automated)
        silent = not decision.automated and not_acknowledged(self.rules, meta, event, now)
        waited = meta.get("status") == "queued"
        handover = None
        if not decision.automated:
            handover = self.desk.handover(event.customer_id, event.conversation_id, decision, profile, now)
        try:
            _, change = self.conversations.update_meta(
                event.conversation_id,
                lambda current: self._record(current, decision, handover, now, silent, event.automated),
            )
        except _RoutedMeanwhile:
            return []  # a concurrent redelivery routed it a moment ago and publishes
        if change.noop:
            return []
        previous = _routing(meta)
        quiet = acknowledged_before(decision, previous, waited) or silent
        return self._publishable(event, decision, quiet, now, previous=previous)

    def _closed_by_customer(self, event: MessageRecorded, now: str) -> list[tuple[str, BaseModel]]:
        """The customer closed a conversation the bot answered ("thanks, that's all"): resolved
        by the bot at once, without a reply (docs/kpis.md)."""
        return resolve_by_bot(
            self.conversations,
            self.desk.customers,
            event.conversation_id,
            now,
            reason="the customer closed the conversation the bot answered",
            # ``closed_by`` keeps a redelivery of the closing message from closing twice.
            eligible=lambda meta: meta.get("status") == BOT and meta.get("closed_by") != event.message_id,
            extra=lambda meta: {"closed_by": event.message_id},
        )

    def _record(
        self,
        meta: dict[str, Any],
        decision: RoutingDecision,
        handover: Handover | None,
        now: str,
        silent: bool = False,
        automated: str | None = None,
    ) -> Change:
        if decision.message_id in meta.get("routed_messages", []):
            return Change(noop=True)
        status = meta.get("status", "open")
        if handover is not None and status not in WITH_AGENT:
            change = self.desk.enqueue_change(
                meta, decision.queue, decision.priority, now, by="routing", reason=decision.reason
            )
            change.handover = handover.model_dump(exclude_none=True)
            # Handed to a human: the bot-resolution clock stops.
            change.remove = (*change.remove, *BOT_ATTRIBUTES)
        else:
            change = Change()
        change.set["routing"] = decision.model_dump(exclude_none=True)
        # The message's routed marker, with what a redelivery needs to ask for the same reply.
        quiet = acknowledged_before(decision, _routing(meta), status == "queued") or silent
        change.also.append(self.conversations.mark_routed(decision.message_id, now, quiet))
        if not decision.automated and not quiet:
            change.set[ACKNOWLEDGED_AT] = now  # the acknowledgement window starts
        if automated:
            change.set[AUTOMATED_MAIL] = automated  # no survey after its resolution
        elif AUTOMATED_MAIL in meta:
            change.remove = (*change.remove, AUTOMATED_MAIL)
        change.on_conflict = lambda _: _RoutedMeanwhile()
        if decision.automated and status in ("open", "bot"):
            change.set["status"] = "bot"
            # Resolved by the bot when the customer stays silent (the SLA sweep).
            change.set.update(answered_fields(meta, now))
            if status != "bot":
                change.transition = _transition(now, status, "bot", decision.reason)
        return change

    def _publishable(
        self,
        event: MessageRecorded,
        decision: RoutingDecision,
        quiet: bool,
        now: str,
        previous: RoutingDecision | None,
        previous_known: bool = True,
    ) -> list[tuple[str, BaseModel]]:
        """``quiet``: the customer was acknowledged before and waits in the same queue;
        ``previous``: the decision before this one (unknown on some redeliveries)."""
        out: list[tuple[str, BaseModel]] = []
        if not decision.automated:
            out += self.desk.assign_waiting(event.conversation_id, now)
        profile = self.desk.customers.get_profile(event.customer_id) or {}
        name = profile.get("display_name")
        text = (
            None if quiet else customer_reply(self.rules, decision, None, name.split()[0] if name else None)
        )
        if text is not None:
            out.insert(
                0,
                (
                    NOTIFICATION_REQUESTED,
                    NotificationRequested(
                        notification_id=f"route:{event.message_id}",
                        customer_id=event.customer_id,
                        conversation_id=event.conversation_id,
                        kind="reply" if decision.automated else "acknowledgement",
                        text=text,
                        # Nothing can be said back into a finished call: answer a voicemail by SMS.
                        channel="sms" if event.channel == "voice" else event.channel,
                        to=event.reply_to,
                        author="bot",
                        # The bot's first automated answer may be the first response, the first
                        # acknowledgement the first hand-over (KPIs; the others do not reach them).
                        first_response=decision.automated
                        and not (previous_known and previous is not None and previous.automated),
                        first_handover=not decision.automated
                        and (not previous_known or previous is None or previous.automated),
                    ),
                ),
            )
        return out


class _RoutedMeanwhile(Exception):
    """The message's routed marker was written by a concurrent redelivery."""


def _routing(meta: dict[str, Any]) -> RoutingDecision | None:
    raw = meta.get("routing")
    return RoutingDecision(**raw) if isinstance(raw, dict) else None


def _transition(now: str, from_status: str, to_status: str, reason: str) -> Transition:
    return Transition(at=now, from_status=from_status, to_status=to_status, by="routing", reason=reason)
