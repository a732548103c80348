"""API Gateway HTTP API, emulated: routes, JWT authorizer, throttling, payload format 2.0.

:class:`ApiGateway` turns a :class:`LocalRequest` into the event an HTTP API hands a
Lambda function (payload format 2.0), invokes the function and maps its answer back
the way HTTP API does. :class:`HttpServer` serves it on a socket.

Behaviour copied from HTTP API:

* the most specific route wins (a literal segment beats ``{param}``, which beats
  ``{proxy+}``); a path or method without a route is ``404 {"message":"Not Found"}``;
* ``auth == "agent"`` routes need ``Authorization: Bearer <jwt>`` (401 ``Unauthorized``
  otherwise, with the reason in ``www-authenticate: Bearer scope="" error="invalid_token"
  error_description="..."``, e.g. "the token has expired") and get the claims, as
  strings, in ``requestContext.authorizer.jwt``;
* route throttles are token buckets (429 ``Too Many Requests``); bodies over 10 MB are
  413, and so are events over Lambda's 6 MB synchronous payload limit;
* the body reaches the function as text only for ``text/*``, ``application/json``,
  ``application/xml``, ``application/javascript`` (and ``+json`` / ``+xml`` types) when it
  is valid UTF-8; anything else (``application/x-www-form-urlencoded`` and a missing
  ``Content-Type`` included) is base64 with ``isBase64Encoded: true``;
* a function error is ``500 {"message":"Internal Server Error"}``; a result without
  ``statusCode`` is sent as ``200`` JSON.

Local differences: the JWT is HS256 with a shared secret (``OMNI_AGENT_JWT_SECRET``)
where the cloud authorizer checks a JWKS-signed token, issuer and audience; there is no
30 s integration timeout and no CORS handling.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from omni.local import auth
from omni.local.emulator import DEFAULT_ACCOUNT_ID
from omni.local.invoker import Invoker
from topology import Function, HttpRoute, Throttle, Topology

logger = logging.getLogger("omni.local.http")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
#: API Gateway's request payload limit.
MAX_REQUEST_BYTES = 10 * 1024 * 1024
#: Lambda's limit for a synchronous invocation's request and response payloads.
MAX_LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024
LOCAL_API_ID = "omnilocal1"
#: Bodies over the limit are read and dropped up to this size before the 413 is sent.
_MAX_DRAIN_BYTES = 64 * 1024 * 1024
STAGE = "$default"

#: Serialises HTTP invocations: see ApiGateway._handle.
_EVENT_HANDLER_LOCK = threading.Lock()
_TEXT_TYPES = {"application/json", "application/xml", "application/javascript"}
_PARAM = re.compile(r"^\{([A-Za-z0-9_.-]+)(\+?)\}$")


# --------------------------------------------------------------------------- #
# Requests and responses as the runtime sees them
# --------------------------------------------------------------------------- #
@dataclass
class LocalRequest:
    method: str
    #: The path as sent (percent-encoding kept), without the query string.
    path: str
    query: str = ""
    #: Header (name, value) pairs as received, repeated names included.
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        return ",".join(values) if values else None


@dataclass
class LocalResponse:
    status: int
    #: (name, value) pairs; a name may repeat (``Set-Cookie``).
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def json(cls, status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> LocalResponse:
        return cls(
            status,
            [("content-type", "application/json"), *(headers or [])],
            json.dumps(payload).encode(),
        )

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


#: A non-API handler served by the runtime itself under a path prefix (``/healthz``, ``/console``).
Mount = Callable[[LocalRequest], LocalResponse]


def _message(status: int, text: str, headers: list[tuple[str, str]] | None = None) -> LocalResponse:
    return LocalResponse.json(status, {"message": text}, headers)


# --------------------------------------------------------------------------- #
# Routes
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class _Segment:
    literal: str | None = None
    param: str | None = None
    greedy: bool = False

    @property
    def rank(self) -> int:
        return 2 if self.greedy else (1 if self.param else 0)


@dataclass(frozen=True)
class CompiledRoute:
    route: HttpRoute
    function: Function
    segments: tuple[_Segment, ...]

    @property
    def specificity(self) -> tuple[int, ...]:
        """Smaller is more specific, compared segment by segment."""
        return tuple(segment.rank for segment in self.segments)

    def match(self, segments: list[str]) -> dict[str, str] | None:
        params: dict[str, str] = {}
        for index, template in enumerate(self.segments):
            if template.greedy:
                rest = segments[index:]
                if not rest or not any(rest):
                    return None
                params[template.param or "proxy"] = unquote("/".join(rest))
                return params
            if index >= len(segments):
                return None
            value = segments[index]
            if template.literal is not None:
                if unquote(value) != template.literal:
                    return None
            elif not value:
                return None
            else:
                params[template.param or ""] = unquote(value)
        return params if len(segments) == len(self.segments) else None


def compile_route(route: HttpRoute, function: Function) -> CompiledRoute:
    if not route.path.startswith("/"):
        raise ValueError(f"route path {route.path!r} must start with '/'")
    segments: list[_Segment] = []
    parts = route.path.split("/")[1:]
    for index, part in enumerate(parts):
        found = _PARAM.match(part)
        if not found:
            segments.append(_Segment(literal=part))
            continue
        greedy = found.group(2) == "+"
        if greedy and index != len(parts) - 1:
            raise ValueError(f"greedy parameter must be last in {route.path!r}")
        segments.append(_Segment(param=found.group(1), greedy=greedy))
    return CompiledRoute(route, function, tuple(segments))


class RouteTable:
    def __init__(self, routes: list[tuple[HttpRoute, Function]]) -> None:
        self.routes = [compile_route(route, fn) for route, fn in routes]

    @classmethod
    def from_topology(cls, topology: Topology) -> RouteTable:
        return cls(topology.routes())

    def match(self, method: str, raw_path: str) -> tuple[CompiledRoute, dict[str, str]] | None:
        """The most specific route for ``method`` and ``raw_path``, with its path parameters."""
        segments = raw_path.split("/")[1:]
        candidates: list[tuple[CompiledRoute, dict[str, str]]] = []
        for compiled in self.routes:
            if compiled.route.method not in (method, "ANY"):
                continue
            params = compiled.match(segments)
            if params is not None:
                candidates.append((compiled, params))
        if not candidates:
            return None
        candidates.sort(key=lambda item: (item[0].specificity, item[0].route.method == "ANY"))
        return candidates[0]


class TokenBucket:
    """``rate_per_s`` tokens a second, at most ``burst`` saved up; starts full."""

    def __init__(self, throttle: Throttle, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = float(throttle.rate_per_s)
        self.capacity = float(max(1, throttle.burst))
        self._tokens = self.capacity
        self._clock = clock
        self._updated = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


# --------------------------------------------------------------------------- #
# The event
# --------------------------------------------------------------------------- #
def is_text_content_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media in _TEXT_TYPES or media.endswith(("+json", "+xml"))


def encode_body(body: bytes, content_type: str | None) -> tuple[str, bool]:
    """``(body, isBase64Encoded)`` as HTTP API hands it to the function."""
    if is_text_content_type(content_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def claims_as_strings(claims: Mapping[str, Any]) -> dict[str, str]:
    """JWT claims the way HTTP API's JWT authorizer passes them: every value a string."""
    out: dict[str, str] = {}
    for key, value in claims.items():
        if isinstance(value, str):
            out[key] = value
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, list | tuple):
            out[key] = "[" + " ".join(str(item) for item in value) + "]"
        elif isinstance(value, dict):
            out[key] = json.dumps(value, separators=(",", ":"))
        else:
            out[key] = str(value)
    return out


def new_request_id() -> str:
    """An id shaped like API Gateway's (``apigw-requestid``)."""
    return base64.b64encode(secrets.token_bytes(12)).decode("ascii")[:15] + "="


def build_event(
    request: LocalRequest,
    route: CompiledRoute,
    path_parameters: Mapping[str, str],
    *,
    request_id: str,
    claims: Mapping[str, Any] | None = None,
    account_id: str = DEFAULT_ACCOUNT_ID,
    now: datetime | None = None,
    server_port: int | None = None,
) -> dict[str, Any]:
    """The payload format 2.0 event for ``request`` on ``route``."""
    moment = now or datetime.now(UTC)
    headers, cookies = _event_headers(request, moment, server_port)
    query = _event_query(request.query)
    route_key = route.route.route_key
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.path,
        "rawQueryString": request.query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = _request_context(
        request,
        headers,
        route_key,
        request_id=request_id,
        claims=claims,
        account_id=account_id,
        moment=moment,
    )
    event.update(_event_body(request.body, headers.get("content-type")))
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    return event


def _event_headers(
    request: LocalRequest, moment: datetime, server_port: int | None
) -> tuple[dict[str, str], list[str]]:
    """The event's headers (lower-case, repeated ones joined by commas, plus the ones API Gateway
    adds) and its cookies (the ``Cookie`` headers, split)."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    forwarded = headers.get("x-forwarded-for")
    headers["x-forwarded-for"] = f"{forwarded},{request.source_ip}" if forwarded else request.source_ip
    headers.setdefault("x-forwarded-proto", "http")
    if server_port is not None:
        headers.setdefault("x-forwarded-port", str(server_port))
    headers.setdefault("x-amzn-trace-id", f"Root=1-{int(moment.timestamp()):08x}-{uuid.uuid4().hex[:24]}")
    return headers, cookies


def _event_query(raw: str) -> dict[str, str]:
    """Query string parameters; a repeated one's values joined by commas."""
    query: dict[str, str] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        query[key] = f"{query[key]},{value}" if key in query else value
    return query


def _request_context(
    request: LocalRequest,
    headers: Mapping[str, str],
    route_key: str,
    *,
    request_id: str,
    claims: Mapping[str, Any] | None,
    account_id: str,
    moment: datetime,
) -> dict[str, Any]:
    domain = headers.get("host") or f"{LOCAL_API_ID}.execute-api.localhost"
    context: dict[str, Any] = {
        "accountId": account_id,
        "apiId": LOCAL_API_ID,
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0].split(":", 1)[0],
        "http": {
            "method": request.method,
            "path": request.path,
            "protocol": request.protocol,
            "sourceIp": request.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": STAGE,
        "time": moment.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(moment.timestamp() * 1000),
    }
    if claims is not None:
        context["authorizer"] = {"jwt": {"claims": claims_as_strings(claims), "scopes": None}}
    return context


def _event_body(body: bytes, content_type: str | None) -> dict[str, Any]:
    """``body`` and ``isBase64Encoded`` of the event (no ``body`` when the request has none)."""
    if not body:
        return {"isBase64Encoded": False}
    encoded, is_base64 = encode_body(body, content_type)
    return {"body": encoded, "isBase64Encoded": is_base64}


# --------------------------------------------------------------------------- #
# The answer
# --------------------------------------------------------------------------- #
class MalformedResponse(ValueError):
    """The function's result is not a valid payload format 2.0 response."""


def map_response(result: Any) -> LocalResponse:
    """Turn a function's (JSON-decoded) result into the HTTP answer, as HTTP API does."""
    if not (isinstance(result, dict) and "statusCode" in result):
        # Inferred format: any JSON value without a statusCode is the body of a 200.
        return LocalResponse(200, [("content-type", "application/json")], json.dumps(result).encode())
    status = _response_status(result["statusCode"])
    headers = _response_headers(result)
    payload = _response_body(result)
    if not any(name == "content-type" for name, _ in headers):
        headers.append(("content-type", "application/json"))
    return LocalResponse(status, headers, payload)


def _response_status(raw: Any) -> int:
    status = int(raw) if isinstance(raw, str) and raw.isdigit() else raw
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise MalformedResponse(f"statusCode {raw!r} is not an HTTP status")
    return status


def _response_headers(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``headers``, ``multiValueHeaders`` and ``cookies`` (as ``set-cookie``), names lower-cased."""
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((str(name).lower(), _header_value(value)))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        if not isinstance(values, list):
            raise MalformedResponse(f"multiValueHeaders[{name!r}] is not a list")
        headers.extend((str(name).lower(), _header_value(value)) for value in values)
    cookies = result.get("cookies") or []
    if not isinstance(cookies, list):
        raise MalformedResponse("cookies is not a list")
    headers.extend(("set-cookie", str(cookie)) for cookie in cookies)
    return headers


def _response_body(result: Mapping[str, Any]) -> bytes:
    body = result.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise MalformedResponse(f"body must be a string, not {type(body).__name__}")
    if not result.get("isBase64Encoded"):
        return body.encode("utf-8")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedResponse(f"body is not valid base64: {exc}") from exc


def _header_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --------------------------------------------------------------------------- #
# The gateway
# --------------------------------------------------------------------------- #
class ApiGateway:
    """Routes :class:`LocalRequest` objects to functions (or to mounted handlers)."""

    def __init__(
        self,
        topology: Topology,
        invoker: Invoker,
        *,
        account_id: str = DEFAULT_ACCOUNT_ID,
        jwt_secret: Callable[[], str] = auth.agent_jwt_secret,
        mounts: dict[str, Mount] | None = None,
        default_throttle: Throttle | None = None,
    ) -> None:
        self.routes = RouteTable.from_topology(topology)
        self.invoker = invoker
        self.account_id = account_id
        self.jwt_secret = jwt_secret
        #: Path prefix -> handler, served before the API's routes (``/healthz``, ``/console``).
        self.mounts: dict[str, Mount] = dict(mounts or {})
        #: Serves ``/`` when no route does (the local stack's index page).
        self.index: Mount | None = None
        self.server_port: int | None = None
        self._buckets: dict[str, TokenBucket] = {}
        for compiled in self.routes.routes:
            throttle = compiled.route.throttle or default_throttle
            if throttle is not None:
                self._buckets[compiled.route.route_key] = TokenBucket(throttle)

    def mount(self, prefix: str, handler: Mount) -> None:
        self.mounts[prefix.rstrip("/") or "/"] = handler

    def _mounted(self, path: str) -> Mount | None:
        best: tuple[int, Mount] | None = None
        for prefix, handler in self.mounts.items():
            covers = prefix in (path, "/") or path.startswith(prefix + "/")
            if covers and (best is None or len(prefix) > best[0]):
                best = (len(prefix), handler)
        return best[1] if best else None

    def handle(self, request: LocalRequest) -> LocalResponse:
        request_id = new_request_id()
        response = self._handle(request, request_id)
        response.headers.append(("apigw-requestid", request_id))
        return response

    def _handle(self, request: LocalRequest, request_id: str) -> LocalResponse:
        mounted = self._mounted(request.path)
        if mounted is not None:
            try:
                return mounted(request)
            except Exception:
                logger.exception("%s %s: the mounted handler failed", request.method, request.path)
                return _message(500, "Internal Server Error")
        if len(request.body) > MAX_REQUEST_BYTES:
            return _message(413, "Request Entity Too Large")
        found = self.routes.match(request.method, request.path)
        if found is None:
            if request.path == "/" and self.index is not None:
                return self.index(request)
            return _message(404, "Not Found")
        compiled, params = found
        bucket = self._buckets.get(compiled.route.route_key)
        if bucket is not None and not bucket.take():
            return _message(429, "Too Many Requests")
        claims: dict[str, Any] | None = None
        if compiled.route.auth == "agent":
            try:
                token = auth.bearer_token(request.header("authorization"))
                claims = auth.verify_agent_token(token, secret=self.jwt_secret())
            except auth.Unauthorized as exc:
                logger.info("%s %s: 401 (%s)", request.method, request.path, exc)
                return _message(401, "Unauthorized", [("www-authenticate", exc.challenge)])
        event = build_event(
            request,
            compiled,
            params,
            request_id=request_id,
            claims=claims,
            account_id=self.account_id,
            server_port=self.server_port,
        )
        if len(json.dumps(event)) > MAX_LAMBDA_PAYLOAD_BYTES:
            return _message(413, "Request Entity Too Large")
        # Powertools' event handler keeps the current event on a class attribute
        # (BaseRouter.current_event) that every resolver in the process shares. In Lambda
        # each function has a process of its own; here they share one, so two HTTP
        # functions running at once would read each other's request. One at a time.
        with _EVENT_HANDLER_LOCK:
            result = self.invoker.invoke(compiled.function, event)
        if not result.ok:
            return _message(500, "Internal Server Error")
        if len(json.dumps(result.value)) > MAX_LAMBDA_PAYLOAD_BYTES:
            logger.error("%s: the response is over Lambda's 6 MB payload limit", compiled.function.name)
            return _message(500, "Internal Server Error")
        try:
            return map_response(result.value)
        except MalformedResponse as exc:
            logger.error("%s: malformed Lambda proxy response: %s", compiled.function.name, exc)
            return _message(500, "Internal Server Error")


# --------------------------------------------------------------------------- #
# The socket
# --------------------------------------------------------------------------- #
class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "omni-local"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def _serve(self) -> None:
        gateway = self.server.gateway
        target = urlsplit(self.path)
        path = target.path or "/"
        try:
            body, too_large = self._read_body()
        except ValueError:  # a malformed chunk size
            self.close_connection = True
            self._send(_message(400, "Bad Request"))
            return
        request = LocalRequest(
            method=self.command,
            path=path,
            query=target.query,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
        )
        if too_large:
            response = _message(413, "Request Entity Too Large")
            self.close_connection = True
        else:
            response = gateway.handle(request)
        logger.info("%s %s -> %d", self.command, path, response.status)
        self._send(response)

    def _read_body(self) -> tuple[bytes, bool]:
        """The request body, and whether it is over the limit (then it is drained, not kept)."""
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            return self._read_chunked()
        try:
            length = max(0, int(self.headers.get("content-length") or 0))
        except ValueError:
            length = 0
        if length <= MAX_REQUEST_BYTES:
            return self.rfile.read(length), False
        self.close_connection = True
        # Drain a moderately large body so that the client reads our 413 instead of a reset.
        remaining = length if length <= _MAX_DRAIN_BYTES else 0
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, 1 << 20))
            if not chunk:
                break
            remaining -= len(chunk)
        return b"", True

    def _read_chunked(self) -> tuple[bytes, bool]:
        parts: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(65537)
            chunk_size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if chunk_size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                break
            data = self.rfile.read(chunk_size)
            self.rfile.readline(3)
            size += len(data)
            if size <= MAX_REQUEST_BYTES:
                parts.append(data)
        return (b"", True) if size > MAX_REQUEST_BYTES else (b"".join(parts), False)

    def _send(self, response: LocalResponse) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() in {"content-length", "transfer-encoding", "connection"}:
                continue
            self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        if self.close_connection:
            self.send_header("connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    gateway: ApiGateway


class HttpServer:
    """Serves an :class:`ApiGateway` on ``host:port`` in a background thread (port 0 = any free)."""

    def __init__(self, gateway: ApiGateway, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        self.gateway = gateway
        self.host = host
        self.requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the HTTP server is not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> str:
        server = _Server((self.host, self.requested_port), _RequestHandler)
        server.gateway = self.gateway
        self._server = server
        self.gateway.server_port = self.port
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="omni-http", daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None
