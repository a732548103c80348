"""The WhatsApp webhook under moto: a batch of 1,000 within the time budget, business-scoped ids
recorded under their identity, reactions and system messages not answered."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from functions.routing.router import NOT_ROUTED
from functions.whatsapp import handler as whatsapp
from shared.channels import meta_webhook
from tests.helpers.meta import body_of, fixture, post, published, record_all


def batch_of(count: int) -> bytes:
    payload = json.loads(fixture("whatsapp_text.json"))
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"] = []
    value["messages"] = [
        {
            "from": f"4915112{n:06d}",
            "id": f"wamid.BATCH{n:06d}",
            "timestamp": "1795600800",
            "type": "text",
            "text": {"body": f"message {n}"},
        }
        for n in range(count)
    ]
    return json.dumps(payload).encode()


class SlowBus:
    """EventBridge as seen from Lambda: each PutEvents call takes ``latency_s`` (moto's own
    delivery into the stack's queues costs far more per event than the real service)."""

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s
        self.lock = threading.Lock()
        self.entries: list[dict[str, Any]] = []
        self.in_flight = self.most_in_flight = 0

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self.latency_s)
        with self.lock:
            self.in_flight -= 1
            self.entries.extend(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "e"} for _ in Entries]}


def test_a_batch_of_1000_is_published_concurrently_within_the_budget(
    stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = SlowBus(latency_s=0.06)  # 100 calls one after the other: 6 s, past the budget
    monkeypatch.setattr(whatsapp.publisher, "_client", bus)
    started = time.monotonic()
    response = post(batch_of(1000))
    elapsed = time.monotonic() - started
    assert response["statusCode"] == 200, response
    assert body_of(response)["messages"] == 1000
    assert bus.most_in_flight > 1
    assert elapsed < meta_webhook.PUBLISH_BUDGET_S
    assert len({json.loads(e["Detail"])["provider_message_id"] for e in bus.entries}) == 1000
    assert all(len(e["Detail"]) < 2048 for e in bus.entries)


def test_a_small_batch_on_the_real_bus(stack: dict[Any, str]) -> None:
    assert post(batch_of(25))["statusCode"] == 200
    assert len({m.provider_message_id for m in published(stack)}) == 25


def test_past_the_budget_the_rest_of_1000_is_queued_for_profile_merge_and_meta_gets_200(
    stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = SlowBus(latency_s=0.06)  # 100 calls, 8 at a time: about 0.8 s, past a 0.3 s budget
    monkeypatch.setattr(whatsapp.publisher, "_client", bus)
    monkeypatch.setattr(meta_webhook, "PUBLISH_BUDGET_S", 0.3)
    response = post(batch_of(1000))
    assert response["statusCode"] == 200, response  # Meta does not resend the batch
    assert body_of(response)["messages"] == 1000
    queued = published(stack)  # the bus is fake here: what is on the queue came from the webhook
    assert queued, "the budget ran out: the rest went to the profile-merge queue"
    on_bus = {json.loads(e["Detail"])["provider_message_id"] for e in bus.entries}
    # A call still in flight when the budget ran out may reach the bus too (recorded once downstream).
    assert on_bus | {m.provider_message_id for m in queued} == {f"wamid.BATCH{n:06d}" for n in range(1000)}
    assert len(queued) < 1000


def test_a_failing_bus_is_still_refused_so_meta_retries(
    stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class BrokenBus(SlowBus):
        def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            return {
                "FailedEntryCount": len(Entries),
                "Entries": [{"ErrorCode": "Throttling"} for _ in Entries],
            }

    monkeypatch.setattr(whatsapp.publisher, "_client", BrokenBus(0.0))
    monkeypatch.setattr(whatsapp.publisher, "backoff_s", 0.0)
    response = post(batch_of(40))
    assert response["statusCode"] == 503  # nothing is lost: the resend is recorded once
    assert response["headers"]["Retry-After"] == "1"


def test_business_scoped_ids_are_recorded_under_their_identity(stack: dict[Any, str]) -> None:
    assert post(fixture("whatsapp_bsuid.json"))["statusCode"] == 200
    messages = published(stack)
    carla, dora = record_all(messages)
    assert carla.customer_id is not None
    assert dora.customer_id not in (None, carla.customer_id)
    from shared.repositories.customers import CustomerRepository  # noqa: PLC0415

    customers = CustomerRepository()
    owners = customers.owners_of([m.sender for m in messages] + [messages[0].identities[-1]])
    assert set(owners.values()) == {carla.customer_id, dora.customer_id}


def test_reactions_and_system_messages_are_not_routed(stack: dict[Any, str]) -> None:
    assert post(fixture("whatsapp_system.json"))["statusCode"] == 200
    assert {m.kind for m in published(stack)} == {"system"}
    assert {"reaction", "system"} <= NOT_ROUTED
