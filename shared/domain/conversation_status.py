"""The life of a conversation: its statuses, how they change, and the rules that go with them.

Status: ``open`` -> ``bot`` | ``queued``; ``queued`` -> ``assigned`` (an agent was chosen)
-> ``active`` (the agent accepted); an agent's conversation may go back to a queue or to
another agent; any -> ``resolved``; a resolved conversation reopens (``open``) when the
customer writes within the reopen window. A conversation whose thread was merged into
another one is ``merged``.

Pure: no I/O. The repositories write what these rules decide.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum

from shared.contracts.events import format_timestamp

NEW, OPEN, BOT, QUEUED, ASSIGNED, ACTIVE, RESOLVED, MERGED = (
    "new",
    "open",
    "bot",
    "queued",
    "assigned",
    "active",
    "resolved",
    "merged",
)
#: Conversations that are not finished: a new message joins them.
UNFINISHED = (OPEN, BOT, QUEUED, ASSIGNED, ACTIVE)
#: Every status a change may lead to from each status (``new``: before the first message).
TRANSITIONS: dict[str, frozenset[str]] = {
    NEW: frozenset({OPEN}),
    OPEN: frozenset({BOT, QUEUED, RESOLVED}),
    BOT: frozenset({QUEUED, RESOLVED}),
    QUEUED: frozenset({QUEUED, ASSIGNED, ACTIVE, RESOLVED}),
    ASSIGNED: frozenset({QUEUED, ASSIGNED, ACTIVE, RESOLVED}),
    ACTIVE: frozenset({QUEUED, ASSIGNED, ACTIVE, RESOLVED}),
    RESOLVED: frozenset({OPEN}),
}
#: Order of an outbound message's delivery statuses (as the outbox's): never back from
#: ``delivered``/``read`` to ``sent``; ``failed`` is final.
MESSAGE_STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}


class IllegalTransition(Exception):
    """The conversation is not in a state that allows the change (HTTP 409 with ``reason``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def allowed(from_status: str, to_status: str) -> bool:
    """Whether a conversation in ``from_status`` may change to ``to_status``."""
    return to_status in TRANSITIONS.get(from_status, frozenset())


def is_unfinished(status: str | None) -> bool:
    """A new message of the customer joins a conversation in ``status``."""
    return status in UNFINISHED


def reopens(status: str | None, resolved_at: str | None, now: str, window_hours: int) -> bool:
    """A message at ``now`` reopens the conversation: resolved within the last ``window_hours``."""
    if status != RESOLVED:
        return False
    cutoff = format_timestamp(datetime.fromisoformat(now) - timedelta(hours=window_hours))
    return (resolved_at or "") >= cutoff


def starts_reply_wait(status: str | None, waiting_since: str | None, queue: str | None) -> bool:
    """An inbound message makes the customer wait for the accepted agent's reply (the SLA clock)."""
    return status == ACTIVE and not waiting_since and bool(queue)


def ends_reply_wait(author: str, wait_kind: str | None) -> bool:
    """An outbound message answers the customer who waited for the agent's reply."""
    return author.startswith("agent:") and wait_kind == "reply"


def earlier_delivery_statuses(status: str) -> list[str]:
    """The delivery statuses an outbound message may move on from to ``status``."""
    if status not in MESSAGE_STATUS_RANK:
        raise ValueError(f"unknown delivery status {status!r}")
    rank = MESSAGE_STATUS_RANK[status]
    return [name for name, value in MESSAGE_STATUS_RANK.items() if value < rank]


class SurveyReply(Enum):
    """What a customer's reply that looks like a survey score is."""

    #: The answer to the pending survey: stored, and the question is no longer pending.
    ANSWER = "answer"
    #: This very message answered it before (a redelivery).
    REDELIVERED = "redelivered"
    #: No such survey is pending: the message is an ordinary one.
    NOT_PENDING = "not_pending"


def survey_reply(
    *,
    status: str | None,
    resolved_at: str | None,
    pending: dict[str, object] | None,
    answered: dict[str, object] | None,
    survey: str,
    message_id: str,
) -> SurveyReply:
    """Whether a reply answers ``survey``: asked for the conversation's latest resolution
    (``pending``), still resolved, and not answered yet (``answered``: the stored answer)."""
    answered = answered or {}
    pending = pending or {}
    if answered.get("message_id") == message_id:
        return SurveyReply.REDELIVERED
    if (
        status != RESOLVED
        or pending.get("survey") != survey
        or pending.get("resolved_at") != resolved_at
        or answered
    ):
        return SurveyReply.NOT_PENDING
    return SurveyReply.ANSWER
