"""``GET /queues/{queue}`` lists the waits longer than the queue's SLA: customers waiting for
an agent, and customers waiting for the reply of the agent their conversation is assigned to
(one bounded query on the ``waiting`` index), under moto."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from shared.contracts.events import utc_now
from shared.platform import settings
from shared.platform.clock import shift_clock
from tests.helpers.agents import add_agent, call, conv, conversation_of
from tests.helpers.pipeline import open_session, run_pipeline, say


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Shift the functions' clock back, as the local stack's demo does (``POST /_local/clock``)."""
    monkeypatch.delenv(settings.LAMBDA_TASK_ROOT, raising=False)
    yield lambda minutes: shift_clock(timedelta(minutes=minutes))
    shift_clock(timedelta(0))


def write(stack: dict[Any, str], message_id: str, text: str) -> str:
    session = open_session()
    say(session, message_id, text, sent_at=utc_now().isoformat())
    run_pipeline(stack)
    return conversation_of(session)


def billing() -> dict[str, Any]:
    status, queue = call("GET", "/queues/{queue}", "solo", path_parameters={"queue": "billing"})
    assert status == 200, queue
    return queue


def test_waits_longer_than_the_sla_for_an_agent_or_for_the_agents_reply(
    stack: dict[Any, str], clock: Any
) -> None:
    add_agent("solo", {"billing": 5}, cap=1)  # billing: 10 min for an agent, 30 min for a reply
    clock(-120)
    answered_late = write(stack, "m-1", "my invoice is wrong")  # assigned to solo
    assert conv("POST", "accept", answered_late, "solo")[0] == 200  # the customer waits for solo's reply
    waiting = write(stack, "m-2", "I was charged twice on my invoice")  # solo is full: queued
    clock(-5)
    recent = write(stack, "m-3", "another invoice question")  # queued 5 minutes ago: within the SLA
    clock(0)

    queue = billing()
    assert [c["conversation_id"] for c in queue["waiting"]] == [waiting, recent]
    stalled = {s["conversation_id"]: s for s in queue["stalled"]}
    assert set(stalled) == {answered_late, waiting}
    reply, agent = stalled[answered_late], stalled[waiting]
    assert (reply["wait_kind"], reply["assigned_agent"], reply["sla_seconds"]) == ("reply", "solo", 1800)
    assert (agent["wait_kind"], agent["assigned_agent"], agent["sla_seconds"]) == ("agent", None, 600)
    assert 115 * 60 < reply["waited_seconds"] < 125 * 60
    assert queue["stalled"][0]["conversation_id"] == answered_late  # the oldest first

    # solo answers: that wait is over once the reply is recorded.
    status, _ = call(
        "POST",
        "/conversations/{conversation_id}/messages",
        "solo",
        {"text": "Sorry for the wait, looking at it now."},
        path_parameters={"conversation_id": answered_late},
        headers={"Idempotency-Key": "k-1"},
    )
    assert status in (200, 201, 202)
    run_pipeline(stack)  # notify records the reply on the conversation
    assert [s["conversation_id"] for s in billing()["stalled"]] == [waiting]


def test_a_quiet_queue_has_nothing_stalled(stack: dict[Any, str]) -> None:
    add_agent("solo", {"billing": 5}, cap=1)
    assert billing()["stalled"] == []
