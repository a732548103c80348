"""The KPI processor counts a batch with one write, and every event once (service tests with fakes).

A batch's increments add up in memory to one ``ADD`` per counter row, written with the
states (and the ids of the events that changed them) in one commit. Whatever the batches,
redeliveries, duplicates and failed writes, the counters end as if each event had been
counted once, alone; an event that fails is reported alone and the others count.
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from functions.kpi.processor import KpiEvent, KpiProcessor, Outcome
from shared.contracts.events import (
    ConversationReopened,
    ConversationResolved,
    ConversationStalled,
    NotificationRequested,
    format_timestamp,
)
from shared.repositories.conversation_aggregates import ConversationState
from shared.repositories.kpis import Plan, StateConflict

DAY = datetime.fromisoformat("2026-11-02T09:00:00+00:00")
CONVERSATIONS = ("c1", "c2", "c3")


def ts(at: datetime) -> str:
    return format_timestamp(at)


class FakeKpis:
    """The kpis table in memory, with the repository's write semantics: version-guarded state
    items, ``ADD`` on counter rows, all of one commit or nothing."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str], dict[str, Any]] = {}
        self.counters: dict[tuple[str, str, str], Counter[str]] = {}
        self.reads = 0
        self.commits: list[Plan] = []
        #: How many of the next commits fail as a whole (a throttled or lost write).
        self.failing = 0
        #: Called before each commit (a concurrent writer can change an item here).
        self.before_commit: Any = None

    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        self.reads += 1
        return copy.deepcopy(self.items.get(key))

    def commit(self, plan: Plan) -> None:
        if self.before_commit is not None:
            self.before_commit()
        if self.failing:
            self.failing -= 1
            raise RuntimeError("the write failed")
        for key, item in plan.puts.items():
            current = self.items.get(key)
            expected = item.get("version")
            if (current is None) != (expected is None) or (current and current.get("version") != expected):
                raise StateConflict(str(key))
        for key, version in plan.deletes.items():
            if version is not None and (self.items.get(key) or {}).get("version") != version:
                raise StateConflict(str(key))
        for key, item in plan.puts.items():
            self.items[key] = {**copy.deepcopy(item), "version": (item.get("version") or 0) + 1}
        for key in plan.deletes:
            self.items.pop(key, None)
        for row, deltas in plan.deltas.items():
            self.counters.setdefault(row, Counter()).update(deltas)
        self.commits.append(plan)

    def totals(self) -> dict[tuple[str, str, str], dict[str, int]]:
        return {row: {k: v for k, v in c.items() if v} for row, c in self.counters.items() if any(c.values())}


class FakeConversations:
    """The conversations' META items as profile merge and routing leave them."""

    def __init__(self) -> None:
        self.metas = {
            cid: {
                "conversation_id": cid,
                "customer_id": f"cus_{cid}",
                "opened_at": ts(DAY),
                "opened_on": "sms" if cid == "c2" else "webchat",
                "routing": {"intent": "billing", "queue": "billing"},
            }
            for cid in CONVERSATIONS
        }

    def state(self, conversation_id: str) -> ConversationState | None:
        if conversation_id == "broken":
            raise RuntimeError("META unreadable")
        meta = self.metas.get(conversation_id)
        return ConversationState.of(copy.deepcopy(meta)) if meta is not None else None


def processor(repo: FakeKpis) -> KpiProcessor:
    return KpiProcessor(repo, FakeConversations(), publish=lambda _: None, now=lambda: ts(DAY))  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def no_ces() -> Iterator[None]:
    with mock.patch.dict(os.environ, {"OMNI_CES_DELAY_S": "-1"}):
        yield


def event(n: int, conversation_id: str, kind: str, minutes: int) -> KpiEvent:
    """Event number ``n`` of a conversation's journey (ids are unique per ``n``)."""
    at = DAY + timedelta(minutes=minutes)
    customer = f"cus_{conversation_id}"
    detail: BaseModel
    if kind in ("acknowledgement", "reply"):
        detail = NotificationRequested(
            notification_id=f"route:{n}",
            customer_id=customer,
            conversation_id=conversation_id,
            kind=kind,  # type: ignore[arg-type]
            text="an answer",
        )
        detail_type = "notification.requested"
    elif kind == "stalled":
        detail = ConversationStalled(
            conversation_id=conversation_id,
            customer_id=customer,
            queue="billing",
            wait_kind="agent",
            waiting_since=ts(DAY),
            waited_seconds=600,
            sla_seconds=300,
            detected_at=ts(at),
        )
        detail_type = "conversation.stalled"
    elif kind == "reopened":
        detail = ConversationReopened(
            conversation_id=conversation_id, customer_id=customer, reopened_at=ts(at)
        )
        detail_type = "conversation.reopened"
    else:
        detail = ConversationResolved(
            conversation_id=conversation_id,
            customer_id=customer,
            intent="billing",
            opened_at=ts(DAY),
            resolved_at=ts(at),
            resolved_by="agent:ines",
            escalated=True,
        )
        detail_type = "conversation.resolved"
    return KpiEvent(f"evt-{n}", detail_type, detail, ts(at))


def journey() -> list[KpiEvent]:
    """Three conversations, interleaved: acknowledged, answered, stalled, resolved, reopened, resolved."""
    kinds = ("acknowledgement", "reply", "stalled", "resolved", "reopened", "resolved")
    events = []
    for step, kind in enumerate(kinds):
        for cid in CONVERSATIONS:
            n = len(events)
            events.append(event(n, cid, kind, minutes=step * 10 + n))
    return events


def count_alone(events: list[KpiEvent]) -> dict[tuple[str, str, str], dict[str, int]]:
    repo = FakeKpis()
    kpis = processor(repo)
    for e in events:
        kpis.handle(e.event_id, e.detail_type, e.detail, e.time)
    return repo.totals()


def test_a_batch_is_one_commit_with_one_update_per_counter_row() -> None:
    events = journey()[:6]  # each conversation acknowledged, then answered
    repo = FakeKpis()
    results = processor(repo).handle_batch(events)
    assert all(isinstance(r, Outcome) and r.counted for r in results)
    assert len(repo.commits) == 1
    [plan] = repo.commits
    # Two counter rows (the day's billing row on web chat and on SMS), three states, one LAST
    # per customer: one write each, however many events moved them.
    assert set(plan.deltas) == {("2026-11-02", "billing", "webchat"), ("2026-11-02", "billing", "sms")}
    assert plan.deltas[("2026-11-02", "billing", "webchat")]["started"] == 2
    assert plan.deltas[("2026-11-02", "billing", "webchat")]["frt_count"] == 2
    assert len(plan.puts) == 6
    # Each state item is read once per batch (and each customer's LAST item).
    assert repo.reads == 6
    assert repo.totals() == count_alone(events)


def test_a_redelivered_batch_counts_nothing_again() -> None:
    events = journey()
    repo = FakeKpis()
    kpis = processor(repo)
    kpis.handle_batch(events[:10])
    counted = repo.totals()
    again = kpis.handle_batch(events[:10])
    assert all(isinstance(r, Outcome) and not r.counted for r in again)
    assert repo.totals() == counted
    assert len(repo.commits) == 1  # the redelivery wrote nothing


def test_one_failing_event_is_reported_alone_and_the_others_count_once() -> None:
    events = journey()[:6]
    broken = event(99, "broken", "acknowledgement", minutes=1)
    repo = FakeKpis()
    kpis = processor(repo)
    results = kpis.handle_batch([*events[:3], broken, *events[3:]])
    assert isinstance(results[3], RuntimeError)
    assert all(isinstance(r, Outcome) and r.counted for i, r in enumerate(results) if i != 3)
    assert repo.totals() == count_alone(events)
    # SQS redelivers the failed record alone (partial batch response) or with the batch: once.
    kpis.handle_batch([*events, broken])
    assert repo.totals() == count_alone(events)


def test_a_failed_write_fails_the_batch_and_its_redelivery_counts_once() -> None:
    events = journey()[:9]
    repo = FakeKpis()
    kpis = processor(repo)
    repo.failing = 1
    results = kpis.handle_batch(events)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert repo.totals() == {}
    kpis.handle_batch(events)
    assert repo.totals() == count_alone(events)


def test_a_concurrent_change_makes_the_batch_read_again_and_redo() -> None:
    events = journey()
    repo = FakeKpis()
    kpis = processor(repo)
    kpis.handle_batch(events[:3])
    # Another batch (another container) counts c1's answer while this one works.
    other = processor(repo)

    def race() -> None:
        repo.before_commit = None
        other.handle_batch([events[3]])

    repo.before_commit = race
    kpis.handle_batch(events[3:9])
    assert repo.totals() == count_alone(events[:9])


def test_a_batch_too_big_for_one_transaction_is_split() -> None:
    events = [event(n, f"c{n}", "acknowledgement", minutes=n) for n in range(60)]
    repo = FakeKpis()
    conversations = FakeConversations()
    for n in range(60):
        conversations.metas[f"c{n}"] = {
            **conversations.metas["c1"],
            "conversation_id": f"c{n}",
            "customer_id": f"cus_c{n}",
        }
    kpis = KpiProcessor(repo, conversations, publish=lambda _: None, now=lambda: ts(DAY))  # type: ignore[arg-type]
    results = kpis.handle_batch(events)
    assert all(isinstance(r, Outcome) and r.counted for r in results)
    assert len(repo.commits) > 1
    assert all(plan.size <= 100 for plan in repo.commits)
    assert repo.totals()[("2026-11-02", "billing", "webchat")]["started"] == 60


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_batching_with_redeliveries_and_failed_writes_counts_each_event_once(data: st.DataObject) -> None:
    events = journey()
    # Deliveries: each event once in order, with redeliveries of earlier events mixed in.
    deliveries: list[KpiEvent] = []
    for index, e in enumerate(events):
        deliveries.append(e)
        if data.draw(st.booleans(), label=f"redeliver after {index}"):
            deliveries.append(events[data.draw(st.integers(0, index), label="which")])
    repo = FakeKpis()
    kpis = processor(repo)
    start = 0
    while start < len(deliveries):
        size = data.draw(st.integers(1, 10), label="batch size")
        batch = deliveries[start : start + size]
        repo.failing = int(data.draw(st.booleans(), label="write fails"))
        results = kpis.handle_batch(batch)
        failed = [e for e, r in zip(batch, results, strict=True) if isinstance(r, Exception)]
        if failed:  # SQS redelivers the failed records (the write fails once at most)
            kpis.handle_batch(failed)
        start += size
    assert repo.totals() == count_alone(events)
