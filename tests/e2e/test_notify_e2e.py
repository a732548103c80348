"""Notifications end to end on the local stack: ``order.shipped`` on the bus, nothing during quiet
hours, then a WhatsApp template for one customer and an e-mail for the other in ``omni outbox``."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from functions.notify import handler as notify_handler
from omni import cli
from omni.local.auth import issue_agent_token
from omni.local.runtime import LocalRuntime
from shared.contracts.events import Identity, NotificationRequested
from shared.repositories.customers import CustomerRepository

pytestmark = pytest.mark.e2e

STAGE = "notify-e2e"
NIGHT = datetime(2026, 5, 10, 21, 30, tzinfo=UTC)  # 22:30 in Lisbon and in London
MORNING = datetime(2026, 5, 11, 7, 0, tzinfo=UTC)  # 08:00 in Lisbon and in London
RUNTIME_URL: list[str] = []  # the module's stack, for make_customer
SHIPPED = {"first_name": "Ana", "order_id": "A-17", "tracking_url": "https://t.example/A-17"}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def clock() -> Iterator[Clock]:
    fake = Clock(NIGHT)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(notify_handler, "clock", fake)
        patch.setattr(notify_handler, "MAX_DEFER_S", 1)  # one-second hops instead of 15 minutes
        patch.setattr(notify_handler, "_notifier", None)
        yield fake


@pytest.fixture(scope="module")
def runtime(clock: Clock) -> Iterator[LocalRuntime]:
    with LocalRuntime(port=0, stage=STAGE) as running:
        RUNTIME_URL[:] = [running.base_url]
        yield running


def make_customer(customer_id: str, identities: list[Identity], **choices: Any) -> None:
    """A customer a company system knows (its identities), with the contact choices an agent
    sets through the agent API (``PATCH /customers/{id}``)."""
    CustomerRepository().create(customer_id, identities, "2026-01-01T00:00:00.000000Z")
    if choices:
        response = requests.patch(
            f"{RUNTIME_URL[0]}/customers/{customer_id}",
            json=choices,
            headers={"Authorization": f"Bearer {issue_agent_token('agent-e2e', 600)}"},
            timeout=10,
        )
        assert response.status_code == 200, response.text


def publish_order_shipped(runtime: LocalRuntime, customer_id: str, order: str) -> None:
    request = NotificationRequested(
        notification_id=f"order.shipped:{order}",
        customer_id=customer_id,
        kind="notification",
        template="order_shipped",
        variables={**SHIPPED, "order_id": order},
        author="orders",
    )
    result = runtime.client("events").put_events(
        Entries=[
            {
                "Source": "omni.orders",
                "DetailType": "notification.requested",
                "Detail": request.model_dump_json(),
                "EventBusName": runtime.physical[("bus", "events")],
            }
        ]
    )
    assert result["FailedEntryCount"] == 0


def outbox(runtime: LocalRuntime) -> dict[str, dict[str, Any]]:
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["outbox", "--endpoint", runtime.endpoint_url, "--stage", STAGE, "--json"]) == 0
    return {item["notification_id"]: item for item in json.loads(out.getvalue())}


def test_order_shipped_waits_for_quiet_hours_then_goes_out_on_each_preferred_channel(
    runtime: LocalRuntime, clock: Clock
) -> None:
    make_customer(
        "cust-wa",
        [Identity(type="whatsapp", value="+351910000001", verified=True)],
        channel_preferences=["whatsapp", "email"],
        timezone="Europe/Lisbon",
        language="pt-PT",
    )
    make_customer(
        "cust-mail",
        [Identity(type="email", value="rui@example.com", verified=True)],
        channel_preferences=["email"],
        timezone="Europe/London",
    )
    publish_order_shipped(runtime, "cust-wa", "A-17")
    publish_order_shipped(runtime, "cust-mail", "B-42")

    # 22:30 for both customers: the requests are accepted and wait, nothing is sent.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        items = outbox(runtime)
        if len(items) == 2 and all(i.get("deferrals", 0) >= 2 for i in items.values()):
            break
        time.sleep(0.2)
    items = outbox(runtime)
    assert set(items) == {"order.shipped:A-17", "order.shipped:B-42"}
    for item in items.values():
        assert item["status"] == "queued"
        assert item["attempts"] == {}
        assert item["deferred_until"] == "2026-05-11T07:00:00.000000Z"
        assert item["deferrals"] >= 2  # re-deferred hop after hop, no polling loop

    # 08:00: the quiet hours end and the next hop delivers.
    clock.now = MORNING
    runtime.wait_idle(timeout=30)
    items = outbox(runtime)

    whatsapp = items["order.shipped:A-17"]
    assert (whatsapp["status"], whatsapp["channel"]) == ("sent", "whatsapp")
    request = whatsapp["attempts"]["whatsapp"]["request"]
    assert request["url"] == "https://graph.facebook.com/v21.0/100000000000000/messages"
    assert request["body"]["type"] == "template"
    assert request["body"]["to"] == "351910000001"
    assert request["body"]["template"]["name"] == "order_shipped"
    assert request["body"]["template"]["language"] == {"code": "pt_PT"}
    assert [p["text"] for p in request["body"]["template"]["components"][0]["parameters"]] == [
        "Ana",
        "A-17",
        "https://t.example/A-17",
    ]
    assert whatsapp["provider_message_id"].startswith("wamid.")

    email = items["order.shipped:B-42"]
    assert (email["status"], email["channel"]) == ("sent", "email")
    body = email["attempts"]["email"]["request"]["body"]
    assert body["Destination"] == {"ToAddresses": ["rui@example.com"]}
    assert "Subject: Your order B-42 is on its way" in body["Content"]["Raw"]["Data"]

    # the human-readable listing shows both deliveries
    out = io.StringIO()
    with redirect_stdout(out):
        cli.main(["outbox", "--endpoint", runtime.endpoint_url, "--stage", STAGE])
    listing = out.getvalue()
    assert "whatsapp  whatsapp:+351910000001  sent" in listing
    assert "email  email:rui@example.com  sent" in listing


def test_post_notifications_over_http(runtime: LocalRuntime, clock: Clock) -> None:
    clock.now = datetime(2026, 5, 11, 12, 0, tzinfo=UTC)  # no time zone on the profile: UTC, midday
    make_customer(
        "cust-api",
        [Identity(type="phone", value="+351910000009", verified=True)],
        channel_preferences=["sms"],
    )
    token = issue_agent_token("agent-e2e", 600)
    response = requests.post(
        f"{runtime.base_url}/notifications",
        json={"customer_id": "cust-api", "text": "Your table is ready.", "notification_id": "table:7"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    runtime.wait_idle(timeout=30)
    item = outbox(runtime)["table:7"]
    assert (item["status"], item["channel"]) == ("sent", "sms")
    sent = item["attempts"]["sms"]["request"]
    assert sent["url"].endswith("/2010-04-01/Accounts/AC00000000000000000000000000000000/Messages.json")
    assert sent["body"] == {"To": "+351910000009", "From": "+15005550006", "Body": "Your table is ready."}
    unauthorised = requests.post(f"{runtime.base_url}/notifications", json={}, timeout=10)
    assert unauthorised.status_code == 401
