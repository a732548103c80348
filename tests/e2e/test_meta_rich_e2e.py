"""WhatsApp business-scoped ids and a shared contact card on the local stack, posted as Meta would."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from omni.local.runtime import LocalRuntime
from shared.repositories.outbox import OutboxRepository
from tests.helpers.e2e_meta import (
    agent_get,
    customer_of,
    fixture,
    inbound_messages,
    post,
    whatsapp_payload,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(port=0, stage="meta-rich-e2e") as running:
        yield running


def test_business_scoped_ids_become_customers(runtime: LocalRuntime) -> None:
    response = post(runtime, "whatsapp", json.dumps(fixture("whatsapp_bsuid.json")).encode())
    assert response.status_code == 200, response.text
    runtime.wait_idle(timeout=60)
    carla = customer_of(runtime, "whatsapp_user:BR.1184029375510293847")
    verified = {(i["type"], i["value"]) for i in carla["identities"] if i["verified"]}
    assert {("whatsapp", "+5511987650001"), ("whatsapp_user", "BR.1184029375510293847")} <= verified
    assert customer_of(runtime, "phone:+5511987650001")["customer_id"] == carla["customer_id"]
    # Known only by the business-scoped id (a username user, no phone number).
    dora = customer_of(runtime, "whatsapp_user:DE.9920418836475510023")
    assert dora["display_name"] == "dora.k"
    [message] = inbound_messages(runtime, dora["customer_id"])
    assert message["text"] == "Hallo, wo ist meine Bestellung?"


def test_a_contact_card_reaches_the_agent_readably(runtime: LocalRuntime) -> None:
    payload = fixture("whatsapp_rich.json")
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = "4915199990077"
    value["messages"] = [dict(value["messages"][0], **{"from": "4915199990077"})]
    assert post(runtime, "whatsapp", json.dumps(payload).encode()).status_code == 200
    runtime.wait_idle(timeout=60)
    ana = customer_of(runtime, "whatsapp:+4915199990077")
    [message] = inbound_messages(runtime, ana["customer_id"])
    assert message["text"].startswith("[contact] Bruno Keller, +49 30 1234567")
    [card] = message["attachments"]
    assert card["content"]["kind"] == "contact"
    assert card["content"]["emails"] == ["bruno.keller@example.com"]


def test_a_number_change_links_the_new_number_with_an_audit_entry(runtime: LocalRuntime) -> None:
    first = post(runtime, "whatsapp", whatsapp_payload("4915112345678", "wamid.BEFORE-CHANGE", "Hallo"))
    assert first.status_code == 200
    runtime.wait_idle(timeout=60)
    ana = customer_of(runtime, "whatsapp:+4915112345678")
    assert post(runtime, "whatsapp", json.dumps(fixture("whatsapp_system.json")).encode()).status_code == 200
    runtime.wait_idle(timeout=60)
    # The new number is the same customer, verified; the old one stays linked.
    assert customer_of(runtime, "whatsapp:+4915187654321")["customer_id"] == ana["customer_id"]
    ana = customer_of(runtime, "whatsapp:+4915112345678")
    verified = {(i["type"], i["value"]) for i in ana["identities"] if i["verified"]}
    assert {("whatsapp", "+4915187654321"), ("phone", "+4915187654321")} <= verified
    changed = ana["identity_changes"]["user_changed_number"]
    assert changed["from"] == "whatsapp:+4915112345678"
    assert changed["to"] == "whatsapp:+4915187654321"
    assert changed["message_id"].endswith("wamid.HBgNSYSTEMNUMBER0001")
    assert ana["identity_changes"]["customer_identity_changed"]["identity_hash"] == "a1b2c3d4e5f6"
    # Events on the profile, not customer messages: the conversation holds only the greeting.
    assert [m["text"] for m in inbound_messages(runtime, ana["customer_id"])] == ["Hallo"]


def reaction_payload(wa_id: str, wamid: str, target: str, emoji: str) -> bytes:
    payload = fixture("whatsapp_text.json")
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = wa_id
    message = {"from": wa_id, "id": wamid, "timestamp": str(int(time.time())), "type": "reaction"}
    message["reaction"] = {"message_id": target, "emoji": emoji}
    value["messages"] = [message]
    return json.dumps(payload).encode()


def test_a_reaction_attaches_to_the_message_it_reacts_to(runtime: LocalRuntime) -> None:
    text = json.loads(whatsapp_payload("4915100000042", "wamid.REACT-IN-1", "Hallo, wo ist mein Paket?"))
    # Written now: inside the 24-hour window our acknowledgement goes out as free text.
    text["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int(time.time()))
    assert post(runtime, "whatsapp", json.dumps(text).encode()).status_code == 200
    runtime.wait_idle(timeout=60)
    eva = customer_of(runtime, "whatsapp:+4915100000042")
    [summary] = agent_get(runtime, f"/customers/{eva['customer_id']}/conversations")["conversations"]
    path = f"/conversations/{summary['conversation_id']}"
    before = agent_get(runtime, path)["messages"]
    [ours] = [m for m in before if m["direction"] == "outbound"]  # the acknowledgement
    sent = OutboxRepository().get(ours["message_id"])  # read only: Meta's id of our message
    assert sent is not None
    thumbs = reaction_payload("4915100000042", "wamid.REACT-1", sent["provider_message_id"], "\U0001f44d")
    heart = reaction_payload("4915100000042", "wamid.REACT-2", "wamid.REACT-IN-1", "\u2764\ufe0f")
    assert post(runtime, "whatsapp", thumbs).status_code == 200
    assert post(runtime, "whatsapp", heart).status_code == 200
    runtime.wait_idle(timeout=60)
    after = agent_get(runtime, path)["messages"]
    # Stored on the messages reacted to, not as new customer messages (and nothing answered them).
    assert [m["message_id"] for m in after] == [m["message_id"] for m in before]
    reactions = {m["direction"]: m["reaction"] for m in after}
    assert reactions == {"outbound": "\U0001f44d", "inbound": "\u2764\ufe0f"}
