"""Typed results and views of the conversation's writes on the inbound path.

The services on the inbound path (recording in :mod:`shared.services.profiles.inbound`, the
routing decision in ``functions/routing/router.py``) get these instead of raw item dicts:
every write on that path is an explicit method of the repository
(:meth:`ConversationMessages.append_inbound`, :meth:`ConversationMessages.routed_mark`) and
what it learned comes back typed.

The routing marker lives on META (see :mod:`shared.repositories.conversations`): recording
numbers a conversation's inbound messages (``in_seq`` on META, the number stored with
the message's ``SEEN`` item and carried by ``message.recorded``), and routing records the
number of the message it decided on (``routed_seq``) with the decision, in the same
conditional update. A message whose number is not above ``routed_seq`` was routed before
(or a later message of the conversation was routed since): it is not routed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: META attributes of the routing marker.
ROUTED_SEQ = "routed_seq"
ROUTED_QUIET = "routed_quiet"
INBOUND_SEQ = "in_seq"


@dataclass(frozen=True)
class InboundRecorded:
    """What appending an inbound message did (:meth:`ConversationMessages.append_inbound`)."""

    #: False when the message had been recorded before (a redelivery).
    written: bool
    #: The conversation holding the message: the one asked for, or - when an earlier attempt
    #: claimed the message for another one and crashed before writing it - that one.
    conversation_id: str
    #: The message's number among the conversation's inbound messages (1, 2, ...); None when
    #: unknown (recorded before numbering existed).
    sequence: int | None = None
    #: The previous inbound message came on another channel.
    channel_switch: bool = False
    #: The conversation was resolved and this message reopened it.
    reopened: bool = False


@dataclass(frozen=True)
class RoutingMark:
    """The routing marker on a conversation's META item: which message was routed last."""

    #: Number of the latest routed message (None: nothing routed since numbering began).
    sequence: int | None
    #: That message's id (the recorded decision's ``message_id``).
    message_id: str | None
    #: The reply to that message was left out (the customer was acknowledged before).
    quiet: bool

    @classmethod
    def of(cls, meta: dict[str, Any]) -> RoutingMark:
        raw = meta.get(ROUTED_SEQ)
        routing = meta.get("routing") or {}
        return cls(
            sequence=int(raw) if raw is not None else None,
            message_id=routing.get("message_id"),
            quiet=bool(meta.get(ROUTED_QUIET)),
        )

    def covers(self, sequence: int) -> bool:
        """Message ``sequence`` was routed before, or a later message was routed since."""
        return self.sequence is not None and sequence <= self.sequence

    def updates(self, sequence: int, quiet: bool) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The META attributes to set and to remove recording that message ``sequence`` was
        routed (``quiet``: its reply was left out; stored only when true, META stays small)."""
        if quiet:
            return {ROUTED_SEQ: sequence, ROUTED_QUIET: True}, ()
        return {ROUTED_SEQ: sequence}, (ROUTED_QUIET,) if self.quiet else ()
