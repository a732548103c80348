"""Proactive service on the local stack: behaviour events put on the bus as a shop would.

The shop (source ``omni.shop``) publishes ``order.status_checked`` and ``page.viewed`` with
boto3 ``put_events``; the bus rule feeds the proactive function. The third order-status
check within 24 h yields one shipping update in the outbox (a fourth yields nothing
more); a view of the cancellation page puts the customer's conversation in the
retention queue with a note, once, and a retention agent who becomes available gets it.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from twilio.request_validator import RequestValidator

from omni import cli
from omni.local.auth import issue_agent_token
from omni.local.runtime import LocalRuntime
from omni.send import twilio as sender
from shared.channels.webchat import compute_user_hash
from shared.platform.http import PUBLIC_BASE_URL_ENV
from topology import TOPOLOGY

pytestmark = pytest.mark.e2e

STAGE = "e2e-proactive"
PHONE = "+4915112345550"


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(port=0, stage=STAGE) as running:
        yield running


def agent(runtime: LocalRuntime, who: str, method: str, path: str, body: Any = None, **kw: Any) -> Any:
    extra = {"cognito:groups": ["supervisors"]} if who == "supervisor" else None
    token = issue_agent_token(who, 600, extra_claims=extra)
    response = requests.request(
        method,
        f"{runtime.base_url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
        **kw,
    )
    assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text}"
    return response.json()


def shop_events(
    runtime: LocalRuntime, *entries: tuple[str, dict[str, Any]], source: str = "omni.shop"
) -> None:
    result = runtime.client("events").put_events(
        Entries=[
            {
                "Source": source,
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
                "EventBusName": runtime.physical[("bus", "events")],
            }
            for detail_type, detail in entries
        ]
    )
    assert result["FailedEntryCount"] == 0
    # A notification deferred to the end of the customer's quiet hours stays delayed for hours.
    runtime.wait_idle(timeout=30, count_delayed=False)


def outbox(runtime: LocalRuntime) -> dict[str, dict[str, Any]]:
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["outbox", "--endpoint", runtime.endpoint_url, "--stage", STAGE, "--json"]) == 0
    return {item["notification_id"]: item for item in json.loads(out.getvalue())}


def sms(runtime: LocalRuntime, text: str) -> None:
    path = sender.SMS_PATH
    params = sender.sms_payload(sender.new_sid("SM"), PHONE, text)
    token = TOPOLOGY.secret("twilio-auth-token").local_default
    signature = RequestValidator(token).compute_signature(
        os.environ[PUBLIC_BASE_URL_ENV].rstrip("/") + path, dict(params)
    )
    response = requests.post(
        f"{runtime.base_url}{path}",
        data=params,
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    # A notification deferred to the end of the customer's quiet hours stays delayed for hours.
    runtime.wait_idle(timeout=30, count_delayed=False)


def test_the_third_order_check_within_a_day_sends_one_shipping_update(runtime: LocalRuntime) -> None:
    sms(runtime, "What are your opening hours?")
    [customer] = agent(runtime, "agent-x", "GET", "/customers", params={"identity": f"phone:{PHONE}"})[
        "customers"
    ]
    now = datetime.now(UTC)

    def checked(hours_ago: float) -> tuple[str, dict[str, Any]]:
        at = (now - timedelta(hours=hours_ago)).isoformat()
        # The shop knows the customer by the phone number on the order, in its own spelling.
        return (
            "order.status_checked",
            {"identity": {"type": "phone", "value": "+49 151 1234 5550"}, "order_id": "SO-1", "at": at},
        )

    shop_events(runtime, checked(6), checked(4))
    assert not [n for n in outbox(runtime) if n.startswith("proactive:")]

    shop_events(runtime, checked(2))
    shop_events(runtime, checked(1))  # the fourth check: nothing more
    proactive = {k: v for k, v in outbox(runtime).items() if k.startswith("proactive:")}
    assert len(proactive) == 1, proactive
    [(notification_id, item)] = proactive.items()
    assert notification_id.startswith(f"proactive:shipping_update:{customer['customer_id']}:SO-1:")
    assert item["customer_id"] == customer["customer_id"]
    assert item["template"] == "order_shipped"
    # Sent by SMS now, or waiting for the end of the customer's quiet hours.
    assert item["status"] in ("sent", "queued"), item


def test_a_cancellation_page_view_opens_one_retention_task(runtime: LocalRuntime) -> None:
    agent(
        runtime,
        "supervisor",
        "PUT",
        "/agents/rosa",
        {"name": "Rosa", "skills": {"retention": 9}, "max_concurrent": 2},
    )
    secret = TOPOLOGY.secret("webchat-identity").local_default
    session = requests.post(
        f"{runtime.base_url}/webchat/sessions",
        json={
            "customer": {
                "account_id": "acct-cancel",
                "name": "Lena Vogel",
                "user_hash": compute_user_hash(secret, "acct-cancel"),
            }
        },
        timeout=10,
    ).json()
    response = requests.post(
        f"{runtime.base_url}/webchat/sessions/{session['session_id']}/messages",
        json={
            "message_id": "c-1",
            "text": "What are your opening hours?",
            "sent_at": datetime.now(UTC).isoformat(),
        },
        headers={"Authorization": f"Bearer {session['token']}"},
        timeout=10,
    )
    assert response.status_code == 202
    # A notification deferred to the end of the customer's quiet hours stays delayed for hours.
    runtime.wait_idle(timeout=30, count_delayed=False)

    now = datetime.now(UTC)
    viewed = {
        "identity": {"type": "account", "value": "acct-cancel"},
        "url": "https://shop.example.com/account/cancel",
    }
    shop_events(runtime, ("page.viewed", {**viewed, "at": now.isoformat()}), source="omni.web")
    shop_events(
        runtime,
        ("page.viewed", {**viewed, "at": (now + timedelta(seconds=30)).isoformat()}),
        ("page.viewed", {**viewed, "url": "https://shop.example.com/pricing", "at": now.isoformat()}),
        source="omni.web",
    )
    # An event from a source outside omni.* never reaches the function (it would add a note).
    tomorrow = (now + timedelta(days=1)).isoformat()
    shop_events(runtime, ("page.viewed", {**viewed, "at": tomorrow}), source="shop.legacy")

    waiting = agent(runtime, "rosa", "GET", "/queues/retention")["waiting"]
    assert len(waiting) == 1
    conversation_id = waiting[0]["conversation_id"]

    # Rosa becomes available and gets the task, with the note and the context.
    agent(runtime, "rosa", "PUT", "/agents/me/status", {"status": "available"})
    [mine] = agent(runtime, "rosa", "GET", "/agents/me/conversations")["conversations"]
    assert mine["conversation_id"] == conversation_id
    conversation = agent(runtime, "rosa", "GET", f"/conversations/{conversation_id}")
    assert (conversation["status"], conversation["queue"], conversation["assigned_agent"]) == (
        "assigned",
        "retention",
        "rosa",
    )
    [note] = conversation["notes"]
    assert note["text"].startswith("customer viewed the cancellation page")
    assert conversation["handover"]["display_name"] == "Lena Vogel"
    assert conversation["handover"]["summary"].startswith("Proactive: customer viewed the cancellation page")
    assert conversation["messages"][0]["text"] == "What are your opening hours?"
    assert [t["to_status"] for t in conversation["transitions"]] == ["open", "bot", "queued", "assigned"]
