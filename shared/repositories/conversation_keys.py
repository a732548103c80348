"""Keys, index names and shared attribute names of the ``conversations`` table's items.

The item layout itself is described in :mod:`shared.repositories.conversations`.
"""

from __future__ import annotations

from typing import Any

from shared.contracts.models import Transition
from shared.repositories.dynamo import serialise

META = "META"
SEEN = "SEEN"
#: Reopen window of :meth:`ConversationRepository.open_for` when the caller gives none (the
#: packaged routing rules' ``reopen_window_hours``).
DEFAULT_REOPEN_WINDOW_HOURS = 72
HANDOVER = "HANDOVER"
HISTORY_PREFIX = "HIST#"
SWITCH_PREFIX = "CHANNEL#"
MESSAGE_PREFIX = "MSG#"
NOTE_PREFIX = "NOTE#"
BY_CUSTOMER_INDEX = "by-customer"
QUEUED_INDEX = "queued"
WAITING_INDEX = "waiting"
MAX_ATTEMPTS = 5
#: Attributes of the ``waiting`` index and the SLA bookkeeping that goes with it.
WAIT_ATTRIBUTES = ("wait_queue", "waiting_since", "wait_kind", "stalled_for")
QUEUE_ATTRIBUTES = ("queued_in", "queue_rank")
#: Counts a reopening on META (for ``conversation.resolved``; the history holds the details).
REOPEN_COUNT = "reopen_count = if_not_exists(reopen_count, :zero) + :one"


def conversation_pk(conversation_id: str) -> str:
    return f"CONV#{conversation_id}"


def meta_key(conversation_id: str) -> dict[str, str]:
    return {"pk": conversation_pk(conversation_id), "sk": META}


def seen_pk(message_id: str) -> str:
    return f"SEEN#{message_id}"


def seen_key(message_id: str) -> dict[str, str]:
    return {"pk": seen_pk(message_id), "sk": SEEN}


def message_sk(timestamp: str, message_id: str) -> str:
    return f"{MESSAGE_PREFIX}{timestamp}#{message_id}"


def history_sk(version: int) -> str:
    """Sort key of the transition made by the META write that set ``version``."""
    return f"{HISTORY_PREFIX}{version:010d}"


def switch_sk(version: int) -> str:
    return f"{SWITCH_PREFIX}{version:010d}"


def conversation_id_of(item: dict[str, Any]) -> str:
    """The conversation of an index item (``conversation_id``, else from its key)."""
    return str(item.get("conversation_id") or str(item["pk"]).removeprefix("CONV#"))


def queue_rank(priority: int, waiting_since: str) -> str:
    """Sort key in a queue: higher priority first, then longest waiting."""
    return f"{9 - max(0, min(priority, 9))}#{waiting_since}"


def put_action(table_name: str, item: dict[str, Any]) -> dict[str, Any]:
    """Transaction item: an unconditional put."""
    return {"Put": {"TableName": table_name, "Item": serialise(item)}}


def history_put(
    table_name: str, conversation_id: str, version: int, transition: Transition
) -> dict[str, Any]:
    """Transaction item: ``transition``, made by the META write that sets ``version``.

    Keyed by that version: written only with that (version-guarded) write, so a
    repeated or lost race never leaves a second or a stray entry.
    """
    return put_action(
        table_name,
        {
            "pk": conversation_pk(conversation_id),
            "sk": history_sk(version),
            **transition.model_dump(exclude_none=True),
        },
    )
