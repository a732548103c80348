"""Web chat push on the local stack: a browser-free WebSocket client (raw socket, RFC 6455)
connects with the session token, and the bot's answer and the agent's reply arrive as
pushes (and stay retrievable by polling); forged tokens are refused; stale connections
are forgotten."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
import requests

from omni import demo
from omni.local.auth import issue_agent_token
from omni.local.runtime import LocalRuntime
from omni.local.websocket import OP_CLOSE, OP_TEXT, accept_key, encode_frame, read_frame
from shared.repositories.dynamo import serialise

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(port=0, stage="e2e-push") as running:
        yield running


class Client:
    """A minimal WebSocket client: the upgrade, masked text frames, reading server frames."""

    def __init__(self, url: str, query: dict[str, str]) -> None:
        target = urlsplit(url)
        self.sock = socket.create_connection((target.hostname, target.port), timeout=10)
        self.key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /?{urlencode(query)} HTTP/1.1\r\nHost: {target.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self.key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.stream = self.sock.makefile("rb")
        self.status = int(self.stream.readline().split()[1])
        self.headers: dict[str, str] = {}
        while (line := self.stream.readline().decode().strip()) != "":
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def receive(self) -> tuple[int, bytes]:
        _, opcode, payload = read_frame(self.stream, require_mask=False)
        return opcode, payload

    def receive_message(self) -> dict[str, Any]:
        opcode, payload = self.receive()
        assert opcode == OP_TEXT, (opcode, payload)
        return json.loads(payload)

    def close(self) -> None:
        self.sock.sendall(encode_frame(OP_CLOSE, struct.pack("!H", 1000), mask=os.urandom(4)))
        opcode, _ = self.receive()  # the server answers the close
        assert opcode == OP_CLOSE
        self.sock.close()


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


def connections_of(runtime: LocalRuntime, session_id: str) -> list[str]:
    items = runtime.client("dynamodb").query(
        TableName=runtime.physical[("table", "webchat")],
        KeyConditionExpression="pk = :pk AND begins_with(sk, :c)",
        ExpressionAttributeValues={":pk": {"S": f"SESSION#{session_id}"}, ":c": {"S": "CONN#"}},
    )["Items"]
    return [item["connection_id"]["S"] for item in items]


def test_forged_or_missing_tokens_are_refused(runtime: LocalRuntime) -> None:
    url = runtime.websockets["webchat"].url
    session = demo.open_session(runtime.base_url)
    other = demo.open_session(runtime.base_url)
    for query in (
        {"session_id": session["session_id"], "token": session["token"][:-4] + "AAAA"},
        {"session_id": session["session_id"], "token": other["token"]},
        {"session_id": session["session_id"]},
        {},
    ):
        client = Client(url, query)
        assert client.status == 401, query
        client.sock.close()
    assert connections_of(runtime, session["session_id"]) == []


def test_agent_reply_arrives_as_a_push_and_by_polling(runtime: LocalRuntime) -> None:
    url = runtime.websockets["webchat"].url
    session = demo.open_session(runtime.base_url)
    client = Client(url, {"session_id": session["session_id"], "token": session["token"]})
    assert client.status == 101
    assert client.headers["sec-websocket-accept"] == accept_key(client.key)
    [connection_id] = connections_of(runtime, session["session_id"])

    demo.say(runtime.base_url, session, "Hi, I was charged twice for my November invoice.")
    runtime.wait_idle(timeout=30)
    bot = client.receive_message()  # the acknowledgement routing sends
    assert bot["type"] == "message"
    assert bot["message"]["direction"] == "outbound"

    # A connection API Gateway no longer knows (the browser went away without a close).
    runtime.client("dynamodb").put_item(
        TableName=runtime.physical[("table", "webchat")],
        Item=serialise(
            {
                "pk": f"SESSION#{session['session_id']}",
                "sk": "CONN#stale=",
                "connection_id": "stale=",
                "session_id": session["session_id"],
            }
        ),
    )

    path = f"/customers?identity=webchat:{session['session_id']}"
    [customer] = agent(runtime, "kim", "GET", path).json()["customers"]
    path = f"/customers/{customer['customer_id']}/conversations"
    [conversation] = agent(runtime, "kim", "GET", path).json()["conversations"]
    conversation_id = conversation["conversation_id"]
    agent(
        runtime,
        "supervisor",
        "PUT",
        "/agents/kim",
        {"name": "Kim", "skills": {"billing": 8}, "max_concurrent": 3},
    )
    agent(runtime, "kim", "PUT", "/agents/me/status", {"status": "available"})
    agent(runtime, "kim", "POST", f"/conversations/{conversation_id}/accept")
    agent(runtime, "kim", "POST", f"/conversations/{conversation_id}/messages", {"text": "Refunded, sorry!"})
    runtime.wait_idle(timeout=30)

    pushed = client.receive_message()
    assert pushed["message"]["text"] == "Refunded, sorry!"
    polled = requests.get(
        f"{runtime.base_url}/webchat/sessions/{session['session_id']}/messages",
        headers={"Authorization": f"Bearer {session['token']}"},
        timeout=10,
    ).json()
    assert pushed["message"]["message_id"] in json.dumps(polled)
    # The stale connection was gone (410) and is forgotten; the live one stays.
    assert connections_of(runtime, session["session_id"]) == [connection_id]

    client.close()
    runtime.wait_idle(timeout=10)
    assert connections_of(runtime, session["session_id"]) == []
    gone = requests.post(
        f"{runtime.websockets['webchat'].management_endpoint}/@connections/{connection_id}",
        data=b"{}",
        timeout=5,
    )
    assert gone.status_code == 410
    assert gone.headers["x-amzn-ErrorType"] == "GoneException"
