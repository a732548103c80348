"""WhatsApp, Messenger and Instagram on the local stack, driven over HTTP as Meta would."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from omni.cli import main as omni
from omni.local.runtime import LocalRuntime
from shared.contracts.events import Identity, MessageReceived, utc_now
from shared.repositories.outbox import OutboxRepository
from tests.helpers import FIXTURES as SHARED_FIXTURES
from tests.helpers.e2e_meta import (
    agent_get,
    customer_of,
    fixture,
    inbound_messages,
    post,
    whatsapp_payload,
)
from topology import MESSAGE_RECEIVED, TOPOLOGY

pytestmark = pytest.mark.e2e

FIXTURES = SHARED_FIXTURES / "meta"
VERIFY_TOKEN = TOPOLOGY.secret("meta-verify-token").local_default


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(port=0, stage="meta-e2e") as running:
        yield running


def delivery(outbox: OutboxRepository, notification_id: str) -> dict[str, Any]:
    item = outbox.get(notification_id)
    assert item is not None, notification_id
    return item


def test_subscription_handshake_on_both_hooks(runtime: LocalRuntime) -> None:
    for hook in ("whatsapp", "messenger"):
        params = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "987654321"}
        answer = requests.get(f"{runtime.base_url}/webhooks/{hook}", params=params, timeout=10)
        assert (answer.status_code, answer.text) == (200, "987654321")
        assert answer.headers["Content-Type"].startswith("text/plain")
        wrong = requests.get(
            f"{runtime.base_url}/webhooks/{hook}", params={**params, "hub.verify_token": "guess"}, timeout=10
        )
        assert wrong.status_code == 403
        assert requests.get(f"{runtime.base_url}/webhooks/{hook}", timeout=10).status_code == 400


def test_whatsapp_then_sms_from_the_same_phone_is_one_customer(runtime: LocalRuntime) -> None:
    response = post(runtime, "whatsapp", whatsapp_payload("4915199990001", "wamid.E2E0001"))
    assert response.status_code == 200, response.text
    runtime.wait_idle(timeout=30)
    customer = customer_of(runtime, "whatsapp:+4915199990001")
    assert customer["display_name"] == "Ana Lima"
    verified = {(i["type"], i["value"]) for i in customer["identities"] if i["verified"]}
    assert {("whatsapp", "+4915199990001"), ("phone", "+4915199990001")} <= verified

    # An SMS from the same number, as the SMS channel publishes it.
    sms = MessageReceived(
        channel="sms",
        provider="twilio",
        provider_message_id="SMe2e00000000000000000000000000001",
        sender=Identity(type="phone", value="+4915199990001", verified=True),
        text="sent by SMS too",
        sent_at=datetime.fromtimestamp(1795600800 + 60, UTC),  # a minute after the WhatsApp message
        received_at=utc_now(),
    )
    runtime.client("events").put_events(
        Entries=[
            {
                "Source": "omni.sms",
                "DetailType": MESSAGE_RECEIVED,
                "Detail": sms.model_dump_json(),
                "EventBusName": runtime.physical[("bus", TOPOLOGY.bus.name)],
            }
        ]
    )
    runtime.wait_idle(timeout=30)
    assert customer_of(runtime, "phone:+4915199990001")["customer_id"] == customer["customer_id"]
    messages = inbound_messages(runtime, customer["customer_id"])
    assert [(m["channel"], m["text"]) for m in messages] == [
        ("whatsapp", "Hi, my invoice is wrong"),
        ("sms", "sent by SMS too"),
    ]


def test_a_notification_retried_three_times_and_concurrently_is_recorded_once(runtime: LocalRuntime) -> None:
    body = whatsapp_payload("4915199990002", "wamid.E2E0002", "are you there?")
    statuses = [post(runtime, "whatsapp", body).status_code for _ in range(3)]
    threads = [
        threading.Thread(target=lambda: statuses.append(post(runtime, "whatsapp", body).status_code))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 6
    runtime.wait_idle(timeout=30)
    customer = customer_of(runtime, "whatsapp:+4915199990002")
    assert [m["text"] for m in inbound_messages(runtime, customer["customer_id"])] == ["are you there?"]


def test_whatsapp_batch_reaches_every_customer(runtime: LocalRuntime) -> None:
    assert post(runtime, "whatsapp", json.dumps(fixture("whatsapp_batch.json")).encode()).status_code == 200
    runtime.wait_idle(timeout=30)
    ana = customer_of(runtime, "whatsapp:+4915112345678")
    assert [m["text"] for m in inbound_messages(runtime, ana["customer_id"])] == [
        "first message",
        "second message",
    ]
    for wa_id, name in (("+5511987654321", "Bruno Costa"), ("+447700900123", "Chen Wei")):
        assert customer_of(runtime, f"phone:{wa_id}")["display_name"] == name


def test_messenger_echoes_and_receipts_are_not_customer_messages(runtime: LocalRuntime) -> None:
    OutboxRepository().start(
        {"notification_id": "ntf_e2e_m1", "channel": "messenger", "created_at": "2026-11-25T08:00:00Z"}
    )
    OutboxRepository().mark(
        "ntf_e2e_m1", "sent", "2026-11-25T08:00:01Z", provider_message_id="m_OUTBOUND0001"
    )
    response = post(runtime, "messenger", json.dumps(fixture("messenger_mixed.json")).encode())
    assert response.status_code == 200
    assert response.json()["messages"] == 3
    runtime.wait_idle(timeout=30)
    customer = customer_of(runtime, "messenger:6783902515025498")
    texts = [m["text"] for m in inbound_messages(runtime, customer["customer_id"])]
    assert texts == ["[image]", "Billing", "Talk to a person"]
    assert delivery(OutboxRepository(), "ntf_e2e_m1")["status"] == "delivered"


def test_omni_send_acts_as_meta(runtime: LocalRuntime, capsys: pytest.CaptureFixture[str]) -> None:
    url = ["--base-url", runtime.base_url]
    assert omni(["send", "meta-verify", "--hook", "messenger", *url]) == 0
    assert (
        omni(["send", "whatsapp", "--from", "4915199990003", "--name", "Bea", "hello from the CLI", *url])
        == 0
    )
    assert omni(["send", "instagram", "--igsid", "5550001112223", "hello from Instagram", *url]) == 0
    assert omni(["send", "messenger", "--psid", "5550001112224", "--echo", "our own answer", *url]) == 0
    runtime.wait_idle(timeout=30)
    bea = customer_of(runtime, "whatsapp:+4915199990003")
    assert bea["display_name"] == "Bea"
    assert [m["text"] for m in inbound_messages(runtime, bea["customer_id"])] == ["hello from the CLI"]
    insta = customer_of(runtime, "instagram:5550001112223")
    assert [m["channel"] for m in inbound_messages(runtime, insta["customer_id"])] == ["instagram"]
    assert agent_get(runtime, "/customers", identity="messenger:5550001112224")["customers"] == []
    assert "EVENT_RECEIVED" in capsys.readouterr().out


def test_delivery_statuses_move_our_message_forward(runtime: LocalRuntime) -> None:
    outbox = OutboxRepository()
    outbox.start(
        {"notification_id": "ntf_e2e_w1", "channel": "whatsapp", "created_at": "2026-11-25T08:00:00Z"}
    )
    outbox.mark("ntf_e2e_w1", "sent", "2026-11-25T08:00:01Z", provider_message_id="wamid.E2EOUT1")
    url = ["--base-url", runtime.base_url]
    for status in ("read", "delivered", "sent"):  # out of order, as Meta may deliver them
        assert omni(["send", "whatsapp-status", "--id", "wamid.E2EOUT1", "--status", status, *url]) == 0
    assert delivery(outbox, "ntf_e2e_w1")["status"] == "read"

    outbox.start(
        {"notification_id": "ntf_e2e_w2", "channel": "whatsapp", "created_at": "2026-11-25T08:00:00Z"}
    )
    outbox.mark("ntf_e2e_w2", "sent", "2026-11-25T08:00:01Z", provider_message_id="wamid.E2EOUT2")
    command = [
        "send",
        "whatsapp-status",
        "--id",
        "wamid.E2EOUT2",
        "--status",
        "failed",
        "--error-code",
        "131047",
    ]
    assert omni([*command, *url]) == 0
    failed = delivery(outbox, "ntf_e2e_w2")
    assert (failed["status"], failed["error_code"]) == ("failed", "131047")


def test_bad_input_gets_clear_4xx_answers(runtime: LocalRuntime) -> None:
    body = whatsapp_payload("4915199990004", "wamid.E2E0004")
    assert post(runtime, "whatsapp", body, signature=None).status_code == 401
    forged = "sha256=" + hmac.new(b"guessed-secret", body, hashlib.sha256).hexdigest()
    assert post(runtime, "whatsapp", body, signature=forged).status_code == 401
    assert post(runtime, "messenger", body, signature="sha256=abc").status_code == 401
    malformed = post(runtime, "whatsapp", b'{"object": "whatsapp_business_account", "entry": {}}')
    assert malformed.status_code == 400
    assert "entry" in malformed.json()["message"]
    assert post(runtime, "messenger", b"{not json").status_code == 400
    huge = json.dumps({"object": "page", "entry": [], "pad": "x" * (1024 * 1024)}).encode()
    assert post(runtime, "messenger", huge).status_code == 413
    form = post(runtime, "whatsapp", b"object=page", **{"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    runtime.wait_idle(timeout=30)
    assert agent_get(runtime, "/customers", identity="whatsapp:+4915199990004")["customers"] == []
