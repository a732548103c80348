"""How each event moves the KPI counters (the definitions are in docs/kpis.md).

:class:`KpiProcessor` turns a batch of bus events into one
:class:`~shared.repositories.kpis.Plan` (counter deltas and state changes). The events run
one after the other on the same in-memory items, so a conversation's state is read once
per batch and the batch's increments add up to one ``ADD`` per counter row (day, intent,
channel), written in one transaction with the state items, whatever the number of
events. Each event counts once: its id is kept on the conversation's state (the latest
few), written in that same transaction, and the state is written with a condition on the
version read, so a redelivered event finds its id and a concurrent batch touching the
same conversation makes this one read again and redo. An event that fails (bad data, an
error of its own) is undone in memory and reported alone; the batch's other events count.
A batch that changes only one state item is one conditional write; one that changes
nothing writes nothing. Side effects (the delayed survey question, the question itself,
a link answer stored on the conversation) happen before the commit and are idempotent,
so a crash or a redo in between repeats them harmlessly.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.contracts.events import (
    AgentAssigned,
    ConversationReopened,
    ConversationResolved,
    ConversationStalled,
    FeedbackSubmitted,
    MessageRecorded,
    NotificationRequested,
    format_timestamp,
)
from shared.contracts.names import (
    AGENT_ASSIGNED,
    CONVERSATION_REOPENED,
    CONVERSATION_RESOLVED,
    CONVERSATION_STALLED,
    FEEDBACK_SUBMITTED,
    MESSAGE_RECORDED,
    NOTIFICATION_REQUESTED,
)
from shared.domain.kpis import (
    HANDOVER_PREFIX,
    HELPFUL_SCALE,
    NANO_USD,
    bucket_counter,
    bucket_of,
    day_of,
    handover_counter,
    handover_reason,
    seconds_between,
    within_window,
)
from shared.domain.surveys import CSAT_SATISFIED, SCALES, survey_question
from shared.platform import link_settings, settings
from shared.platform.bus import send_delayed
from shared.platform.config import require_env
from shared.repositories.conversations import ConversationNotFound, ConversationRepository
from shared.repositories.kpis import (
    MAX_TRANSACTION_ITEMS,
    KpiRepository,
    Plan,
    StateConflict,
    conversation_state_key,
    last_contact_key,
)

#: Detail type of the message the KPI function sends itself: "ask the survey question now".
CES_DUE = "kpi.ces_due"
CES_SOURCE = "omni.kpi"
#: Seconds between a resolution and the CES question (a reopen meanwhile cancels it);
#: a negative value turns the question off.
CES_DELAY_ENV = settings.OMNI_CES_DELAY_S
DEFAULT_CES_DELAY_S = 5
MAX_ATTEMPTS = 5
UNKNOWN = "unknown"
#: Event ids kept on a conversation's state to recognise redeliveries. Only events that
#: change something are kept, a handful per conversation; most are idempotent by their
#: nature too (a resolution by its time, the first response, the intent, the survey).
MAX_EVENT_IDS = 12
#: Channels whose survey question carries score links (shared/domain/links.py).
LINK_CHANNELS = ("email", "webchat")


class CesDue(BaseModel):
    # Validators are built on first use, not at import (cold start): see bench/coldstart.py.
    model_config = ConfigDict(defer_build=True)

    conversation_id: str
    customer_id: str
    resolved_at: str
    language: str | None = None
    correlation_id: str | None = None


DETAIL_MODELS: dict[str, type[BaseModel]] = {
    MESSAGE_RECORDED: MessageRecorded,
    NOTIFICATION_REQUESTED: NotificationRequested,
    AGENT_ASSIGNED: AgentAssigned,
    CONVERSATION_STALLED: ConversationStalled,
    CONVERSATION_RESOLVED: ConversationResolved,
    CONVERSATION_REOPENED: ConversationReopened,
    FEEDBACK_SUBMITTED: FeedbackSubmitted,
    CES_DUE: CesDue,
}


@dataclass
class Outcome:
    counted: bool
    #: CloudWatch metrics to emit: (name, value, unit).
    metrics: list[tuple[str, float, str]] = field(default_factory=list)


def ces_delay_s() -> int:
    raw = os.environ.get(CES_DELAY_ENV, "")
    try:
        return int(raw) if raw.strip() else DEFAULT_CES_DELAY_S
    except ValueError:
        return DEFAULT_CES_DELAY_S


def configured_survey() -> str:
    """The survey asked after a resolution (``survey`` in routing_rules.toml: ces or csat)."""
    from shared.domain.routing_rules import load_rules  # noqa: PLC0415 - read once, when a question is due

    return load_rules().survey


#: An item no event of the batch read (written unconditionally new: ``attribute_not_exists``).
_UNREAD: Any = object()

Key = tuple[str, str]


@dataclass(frozen=True)
class KpiEvent:
    """One bus event as the KPI queue delivers it."""

    event_id: str
    detail_type: str
    detail: BaseModel
    time: str


class _Batch:
    """What the events of one batch read (each item once) and the counter deltas they add up to.

    Its :meth:`plan` is the one write of the batch: every state item that changed (guarded by
    the version read) and one ``ADD`` per counter row, whatever the number of events.
    """

    def __init__(self, repo: KpiRepository, batch_id: str) -> None:
        self.repo = repo
        self.items: dict[Key, dict[str, Any] | None] = {}
        #: What each item was when read (to leave unchanged items unwritten).
        self.originals: dict[Key, dict[str, Any] | None] = {}
        self.counters = Plan(batch_id)

    def get(self, key: Key) -> dict[str, Any] | None:
        if key not in self.items:
            item = self.repo.get(key)
            self.originals[key] = copy.deepcopy(item)
            self.items[key] = item
        return self.items[key]

    def changed(self, key: Key, reference: Any) -> bool:
        return self.items.get(key, _UNREAD) != reference

    def plan(self) -> Plan:
        plan = Plan(self.counters.event_id, deltas=self.counters.deltas)
        for key, item in self.items.items():
            original = self.originals.get(key, _UNREAD)
            if item == original:
                continue
            if item is not None:
                plan.put(item)
            elif original is not _UNREAD and original is not None:
                plan.delete(original)
        return plan


class _Work:
    """One event's view of its batch: its own counter deltas, metrics and side effects, and
    the batch's items as they were before it (to tell what it changed, or to undo it)."""

    def __init__(self, batch: _Batch, event_id: str) -> None:
        self.batch = batch
        self.plan = Plan(event_id)
        self.before = copy.deepcopy(batch.items)
        self.metrics: list[tuple[str, float, str]] = []
        self.after: list[Callable[[], None]] = []

    @property
    def items(self) -> dict[Key, dict[str, Any] | None]:
        return self.batch.items

    def get(self, key: Key) -> dict[str, Any] | None:
        return self.batch.get(key)

    def put(self, item: dict[str, Any]) -> None:
        self.batch.items[(item["pk"], item["sk"])] = item

    def delete(self, item: dict[str, Any]) -> None:
        self.batch.items[(item["pk"], item["sk"])] = None

    @property
    def changes(self) -> bool:
        """Whether this event moved a counter or changed an item (against the batch before it)."""
        if self.plan.deltas:
            return True
        return any(
            self.batch.changed(
                key, self.before[key] if key in self.before else self.batch.originals.get(key, _UNREAD)
            )
            for key in self.batch.items
        )

    def undo(self) -> None:
        self.batch.items = self.before

    def keep(self) -> None:
        for (day, intent, channel), deltas in self.plan.deltas.items():
            for counter, value in deltas.items():
                self.batch.counters.add(day, intent, channel, counter, value)


class KpiProcessor:
    def __init__(
        self,
        repo: KpiRepository,
        conversations: ConversationRepository,
        publish: Callable[[list[tuple[str, BaseModel]]], None],
        now: Callable[[], str],
    ) -> None:
        self.repo = repo
        self.conversations = conversations
        self.publish = publish
        self.now = now

    # -- entry points ------------------------------------------------------ #
    def handle(self, event_id: str, detail_type: str, detail: BaseModel, time: str) -> Outcome:
        """Count one event (a batch of one)."""
        [result] = self.handle_batch([KpiEvent(event_id, detail_type, detail, time)])
        if isinstance(result, Exception):
            raise result
        return result

    def handle_batch(
        self, events: Sequence[KpiEvent], on_event: Callable[[KpiEvent], None] | None = None
    ) -> list[Outcome | Exception]:
        """Count a batch of events with one write: an :class:`Outcome` per event, or the
        exception that event raised (it counts nothing; the others count once).

        The events run one after the other on the same items (the state of a conversation
        that several of them touch is read once and written once); their counter deltas
        add up to one ``ADD`` per counter row, written in one transaction with the state
        items and the ids of the events that changed something. A redelivered event finds
        its id on the state; when a state item changed meanwhile (a concurrent batch), the
        whole batch is read again and redone. A batch too big for one transaction is split.
        """
        results: dict[int, Outcome | Exception] = {}
        self._count(events, list(range(len(events))), results, on_event)
        return [results[i] for i in range(len(events))]

    def _count(
        self,
        events: Sequence[KpiEvent],
        indices: list[int],
        results: dict[int, Outcome | Exception],
        on_event: Callable[[KpiEvent], None] | None,
    ) -> None:
        for _ in range(MAX_ATTEMPTS):
            batch = _Batch(self.repo, ",".join(events[i].event_id for i in indices))
            staged: dict[int, Outcome | Exception] = {}
            for i in indices:
                if on_event is not None:
                    on_event(events[i])
                staged[i] = self._stage(batch, events[i])
            plan = batch.plan()
            if plan.size > MAX_TRANSACTION_ITEMS and len(indices) > 1:
                half = len(indices) // 2
                self._count(events, indices[:half], results, on_event)
                self._count(events, indices[half:], results, on_event)
                return
            try:
                if plan.size:
                    self.repo.commit(plan)
            except StateConflict:
                continue
            except Exception as error:  # the write failed as a whole: each event fails
                staged = {i: error for i in indices}
            results.update(staged)
            return
        conflict = StateConflict(
            f"events {', '.join(events[i].event_id for i in indices)}: the state kept changing"
        )
        results.update({i: conflict for i in indices})

    def _stage(self, batch: _Batch, event: KpiEvent) -> Outcome | Exception:
        """Run one event on the batch's items; undone when it fails or has nothing to count."""
        conversation_id = getattr(event.detail, "conversation_id", None)
        if not conversation_id:
            return Outcome(counted=False)  # not about a conversation: nothing to count
        key = conversation_state_key(conversation_id)
        work = _Work(batch, event.event_id)
        try:
            current = work.get(key)
            if current is not None and event.event_id in current.get("events", []):
                return Outcome(counted=False)  # counted before (a redelivery)
            self._dispatch(work, event.detail_type, event.detail, event.time)
            for action in work.after:
                action()
            if not work.changes:
                return Outcome(counted=False)  # nothing this event changes
            state = work.items.get(key) or self._state(work, conversation_id)
        except ConversationNotFound:
            work.undo()
            return Outcome(counted=False)  # erased (or never recorded): nothing to count
        except Exception as error:  # this event fails; the batch's others still count
            work.undo()
            return error
        state["events"] = [*state.get("events", []), event.event_id][-MAX_EVENT_IDS:]
        work.put(state)
        work.keep()
        return Outcome(counted=True, metrics=work.metrics)

    def _dispatch(self, work: _Work, detail_type: str, detail: BaseModel, time: str) -> None:
        if isinstance(detail, MessageRecorded):
            self._message(work, detail)
        elif isinstance(detail, NotificationRequested):
            self._notification(work, detail, time)
        elif isinstance(detail, AgentAssigned):
            self._assigned(work, detail)
        elif isinstance(detail, ConversationStalled):
            self._stalled(work, detail)
        elif isinstance(detail, ConversationResolved):
            self._resolved(work, detail)
        elif isinstance(detail, ConversationReopened):
            state = self._state(work, detail.conversation_id)
            self._reopen(work, state, detail.reopened_at)
        elif isinstance(detail, FeedbackSubmitted):
            self._feedback(work, detail)
        elif isinstance(detail, CesDue):
            self._ask_survey(work, detail)

    # -- conversation state ------------------------------------------------- #
    def _state(self, work: _Work, conversation_id: str) -> dict[str, Any]:
        key = conversation_state_key(conversation_id)
        state = work.get(key)
        if state is None:
            conversation = self.conversations.state(conversation_id)
            if conversation is None:
                raise ConversationNotFound(conversation_id)
            state = {
                "pk": key[0],
                "sk": key[1],
                "conversation_id": conversation_id,
                "customer_id": conversation.customer_id,
                "opened_at": conversation.opened_at,
                "channel": conversation.opened_on or (conversation.channels or (UNKNOWN,))[0],
                "status": "open",
                "reopens": 0,
                "pending": {},
            }
        work.put(state)
        return state

    def _dims(self, state: dict[str, Any]) -> tuple[str, str]:
        return state.get("intent") or UNKNOWN, state["channel"]

    def _add_opened(self, work: _Work, state: dict[str, Any], counter: str, value: int = 1) -> None:
        """Count on the conversation's opening day; held on the state until its intent is known."""
        if state.get("intent"):
            work.plan.add(day_of(state["opened_at"]), state["intent"], state["channel"], counter, value)
        else:
            pending = state.setdefault("pending", {})
            pending[counter] = pending.get(counter, 0) + value

    def _classify(self, work: _Work, state: dict[str, Any], intent: str | None) -> None:
        """Give the conversation its intent (the first routing gave it) and count it as started."""
        if state.get("intent"):
            return
        if not intent:
            conversation = self.conversations.state(state["conversation_id"])
            intent = conversation.intent if conversation else None
        if not intent:
            return
        state["intent"] = intent
        opened_day = day_of(state["opened_at"])
        work.plan.add(opened_day, intent, state["channel"], "started")
        for counter, value in (state.pop("pending", None) or {}).items():
            work.plan.add(opened_day, intent, state["channel"], counter, value)
        state["pending"] = {}
        work.metrics.append(("ConversationsStarted", 1, "Count"))
        self._repeat_contact(work, state, intent, opened_day)

    def _repeat_contact(self, work: _Work, state: dict[str, Any], intent: str, opened_day: str) -> None:
        """The customer's previous conversation on this intent, within 7 days: a repeat contact."""
        last_key = last_contact_key(state["customer_id"], intent)
        last = work.get(last_key)
        if last is not None and last.get("conversation_id") != state["conversation_id"]:
            previous = self._state(work, last["conversation_id"])
            last_activity = max(previous["opened_at"], previous.get("resolved_at") or "")
            if within_window(last_activity, state["opened_at"]):
                work.plan.add(opened_day, intent, state["channel"], "repeat")
                work.metrics.append(("RepeatContacts", 1, "Count"))
            resolved_at = previous.get("first_resolved_at")
            if previous.get("fcr") and resolved_at and within_window(resolved_at, state["opened_at"]):
                # Not resolved on first contact after all: the customer came back about it.
                self._lose_fcr(work, previous)
        updated = dict(last or {"pk": last_key[0], "sk": last_key[1]})
        updated["conversation_id"] = state["conversation_id"]
        work.put(updated)

    def _lose_fcr(self, work: _Work, state: dict[str, Any]) -> None:
        intent, channel = self._dims(state)
        work.plan.add(day_of(state["first_resolved_at"]), intent, channel, "fcr", -1)
        state["fcr"] = False
        work.metrics.append(("FirstContactResolutionsLost", 1, "Count"))

    def _reopen(self, work: _Work, state: dict[str, Any], at: str) -> None:
        if state.get("status") != "resolved":
            return
        state["status"] = "open"
        state["reopens"] = int(state.get("reopens", 0)) + 1
        intent, channel = self._dims(state)
        work.plan.add(day_of(at), intent, channel, "reopened")
        work.metrics.append(("ConversationsReopened", 1, "Count"))
        if state.get("fcr") and within_window(state["first_resolved_at"], at):
            self._lose_fcr(work, state)

    # -- events ---------------------------------------------------------------- #
    def _message(self, work: _Work, event: MessageRecorded) -> None:
        """A message that switched channel, may have reopened the conversation, or answered the
        survey (only these reach the KPI queue: topology/)."""
        if event.kind == "call_status":
            return  # the end of a call is not something the customer said
        state = self._state(work, event.conversation_id)
        if event.survey is not None and event.survey_score is not None:
            self._count_answer(work, state, event.survey, event.survey_score)
            return
        if event.reopened and not event.new_conversation:
            self._reopen(work, state, format_timestamp(event.sent_at))
        if event.channel_switch:
            self._add_opened(work, state, "switches")
            work.metrics.append(("ChannelSwitches", 1, "Count"))

    def _count_answer(self, work: _Work, state: dict[str, Any], survey: str, score: int) -> bool:
        """Count a survey answer once per conversation and survey (the first answer wins)."""
        low, high = SCALES[survey]
        answered = list(state.get("surveys_answered", []))
        if survey in answered or not low <= score <= high or not state.get("first_resolved_at"):
            return False
        state["surveys_answered"] = [*answered, survey]
        day = day_of(state["first_resolved_at"])
        intent, channel = self._dims(state)
        work.plan.add(day, intent, channel, f"{survey}_count")
        work.plan.add(day, intent, channel, f"{survey}_sum", score)
        work.plan.add(day, intent, channel, f"{survey}_{score}")
        if survey == "csat" and score >= CSAT_SATISFIED:
            work.plan.add(day, intent, channel, "csat_satisfied")
        work.metrics.append(
            ("CustomerEffortScore" if survey == "ces" else "CustomerSatisfaction", score, "Count")
        )
        return True

    def _helpful(self, work: _Work, event: FeedbackSubmitted) -> None:
        """The customer's reaction to an assistant answer: the first one per conversation counts."""
        state = self._state(work, event.conversation_id)
        low, high = HELPFUL_SCALE
        if state.get("helpful") is not None or not low <= event.score <= high:
            return
        state["helpful"] = event.score
        self._classify(work, state, None)
        intent, channel = self._dims(state)
        work.plan.add(
            day_of(event.answered_at), intent, channel, "ai_helpful" if event.score else "ai_unhelpful"
        )
        work.metrics.append(("AssistantHelpful" if event.score else "AssistantUnhelpful", 1, "Count"))

    def _assistant(self, work: _Work, state: dict[str, Any], event: NotificationRequested, time: str) -> None:
        """An assistant answer (with its citations and the model's usage) or hand-over (by reason)."""
        intent, channel = self._dims(state)
        day = day_of(time)
        answered = event.kind == "reply" and bool(event.citations)
        if answered:
            work.plan.add(day, intent, channel, "ai_answers")
            work.plan.add(day, intent, channel, "ai_citations", len(event.citations))
            work.metrics += [("AssistantAnswers", 1, "Count"), ("Citations", len(event.citations), "Count")]
            if not state.get("ai_answered"):
                state["ai_answered"] = True
                work.plan.add(day, intent, channel, "ai_conversations")
        elif event.kind == "acknowledgement" and event.handover_reason and not state.get("ai_handover"):
            state["ai_handover"] = event.handover_reason
            work.plan.add(day, intent, channel, handover_counter(event.handover_reason))
            work.metrics.append(("AssistantHandovers", 1, "Count"))
        tokens = event.input_tokens + event.output_tokens
        if tokens:
            work.plan.add(day, intent, channel, "ai_input_tokens", event.input_tokens)
            work.plan.add(day, intent, channel, "ai_output_tokens", event.output_tokens)
            work.metrics.append(("ModelTokens", tokens, "Count"))
        cost = round(event.cost_usd * NANO_USD)
        if cost:
            work.plan.add(day, intent, channel, "ai_cost_nusd", cost)

    def _feedback(self, work: _Work, event: FeedbackSubmitted) -> None:
        """A score clicked in an e-mail or in the web chat (the public links endpoint).

        The answer stored on the conversation is the one counted: the link's score is stored
        first (only when the survey has no answer yet); when a reply answered it first, that
        message counts it.
        """
        if event.survey == "helpful":
            self._helpful(work, event)
            return
        state = self._state(work, event.conversation_id)
        low, high = SCALES[event.survey]
        if (
            state.get("customer_id") != event.customer_id
            or event.survey in state.get("surveys_answered", [])
            or not low <= event.score <= high
        ):
            return
        score = event.score
        answer = {"score": score, "answered_at": event.answered_at, "via": "link"}
        # Before the commit; idempotent (a redelivery finds its own answer stored).
        if not self.conversations.store_survey_answer(event.conversation_id, event.survey, answer):
            conversation = self.conversations.state(event.conversation_id)
            stored = conversation.survey_answers.get(event.survey, {}) if conversation else {}
            if stored.get("via") != "link":
                return  # answered by a reply first: its message.recorded counts it
            score = int(stored["score"])
        self._count_answer(work, state, event.survey, score)

    def _notification(self, work: _Work, event: NotificationRequested, time: str) -> None:
        if event.conversation_id is None or event.kind == "notification":
            return
        if event.notification_id.startswith(("ces:", "csat:")):
            return  # the survey question is no reply
        state = self._state(work, event.conversation_id)
        self._classify(work, state, None)
        if event.assisted:
            self._assistant(work, state, event, time)
        # Only the first hand-over and the first response count here (an assistant's later
        # answers and hand-overs reach the KPIs for the assistant's counters only).
        if event.kind == "acknowledgement" and (event.first_handover or not event.assisted):
            # Routing acknowledges a message it hands to a human queue.
            self._hand_over(work, state)
        if (
            event.kind == "reply"
            and (event.first_response or not event.assisted)
            and not state.get("first_response_at")
            and state.get("status") != "resolved"
        ):
            state["first_response_at"] = time
            seconds = seconds_between(state["opened_at"], time)
            self._add_opened(work, state, bucket_counter("frt", bucket_of(seconds)))
            self._add_opened(work, state, "frt_count")
            self._add_opened(work, state, "frt_sum", round(seconds))
            work.metrics.append(("FirstResponseTime", seconds, "Seconds"))

    def _assigned(self, work: _Work, event: AgentAssigned) -> None:
        state = self._state(work, event.conversation_id)
        self._classify(work, state, event.intent)
        self._hand_over(work, state)

    def _hand_over(self, work: _Work, state: dict[str, Any]) -> None:
        """The conversation's first hand-over to a person, and why (the routing decision stored
        on the conversation, read once: later hand-overs of the conversation count nothing)."""
        if not state.get("escalated"):
            state["escalated"] = True
            self._add_opened(work, state, "escalated")
            conversation = self.conversations.state(state["conversation_id"])
            reason = handover_reason(conversation.routing if conversation else None)
            self._add_opened(work, state, f"{HANDOVER_PREFIX}{reason}")
            work.metrics.append(("HandedOver", 1, "Count"))

    def _stalled(self, work: _Work, event: ConversationStalled) -> None:
        state = self._state(work, event.conversation_id)
        self._classify(work, state, None)
        intent, channel = self._dims(state)
        work.plan.add(day_of(event.detected_at), intent, channel, "stalled")
        work.metrics.append(("StalledHandovers", 1, "Count"))

    def _resolved(self, work: _Work, event: ConversationResolved) -> None:
        state = self._state(work, event.conversation_id)
        self._classify(work, state, event.intent)
        if state.get("status") == "resolved" and state.get("resolved_at") == event.resolved_at:
            return
        state["status"] = "resolved"
        state["resolved_at"] = event.resolved_at
        if not state.get("first_resolved_at"):
            state["first_resolved_at"] = event.resolved_at
            day = day_of(event.resolved_at)
            intent, channel = self._dims(state)
            seconds = seconds_between(state["opened_at"], event.resolved_at)
            work.plan.add(day, intent, channel, "resolved")
            work.plan.add(day, intent, channel, bucket_counter("rt", bucket_of(seconds)))
            work.plan.add(day, intent, channel, "rt_count")
            work.plan.add(day, intent, channel, "rt_sum", round(seconds))
            work.metrics += [("ConversationsResolved", 1, "Count"), ("ResolutionTime", seconds, "Seconds")]
            if event.reopened == 0 and not state.get("reopens"):
                state["fcr"] = True
                work.plan.add(day, intent, channel, "fcr")
                work.metrics.append(("FirstContactResolutions", 1, "Count"))
            if event.resolved_by == "bot" and not (event.escalated or state.get("escalated")):
                work.plan.add(day, intent, channel, "automated")
                work.metrics.append(("AutomatedResolutions", 1, "Count"))
                if state.get("ai_answered"):
                    work.plan.add(day, intent, channel, "ai_resolved")
                    work.metrics.append(("AssistantResolutions", 1, "Count"))
        delay = ces_delay_s()
        if delay >= 0:
            due = CesDue(
                conversation_id=event.conversation_id,
                customer_id=event.customer_id,
                resolved_at=event.resolved_at,
                language=event.language,
                correlation_id=event.correlation_id,
            )
            work.after.append(lambda: self._schedule_ces(due, delay))

    def _schedule_ces(self, due: CesDue, delay: int) -> None:
        send_delayed(require_env(settings.KPI_QUEUE_URL), CES_SOURCE, CES_DUE, due, delay, self.now())

    def _ask_survey(self, work: _Work, due: CesDue) -> None:
        """Ask the configured survey (once per conversation), unless it reopened since."""
        state = work.get(conversation_state_key(due.conversation_id))
        if state is None or state.get("status") != "resolved" or state.get("resolved_at") != due.resolved_at:
            return  # reopened (or resolved again) since: this question is not asked
        if state.get("survey_asked") or state.get("ces_asked_for"):
            return  # asked already (once per conversation)
        survey = configured_survey()
        now = self.now()
        conversation = self.conversations.state(due.conversation_id)
        if conversation is not None and conversation.automated_mail:
            return  # the conversation's last message was automatic mail (RFC 3834): no survey
        # Marked on the conversation first: the customer's reply to it is an answer, not a reopen.
        if not self.conversations.set_survey_pending(due.conversation_id, survey, due.resolved_at, now):
            return  # reopened meanwhile (the KPIs hear of it with the customer's message)
        channel = (conversation.last_inbound_channel if conversation else None) or state["channel"]
        state["survey_asked"] = survey
        work.put(state)
        intent, dim_channel = self._dims(state)
        work.plan.add(day_of(state["first_resolved_at"]), intent, dim_channel, f"{survey}_asked")
        request = NotificationRequested(
            notification_id=f"{survey}:{due.conversation_id}:{due.resolved_at}",
            customer_id=due.customer_id,
            conversation_id=due.conversation_id,
            kind="reply",
            text=survey_question(
                survey, due.language, score_links(survey, due.customer_id, channel, due.conversation_id)
            ),
            author="bot",
            survey=survey,  # type: ignore[arg-type]  # "ces" or "csat" (validated with the rules)
            correlation_id=due.correlation_id,
        )
        work.after.append(lambda: self.publish([(NOTIFICATION_REQUESTED, request)]))


def score_links(survey: str, customer_id: str, channel: str, conversation_id: str) -> dict[int, str] | None:
    """Signed score links (score -> URL) for e-mail and web chat; None on other channels or
    without a public API URL (shared/domain/links.py)."""
    if channel not in LINK_CHANNELS:
        return None
    from shared.domain import links  # noqa: PLC0415 - only when a question goes out

    base = link_settings.public_base_url()
    if base is None:
        return None
    token = links.sign(
        link_settings.links_signing_secret(),
        survey,  # type: ignore[arg-type]  # "ces" or "csat"
        customer_id=customer_id,
        channel=channel,
        conversation_id=conversation_id,
    )
    low, high = SCALES[survey]
    return {score: links.link_url(base, survey, token, score=score) for score in range(low, high + 1)}  # type: ignore[arg-type]
