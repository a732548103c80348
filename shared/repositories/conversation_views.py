"""The API's read model of a conversation, made from the ``conversations`` table's items."""

from __future__ import annotations

from typing import Any

from shared.contracts.models import (
    ChannelSwitch,
    Conversation,
    ConversationSummary,
    Handover,
    Message,
    Note,
    Transition,
)
from shared.domain.conversation_status import NEW, OPEN
from shared.repositories.conversation_aggregates import DECISION, joined_decision, stored_routing
from shared.repositories.conversation_keys import (
    HANDOVER,
    HISTORY_PREFIX,
    MESSAGE_PREFIX,
    META,
    NOTE_PREFIX,
    SWITCH_PREFIX,
)


def summary_of(meta: dict[str, Any]) -> ConversationSummary:
    routing = meta.get("routing")
    return ConversationSummary(
        conversation_id=meta["conversation_id"],
        customer_id=meta["customer_id"],
        status=meta["status"],
        opened_at=meta["opened_at"],
        last_message_at=meta.get("last_message_at"),
        last_channel=meta.get("last_channel"),
        channels=meta.get("channels", []),
        message_count=meta.get("message_count", 0),
        routing=stored_routing(routing) if routing else None,
        queue=meta.get("queue"),
        priority=meta.get("priority", 0),
        assigned_agent=meta.get("assigned_agent"),
        waiting_since=meta.get("waiting_since"),
        wait_kind=meta.get("wait_kind"),
        resolved_at=meta.get("resolved_at"),
        previous_conversation_id=meta.get("previous_conversation_id"),
    )


def conversation_of(items: list[dict[str, Any]]) -> Conversation | None:
    """The conversation of its partition's items (None without a META item)."""
    meta = next((i for i in items if i["sk"] == META), None)
    if meta is None:
        return None
    handover = next((fields(i) for i in items if i["sk"] == HANDOVER), None) or meta.get("handover")
    summary = summary_of(meta).model_dump()
    if meta.get("routing"):
        # The decision whole: its details (the assistant's answer, citations, usage) are kept
        # beside META, on the ``DECISION`` item.
        details = next((i for i in items if i["sk"] == DECISION), None)
        summary["routing"] = joined_decision(meta["routing"], details)
    return Conversation(
        **summary,
        messages=[message_of(i) for i in items if i["sk"].startswith(MESSAGE_PREFIX)],
        channel_switches=[ChannelSwitch(**s) for s in switches_of(meta, items)],
        reply_to=meta.get("reply_to"),
        handover=Handover(**handover) if handover else None,
        transitions=[Transition(**t) for t in history_of(meta, items)],
        notes=[note_of(i) for i in items if i["sk"].startswith(NOTE_PREFIX)],
        resolution=meta.get("resolution"),
        ces=meta.get("ces"),
        csat=meta.get("csat"),
    )


def opening(meta: dict[str, Any]) -> dict[str, Any]:
    """The first transition (``new`` -> ``open``): everything it says is on META already."""
    previous = meta.get("previous_conversation_id")
    return Transition(
        at=meta["opened_at"],
        from_status=NEW,
        to_status=OPEN,
        by="customer",
        reason=f"first message on {meta.get('opened_on')}" + (f" (follows {previous})" if previous else ""),
    ).model_dump(exclude_none=True)


def history_of(meta: dict[str, Any], items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every transition of the conversation, oldest first, from META and its ``HIST#`` items.

    A META item written by an earlier version holds the list itself (opening included).
    """
    recorded = [fields(i) for i in items if i["sk"].startswith(HISTORY_PREFIX)]
    return [*(meta.get("transitions") or [opening(meta)]), *recorded]


def switches_of(meta: dict[str, Any], items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every channel switch, from META (an earlier version's list) and the ``CHANNEL#`` items."""
    return [
        *meta.get("channel_switches", []),
        *(fields(i) for i in items if i["sk"].startswith(SWITCH_PREFIX)),
    ]


def fields(item: dict[str, Any]) -> dict[str, Any]:
    """An item's attributes without its key."""
    return {k: v for k, v in item.items() if k not in ("pk", "sk")}


def note_of(item: dict[str, Any]) -> Note:
    return Note(note_id=item["note_id"], author=item["author"], text=item["text"], at=item["at"])


def message_of(item: dict[str, Any]) -> Message:
    return Message(
        message_id=item["message_id"],
        direction=item["direction"],
        channel=item["channel"],
        text=item.get("text", ""),
        timestamp=item["timestamp"],
        author=item.get("author"),
        status=item.get("status"),
        attachments=item.get("attachments", []),
        citations=item.get("citations", []),
        reaction=(item.get("reaction") or {}).get("emoji"),
    )
