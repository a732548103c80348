"""Helpers for end-to-end tests of e-mail on the local stack (``omni send email``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from omni.cli import main as omni
from omni.local.auth import issue_agent_token
from omni.local.runtime import LocalRuntime
from tests.helpers import FIXTURES as SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "email"


def agent_get(runtime: LocalRuntime, path: str) -> Any:
    token = issue_agent_token("agent-e2e", 600)
    response = requests.get(
        f"{runtime.base_url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


def send(runtime: LocalRuntime, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    """``omni send email ...`` against the runtime; the emulator's 202 answer."""
    capsys.readouterr()
    assert omni(["send", "email", *args, "--base-url", runtime.base_url]) == 0
    output = capsys.readouterr().out
    assert output.startswith("202 "), output
    runtime.wait_idle(timeout=30)
    return json.loads(output[4:])


def conversation_of(runtime: LocalRuntime, address: str) -> tuple[dict[str, Any], dict[str, Any]]:
    found = agent_get(runtime, f"/customers?identity=email:{address}")["customers"]
    # The verified owner; a claimed profile of the same address (unproven mail) is listed after it.
    [customer] = [c for c in found if c.get("verification") == "verified"] or found
    [summary] = agent_get(runtime, f"/customers/{customer['customer_id']}/conversations")["conversations"]
    return customer, agent_get(runtime, f"/conversations/{summary['conversation_id']}")
