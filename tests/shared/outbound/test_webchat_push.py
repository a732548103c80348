"""Web chat push, piece by piece: the WebSocket routes in the topology, the RFC 6455 frames
of the local server, the $connect/$disconnect function under moto, and the pusher's
handling of gone and failing connections (the whole path: tests/e2e/test_webchat_push_e2e.py)."""

from __future__ import annotations

import dataclasses
import io
import json
import time
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from functions.webchat_socket import handler as socket_handler
from omni.local.websocket import (
    MAX_MESSAGE_BYTES,
    OP_TEXT,
    ProtocolError,
    accept_key,
    encode_frame,
    read_frame,
)
from shared.channels import webchat
from shared.outbound.webchat_push import WebchatPusher
from shared.platform.config import get_secret
from shared.repositories.webchat_connections import WebchatConnectionRepository
from tests.helpers import context
from topology import TOPOLOGY, Function, WebSocketRoute, validate

# --------------------------------------------------------------------------- #
# Topology
# --------------------------------------------------------------------------- #


def test_websocket_routes_are_validated() -> None:
    assert validate(TOPOLOGY) == []
    stray = Function(
        name="stray",
        handler="functions.stray.handler.handler",
        source_dir="functions/stray",
        description="",
        websocket_routes=(WebSocketRoute("nowhere", "$connect"), WebSocketRoute("webchat", "$sconnect")),
    )
    twice = Function(
        name="twice",
        handler="functions.twice.handler.handler",
        source_dir="functions/twice",
        description="",
        websocket_routes=(WebSocketRoute("webchat", "$connect"),),
    )
    problems = validate(dataclasses.replace(TOPOLOGY, functions=(*TOPOLOGY.functions, stray, twice)))
    assert "function 'stray' has a route of unknown websocket api 'nowhere'" in problems
    assert any("'$sconnect' is not one of" in p for p in problems)
    assert "websocket route '$connect' of 'webchat' is declared twice" in problems
    # A WebSocket route is a trigger: the function is not reported as having none.
    assert not any("has no trigger" in p for p in problems)


# --------------------------------------------------------------------------- #
# RFC 6455 frames
# --------------------------------------------------------------------------- #


def test_accept_key_is_the_rfc_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [0, 125, 126, 32 * 1024])
def test_masked_client_frames_round_trip(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    final, opcode, read = read_frame(io.BytesIO(encode_frame(OP_TEXT, payload, mask=b"\x01\x02\x03\x04")))
    assert (final, opcode, read) == (True, OP_TEXT, payload)


def test_server_frames_over_64_kb_use_the_long_length() -> None:
    payload = b"y" * 70_000
    frame = encode_frame(OP_TEXT, payload)
    assert frame[1] == 127  # unmasked, 64-bit length follows
    assert read_frame(io.BytesIO(frame), require_mask=False, max_bytes=MAX_MESSAGE_BYTES)[2] == payload


def test_unmasked_client_frames_and_huge_frames_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError) as unmasked:
        read_frame(io.BytesIO(encode_frame(OP_TEXT, b"hi")))
    assert unmasked.value.code == 1002
    with pytest.raises(ProtocolError) as huge:
        read_frame(io.BytesIO(encode_frame(OP_TEXT, b"x" * 40_000, mask=b"abcd")))
    assert huge.value.code == 1009


# --------------------------------------------------------------------------- #
# $connect / $disconnect under moto
# --------------------------------------------------------------------------- #


def socket_event(route: str, connection_id: str, query: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "requestContext": {
            "routeKey": route,
            "eventType": route.strip("$").upper(),
            "connectionId": connection_id,
        },
        "queryStringParameters": query,
        "isBase64Encoded": False,
    }


def token_for(session_id: str) -> str:
    claims = webchat.SessionClaims(session_id=session_id, verified=False)
    return webchat.issue_token(get_secret("WEBCHAT_TOKEN_SECRET_ID"), claims, int(time.time()))


def test_connect_checks_the_session_token_and_disconnect_forgets(stack: Any) -> None:
    ctx = context("webchat-socket")
    connections = WebchatConnectionRepository()
    for query in (None, {"session_id": "s1"}, {"session_id": "s1", "token": token_for("s2")}):
        assert socket_handler.handler(socket_event("$connect", "c1=", query), ctx) == {"statusCode": 401}
    assert connections.connections("s1") == []

    query = {"session_id": "s1", "token": token_for("s1")}
    assert socket_handler.handler(socket_event("$connect", "c1=", query), ctx) == {"statusCode": 200}
    assert socket_handler.handler(socket_event("$connect", "c2=", query), ctx) == {"statusCode": 200}
    assert sorted(connections.connections("s1")) == ["c1=", "c2="]
    assert connections.session_of("c1=") == "s1"

    assert socket_handler.handler(socket_event("$disconnect", "c1="), ctx) == {"statusCode": 200}
    assert connections.connections("s1") == ["c2="]
    assert connections.session_of("c1=") is None


# --------------------------------------------------------------------------- #
# The pusher
# --------------------------------------------------------------------------- #


def test_push_posts_to_each_connection_and_forgets_gone_ones(stack: Any) -> None:
    connections = WebchatConnectionRepository()
    for connection_id in ("live=", "gone=", "broken="):
        connections.add("s1", connection_id, "2026-05-10T12:00:00.000000Z", int(time.time()))
    client = boto3.client(
        "apigatewaymanagementapi", endpoint_url="https://abc.execute-api.eu-west-3.amazonaws.com/test"
    )
    message = {
        "message_id": "n-1",
        "direction": "outbound",
        "text": "Hello",
        "timestamp": "t",
        "author": "bot",
    }
    data = json.dumps({"type": "message", "message": message}).encode()
    with Stubber(client) as stubber:
        for connection_id in connections.connections("s1"):  # in sort-key order, as pushed
            params = {"ConnectionId": connection_id, "Data": data}
            if connection_id == "gone=":
                stubber.add_client_error("post_to_connection", "GoneException", http_status_code=410)
            elif connection_id == "broken=":
                stubber.add_client_error("post_to_connection", "LimitExceededException", http_status_code=429)
            else:
                stubber.add_response("post_to_connection", {}, params)
        pusher = WebchatPusher(connections, endpoint="https://unused", client=client)
        assert pusher.push("s1", message) == 1
        stubber.assert_no_pending_responses()
    # Gone: forgotten. Failing for another reason: kept (the next message tries again).
    assert sorted(connections.connections("s1")) == ["broken=", "live="]


def test_without_an_endpoint_nothing_is_pushed(stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOPOLOGY.websocket_api("webchat").env_var, raising=False)
    connections = WebchatConnectionRepository()
    connections.add("s1", "live=", "2026-05-10T12:00:00.000000Z", int(time.time()))
    assert WebchatPusher(connections).push("s1", {"text": "hi"}) == 0


# --------------------------------------------------------------------------- #
# The adapter: what the widget shows besides the text
# --------------------------------------------------------------------------- #


class _RecordingPusher:
    def __init__(self) -> None:
        self.pushed: list[tuple[str, dict[str, Any]]] = []

    def push(self, session_id: str, message: dict[str, Any]) -> int:
        self.pushed.append((session_id, dict(message)))
        return 1


def test_an_agents_reply_carries_the_agents_first_name_and_a_bot_answer_its_sources(stack: Any) -> None:
    from shared.contracts.events import Identity  # noqa: PLC0415
    from shared.outbound.adapters import OutboundMessage  # noqa: PLC0415
    from shared.outbound.webchat import WebchatAdapter  # noqa: PLC0415
    from shared.repositories.webchat import WebchatRepository  # noqa: PLC0415

    sessions = WebchatRepository()
    pusher = _RecordingPusher()
    adapter = WebchatAdapter(sessions, pusher)  # type: ignore[arg-type]
    to = Identity(type="webchat", value="wcs_1", verified=True)
    now = int(time.time())
    agent = OutboundMessage(
        "agent:ines:c1:r1", "webchat", to, "Hi, Ines here", "cus_1", "reply",
        timestamp="2026-05-10T12:00:01.000000Z", epoch=now, author="agent:ines", author_name="Ines",
    )  # fmt: skip
    bot = OutboundMessage(
        "n-2", "webchat", to, "Returns take 14 days.", "cus_1", "reply",
        timestamp="2026-05-10T12:00:02.000000Z", epoch=now,
        sources=({"article_id": "returns", "title": "Returns policy"},),
    )  # fmt: skip
    survey = OutboundMessage(
        "ces:c1:t", "webchat", to, "How easy was it?", "cus_1", "reply",
        timestamp="2026-05-10T12:00:03.000000Z", epoch=now, survey="ces",
    )  # fmt: skip
    for message in (agent, bot, survey):
        adapter.send(adapter.build(message), message)
    adapter.send(adapter.build(agent), agent)  # a second delivery stores and pushes nothing new
    listed = sessions.list_messages("wcs_1")
    assert [(m["author"], m.get("author_name")) for m in listed] == [
        ("agent:ines", "Ines"),
        ("bot", None),
        ("bot", None),
    ]
    assert listed[1]["sources"] == [{"article_id": "returns", "title": "Returns policy"}]
    assert listed[2]["survey"] == "ces"
    assert "sources" not in listed[0]
    assert "survey" not in listed[0]
    assert [p[1]["message_id"] for p in pusher.pushed] == ["agent:ines:c1:r1", "n-2", "ces:c1:t"]
    assert pusher.pushed[0][1]["author_name"] == "Ines"
    assert pusher.pushed[1][1]["sources"] == [{"article_id": "returns", "title": "Returns policy"}]
