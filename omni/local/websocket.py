"""API Gateway WebSocket APIs, locally: one small RFC 6455 server per declared API.

Like the cloud, each API has its own endpoint: ``ws://<host>:<port>/`` for browsers and
``http://<host>:<port>/<stage>`` for the management API (what the functions granted
``manage`` on the API get in their environment), which serves
``POST|GET|DELETE /<stage>/@connections/{connection_id}`` as API Gateway does, answering
``410`` with ``x-amzn-ErrorType: GoneException`` for a connection that is not open.

The upgrade request becomes a ``$connect`` event (a non-2xx answer refuses the upgrade
with that status); text frames become ``$default`` events when that route is declared;
a close (or a dropped socket) becomes ``$disconnect``. Only what the web chat needs of
RFC 6455: unfragmented or fragmented text/binary frames, ping/pong and close; client
frames must be masked. Standard library only.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import struct
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from omni.local.invoker import Invoker
from topology import Function, WebSocketApi, WebSocketRoute

logger = logging.getLogger("omni.local.websocket")

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: API Gateway's limit on one WebSocket frame (32 KB) and on one message (128 KB).
MAX_FRAME_BYTES = 32 * 1024
MAX_MESSAGE_BYTES = 128 * 1024
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class ProtocolError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()  # noqa: S324 - RFC 6455


def encode_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """One final frame; ``mask`` (4 bytes) for a client's frame, None for the server's."""
    head = bytes([0x80 | opcode])
    flag = 0x80 if mask else 0
    length = len(payload)
    if length < 126:
        head += bytes([flag | length])
    elif length < 1 << 16:
        head += bytes([flag | 126]) + struct.pack("!H", length)
    else:
        head += bytes([flag | 127]) + struct.pack("!Q", length)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return head + mask + payload
    return head + payload


def _read_exact(stream: Any, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise ConnectionError("the socket closed mid-frame")
    return data


def read_frame(
    stream: Any, require_mask: bool = True, max_bytes: int = MAX_FRAME_BYTES
) -> tuple[bool, int, bytes]:
    """``(final, opcode, payload)`` of the next frame (unmasked)."""
    first, second = _read_exact(stream, 2)
    masked, length = bool(second & 0x80), second & 0x7F
    if first & 0x70:
        raise ProtocolError(1002, "reserved bits set")
    if require_mask and not masked:
        raise ProtocolError(1002, "client frames must be masked")
    if length == 126:
        length = struct.unpack("!H", _read_exact(stream, 2))[0]
    elif length == 127:
        length = struct.unpack("!Q", _read_exact(stream, 8))[0]
    if length > max_bytes:
        raise ProtocolError(1009, "frame too large")
    mask = _read_exact(stream, 4) if masked else b""
    payload = _read_exact(stream, length)
    if masked:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bool(first & 0x80), first & 0x0F, payload


def _now_ms() -> int:
    return int(time.time() * 1000)


class _Connection:
    def __init__(self, connection_id: str, handler: _Handler, source_ip: str, user_agent: str) -> None:
        self.connection_id = connection_id
        self.handler = handler
        self.source_ip = source_ip
        self.user_agent = user_agent
        self.connected_at = _now_ms()
        self.last_active_at = self.connected_at
        self.lock = threading.Lock()
        self.open = True

    def send(self, opcode: int, payload: bytes) -> None:
        with self.lock:
            self.handler.wfile.write(encode_frame(opcode, payload))
            self.handler.wfile.flush()

    def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.open:
            return
        self.open = False
        with contextlib.suppress(OSError):
            self.send(OP_CLOSE, struct.pack("!H", code) + reason.encode()[:120])


class LocalWebSocketApi:
    """One WebSocket API served on ``host:port`` (0 = any free port) in a background thread."""

    def __init__(
        self,
        api: WebSocketApi,
        routes: list[tuple[WebSocketRoute, Function]],
        invoker: Invoker | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        stage: str = "local",
        account_id: str = "000000000000",
    ) -> None:
        self.api = api
        self.routes = {route.route_key: fn for route, fn in routes}
        self.invoker = invoker
        self.host = host
        self.requested_port = port
        self.stage = stage
        self.account_id = account_id
        self.api_id = hashlib.sha256(api.name.encode()).hexdigest()[:10]
        self.connections: dict[str, _Connection] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- addresses ------------------------------------------------------------ #
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the WebSocket API is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Where browsers connect."""
        return f"ws://{self.host}:{self.port}/"

    @property
    def management_endpoint(self) -> str:
        """The management API's endpoint, as ``https://<api>.execute-api.<region>.amazonaws.com/<stage>``."""
        return f"http://{self.host}:{self.port}/{self.stage}"

    # -- life cycle ------------------------------------------------------------- #
    def start(self) -> LocalWebSocketApi:
        api = self

        class Handler(_Handler):
            owner = api

        server = ThreadingHTTPServer((self.host, self.requested_port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"omni-ws-{self.api.name}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        with self._lock:
            open_connections = list(self.connections.values())
        for connection in open_connections:
            connection.close(1001, "going away")
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    # -- events ------------------------------------------------------------------- #
    def event(self, route_key: str, event_type: str, connection: _Connection, **extra: Any) -> dict[str, Any]:
        now = _now_ms()
        context = {
            "routeKey": route_key,
            "eventType": event_type,
            "messageDirection": "IN",
            "stage": self.stage,
            "connectedAt": connection.connected_at,
            "requestTimeEpoch": now,
            "requestTime": datetime.now(UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
            "requestId": uuid.uuid4().hex,
            "extendedRequestId": uuid.uuid4().hex,
            "domainName": f"{self.host}:{self.port}",
            "connectionId": connection.connection_id,
            "apiId": self.api_id,
        }
        context.update(extra.pop("context", {}))
        return {"requestContext": context, "isBase64Encoded": False, **extra}

    def call(self, route_key: str, event: dict[str, Any]) -> int:
        """Invoke the route's function; its ``statusCode`` (500 when it failed, 404 with no route)."""
        fn = self.routes.get(route_key)
        if fn is None:
            return 404
        if self.invoker is None:
            raise RuntimeError("the WebSocket API has no invoker")
        result = self.invoker.invoke(fn, event)
        if not result.ok:
            return 500
        value = result.value if isinstance(result.value, dict) else {}
        try:
            return int(value.get("statusCode", 200))
        except (TypeError, ValueError):
            return 500

    def register(self, connection: _Connection) -> None:
        with self._lock:
            self.connections[connection.connection_id] = connection

    def unregister(self, connection_id: str) -> _Connection | None:
        with self._lock:
            return self.connections.pop(connection_id, None)

    def find(self, connection_id: str) -> _Connection | None:
        with self._lock:
            connection = self.connections.get(connection_id)
        return connection if connection is not None and connection.open else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "omni-local-ws"
    sys_version = ""
    owner: LocalWebSocketApi

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def _reply(self, status: int, payload: Any = None, error_type: str | None = None) -> None:
        body = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("content-type", "application/json")
        if error_type:
            self.send_header("x-amzn-ErrorType", error_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    # -- the management API ------------------------------------------------------- #
    def _connection_id(self) -> str | None:
        prefix = f"/{self.owner.stage}/@connections/"
        path = urlsplit(self.path).path
        return unquote(path[len(prefix) :]) if path.startswith(prefix) and len(path) > len(prefix) else None

    def _manage(self) -> None:
        connection_id = self._connection_id()
        length = int(self.headers.get("content-length") or 0)
        data = self.rfile.read(length) if length else b""
        if connection_id is None:
            self._reply(404, {"message": "Not Found"})
            return
        connection = self.owner.find(connection_id)
        if connection is None:
            self._reply(410, {"message": "Gone"}, "GoneException")
            return
        if self.command == "POST":
            if len(data) > MAX_MESSAGE_BYTES:
                self._reply(413, {"message": "Payload too large"}, "PayloadTooLargeException")
                return
            try:
                connection.send(OP_TEXT, data)
            except OSError:
                self._reply(410, {"message": "Gone"}, "GoneException")
                return
            self._reply(200)
        elif self.command == "DELETE":
            connection.close(1000, "closed by the management API")
            self._reply(204)
        else:
            self._reply(
                200,
                {
                    "connectedAt": datetime.fromtimestamp(connection.connected_at / 1000, UTC).isoformat(),
                    "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
                    "lastActiveAt": datetime.fromtimestamp(connection.last_active_at / 1000, UTC).isoformat(),
                },
            )

    do_POST = do_DELETE = _manage

    # -- the WebSocket ---------------------------------------------------------- #
    def do_GET(self) -> None:
        if "websocket" not in (self.headers.get("upgrade") or "").lower():
            self._manage()
            return
        key = self.headers.get("sec-websocket-key")
        if not key or self.headers.get("sec-websocket-version") != "13":
            self._reply(400, {"message": "Bad Request"})
            return
        owner = self.owner
        connection = _Connection(
            base64.b64encode(os.urandom(10)).decode(),
            self,
            self.client_address[0],
            self.headers.get("user-agent") or "",
        )
        query = urlsplit(self.path).query
        headers = {name.lower(): value for name, value in self.headers.items()}
        status = owner.call(
            "$connect",
            owner.event(
                "$connect",
                "CONNECT",
                connection,
                headers=headers,
                queryStringParameters=dict(parse_qsl(query)) or None,
            ),
        )
        if not 200 <= status < 300:
            logger.info("websocket %s: $connect refused (%d)", owner.api.name, status)
            self.close_connection = True
            self._reply(status, {"message": "Unauthorized" if status in (401, 403) else "Refused"})
            return
        self.send_response(101)
        self.send_header("upgrade", "websocket")
        self.send_header("connection", "Upgrade")
        self.send_header("sec-websocket-accept", accept_key(key))
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        owner.register(connection)
        code, reason = 1006, "connection lost"
        try:
            code, reason = self._converse(connection)
        finally:
            owner.unregister(connection.connection_id)
            connection.close(code if code != 1006 else 1000)
            owner.call(
                "$disconnect",
                owner.event(
                    "$disconnect",
                    "DISCONNECT",
                    connection,
                    headers=headers,
                    context={"disconnectStatusCode": code, "disconnectReason": reason},
                ),
            )

    def _converse(self, connection: _Connection) -> tuple[int, str]:
        """Read frames until the client closes; returns the close code and reason."""
        parts: list[bytes] = []
        message_opcode = OP_TEXT
        while True:
            try:
                final, opcode, payload = read_frame(self.rfile)
            except ProtocolError as exc:
                return exc.code, str(exc)
            except (ConnectionError, OSError, ValueError):
                return 1006, "connection lost"
            connection.last_active_at = _now_ms()
            if opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                return code, payload[2:].decode(errors="replace")
            if opcode == OP_PING:
                connection.send(OP_PONG, payload)
                continue
            if opcode == OP_PONG:
                continue
            if opcode in (OP_TEXT, OP_BINARY):
                message_opcode, parts = opcode, [payload]
            elif opcode == OP_CONTINUATION and parts:
                parts.append(payload)
            else:
                return 1002, "unexpected frame"
            if sum(len(p) for p in parts) > MAX_MESSAGE_BYTES:
                return 1009, "message too large"
            if final:
                self._message(connection, b"".join(parts), message_opcode)
                parts = []

    def _message(self, connection: _Connection, data: bytes, opcode: int) -> None:
        owner = self.owner
        if "$default" not in owner.routes:
            # API Gateway answers a message no route takes with an error message, not a close.
            reply = {"message": "Forbidden", "connectionId": connection.connection_id}
            connection.send(OP_TEXT, json.dumps(reply).encode())
            return
        binary = opcode == OP_BINARY
        body = base64.b64encode(data).decode() if binary else data.decode(errors="replace")
        event = owner.event("$default", "MESSAGE", connection, body=body)
        event["isBase64Encoded"] = binary
        owner.call("$default", event)
