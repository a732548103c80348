"""The unified profile on the local stack, over HTTP as Twilio, Meta, SES, a browser and an agent would.

The same person texts by SMS, writes on WhatsApp from the same number, types their
e-mail address into an anonymous web chat (a claim), is merged and confirmed by an
agent, logs into web chat with a verified account carrying that e-mail, and e-mails
from it: one customer, one conversation thread. Then unmerge with the audit visible,
and erasure that a replayed old message cannot undo.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests
from twilio.request_validator import RequestValidator

from omni.local.auth import issue_agent_token
from omni.local.runtime import LocalRuntime
from omni.send.email import CONTROL_PATH
from omni.send.meta import whatsapp_message
from omni.send.twilio import new_sid, sms_payload
from shared.channels.webchat import compute_user_hash
from shared.platform.http import PUBLIC_BASE_URL_ENV
from tests.helpers import FIXTURES
from topology import TOPOLOGY

pytestmark = pytest.mark.e2e

PHONE = "+4915155501234"
ACCOUNT = "acct-e2e-77"
EMAIL = "ana.lima@example.com"  # the sender of the e-mail fixture
MAIL = FIXTURES / "email" / "plain.eml"
TWILIO_TOKEN = TOPOLOGY.secret("twilio-auth-token").local_default
META_SECRET = TOPOLOGY.secret("meta-app-secret").local_default
IDENTITY_SECRET = TOPOLOGY.secret("webchat-identity").local_default


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(port=0, stage="profile-e2e") as running:
        yield running


def agent(runtime: LocalRuntime, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    token = issue_agent_token("agent-e2e", 600)
    response = requests.request(
        method,
        f"{runtime.base_url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    return response.status_code, response.json() if response.content else None


def customer_of(runtime: LocalRuntime, identity: str) -> dict[str, Any] | None:
    status, body = agent(runtime, "GET", f"/customers?identity={quote(identity)}")
    assert status == 200, body
    return body["customers"][0] if body["customers"] else None


def sms(runtime: LocalRuntime, params: list[tuple[str, str]]) -> None:
    url = os.environ[PUBLIC_BASE_URL_ENV].rstrip("/") + "/webhooks/sms"
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, dict(params))
    response = requests.post(
        f"{runtime.base_url}/webhooks/sms",
        data=params,
        headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    runtime.wait_idle(timeout=30)


def whatsapp(runtime: LocalRuntime, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(META_SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = requests.post(
        f"{runtime.base_url}/webhooks/whatsapp",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    runtime.wait_idle(timeout=30)


def webchat(runtime: LocalRuntime, customer: dict[str, Any], message_id: str, text: str) -> str:
    opened = requests.post(f"{runtime.base_url}/webchat/sessions", json={"customer": customer}, timeout=10)
    assert opened.status_code == 201, opened.text
    session = opened.json()
    sent = requests.post(
        f"{runtime.base_url}/webchat/sessions/{session['session_id']}/messages",
        json={"message_id": message_id, "text": text, "sent_at": _now()},
        headers={"Authorization": f"Bearer {session['token']}"},
        timeout=10,
    )
    assert sent.status_code == 202, sent.text
    runtime.wait_idle(timeout=30)
    return str(session["session_id"])


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def thread(runtime: LocalRuntime, customer_id: str) -> dict[str, Any]:
    status, customer = agent(runtime, "GET", f"/customers/{customer_id}")
    assert status == 200, customer
    status, conversation = agent(runtime, "GET", f"/conversations/{customer['open_conversation_id']}")
    assert status == 200, conversation
    return conversation


def inbound(conversation: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["channel"], m["text"]) for m in conversation["messages"] if m["direction"] == "inbound"]


def test_one_person_across_sms_whatsapp_webchat_and_email_is_one_customer_with_one_thread(
    runtime: LocalRuntime,
) -> None:
    # 1. SMS, then WhatsApp from the same number: one customer, one conversation.
    first_sms = sms_payload(new_sid("SM"), PHONE, "Hi, where is my order 1234?")
    sms(runtime, first_sms)
    sent_at = int(time.time()) + 1  # WhatsApp timestamps are whole seconds: after the SMS
    first_whatsapp = whatsapp_message(PHONE.lstrip("+"), "Writing on WhatsApp now", timestamp=sent_at)
    whatsapp(runtime, first_whatsapp)
    phone_customer = customer_of(runtime, f"phone:{PHONE}")
    assert phone_customer is not None
    customer_id = phone_customer["customer_id"]
    assert customer_of(runtime, f"whatsapp:{PHONE.lstrip('+')}")["customer_id"] == customer_id  # type: ignore[index]
    assert [c for c, _ in inbound(thread(runtime, customer_id))] == ["sms", "whatsapp"]

    # 2. An anonymous web chat where the customer types their e-mail: a claim, a new profile.
    session = webchat(runtime, {"email": EMAIL, "name": "Ana Lima"}, "wc-1", "It's me again, Ana")
    anonymous = customer_of(runtime, f"webchat:{session}")
    assert anonymous is not None
    assert anonymous["customer_id"] != customer_id
    assert {(i["type"], i["value"], i["verified"]) for i in anonymous["identities"]} >= {
        ("email", EMAIL, False)
    }
    assert customer_of(runtime, f"email:{EMAIL}") is None  # a claim finds nobody

    # 3. The agent merges the chat into the phone customer (chosen survivor) and confirms the claim.
    status, merged = agent(
        runtime, "POST", f"/customers/{customer_id}/merge", {"other_customer_id": anonymous["customer_id"]}
    )
    assert status == 200, merged
    merge_id = merged["merge"]["merge_id"]
    status, confirmed = agent(
        runtime, "POST", f"/customers/{customer_id}/identities/confirm", {"type": "email", "value": EMAIL}
    )
    assert status == 200, confirmed
    assert ("email", EMAIL, True) in {(i["type"], i["value"], i["verified"]) for i in confirmed["identities"]}

    # 4. Logging into web chat with a verified account carrying that e-mail, then e-mailing.
    verified = {
        "account_id": ACCOUNT,
        "email": EMAIL,
        "user_hash": compute_user_hash(IDENTITY_SECRET, ACCOUNT),
    }
    webchat(runtime, verified, "wc-2", "Logged in now")
    mailed = requests.post(
        f"{runtime.base_url}{CONTROL_PATH}/email",
        data=MAIL.read_bytes(),
        headers={"Content-Type": "message/rfc822"},
        timeout=10,
    )
    assert mailed.status_code == 202, mailed.text
    runtime.wait_idle(timeout=30)

    for identity in (f"phone:{PHONE}", f"email:{EMAIL}", f"account:{ACCOUNT}", f"webchat:{session}"):
        found = customer_of(runtime, identity)
        assert found is not None
        assert found["customer_id"] == customer_id, identity
    one = thread(runtime, customer_id)
    channels = [c for c, _ in inbound(one)]
    assert sorted(channels) == ["email", "sms", "webchat", "webchat", "whatsapp"]
    status, listed = agent(runtime, "GET", f"/customers/{customer_id}/conversations")
    assert [c["status"] for c in listed["conversations"]].count(
        "merged"
    ) == 1  # the chat's, now in the thread

    # 5. The audit is visible, the merged-away id answers with the survivor, and unmerge gives back.
    status, body = agent(runtime, "GET", f"/customers/{anonymous['customer_id']}")
    assert (status, body["customer_id"], body["redirected_from"]) == (
        200,
        customer_id,
        anonymous["customer_id"],
    )
    status, merges = agent(runtime, "GET", f"/customers/{customer_id}/merges")
    [record] = merges["merges"]
    assert (record["merge_id"], record["cause"], record["merged_id"]) == (
        merge_id,
        "agent:agent-e2e",
        anonymous["customer_id"],
    )
    status, undone = agent(runtime, "POST", f"/customers/{customer_id}/unmerge", {"merge_id": merge_id})
    assert status == 200, undone
    assert customer_of(runtime, f"webchat:{session}")["customer_id"] == anonymous["customer_id"]  # type: ignore[index]
    assert customer_of(runtime, f"email:{EMAIL}")["customer_id"] == customer_id  # type: ignore[index]
    assert ("webchat", "It's me again, Ana") not in inbound(thread(runtime, customer_id))
    assert inbound(thread(runtime, anonymous["customer_id"])) == [("webchat", "It's me again, Ana")]

    # 6. Erasure: the person is gone, and replayed old messages do not bring them back.
    status, erased = agent(runtime, "DELETE", f"/customers/{customer_id}")
    assert status == 200, erased
    status, body = agent(runtime, "GET", f"/customers/{customer_id}")
    assert status == 404
    assert "erased" in body["message"]
    sms(runtime, first_sms)  # Twilio retrying the first message
    whatsapp(runtime, first_whatsapp)  # Meta redelivering
    for identity in (f"phone:{PHONE}", f"email:{EMAIL}", f"account:{ACCOUNT}"):
        assert customer_of(runtime, identity) is None, identity
    status, export = agent(runtime, "GET", f"/customers/{anonymous['customer_id']}/export")
    assert status == 200  # the unmerged anonymous chat was not part of the erased person
    assert PHONE not in json.dumps(export)
