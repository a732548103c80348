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
    return Handover(
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
