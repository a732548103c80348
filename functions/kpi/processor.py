"""How each event moves the KPI counters (the definitions are in docs/kpis.md).

:class:`KpiProcessor` turns one bus event into a :class:`~shared.repositories.kpis.Plan`
(counter deltas and state changes) and commits it with the event's seen marker in one
transaction; a state item changed concurrently makes it read again and redo the event.
Side effects (the delayed CES question, the question itself) happen before the commit
and are idempotent (the question's notification id), so a crash in between repeats them
harmlessly.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from shared import aws
from shared.config import require_env
from shared.events import (
    AgentAssigned,
    ConversationReopened,
    ConversationResolved,
    ConversationStalled,
    MessageRecorded,
    NotificationRequested,
    format_timestamp,
)
from shared.kpis import (
    bucket_counter,
    bucket_of,
    ces_question,
    day_of,
    parse_ces,
    seconds_between,
    within_window,
)
from shared.repositories.conversations import ConversationNotFound, ConversationRepository
from shared.repositories.kpis import (
    KpiRepository,
    Plan,
    StateConflict,
    ces_pending_key,
    conversation_state_key,
    last_contact_key,
)
from shared.topology import (
    AGENT_ASSIGNED,
    CONVERSATION_REOPENED,
    CONVERSATION_RESOLVED,
    CONVERSATION_STALLED,
    MESSAGE_RECORDED,
    NOTIFICATION_REQUESTED,
)

#: Detail type of the message the KPI function sends itself: "ask the CES question now".
CES_DUE = "kpi.ces_due"
CES_SOURCE = "omni.kpi"
#: Seconds between a resolution and the CES question (a reopen meanwhile cancels it);
#: a negative value turns the question off.
CES_DELAY_ENV = "OMNI_CES_DELAY_S"
DEFAULT_CES_DELAY_S = 5
#: SQS allows at most 15 minutes of DelaySeconds.
MAX_DELAY_S = 900
MAX_ATTEMPTS = 5
UNKNOWN = "unknown"


class CesDue(BaseModel):
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


class _Work:
    """The plan of one event plus the state items it read (each read once)."""

    def __init__(self, repo: KpiRepository, event_id: str) -> None:
        self.repo = repo
        self.plan = Plan(event_id)
        self.items: dict[tuple[str, str], dict[str, Any] | None] = {}
        self.metrics: list[tuple[str, float, str]] = []
        self.after: list[Callable[[], None]] = []

    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        if key not in self.items:
            self.items[key] = self.repo.get(key)
        return self.items[key]

    def put(self, item: dict[str, Any]) -> None:
        self.items[(item["pk"], item["sk"])] = item
        self.plan.put(item)

    def delete(self, item: dict[str, Any]) -> None:
        self.items[(item["pk"], item["sk"])] = None
        self.plan.delete(item)


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

    # -- entry point ------------------------------------------------------- #
    def handle(self, event_id: str, detail_type: str, detail: BaseModel, time: str) -> Outcome:
        if self.repo.seen(event_id):
            return Outcome(counted=False)
        for _ in range(MAX_ATTEMPTS):
            work = _Work(self.repo, event_id)
            try:
                self._dispatch(work, detail_type, detail, time)
            except ConversationNotFound:
                # Erased (or never recorded): nothing to count; remember the event as seen.
                work = _Work(self.repo, event_id)
            for action in work.after:
                action()
            plan = work.plan
            if not (plan.deltas or plan.puts or plan.deletes or plan.extra):
                return Outcome(counted=False)  # nothing this event changes (not about a conversation)
            try:
                counted = self.repo.commit(work.plan)
            except StateConflict:
                continue
            return Outcome(counted=counted, metrics=work.metrics if counted else [])
        raise StateConflict(f"event {event_id}: the state kept changing")

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
        elif isinstance(detail, CesDue):
            self._ask_ces(work, detail)

    # -- conversation state ------------------------------------------------- #
    def _state(self, work: _Work, conversation_id: str) -> dict[str, Any]:
        key = conversation_state_key(conversation_id)
        state = work.get(key)
        if state is None:
            meta = self.conversations.get_meta(conversation_id)
            if meta is None:
                raise ConversationNotFound(conversation_id)
            state = {
                "pk": key[0],
                "sk": key[1],
                "conversation_id": conversation_id,
                "customer_id": meta["customer_id"],
                "opened_at": meta["opened_at"],
                "channel": meta.get("opened_on") or (meta.get("channels") or [UNKNOWN])[0],
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
            meta = self.conversations.get_meta(state["conversation_id"]) or {}
            intent = (meta.get("routing") or {}).get("intent")
        if not intent:
            return
        state["intent"] = intent
        opened_day = day_of(state["opened_at"])
        work.plan.add(opened_day, intent, state["channel"], "started")
        for counter, value in (state.pop("pending", None) or {}).items():
            work.plan.add(opened_day, intent, state["channel"], counter, value)
        state["pending"] = {}
        work.metrics.append(("ConversationsStarted", 1, "Count"))
        # Repeat contact: the customer's previous conversation on this intent, within 7 days.
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
        if event.kind == "call_status":
            return  # the end of a call is not something the customer said
        sent_at = format_timestamp(event.sent_at)
        pending = work.get(ces_pending_key(event.customer_id))
        if pending is not None and event.text.strip() and sent_at > pending["asked_at"]:
            # The customer's next reply after the CES question: an answer, or not (asked once).
            work.delete(pending)
            score = parse_ces(event.text)
            if score is not None:
                day, intent, channel = pending["day"], pending["intent"], pending["channel"]
                work.plan.add(day, intent, channel, "ces_count")
                work.plan.add(day, intent, channel, "ces_sum", score)
                work.plan.add(day, intent, channel, f"ces_{score}")
                work.plan.extra.append(
                    self.conversations.ces_answer_item(
                        pending["conversation_id"], score, sent_at, event.message_id
                    )
                )
                work.metrics.append(("CustomerEffortScore", score, "Count"))
                return
        state = self._state(work, event.conversation_id)
        if not event.new_conversation:
            self._reopen(work, state, sent_at)
        previous = state.get("last_channel")
        if previous and previous != event.channel:
            self._add_opened(work, state, "switches")
            work.metrics.append(("ChannelSwitches", 1, "Count"))
        state["last_channel"] = event.channel

    def _notification(self, work: _Work, event: NotificationRequested, time: str) -> None:
        if event.conversation_id is None or event.kind == "notification":
            return
        if event.notification_id.startswith("ces:"):
            return
        state = self._state(work, event.conversation_id)
        self._classify(work, state, None)
        if event.kind == "acknowledgement":
            # Routing acknowledges a message it hands to a human queue.
            self._hand_over(work, state)
        if event.kind == "reply" and not state.get("first_response_at") and state.get("status") != "resolved":
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
        if not state.get("escalated"):
            state["escalated"] = True
            self._add_opened(work, state, "escalated")
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
        envelope = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": CES_DUE,
            "source": CES_SOURCE,
            "account": "",
            "time": self.now(),
            "region": os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "")),
            "resources": [],
            "detail": due.model_dump(mode="json"),
        }
        aws.client("sqs").send_message(
            QueueUrl=require_env("KPI_QUEUE_URL"),
            MessageBody=json.dumps(envelope),
            DelaySeconds=max(0, min(MAX_DELAY_S, delay)),
        )

    def _ask_ces(self, work: _Work, due: CesDue) -> None:
        state = work.get(conversation_state_key(due.conversation_id))
        if state is None or state.get("status") != "resolved" or state.get("resolved_at") != due.resolved_at:
            return  # reopened (or resolved again) since: this question is not asked
        if state.get("ces_asked_for") == due.resolved_at:
            return  # asked already (a second ces_due message for the same resolution)
        state["ces_asked_for"] = due.resolved_at
        work.put(state)
        key = ces_pending_key(due.customer_id)
        pending = work.get(key)
        now = self.now()
        intent, channel = self._dims(state)
        day = day_of(state["first_resolved_at"])
        item = dict(pending or {"pk": key[0], "sk": key[1]})
        item.update(
            {
                "conversation_id": due.conversation_id,
                "resolved_at": due.resolved_at,
                "asked_at": now,
                "day": day,
                "intent": intent,
                "channel": channel,
            }
        )
        work.put(item)
        work.plan.add(day, intent, channel, "ces_asked")
        request = NotificationRequested(
            notification_id=f"ces:{due.conversation_id}:{due.resolved_at}",
            customer_id=due.customer_id,
            conversation_id=due.conversation_id,
            kind="reply",
            text=ces_question(due.language),
            author="bot",
            correlation_id=due.correlation_id,
        )
        work.after.append(lambda: self.publish([(NOTIFICATION_REQUESTED, request)]))
