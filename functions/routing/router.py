"""Routing applied: the decision for each recorded message (:mod:`functions.routing.decide`) recorded
on the conversation (through :class:`shared.services.desk.Desk`), and what to publish.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from functions.routing.assist import Assisted, assist
from functions.routing.decide import (
    Classification,
    Classifier,
    KeywordClassifier,
    acknowledged_before,
    customer_reply,
    decide,
    epoch_seconds,
    for_automatic_mail,
    intent_of,
    not_acknowledged,
    priority_of,
)
from functions.routing.orders import OrderLookup, OrderStatus
from shared.contracts.events import (
    ConversationFacts,
    FeedbackSubmitted,
    InboundFacts,
    MessageRecorded,
    NotificationRequested,
    format_timestamp,
)
from shared.contracts.models import Handover, RoutingDecision, Transition
from shared.contracts.names import FEEDBACK_SUBMITTED, NOTIFICATION_REQUESTED
from shared.domain.assistant import HELPFUL, UNHELPFUL, AssistantState
from shared.domain.handover import fit as fit_handover
from shared.domain.routing_rules import RoutingRules, load_rules
from shared.domain.surveys import is_closing
from shared.repositories.conversation_aggregates import (
    ConversationState,
    RoutingMark,
    assistant_item,
    facts_item,
    has_details,
)
from shared.repositories.conversations import ConversationNotFound, ConversationRepository, RoutingRecord
from shared.repositories.customers import CustomerRepository
from shared.services.bot_resolution import BOT, resolve_as_bot
from shared.services.desk import Desk, UnknownQueue

if TYPE_CHECKING:
    from shared.services.assistant import Assistant

#: An agent owns the conversation: new messages are for them, not for the bot.
WITH_AGENT = ("assigned", "active")
#: Message kinds that never change routing (the call itself, its end), and WhatsApp reactions and
#: system messages (recorded, never answered: there is no request in them).
NOT_ROUTED = frozenset({"call", "call_status", "reaction", "system"})

Events = list[tuple[str, BaseModel]]
#: The assistant's state of a conversation it has not answered yet (not stored).
_FRESH_ASSISTANT = assistant_item(AssistantState().to_item())


class Router:
    """Routes recorded messages: decision, conversation change, customer reply, assignment."""

    def __init__(
        self,
        conversations: ConversationRepository,
        customers: CustomerRepository,
        desk: Desk,
        rules: RoutingRules | None = None,
        classifier: Classifier | None = None,
        orders: OrderLookup | None = None,
        assistant: Assistant | None = None,
    ) -> None:
        #: Answers from the knowledge base and says when to hand over (functions/routing/assist.py).
        self.assistant = assistant
        self.conversations = conversations
        self.customers = customers
        self.desk = desk
        self.rules = rules or load_rules()
        self.classifier = classifier or KeywordClassifier(self.rules)
        self.orders = orders

    def route(self, event: MessageRecorded, now: str) -> Events:
        """Route ``event``; the events to publish (a notification, ``agent.assigned``).

        Idempotent: a redelivered event finds its decision recorded (the routing marker on
        META, ``routed_seq``, written in the same update as the decision; for an event without
        the message's number, the ``routed_at`` marker on its ``SEEN`` item), asks for the same
        notification (same id; notify sends it once) and only retries the assignment.
        """
        if event.kind in NOT_ROUTED:
            return []  # a call starting or ending says nothing to route on; its queue stays
        if event.survey is not None:
            return []  # the answer to the survey after the resolution: counted, not answered
        try:
            return self._route(event, now, fresh=False)
        except _Stale:
            return self._route(event, now, fresh=True)

    def _route(self, event: MessageRecorded, now: str, fresh: bool) -> Events:
        """Route on the conversation's facts as recording left them (carried by the event), else
        as read eventually consistent (``fresh`` False), or as read strongly consistent.

        The event's facts (or the cheap read) are enough for a new message: the decision is
        written with the condition that META is still at their version, and the routed marker
        with the condition that the message was not routed before. Every outcome that rests on
        the facts alone (a redelivery, an agent's conversation, the customer closing it) or a
        failed condition raises :class:`_Stale`, and the message is routed again on a strongly
        consistent read.
        """
        facts = self._facts(event, fresh)
        if facts is None:
            if not fresh:
                raise _Stale  # created a moment ago: the cheap read may not see it yet
            raise ConversationNotFound(event.conversation_id)
        again = self._routed_before(event, facts, now, fresh)
        if again is not None:
            return again
        if facts.status in WITH_AGENT:
            _require(fresh)
            return []  # the agent has the conversation; the message is theirs to answer
        if facts.status == BOT and is_closing(event.text, self.rules.bot_resolution.closing):
            _require(fresh)
            closed = self._closed_by_customer(event, now)
            return [*closed, *_helpful_closing(event, facts)] if closed else closed
        return self._route_new(event, facts, now, fresh)

    def _facts(self, event: MessageRecorded, fresh: bool) -> ConversationFacts | None:
        """The conversation as the event's facts describe it (recording just wrote it: not read
        again), else as read; ``fresh``: read strongly consistent (the facts may be out of date)."""
        facts = event.conversation
        if not fresh and facts is not None and facts.conversation_id == event.conversation_id:
            return facts
        return self.conversations.conversation_facts(event.conversation_id, consistent=fresh)

    def _routed_before(
        self, event: MessageRecorded, facts: ConversationFacts, now: str, fresh: bool = True
    ) -> Events | None:
        """What a redelivery of an already routed message publishes again; None for a new message.

        Not ``fresh``: the routed marker is not read - routing's write fails on it (or on the
        version of META) when the message was routed before, and the message is routed again
        on a fresh read, which finds it here.
        """
        if not fresh:
            if facts.closed_by == event.message_id or event.message_id in facts.routed_messages:
                raise _Stale
            return None
        if facts.closed_by == event.message_id and facts.status == "resolved":
            # The customer's thanks resolved it: say so again (the KPIs count it once).
            return [*self._resolved_again(event), *_helpful_closing(event, facts)]
        if event.sequence is not None:
            return self._routed_before_marked(event, event.sequence, facts, now)
        seen = self.conversations.routing_of(event.message_id) or {}
        # ``routed_messages``: the list an earlier version kept on META.
        if not (seen.get("routed_at") or event.message_id in facts.routed_messages):
            return None
        decision = self.conversations.whole_decision(event.conversation_id, facts)
        if decision is None or decision.message_id != event.message_id:
            return []  # routed before, and a later message has been routed since
        if seen.get("routed_at"):
            quiet = bool(seen.get("routing_quiet"))
            # The decision before this one is not kept: the KPI flags are set as if it
            # were the first (the KPI function counts a first response/hand-over once).
            return self._publishable(event, decision, quiet, now, previous=None, previous_known=False)
        previous = facts.previous_routing
        quiet = acknowledged_before(decision, previous, facts.routing_waited)
        return self._publishable(event, decision, quiet, now, previous=previous)

    def _resolved_again(self, event: MessageRecorded) -> Events:
        """The ``conversation.resolved`` event of a conversation the customer's thanks resolved
        (a rare redelivery: read whole, for the event's counters)."""
        from shared.services.desk import resolved_event  # noqa: PLC0415 - a rare redelivery

        state = self.conversations.state(event.conversation_id)
        if state is None or state.status != "resolved" or state.resolved_at is None:
            return []
        return [resolved_event(state, state.resolved_at, BOT)]

    def _routed_before_marked(
        self, event: MessageRecorded, sequence: int, facts: ConversationFacts, now: str
    ) -> Events | None:
        """:meth:`_routed_before` for message number ``sequence``: the routing marker on META says it."""
        mark = RoutingMark.of_facts(facts)
        if not mark.covers(sequence):
            return None
        decision = self.conversations.whole_decision(event.conversation_id, facts)
        if decision is None or mark.message_id != event.message_id:
            return []  # routed before, or a later message has been routed since
        # The decision before this one is not kept: the KPI flags are set as if it were the
        # first (the KPI function counts a first response/hand-over once).
        return self._publishable(event, decision, mark.quiet, now, previous=None, previous_known=False)

    def _route_new(
        self, event: MessageRecorded, facts: ConversationFacts, now: str, fresh: bool = True
    ) -> Events:
        """Decide, record the decision (and the hand-over) on the conversation, say what to publish."""
        profile = self._profile(event)
        decision = self._decide(event, profile, now)
        if event.automated:
            decision = for_automatic_mail(decision, event.automated)
        # Automatic mail gets no answer at all, the assistant's included.
        assisted = (
            assist(self.assistant, event, facts, decision)
            if self.assistant is not None and not event.automated
            else None
        )
        decision = assisted.decision if assisted is not None else decision
        silent = not decision.automated and not_acknowledged(self.rules, facts, event, now)
        waited = facts.status == "queued"
        built: dict[str, Handover] = {}

        def handover(current: ConversationFacts) -> Handover | None:
            """The hand-over context, built (and written) only when the conversation is handed
            over anew: a message to a conversation already waiting in that queue changes nothing
            of it, and reads no history."""
            if decision.automated or not _hands_over(current, decision):
                return None
            if "handover" not in built:
                built["handover"] = self.desk.handover(
                    event.customer_id, event.conversation_id, decision, profile, now, meta=facts_item(current)
                )
                if assisted is not None:
                    built["handover"] = built["handover"].model_copy(
                        update={
                            "handover_reason": decision.handover_reason,
                            "assistant_summary": assisted.summary,
                            "citations": list(assisted.citations),
                        }
                    )
                    built["handover"] = fit_handover(built["handover"])  # under 1 KB with the additions
            return built["handover"]

        def record(current: ConversationFacts) -> RoutingRecord | None:
            if current is not facts and not fresh:
                raise _Stale  # META moved since the facts: decide again on the current one
            return self._record(
                current,
                decision,
                handover(current),
                now,
                assisted,
                silent,
                event.automated,
                event.sequence,
            )

        if has_details(decision):
            # The assistant's answer, citations and usage: kept whole beside META, not on it.
            self.conversations.put_decision(event.conversation_id, decision)
        try:
            written = self.conversations.record_routing(facts, record, _RoutedMeanwhile)
        except _RoutedMeanwhile:
            _require(fresh)  # routed before: a fresh read finds the decision to publish again
            return []  # a concurrent redelivery routed it a moment ago and publishes
        if written is None:
            _require(fresh)
            return []
        quiet = acknowledged_before(decision, facts.routing, waited) or silent
        return self._publishable(
            event,
            decision,
            quiet,
            now,
            previous=facts.routing,
            profile=profile,
            written=written,
        )

    def _profile(self, event: MessageRecorded) -> dict[str, Any]:
        """What routing reads of the customer's profile: from the event (profile merge read it
        for this message), else (an event of an earlier version) from the table."""
        facts = event.customer
        if facts is None:
            return self.customers.get_profile(event.customer_id) or {}
        return {"display_name": facts.display_name, "tags": list(facts.tags)}

    def _decide(self, event: MessageRecorded, profile: dict[str, Any], now: str) -> RoutingDecision:
        classification = self.classifier.classify(event.text)
        # Past conversations matter only for a repeat contact on a recognised intent.
        history = (
            self.conversations.list_for_customer(event.customer_id, limit=20)
            if classification.intent is not None
            else []
        )
        priority = priority_of(
            self.rules,
            event.text,
            list(profile.get("tags", [])),
            classification.intent,
            history,
            now,
            event.conversation_id,
        )
        order = self._order(event, classification)
        return decide(
            self.rules, classification, event.message_id, now, priority, order, self.orders is not None
        )

    def _order(self, event: MessageRecorded, classification: Classification) -> OrderStatus | None:
        """The customer's latest order, looked up only for an order-status question."""
        intent = intent_of(self.rules, classification)
        if intent is None or intent.action != "order_status" or classification.escalate or not self.orders:
            return None
        return self.orders.latest_order(event.customer_id)

    def _closed_by_customer(self, event: MessageRecorded, now: str) -> Events:
        """The customer closed a conversation the bot answered ("thanks, that's all"): resolved
        by the bot at once, without a reply (docs/kpis.md)."""
        return resolve_as_bot(
            self.conversations,
            self.customers,
            event.conversation_id,
            now,
            reason="the customer closed the conversation the bot answered",
            # ``closed_by`` keeps a redelivery of the closing message from closing twice.
            eligible=lambda state: state.status == BOT and state.closed_by != event.message_id,
            closed_by=event.message_id,
        )

    def _record(
        self,
        facts: ConversationFacts,
        decision: RoutingDecision,
        handover: Handover | None,
        now: str,
        assisted: Assisted | None = None,
        silent: bool = False,
        automated: str | None = None,
        sequence: int | None = None,
    ) -> RoutingRecord | None:
        """What recording ``decision`` writes on the conversation as read (``facts``); None:
        nothing (routed before). ``sequence``: the message's number, recorded as the routing
        marker in the same update (without it, the marker goes on the message's ``SEEN`` item,
        in a transaction)."""
        if decision.message_id in facts.routed_messages:
            return None
        if sequence is not None and RoutingMark.of_facts(facts).covers(sequence):
            raise _RoutedMeanwhile  # a concurrent redelivery (or a later message) was routed first
        status = facts.status
        enqueue = not decision.automated and status not in WITH_AGENT
        if enqueue and decision.queue not in self.desk.rules.queues:
            raise UnknownQueue(decision.queue)
        # The assistant's state is written only when it changed (a fresh one is the default).
        state = assistant_item(assisted.state) if assisted is not None and assisted.state else None
        before = facts.assistant.model_dump() if facts.assistant is not None else _FRESH_ASSISTANT
        # The message's routed marker, with what a redelivery needs to ask for the same reply.
        quiet = acknowledged_before(decision, facts.routing, status == "queued") or silent
        answered = decision.automated and status in ("open", "bot")
        return RoutingRecord(
            decision=decision,
            at=now,
            quiet=quiet,
            sequence=sequence,
            enqueue=enqueue,
            handover=handover if enqueue else None,
            assistant=state if state is not None and state != before else None,
            # The acknowledgement window starts.
            acknowledged_at=epoch_seconds(now) if not decision.automated and not quiet else None,
            automated_mail=automated,
            answered_by_bot=answered,
            transition=(
                _transition(now, status, "bot", decision.reason) if answered and status != "bot" else None
            ),
        )

    def _publishable(
        self,
        event: MessageRecorded,
        decision: RoutingDecision,
        quiet: bool,
        now: str,
        previous: RoutingDecision | None,
        previous_known: bool = True,
        profile: dict[str, Any] | None = None,
        written: ConversationState | None = None,
    ) -> Events:
        """``quiet``: the customer was acknowledged before and waits in the same queue;
        ``previous``: the decision before this one (unknown on some redeliveries); ``written``:
        META as this routing just wrote it."""
        out: Events = []
        if not decision.automated:
            out += self.desk.assign_waiting(event.conversation_id, now, meta=written)
        if profile is None:
            profile = self._profile(event)
        name = profile.get("display_name")
        text = (
            None if quiet else customer_reply(self.rules, decision, None, name.split()[0] if name else None)
        )
        if text is not None:
            out.insert(
                0,
                (
                    NOTIFICATION_REQUESTED,
                    NotificationRequested(
                        notification_id=f"route:{event.message_id}",
                        customer_id=event.customer_id,
                        conversation_id=event.conversation_id,
                        kind="reply" if decision.automated else "acknowledgement",
                        text=text,
                        # Nothing can be said back into a finished call: answer a voicemail by SMS.
                        channel="sms" if event.channel == "voice" else event.channel,
                        to=event.reply_to,
                        author="bot",
                        # The bot's first automated answer may be the first response, the first
                        # acknowledgement the first hand-over (KPIs; the others do not reach them).
                        first_response=decision.automated
                        and not (previous_known and previous is not None and previous.automated),
                        first_handover=not decision.automated
                        and (not previous_known or previous is None or previous.automated),
                        citations=list(decision.citations) if decision.automated else [],
                        answering=InboundFacts(
                            message_id=event.message_id, channel=event.channel, sent_at=event.sent_at
                        ),
                        **_assistant_usage(decision),
                    ),
                ),
            )
        if decision.assistant_feedback in (HELPFUL, UNHELPFUL):
            out.append(_feedback(event, decision.assistant_feedback == HELPFUL))
        return out


class _RoutedMeanwhile(Exception):
    """The message's routed marker was written by a concurrent redelivery."""


class _Stale(Exception):
    """The eventually consistent read of META may be out of date for this outcome: read again."""


def _require(fresh: bool) -> None:
    """An outcome that rests on the read of META alone needs a strongly consistent one."""
    if not fresh:
        raise _Stale


def _assistant_usage(decision: RoutingDecision) -> dict[str, Any]:
    """What the KPIs count of the assistant's part in ``decision`` (docs/kpis.md)."""
    answered = decision.automated and bool(decision.citations)
    if not answered and decision.handover_reason is None:
        return {}
    return {
        "assisted": True,
        "handover_reason": None if decision.automated else decision.handover_reason,
        "input_tokens": decision.input_tokens or 0,
        "output_tokens": decision.output_tokens or 0,
        "cost_usd": decision.cost_usd or 0.0,
    }


def _feedback(event: MessageRecorded, helpful: bool) -> tuple[str, BaseModel]:
    """The "was this helpful?" signal of the customer's message (counted once per conversation)."""
    return (
        FEEDBACK_SUBMITTED,
        FeedbackSubmitted(
            customer_id=event.customer_id,
            conversation_id=event.conversation_id,
            survey="helpful",
            score=1 if helpful else 0,
            channel=event.channel,
            answered_at=format_timestamp(event.sent_at),
            correlation_id=event.correlation_id,
        ),
    )


def _helpful_closing(event: MessageRecorded, facts: ConversationFacts) -> Events:
    """ "Thanks, that's all" right after an assistant answer: the answer helped."""
    return [_feedback(event, True)] if facts.routing_cited else []


def _hands_over(facts: ConversationFacts, decision: RoutingDecision) -> bool:
    """Whether recording ``decision`` hands the conversation over anew (a new hand-over context):
    not when it waits in that queue already, nor when an agent has it."""
    if facts.status in WITH_AGENT:
        return False
    return not (facts.status == "queued" and facts.queue == decision.queue)


def _transition(now: str, from_status: str, to_status: str, reason: str) -> Transition:
    return Transition(at=now, from_status=from_status, to_status=to_status, by="routing", reason=reason)
