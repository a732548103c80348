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

from shared.contracts.events import AssistantFacts, ConversationFacts
from shared.contracts.models import RoutingDecision

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
