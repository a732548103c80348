"""The hand-over context an agent gets with an escalated conversation (pure functions).

Who the customer is (profile, identities, channels used), what they want (intent,
priority and why), what the bot already told them, and the latest messages across every
channel, plus a one-paragraph summary to read first - so the agent continues with
"I see you discussed a billing problem" instead of asking again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.contracts.models import Customer, Handover, HandoverMessage, Message, RoutingDecision

LAST_MESSAGES = 10
MAX_TEXT = 500
#: The hand-over context is one item, put with every new hand-over: it stays under 1 KB (one
#: write unit) - this many bytes of attributes (:func:`size_of`), the rest is the item's key.
#: The agent reads every message in the conversation view; the context keeps the newest ones,
#: each cut to ``FITTED_TEXT`` characters.
MAX_SIZE = 940
FITTED_TEXT = 160
SHORTEST_TEXT = 60


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_handover(
    customer_id: str,
    customer: Customer | None,
    profile: dict[str, Any],
    messages: Sequence[Message],
    decision: RoutingDecision,
    vip_tag: str,
    previous_conversation_id: str | None,
    now: str,
) -> Handover:
    tags = [str(t) for t in profile.get("tags", [])]
    vip = vip_tag in {t.lower() for t in tags}
    channels = list(dict.fromkeys(m.channel for m in messages if m.direction == "inbound"))
    bot_answers = [m.text for m in messages if m.direction == "outbound" and (m.author or "bot") == "bot"]
    last = [
        HandoverMessage(
            channel=m.channel,
            direction=m.direction,
            author=m.author,
            text=_clip(m.text),
            timestamp=m.timestamp,
        )
        for m in messages[-LAST_MESSAGES:]
    ]
    name = (customer.display_name if customer else None) or profile.get("display_name")
    identities = [f"{i.type}:{i.value}" for i in customer.identities] if customer else []
    handover = Handover(
        summary=summarise(name, vip, channels, decision, bot_answers, messages),
        customer_id=customer_id,
        display_name=name,
        vip=vip,
        tags=tags,
        identities=identities,
        channels=channels,
        intent=decision.intent,
        queue=decision.queue,
        priority=decision.priority,
        priority_reasons=list(decision.priority_reasons),
        bot_answers=[_clip(a, 300) for a in bot_answers[-5:]],
        last_messages=last,
        previous_conversation_id=previous_conversation_id,
        created_at=now,
    )
    return fit(handover)


def _stored_size(value: Any) -> int:
    """Bytes a value takes when stored (DynamoDB's documented rules; numbers rounded up)."""
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int | float):
        return len(str(value)) // 2 + 2
    if isinstance(value, dict):
        return 3 + sum(len(str(k).encode()) + _stored_size(v) + 1 for k, v in value.items())
    if isinstance(value, list | tuple):
        return 3 + sum(_stored_size(v) + 1 for v in value)
    return len(str(value).encode())


def size_of(handover: Handover) -> int:
    """Bytes the hand-over's attributes take when stored (``None`` left out), key not included."""
    stored = handover.model_dump(exclude_none=True)
    return sum(len(name.encode()) + _stored_size(value) for name, value in stored.items())


def fit(handover: Handover, limit: int = MAX_SIZE) -> Handover:
    """``handover`` cut to at most ``limit`` characters (:func:`size_of`), when its copies of
    messages allow: their texts are cut to ``FITTED_TEXT`` characters, then the oldest messages
    and bot answers are left out (the newest of each stays), then the rest is cut shorter."""
    if size_of(handover) <= limit:
        return handover
    last = [m.model_copy(update={"text": _clip(m.text, FITTED_TEXT)}) for m in handover.last_messages]
    answers = [_clip(a, FITTED_TEXT) for a in handover.bot_answers]

    def current() -> Handover:
        return handover.model_copy(update={"last_messages": list(last), "bot_answers": list(answers)})

    while size_of(current()) > limit and len(last) > 1:
        last.pop(0)
    while size_of(current()) > limit and len(answers) > 1:
        answers.pop(0)
    if size_of(current()) > limit:
        last = [m.model_copy(update={"text": _clip(m.text, SHORTEST_TEXT)}) for m in last]
        answers = [_clip(a, SHORTEST_TEXT) for a in answers]
    return current()


def summarise(
    name: str | None,
    vip: bool,
    channels: Sequence[str],
    decision: RoutingDecision,
    bot_answers: Sequence[str],
    messages: Sequence[Message],
) -> str:
    who = name or "An unnamed customer"
    if vip:
        who += " (VIP)"
    parts = [
        f"{who} wrote on {', '.join(channels) or 'no channel yet'} about {decision.intent.replace('_', ' ')}."
    ]
    if decision.escalated:
        parts.append("They asked for a person.")
    if decision.priority:
        parts.append(f"Priority {decision.priority} ({'; '.join(decision.priority_reasons)}).")
    if bot_answers:
        parts.append(
            f'The bot already answered {len(bot_answers)} time(s), last: "{_clip(bot_answers[-1], 120)}".'
        )
    inbound = [m for m in messages if m.direction == "inbound" and m.text]
    if inbound:
        parts.append(f'Last message ({inbound[-1].channel}): "{_clip(inbound[-1].text, 200)}".')
    return " ".join(parts)
