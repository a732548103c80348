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

import zlib
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from shared.contracts.models import Transition
from shared.repositories.conversations import (
    QUEUE_ATTRIBUTES,
    WAIT_ATTRIBUTES,
    Change,
    ConversationRepository,
    IllegalTransition,
)
from shared.repositories.customers import CustomerRepository

#: Partitions of the ``bot-answered`` index (write sharding: no single hot partition).
BOT_SHARDS = 4
BOT_INDEX = "bot-answered"
#: ``bot_answered_in`` / ``bot_answered_at`` are the index keys; ``bot_last_inbound`` is the
#: customer's latest message when the bot answered (a later one means they wrote again).
BOT_ATTRIBUTES = ("bot_answered_in", "bot_answered_at", "bot_last_inbound")
BOT = "bot"


def shard_of(conversation_id: str) -> str:
    return f"bot#{zlib.crc32(conversation_id.encode()) % BOT_SHARDS}"


def answered_fields(meta: dict[str, Any], at: str) -> dict[str, Any]:
    """META attributes that start the bot-resolution clock of an automated answer at ``at``."""
    return {
        "bot_answered_in": shard_of(meta["conversation_id"]),
        "bot_answered_at": at,
        "bot_last_inbound": meta.get("last_inbound_at") or "",
    }


def silent_since_answer(meta: dict[str, Any]) -> bool:
    """The bot answered and the customer has not written since (pure)."""
    return (
        meta.get("status") == BOT
        and bool(meta.get("bot_answered_at"))
        and (meta.get("last_inbound_at") or "") == meta.get("bot_last_inbound", "")
    )


def answered_before(conversations: ConversationRepository, before: str) -> list[dict[str, Any]]:
    """Index entries (keys only) of conversations the bot answered before ``before``: one query
    per shard."""
    found: list[dict[str, Any]] = []
    for shard in range(BOT_SHARDS):
        found += conversations.bot_answered_before(f"bot#{shard}", before, limit=500)
    return found


def resolution_change(
    meta: dict[str, Any],
    customers: CustomerRepository,
    conversations: ConversationRepository,
    now: str,
    reason: str,
) -> Change:
    """The change that resolves ``meta``'s conversation as ``bot`` (status must be ``bot``)."""
    if meta.get("status") != BOT:
        raise IllegalTransition(f"the conversation is {meta.get('status')}, not answered by the bot")
    profile = customers.get_profile(meta["customer_id"]) or {}
    also: list[dict[str, Any]] = []
    if profile.get("open_conversation_id") == meta["conversation_id"]:
        also.append(conversations.close_for_customer(meta["customer_id"], meta["conversation_id"]))
    return Change(
        set={"status": "resolved", "resolved_at": now, "resolution": reason, "resolved_by": BOT},
        remove=(*QUEUE_ATTRIBUTES, *WAIT_ATTRIBUTES, *BOT_ATTRIBUTES),
        transition=Transition(at=now, from_status=BOT, to_status="resolved", by=BOT, reason=reason),
        also=also,
        on_conflict=lambda _: _Retry(),
    )


class _Retry(Exception):
    pass


def resolve_by_bot(
    conversations: ConversationRepository,
    customers: CustomerRepository,
    conversation_id: str,
    now: str,
    reason: str,
    eligible: Callable[[dict[str, Any]], bool],
    answered_at: str | None = None,
    extra: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> list[tuple[str, BaseModel]]:
    """Resolve the conversation as ``bot`` when ``eligible(meta)``; the events to publish.

    ``answered_at`` (the sweep) is the automated answer the index entry was for: a newer
    answer since leaves everything as it is. When the conversation is not eligible (any
    more) only its ``bot-answered`` entry is removed, so a stale entry is looked at once
    (routing sets a new one with its next automated answer). ``extra(meta)`` adds
    attributes to the resolution.
    """
    from shared.services.desk import resolved_event  # noqa: PLC0415 - assignment imports this module's peers

    def decide(meta: dict[str, Any]) -> Change:
        if answered_at is not None and meta.get("bot_answered_at") != answered_at:
            return Change(noop=True)
        if not eligible(meta):
            if any(attribute in meta for attribute in BOT_ATTRIBUTES):
                return Change(remove=BOT_ATTRIBUTES)
            return Change(noop=True)
        change = resolution_change(meta, customers, conversations, now, reason)
        if extra is not None:
            change.set.update(extra(meta))
        return change

    for _ in range(3):
        try:
            meta, change = conversations.update_meta(conversation_id, decide)
        except _Retry:
            continue
        if change.noop or change.set.get("status") != "resolved":
            return []
        return [resolved_event(meta, now, BOT)]
    return []
