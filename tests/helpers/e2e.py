"""Call the local stack's agent API over HTTP with a signed agent token, as the console does."""

from __future__ import annotations

from typing import Any

import requests

from omni.local.auth import issue_agent_token
from omni.local.runtime import LocalRuntime


def agent(runtime: LocalRuntime, who: str, method: str, path: str, body: Any = None) -> requests.Response:
    extra = {"cognito:groups": ["supervisors"]} if who == "supervisor" else None
    response = requests.request(
        method,
        f"{runtime.base_url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {issue_agent_token(who, 600, extra_claims=extra)}"},
        timeout=10,
    )
    assert response.status_code < 300, response.text
    return response
