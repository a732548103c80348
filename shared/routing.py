"""Routing: who answers a message - an automated reply, or which human queue.

First version: intents recognised by keywords (English and German), each mapped to a
queue; routine questions with a known answer are answered automatically. The decision
is recorded on the conversation and, when the customer should hear from us, a
``notification.requested`` goes out (an automated answer, or an acknowledgement that
a person will reply).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.events import MessageRecorded, NotificationRequested
from shared.models import RoutingDecision
from shared.repositories.conversations import ConversationNotFound, ConversationRepository


@dataclass(frozen=True)
class Intent:
    name: str
    queue: str
    #: Whole words (plural and past forms match too); a trailing ``*`` matches any ending.
    keywords: tuple[str, ...]
    #: Set for routine questions that the bot answers itself.
    answer: str | None = None


INTENTS: tuple[Intent, ...] = (
    Intent(
        "cancellation",
        "retention",
        ("cancel*", "terminate", "close my account", "kündig*", "kuendig*", "vertrag beenden"),
    ),
    Intent(
        "billing",
        "billing",
        ("invoice", "bill", "charge", "refund", "payment", "paid", "rechnung*", "zahlung*", "abbuchung*"),
    ),
    Intent(
        "opening_hours",
        "general",
        ("opening hours", "open on", "when are you open", "öffnungszeiten", "geöffnet"),
        answer="We are open Monday to Friday, 8:00-20:00, and Saturday, 9:00-14:00.",
    ),
    Intent(
        "technical",
        "technical",
        ("error", "not working", "broken", "crash", "login", "password", "funktioniert nicht", "fehler*"),
    ),
)
GENERAL = Intent("general", "general", ())

QUEUE_NAMES = {"billing": "billing team", "retention": "customer care team", "technical": "technical support"}


def _pattern(keyword: str) -> re.Pattern[str]:
    if keyword.endswith("*"):
        return re.compile(r"(?<!\w)" + re.escape(keyword[:-1]))
    return re.compile(r"(?<!\w)" + re.escape(keyword) + r"(?:s|es|d|ed|ing)?(?!\w)")


_PATTERNS = [(intent, [_pattern(k) for k in intent.keywords]) for intent in INTENTS]


def classify(text: str) -> Intent:
    lowered = text.lower()
    for intent, patterns in _PATTERNS:
        if any(p.search(lowered) for p in patterns):
            return intent
    return GENERAL


def decide(text: str, message_id: str, decided_at: str) -> RoutingDecision:
    intent = classify(text)
    automated = intent.answer is not None
    reason = (
        f"routine question '{intent.name}' answered automatically"
        if automated
        else f"intent '{intent.name}' goes to the {intent.queue} queue"
    )
    return RoutingDecision(
        queue=intent.queue,
        intent=intent.name,
        reason=reason,
        automated=automated,
        message_id=message_id,
        decided_at=decided_at,
    )


def customer_reply(
    decision: RoutingDecision, previous: RoutingDecision | None, first_name: str | None
) -> str | None:
    """What the customer hears now: the automated answer, an acknowledgement, or nothing.

    A customer already waiting in the same queue is not acknowledged again.
    """
    if decision.automated:
        return next(i.answer for i in INTENTS if i.name == decision.intent)
    if previous is not None and not previous.automated and previous.queue == decision.queue:
        return None
    greeting = f"Thanks, {first_name}!" if first_name else "Thanks for your message!"
    team = QUEUE_NAMES.get(decision.queue, "team")
    return f"{greeting} It is with our {team} now; someone will reply here shortly."


def route_message(
    conversations: ConversationRepository, event: MessageRecorded, now: str, first_name: str | None = None
) -> NotificationRequested | None:
    """Record the routing decision for ``event`` and say what to send the customer.

    Idempotent: a redelivered event finds its decision recorded and asks for the same
    notification (same id), which notify sends only once.
    """
    meta = conversations.get_meta(event.conversation_id)
    if meta is None:
        raise ConversationNotFound(event.conversation_id)
    previous_raw = meta.get("routing")
    previous = RoutingDecision(**previous_raw) if previous_raw else None
    if previous is not None and previous.message_id == event.message_id:
        decision, previous = previous, _before(meta, previous)
    elif event.message_id in meta.get("routed_messages", []):
        return None  # routed before, and a later message has been routed since
    else:
        decision = decide(event.text, event.message_id, now)
        status = "bot" if decision.automated else "queued"
        if not conversations.set_routing(event.conversation_id, decision, status, previous):
            return None  # a concurrent redelivery recorded it a moment ago and will notify
    text = customer_reply(decision, previous, first_name)
    if text is None:
        return None
    return NotificationRequested(
        notification_id=f"route:{event.message_id}",
        customer_id=event.customer_id,
        conversation_id=event.conversation_id,
        kind="reply" if decision.automated else "acknowledgement",
        text=text,
        channel=event.channel,
        to=event.reply_to,
        author="bot",
    )


def _before(meta: dict[str, object], current: RoutingDecision) -> RoutingDecision | None:
    """The decision that preceded ``current`` (kept when it is replaced), if any."""
    raw = meta.get("previous_routing")
    return RoutingDecision(**raw) if isinstance(raw, dict) else None
