"""EventPublisher against a fake EventBridge client that fails some entries."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from shared.platform import aws
from shared.platform.bus import MAX_DELAY_S, EventPublisher, PublishError, send_delayed


class Detail(BaseModel):
    n: int


class FlakyEvents:
    """Fails the entries whose ``n`` is in ``failing`` for the first ``times`` attempts each."""

    def __init__(self, failing: set[int], times: int) -> None:
        self.failing = failing
        self.left = {n: times for n in failing}
        self.delivered: list[int] = []
        self.calls: list[int] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        assert len(Entries) <= 10
        self.calls.append(len(Entries))
        results = []
        for entry in Entries:
            n = json.loads(entry["Detail"])["n"]
            if self.left.get(n, 0) > 0:
                self.left[n] -= 1
                results.append({"ErrorCode": "InternalFailure", "ErrorMessage": "try again"})
            else:
                self.delivered.append(n)
                results.append({"EventId": f"id-{n}"})
        failed = sum(1 for r in results if "ErrorCode" in r)
        return {"FailedEntryCount": failed, "Entries": results}


def publisher(client: FlakyEvents) -> EventPublisher:
    return EventPublisher(source="omni.test", bus_name="bus", client=client, backoff_s=0)


@settings(max_examples=60)
@given(
    count=st.integers(min_value=1, max_value=35),
    failing=st.sets(st.integers(min_value=0, max_value=34)),
    times=st.integers(min_value=0, max_value=3),
)
def test_partial_failures_are_resent_until_every_event_is_delivered_once(
    count: int, failing: set[int], times: int
) -> None:
    client = FlakyEvents({n for n in failing if n < count}, times)
    publisher(client).publish([("test.event", Detail(n=n)) for n in range(count)])
    assert sorted(client.delivered) == list(range(count))  # none lost, none twice


def test_persistent_failure_raises_with_the_codes() -> None:
    client = FlakyEvents({1}, times=100)
    with pytest.raises(PublishError, match="InternalFailure"):
        publisher(client).publish([("test.event", Detail(n=0)), ("test.event", Detail(n=1))])
    assert client.delivered == [0]


def test_source_must_be_ours() -> None:
    with pytest.raises(ValueError, match=r"omni\."):
        EventPublisher(source="aws.fake", bus_name="bus")


class FakeSqs:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        self.sent.append(kwargs)
        return {"MessageId": "m-1"}


@pytest.mark.parametrize(("asked", "used"), [(-3, 0), (0, 0), (42, 42), (MAX_DELAY_S + 1, MAX_DELAY_S)])
def test_send_delayed_puts_an_eventbridge_envelope_on_the_queue_with_the_delay_sqs_allows(
    monkeypatch: pytest.MonkeyPatch, asked: int, used: int
) -> None:
    sqs = FakeSqs()
    monkeypatch.setattr(aws, "client", lambda service: sqs)
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    delay = send_delayed(
        "https://q.example/kpi", "omni.kpi", "kpi.ces_due", Detail(n=7), asked, "2026-01-01T00:00:00Z"
    )
    assert delay == used
    [call] = sqs.sent
    assert (call["QueueUrl"], call["DelaySeconds"]) == ("https://q.example/kpi", used)
    envelope = json.loads(call["MessageBody"])
    assert envelope["detail-type"] == "kpi.ces_due"
    assert envelope["source"] == "omni.kpi"
    assert envelope["detail"] == {"n": 7}
    assert envelope["time"] == "2026-01-01T00:00:00Z"
    assert envelope["region"] == "eu-central-1"
    assert envelope["id"]
    assert envelope["version"] == "0"
