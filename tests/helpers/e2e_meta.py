"""Helpers for end-to-end tests of the Meta webhooks on the local stack (posted as Meta would)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import requests

from omni.local.auth import issue_agent_token
from omni.local.runtime import LocalRuntime
from tests.helpers import FIXTURES as SHARED_FIXTURES
from topology import TOPOLOGY

FIXTURES = SHARED_FIXTURES / "meta"


APP_SECRET = TOPOLOGY.secret("meta-app-secret").local_default


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def whatsapp_payload(wa_id: str, wamid: str, text: str = "Hi, my invoice is wrong") -> bytes:
    payload = fixture("whatsapp_text.json")
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = wa_id
    message = value["messages"][0]
    message.update({"from": wa_id, "id": wamid})
    message["text"]["body"] = text
    return json.dumps(payload).encode()


def post(
    runtime: LocalRuntime, hook: str, body: bytes, signature: str | None = "valid", **headers: str
) -> Any:
    sent = {"Content-Type": "application/json", **headers}
    if signature == "valid":
        sent["X-Hub-Signature-256"] = (
            "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
        )
    elif signature is not None:
        sent["X-Hub-Signature-256"] = signature
    return requests.post(f"{runtime.base_url}/webhooks/{hook}", data=body, headers=sent, timeout=10)


def agent_get(runtime: LocalRuntime, path: str, **params: str) -> Any:
    token = issue_agent_token("agent-e2e", 600)
    response = requests.get(
        f"{runtime.base_url}{path}", params=params, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


def customer_of(runtime: LocalRuntime, identity: str) -> dict[str, Any]:
    [customer] = agent_get(runtime, "/customers", identity=identity)["customers"]
    return customer


def inbound_messages(runtime: LocalRuntime, customer_id: str) -> list[dict[str, Any]]:
    [summary] = agent_get(runtime, f"/customers/{customer_id}/conversations")["conversations"]
    conversation = agent_get(runtime, f"/conversations/{summary['conversation_id']}")
    return [m for m in conversation["messages"] if m["direction"] == "inbound"]
