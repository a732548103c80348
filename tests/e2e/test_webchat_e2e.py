"""The whole stack on the local runtime, driven over HTTP as a browser, a site and an agent would."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from omni import demo
from omni.local.auth import issue_agent_token
from omni.local.runtime import LocalRuntime

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(port=0, stage="e2e") as running:
        yield running


def agent_get(runtime: LocalRuntime, path: str, token: str | None = None) -> requests.Response:
    token = token or issue_agent_token("agent-e2e", 600)
    return requests.get(f"{runtime.base_url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_demo_journey_builds_one_customer_one_conversation_with_acknowledgement(
    runtime: LocalRuntime,
) -> None:
    out = io.StringIO()
    timeline = demo.play(runtime.base_url, out=out)
    runtime.wait_idle(timeout=30)

    customer = timeline["customer"]
    verified = {(i["type"], i["value"]) for i in customer["identities"] if i["verified"]}
    assert {("account", demo.ACCOUNT_ID), ("email", demo.EMAIL)} <= verified
    assert sum(i["type"] == "webchat" for i in customer["identities"]) == 2  # two devices, one customer
    [conversation] = timeline["conversations"]
    assert conversation["routing"]["queue"] == "billing"
    directions = [m["direction"] for m in conversation["messages"]]
    assert directions == ["inbound", "outbound", "inbound"]
    assert "Ana Lima" in out.getvalue()
    assert "billing team" in out.getvalue()

    deliveries = runtime.client("dynamodb").scan(TableName=runtime.physical[("table", "outbox")])["Items"]
    assert [d["status"]["S"] for d in deliveries] == ["sent"]


def open_session(runtime: LocalRuntime, customer: dict[str, Any] | None = None) -> dict[str, Any]:
    response = requests.post(
        f"{runtime.base_url}/webchat/sessions", json={"customer": customer or {}}, timeout=10
    )
    assert response.status_code == 201, response.text
    return response.json()


def post_message(
    runtime: LocalRuntime, session: dict[str, Any], body: Any, token: str | None = None
) -> requests.Response:
    return requests.post(
        f"{runtime.base_url}/webchat/sessions/{session['session_id']}/messages",
        json=body,
        headers={"Authorization": f"Bearer {token or session['token']}"},
        timeout=10,
    )


def test_a_message_retried_concurrently_is_recorded_once(runtime: LocalRuntime) -> None:
    session = open_session(runtime)
    body = {"message_id": "same-1", "text": "hello?", "sent_at": datetime.now(UTC).isoformat()}
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(post_message(runtime, session, body).status_code))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [202] * 4
    runtime.wait_idle(timeout=30)
    found = agent_get(runtime, f"/customers?identity=webchat:{session['session_id']}").json()["customers"]
    [customer] = found
    [summary] = agent_get(runtime, f"/customers/{customer['customer_id']}/conversations").json()[
        "conversations"
    ]
    conversation = agent_get(runtime, f"/conversations/{summary['conversation_id']}").json()
    assert [m["direction"] for m in conversation["messages"]] == ["inbound", "outbound"]


def test_bad_requests_get_clear_4xx_answers(runtime: LocalRuntime) -> None:
    session, other = open_session(runtime), open_session(runtime)
    ok = {"message_id": "m", "text": "hi", "sent_at": "2026-11-25T08:00:00Z"}
    assert post_message(runtime, session, ok, token=other["token"]).status_code == 401
    assert post_message(runtime, session, ok, token=session["token"][:-2] + "xx").status_code == 401
    malformed = post_message(runtime, session, {"message_id": "m", "sent_at": "2026-11-25T08:00:00Z"})
    assert malformed.status_code == 400
    assert "text" in malformed.json()["message"]
    assert post_message(runtime, session, {**ok, "text": "x" * 50_000}).status_code == 413
    wrong_type = requests.post(
        f"{runtime.base_url}/webchat/sessions/{session['session_id']}/messages",
        data="text=hi",
        headers={"Authorization": f"Bearer {session['token']}", "Content-Type": "text/plain"},
        timeout=10,
    )
    assert wrong_type.status_code == 415
    assert requests.get(f"{runtime.base_url}/customers?identity=email:a@b.co", timeout=10).status_code == 401
    assert (
        agent_get(runtime, "/customers?identity=email:a@b.co", token="forged.token.value").status_code == 401
    )
    assert agent_get(runtime, "/customers?identity=nonsense").status_code == 400
    assert agent_get(runtime, "/conversations/conv_missing").status_code == 404


def test_health_and_openapi(runtime: LocalRuntime) -> None:
    assert requests.get(f"{runtime.base_url}/healthz", timeout=10).status_code == 200
    spec = requests.get(f"{runtime.base_url}/openapi.json", timeout=10).json()
    assert "/customers/{customer_id}/conversations" in spec["paths"]


def test_stack_works_the_same_on_an_external_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        requests.post(f"{endpoint}/moto-api/reset", timeout=10)
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        with LocalRuntime(port=0, stage="external") as external:
            assert external.endpoint_url == endpoint
            timeline = demo.play(external.base_url, out=io.StringIO())
            assert len(timeline["conversations"][0]["messages"]) == 3
        # The resources live on the external emulator, which outlives the runtime.
        tables = boto3.client("dynamodb", endpoint_url=endpoint).list_tables()["TableNames"]
        assert "omni-external-conversations" in tables
        items = boto3.client("dynamodb", endpoint_url=endpoint).scan(TableName="omni-external-outbox")[
            "Items"
        ]
        assert json.loads(json.dumps([i["status"]["S"] for i in items])) == ["sent"]
    finally:
        server.stop()
