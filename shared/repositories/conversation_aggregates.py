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

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from shared.domain.routing_rules import SURVEYS

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


# =========================================================================================== #
# The conversation's state (its META item), typed: what the desk, bot resolution, the SLA
# sweep, the agent API and notify read of a conversation. The writes that change it are the
# methods of :class:`shared.repositories.conversations.ConversationRepository` named after
# what they do (``assign``, ``accept``, ``transfer_to_queue``, ``overflow``, ``resolve``,
# ``resolve_by_bot``, ``stop_bot_clock``, ``mark_stalled``); each takes the state it decided
# on (its ``version`` guards the write) and typed values, never attribute names.
# =========================================================================================== #

#: Partitions of the ``bot-answered`` index (write sharding: no single hot partition).
BOT_SHARDS = 4
#: ``bot_answered_in`` / ``bot_answered_at`` are the keys of the ``bot-answered`` index;
#: ``bot_last_inbound`` is the customer's latest message when the bot answered (a later one
#: means they wrote again).
BOT_ATTRIBUTES = ("bot_answered_in", "bot_answered_at", "bot_last_inbound")

_NOTHING: Mapping[str, Any] = MappingProxyType({})


def bot_shard_of(conversation_id: str) -> str:
    """The ``bot-answered`` index partition of a conversation (``bot#<shard>``)."""
    return f"bot#{zlib.crc32(conversation_id.encode()) % BOT_SHARDS}"


def bot_clock_fields(state: ConversationState, at: str) -> dict[str, Any]:
    """META attributes that start the bot-resolution clock of an automated answer at ``at``."""
    return {
        "bot_answered_in": bot_shard_of(state.conversation_id),
        "bot_answered_at": at,
        "bot_last_inbound": state.last_inbound_at or "",
    }


def _frozen(value: Any) -> Mapping[str, Any]:
    return MappingProxyType(dict(value)) if isinstance(value, Mapping) else _NOTHING


def _optional_str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


@dataclass(frozen=True)
class ConversationState:
    """A conversation's META item (or an index item projecting part of it), typed and immutable.

    Built by :meth:`of`, which also reads the layouts of earlier versions (the
    ``transitions``, ``channel_switches`` and ``handover`` they kept inside META). ``version`` is
    the optimistic lock: every write of the repository that takes a state is conditional on it.
    """

    conversation_id: str
    customer_id: str = ""
    status: str = "open"
    version: int = 0
    opened_at: str = ""
    opened_on: str | None = None
    previous_conversation_id: str | None = None
    #: The queue the conversation was (last) put in, and its priority there.
    queue: str | None = None
    priority: int = 0
    #: Present while it waits in ``queue`` for an agent (the ``queued`` index).
    queued_in: str | None = None
    queue_rank: str | None = None
    assigned_agent: str | None = None
    assigned_at: str | None = None
    accepted_at: str | None = None
    #: The customer waits for us since (the ``waiting`` index): ``wait_kind`` agent or reply.
    waiting_since: str | None = None
    wait_kind: str | None = None
    #: The wait (its ``waiting_since``) reported stalled by the SLA sweep.
    stalled_for: str | None = None
    resolved_at: str | None = None
    resolution: str | None = None
    resolved_by: str | None = None
    #: The latest routing decision (``RoutingDecision`` fields) and the one before it.
    routing: Mapping[str, Any] = field(default_factory=lambda: _NOTHING)
    previous_routing: Mapping[str, Any] = field(default_factory=lambda: _NOTHING)
    channels: tuple[str, ...] = ()
    #: Channel switches and reopenings, those an earlier version listed on META included.
    switch_count: int = 0
    reopen_count: int = 0
    last_inbound_at: str | None = None
    last_inbound_channel: str | None = None
    #: The identity replies go to (``Identity`` fields), when the conversation keeps one.
    reply_to: Mapping[str, Any] | None = None
    #: The bot-resolution clock (``bot-answered`` index): when the bot answered, and the
    #: customer's latest message then; ``on_bot_clock``: any of its attributes is stored.
    bot_answered_at: str | None = None
    bot_last_inbound: str = ""
    on_bot_clock: bool = False
    #: The customer's message that closed the conversation the bot answered.
    closed_by: str | None = None
    #: A hand-over context an earlier version kept inside META (now the ``HANDOVER`` item).
    legacy_handover: Mapping[str, Any] | None = None
    #: Proactive actions (ids) taken on the conversation.
    proactive_actions: tuple[str, ...] = ()
    #: Merged into another conversation (status ``merged``): that one.
    merged_into: str | None = None
    #: The survey asked after the resolution (``{survey, resolved_at}``), and the answers
    #: recorded (survey -> ``{message_id, score, ...}``).
    survey_pending: Mapping[str, Any] | None = None
    survey_answers: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: _NOTHING)

    @classmethod
    def of(cls, item: Mapping[str, Any] | ConversationState) -> ConversationState:
        """The state of a META item (or of an index item: the attributes it projects); a state
        is returned as it is."""
        if isinstance(item, ConversationState):
            return item
        conversation_id = item.get("conversation_id") or str(item.get("pk", "")).removeprefix("CONV#")
        transitions = item.get("transitions") or ()
        legacy_reopens = sum(
            1 for t in transitions if isinstance(t, Mapping) and t.get("from_status") == "resolved"
        )
        handover = item.get("handover")
        reply_to = item.get("reply_to")
        pending = item.get("survey_pending")
        return cls(
            conversation_id=str(conversation_id),
            customer_id=str(item.get("customer_id") or ""),
            status=str(item.get("status") or "open"),
            version=int(item.get("version") or 0),
            opened_at=str(item.get("opened_at") or ""),
            opened_on=_optional_str(item.get("opened_on")),
            previous_conversation_id=_optional_str(item.get("previous_conversation_id")),
            queue=_optional_str(item.get("queue")),
            priority=int(item.get("priority") or 0),
            queued_in=_optional_str(item.get("queued_in")),
            queue_rank=_optional_str(item.get("queue_rank")),
            assigned_agent=_optional_str(item.get("assigned_agent")),
            assigned_at=_optional_str(item.get("assigned_at")),
            accepted_at=_optional_str(item.get("accepted_at")),
            waiting_since=_optional_str(item.get("waiting_since")),
            wait_kind=_optional_str(item.get("wait_kind")),
            stalled_for=_optional_str(item.get("stalled_for")),
            resolved_at=_optional_str(item.get("resolved_at")),
            resolution=_optional_str(item.get("resolution")),
            resolved_by=_optional_str(item.get("resolved_by")),
            routing=_frozen(item.get("routing")),
            previous_routing=_frozen(item.get("previous_routing")),
            channels=tuple(str(c) for c in item.get("channels") or ()),
            switch_count=int(item.get("switch_count") or 0) + len(item.get("channel_switches") or ()),
            reopen_count=int(item.get("reopen_count") or 0) + legacy_reopens,
            last_inbound_at=_optional_str(item.get("last_inbound_at")),
            last_inbound_channel=_optional_str(item.get("last_inbound_channel")),
            reply_to=_frozen(reply_to) if isinstance(reply_to, Mapping) else None,
            bot_answered_at=_optional_str(item.get("bot_answered_at")),
            bot_last_inbound=str(item.get("bot_last_inbound") or ""),
            on_bot_clock=any(attribute in item for attribute in BOT_ATTRIBUTES),
            closed_by=_optional_str(item.get("closed_by")),
            legacy_handover=_frozen(handover) if isinstance(handover, Mapping) and handover else None,
            proactive_actions=tuple(str(a) for a in item.get("proactive_actions") or ()),
            merged_into=_optional_str(item.get("merged_into")),
            survey_pending=_frozen(pending) if isinstance(pending, Mapping) else None,
            survey_answers=MappingProxyType(
                {s: _frozen(item[s]) for s in SURVEYS if isinstance(item.get(s), Mapping)}
            ),
        )

    # -- what the services ask ------------------------------------------------------------ #
    @property
    def intent(self) -> str | None:
        value = self.routing.get("intent")
        return str(value) if value else None

    @property
    def language(self) -> str | None:
        value = self.routing.get("language")
        return str(value) if value else None

    @property
    def with_agent(self) -> bool:
        """An agent holds it (assigned, or accepted and working on it)."""
        return self.status in ("assigned", "active") and self.assigned_agent is not None

    @property
    def escalated(self) -> bool:
        """Handed to humans at some point (routing escalated it, or it was queued)."""
        return bool(self.routing.get("escalated") or self.legacy_handover or self.queue)

    @property
    def bot_answered_before(self) -> bool:
        """The bot answered the customer in this conversation (its latest decision or the one before)."""
        return bool(self.routing.get("automated") or self.previous_routing.get("automated"))

    def silent_since_bot_answer(self) -> bool:
        """The bot answered and the customer has not written since."""
        return (
            self.status == "bot"
            and bool(self.bot_answered_at)
            and (self.last_inbound_at or "") == self.bot_last_inbound
        )

    def as_meta(self) -> dict[str, Any]:
        """The attributes of this view under their stored names, for callers still on the
        META-dict interface (the router, until it moves to typed facts); new code reads the
        fields."""
        stored = {
            "conversation_id": self.conversation_id,
            "customer_id": self.customer_id,
            "status": self.status,
            "version": self.version,
            "opened_at": self.opened_at,
            "opened_on": self.opened_on,
            "previous_conversation_id": self.previous_conversation_id,
            "queue": self.queue,
            "priority": self.priority,
            "queued_in": self.queued_in,
            "queue_rank": self.queue_rank,
            "assigned_agent": self.assigned_agent,
            "assigned_at": self.assigned_at,
            "accepted_at": self.accepted_at,
            "waiting_since": self.waiting_since,
            "wait_kind": self.wait_kind,
            "stalled_for": self.stalled_for,
            "resolved_at": self.resolved_at,
            "resolution": self.resolution,
            "resolved_by": self.resolved_by,
            "routing": dict(self.routing) or None,
            "previous_routing": dict(self.previous_routing) or None,
            "channels": list(self.channels),
            "switch_count": self.switch_count,
            "reopen_count": self.reopen_count,
            "last_inbound_at": self.last_inbound_at,
            "last_inbound_channel": self.last_inbound_channel,
            "reply_to": dict(self.reply_to) if self.reply_to is not None else None,
            "bot_answered_at": self.bot_answered_at,
            "closed_by": self.closed_by,
            "proactive_actions": list(self.proactive_actions) or None,
            "merged_into": self.merged_into,
            "survey_pending": dict(self.survey_pending) if self.survey_pending is not None else None,
            **{survey: dict(answer) for survey, answer in self.survey_answers.items()},
        }
        if self.on_bot_clock:
            stored["bot_last_inbound"] = self.bot_last_inbound
        return {k: v for k, v in stored.items() if v is not None}


class ResolutionRaced(Exception):
    """A resolution lost a race with an item written in its transaction (the agent's load was
    released elsewhere, the customer's open conversation changed): read the state again and redo."""
