"""Bot resolutions: when a conversation the bot answered counts as resolved by the bot.

A conversation the bot answered (an automated answer, status ``bot``) is resolved by the
bot (``conversation.resolved`` with ``resolved_by = bot``, which the KPI function counts
as an automated resolution unless a human was ever involved) when

* the customer does not write again within ``bot_resolution.after_minutes`` of the
  automated answer (routing_rules.toml): the SLA sweep finds these through the sparse
  ``bot-answered`` index (``bot_answered_in`` = ``bot#<shard>``, ``bot_answered_at`` =
  when the bot answered), a few queries a minute and never a scan; or
* the customer's reply closes it ("thanks, that's all", "Danke!";
  :func:`shared.domain.surveys.is_closing`): routing resolves it at once.

Routing sets the index attributes with every automated answer (and removes them when it
hands the conversation to a human queue); a resolution removes them. A later message
within the reopen window reopens the conversation as after any resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from shared.repositories.conversation_aggregates import (
    BOT_ATTRIBUTES,
    BOT_SHARDS,
    ConversationState,
    ResolutionRaced,
    bot_shard_of,
)
from shared.repositories.conversations import ConversationRepository, IllegalTransition
from shared.repositories.customers import CustomerRepository

__all__ = [
    "BOT",
    "BOT_ATTRIBUTES",
    "BOT_INDEX",
    "BOT_SHARDS",
    "answered_before",
    "resolve_as_bot",
    "shard_of",
    "silent_since_answer",
]

BOT_INDEX = "bot-answered"
BOT = "bot"
shard_of = bot_shard_of


def silent_since_answer(state: ConversationState | Mapping[str, Any]) -> bool:
    """The bot answered and the customer has not written since (pure)."""
    return ConversationState.of(state).silent_since_bot_answer()


def answered_before(conversations: ConversationRepository, before: str) -> list[ConversationState]:
    """Conversations the bot answered before ``before`` (``conversation_id`` and
    ``bot_answered_at`` of their index entries): one query per shard."""
    found: list[ConversationState] = []
    for shard in range(BOT_SHARDS):
        found += conversations.bot_answered(f"bot#{shard}", before, limit=500)
    return found


def resolve_as_bot(
    conversations: ConversationRepository,
    customers: CustomerRepository,
    conversation_id: str,
    now: str,
    reason: str,
    eligible: Callable[[ConversationState], bool],
    answered_at: str | None = None,
    closed_by: str | None = None,
) -> list[tuple[str, BaseModel]]:
    """Resolve the conversation as ``bot`` when ``eligible(state)``; the events to publish.

    ``answered_at`` (the sweep) is the automated answer the index entry was for: a newer
    answer since leaves everything as it is. When the conversation is not eligible (any
    more) only its ``bot-answered`` entry is removed, so a stale entry is looked at once
    (routing sets a new one with its next automated answer). ``closed_by``: the customer's
    message that closed it, recorded with the resolution.
    """
    return _resolve(conversations, customers, conversation_id, now, reason, eligible, answered_at, closed_by)


def _resolve(
    conversations: ConversationRepository,
    customers: CustomerRepository,
    conversation_id: str,
    now: str,
    reason: str,
    eligible: Callable[[ConversationState], bool],
    answered_at: str | None,
    closed_by: str | None,
) -> list[tuple[str, BaseModel]]:
    from shared.services.desk import resolved_event  # noqa: PLC0415 - assignment imports this module's peers

    resolved: list[bool] = []

    def attempt(state: ConversationState) -> bool:
        resolved.clear()
        if answered_at is not None and state.bot_answered_at != answered_at:
            return True
        if not eligible(state):
            return conversations.stop_bot_clock(state) if state.on_bot_clock else True
        if state.status != BOT:
            raise IllegalTransition(f"the conversation is {state.status}, not answered by the bot")
        profile = customers.profile(state.customer_id)
        resolved.append(True)
        return conversations.resolve_by_bot(
            state,
            now,
            reason,
            open_conversation=profile.open_conversation_id if profile is not None else None,
            closed_by=closed_by,
        )

    for _ in range(3):
        try:
            state = conversations.apply(conversation_id, attempt)
        except ResolutionRaced:
            continue
        return [resolved_event(state, now, BOT)] if resolved else []
    return []
