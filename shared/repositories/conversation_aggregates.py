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

from shared.contracts.events import AssistantFacts, ConversationFacts
from shared.contracts.models import RoutingDecision
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
    #: The conversation as the recording left it (its version included): what routing decides
    #: on. None when nothing was written (a redelivery).
    conversation: ConversationFacts | None = None


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

    @classmethod
    def of_facts(cls, facts: ConversationFacts) -> RoutingMark:
        return cls(
            sequence=facts.routed_seq,
            message_id=facts.routing.message_id if facts.routing is not None else None,
            quiet=facts.routed_quiet,
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


# --------------------------------------------------------------------------- #
# Conversation facts (routing's view of META) and the routing decision's layout
# --------------------------------------------------------------------------- #
#: META attribute of the time the customer was last acknowledged (epoch seconds).
ACKNOWLEDGED_AT = "ack_at"
#: META attribute of the kind of automatic mail the conversation holds.
AUTOMATED_MAIL = "automated_mail"
#: The routing decision's fields that stay off META (kept on the ``DECISION`` item): the
#: assistant's answer, its citations and usage grow with the answer, and no later message
#: needs them.
DECISION_DETAILS = (
    "answer",
    "citations",
    "confidence",
    "assistant_model",
    "input_tokens",
    "output_tokens",
    "cost_usd",
)
#: On META's ``routing``: the decision's details are on the ``DECISION`` item / it cited articles.
DETAILED = "detailed"
CITED = "cited"
#: The item holding the latest detailed decision whole (sorts before META: read with the
#: conversation's hand-over and history).
DECISION = "DECISION"
#: How much of a detailed decision's reason stays on META (the whole reason is on ``DECISION``).
SHORT_REASON = 80
#: META attributes copied to the facts as they are (same names).
_PLAIN_FACTS = (
    "status",
    "queue",
    "queue_rank",
    "waiting_since",
    "assigned_agent",
    "last_inbound_channel",
    "last_inbound_at",
    "previous_conversation_id",
    "closed_by",
    "resolved_at",
    "reopened_at",
    "bot_answered_in",
    "bot_answered_at",
    "bot_last_inbound",
)
#: The assistant's state on META: only what its next answer needs.
_ASSISTANT_FIELDS = ("unhelpful", "terms", "answers")


def recorded_facts(meta: dict[str, Any]) -> ConversationFacts | None:
    """The facts of META as a recording left it, for ``message.recorded``; None for a META of an
    earlier layout (its list of routed messages grows: routing reads it instead)."""
    return None if meta.get("routed_messages") else conversation_facts(meta)


def conversation_facts(meta: dict[str, Any]) -> ConversationFacts:
    """Routing's typed view of a META item."""
    raw_routing = meta.get("routing")
    previous = meta.get("previous_routing")
    routing = stored_routing(raw_routing) if isinstance(raw_routing, dict) else None
    assistant = meta.get("assistant")
    ack = meta.get(ACKNOWLEDGED_AT)
    seq = meta.get(ROUTED_SEQ)
    return ConversationFacts(
        conversation_id=str(meta["conversation_id"]),
        customer_id=str(meta["customer_id"]),
        version=int(meta["version"]),
        priority=int(meta.get("priority", 0)),
        channels=[str(c) for c in meta.get("channels") or ()],
        routing=routing,
        routing_cited=routing_cited(raw_routing if isinstance(raw_routing, dict) else None),
        routing_detailed=is_detailed(raw_routing if isinstance(raw_routing, dict) else None),
        routed_messages=[str(m) for m in meta.get("routed_messages") or ()],
        previous_routing=stored_routing(previous) if isinstance(previous, dict) else None,
        routing_waited=bool(meta.get("routing_waited")),
        routed_seq=int(seq) if seq is not None else None,
        routed_quiet=bool(meta.get(ROUTED_QUIET)),
        acknowledged_at=int(ack) if ack is not None else None,
        automated_mail=meta.get(AUTOMATED_MAIL),
        assistant=AssistantFacts(
            unhelpful=int(assistant.get("unhelpful", 0)),
            terms=[str(t) for t in assistant.get("terms") or ()],
            answers=int(assistant.get("answers", 0)),
        )
        if isinstance(assistant, dict)
        else None,
        **{name: meta[name] for name in _PLAIN_FACTS if meta.get(name) is not None},
    )


def facts_item(facts: ConversationFacts) -> dict[str, Any]:
    """The META item as ``facts`` describe it (the attributes routing reads and writes on)."""
    item: dict[str, Any] = {
        name: getattr(facts, name) for name in _PLAIN_FACTS if getattr(facts, name) is not None
    }
    item.update(
        conversation_id=facts.conversation_id,
        customer_id=facts.customer_id,
        version=facts.version,
        channels=list(facts.channels),
    )
    if facts.priority:
        item["priority"] = facts.priority
    if facts.routing is not None:
        item["routing"] = meta_routing(facts.routing, cited=facts.routing_cited)
        if facts.routing_detailed:
            item["routing"][DETAILED] = True
    if facts.routed_seq is not None:
        item[ROUTED_SEQ] = facts.routed_seq
    if facts.routed_quiet:
        item[ROUTED_QUIET] = True
    if facts.acknowledged_at is not None:
        item[ACKNOWLEDGED_AT] = facts.acknowledged_at
    if facts.automated_mail is not None:
        item[AUTOMATED_MAIL] = facts.automated_mail
    if facts.assistant is not None:
        item["assistant"] = facts.assistant.model_dump()
    return item


def assistant_item(state: dict[str, Any]) -> dict[str, Any]:
    """The assistant's state as META keeps it (what its next answer needs, nothing more)."""
    return {k: state[k] for k in _ASSISTANT_FIELDS if k in state}


def has_details(decision: RoutingDecision) -> bool:
    """The decision is kept whole on the ``DECISION`` item, and META keeps it without its details:
    the assistant took part (its answer and citations, its confidence, the model and its usage;
    its hand-over reason may quote the model). A template's answer stays on META: a redelivery
    sends it again without a second read. Measured (``bench.cost``): keeping the details of the
    assistant's hand-overs on META too puts META over 1 KB for them (+0.4 WRU per message)."""
    return any(getattr(decision, name) for name in DECISION_DETAILS[1:])


def meta_routing(decision: RoutingDecision, cited: bool = False) -> dict[str, Any]:
    """The decision as META keeps it: without its details (on the ``DECISION`` item) when it
    has any; defaults left out (META is rewritten with every message and stays under 1 KB)."""
    dumped = decision.model_dump(exclude_defaults=True)
    if not (has_details(decision) or cited):
        return dumped
    kept = {k: v for k, v in dumped.items() if k not in DECISION_DETAILS}
    if len(decision.reason) > SHORT_REASON:
        kept["reason"] = decision.reason[: SHORT_REASON - 3] + "..."
    kept[DETAILED] = True
    if cited or decision.citations:
        kept[CITED] = True
    return kept


def stored_routing(raw: dict[str, Any]) -> RoutingDecision:
    """The decision as stored on META (without its details when ``detailed``)."""
    return RoutingDecision(**{k: v for k, v in raw.items() if k not in (DETAILED, CITED)})


def is_detailed(raw: dict[str, Any] | None) -> bool:
    """META's ``routing`` leaves the decision's details to the ``DECISION`` item."""
    return bool(raw and raw.get(DETAILED))


def routing_cited(raw: dict[str, Any] | None) -> bool:
    """META's ``routing`` was an answer citing knowledge-base articles."""
    return bool(raw and (raw.get(CITED) or raw.get("citations")))


def joined_decision(raw: dict[str, Any], details: dict[str, Any] | None) -> RoutingDecision:
    """The whole decision: META's ``routing`` with the ``DECISION`` item's details (when that
    item holds the same message's decision)."""
    decision = stored_routing(raw)
    if details and details.get("message_id") == decision.message_id:
        return RoutingDecision(**{k: v for k, v in details.items() if k not in ("pk", "sk")})
    return decision


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
    #: The kind of automatic mail (RFC 3834) the conversation's latest message was, if it was.
    automated_mail: str | None = None

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
            automated_mail=_optional_str(item.get("automated_mail")),
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


class ResolutionRaced(Exception):
    """A resolution lost a race with an item written in its transaction (the agent's load was
    released elsewhere, the customer's open conversation changed): read the state again and redo."""
