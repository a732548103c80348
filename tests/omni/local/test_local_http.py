"""The emulated HTTP API: payload format 2.0 events, routing, JWT, throttling, limits, responses."""

from __future__ import annotations

import base64
import http.client
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from omni import cli
from omni.local import auth
from omni.local.http import LocalRequest, LocalResponse
from omni.local.runtime import LocalRuntime
from tests.helpers.local import make_topology
from topology import Throttle


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(make_topology(), port=0, stage="http") as rt:
        yield rt


def echoed(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def test_event_has_the_payload_format_2_shape(runtime: LocalRuntime) -> None:
    # requests cannot repeat a header: talk HTTP/1.1 directly.
    connection = http.client.HTTPConnection("127.0.0.1", runtime.port, timeout=10)
    connection.putrequest("POST", "/echo/sessions/s%201/messages?tag=a&tag=b&empty=&q=x%20y")
    body = json.dumps({"text": "héllo"}).encode()
    for name, value in (
        ("Content-Type", "application/json"),
        ("X-Custom", "one"),
        ("X-Custom", "two"),
        ("Cookie", "sid=abc; theme=dark"),
        ("User-Agent", "test-agent/1.0"),
        ("Content-Length", str(len(body))),
    ):
        connection.putheader(name, value)
    connection.endheaders(body)
    raw = connection.getresponse()
    assert raw.status == 200
    request_id = raw.getheader("apigw-requestid")
    data = json.loads(raw.read())
    connection.close()
    event, context = data["event"], data["context"]

    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /echo/sessions/{session_id}/messages"
    assert event["rawPath"] == "/echo/sessions/s%201/messages"
    assert event["rawQueryString"] == "tag=a&tag=b&empty=&q=x%20y"
    assert event["cookies"] == ["sid=abc", "theme=dark"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["x-custom"] == "one,two"
    assert event["headers"]["content-type"] == "application/json"
    assert event["headers"]["user-agent"] == "test-agent/1.0"
    assert event["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert all(key == key.lower() for key in event["headers"])
    assert event["queryStringParameters"] == {"tag": "a,b", "empty": "", "q": "x y"}
    assert event["pathParameters"] == {"session_id": "s 1"}
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == {"text": "héllo"}
    assert "authorizer" not in event["requestContext"]

    ctx = event["requestContext"]
    assert ctx["accountId"] == "123456789012"
    assert ctx["apiId"]
    assert ctx["domainName"]
    assert ctx["domainPrefix"]
    assert ctx["http"] == {
        "method": "POST",
        "path": "/echo/sessions/s%201/messages",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "test-agent/1.0",
    }
    assert ctx["routeKey"] == event["routeKey"]
    assert ctx["stage"] == "$default"
    assert ctx["requestId"] == request_id
    assert abs(ctx["timeEpoch"] / 1000 - time.time()) < 60
    time.strptime(ctx["time"], "%d/%b/%Y:%H:%M:%S +0000")

    assert context["function_name"] == "omni-http-echo"
    assert context["memory_limit_in_mb"] == 128
    assert context["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:omni-http-echo"
    assert context["log_group_name"] == "/aws/lambda/omni-http-echo"
    assert context["function_version"] == "$LATEST"
    assert 0 < context["remaining_ms"] <= 5000
    assert context["aws_request_id"]


def test_request_ids_are_new_for_every_invocation(runtime: LocalRuntime) -> None:
    first = echoed(requests.get(f"{runtime.base_url}/items/a", timeout=10))
    second = echoed(requests.get(f"{runtime.base_url}/items/a", timeout=10))
    assert first["context"]["aws_request_id"] != second["context"]["aws_request_id"]
    assert first["event"]["requestContext"]["requestId"] != second["event"]["requestContext"]["requestId"]
    # A GET without a body or a query has neither in its event.
    for key in ("body", "queryStringParameters", "cookies"):
        assert key not in first["event"]
    assert first["event"]["isBase64Encoded"] is False


@pytest.mark.parametrize(
    ("content_type", "body", "expect_base64"),
    [
        ("application/octet-stream", b"\x00\x01\xfe\xff", True),
        ("text/plain", b"\xff\xfe not utf-8", True),
        ("application/x-www-form-urlencoded", b"a=1&b=2", True),
        ("image/png", b"\x89PNG", True),
        ("text/plain; charset=utf-8", "plain text é".encode(), False),
        ("application/xml", b"<a/>", False),
        ("application/vnd.api+json", b'{"a": 1}', False),
    ],
)
def test_binary_bodies_are_base64(
    runtime: LocalRuntime, content_type: str, body: bytes, expect_base64: bool
) -> None:
    event = echoed(
        requests.post(
            f"{runtime.base_url}/echo", data=body, headers={"Content-Type": content_type}, timeout=10
        )
    )["event"]
    assert event["isBase64Encoded"] is expect_base64
    if expect_base64:
        assert base64.b64decode(event["body"]) == body
    else:
        assert event["body"] == body.decode()


def test_chunked_request_body(runtime: LocalRuntime) -> None:
    chunks = [b'{"a": ', b'"chunked"', b"}"]
    event = echoed(
        requests.post(
            f"{runtime.base_url}/echo",
            data=iter(chunks),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
    )["event"]
    assert event["headers"]["transfer-encoding"] == "chunked"
    assert json.loads(event["body"]) == {"a": "chunked"}


def test_most_specific_route_wins(runtime: LocalRuntime) -> None:
    special = echoed(requests.get(f"{runtime.base_url}/items/special", timeout=10))["event"]
    assert special["routeKey"] == "GET /items/special"
    assert "pathParameters" not in special

    other = echoed(requests.get(f"{runtime.base_url}/items/it-1", timeout=10))["event"]
    assert other["routeKey"] == "GET /items/{item_id}"
    assert other["pathParameters"] == {"item_id": "it-1"}

    one = echoed(requests.get(f"{runtime.base_url}/files/report.pdf", timeout=10))["event"]
    assert one["routeKey"] == "GET /files/{name}"
    deep = echoed(requests.get(f"{runtime.base_url}/files/a/b/c.txt", timeout=10))["event"]
    assert deep["routeKey"] == "GET /files/{proxy+}"
    assert deep["pathParameters"] == {"proxy": "a/b/c.txt"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nowhere"),
        ("POST", "/items/it-1"),
        ("GET", "/items"),
        ("GET", "/items/a/b"),
        ("DELETE", "/echo"),
    ],
)
def test_no_route_is_404(runtime: LocalRuntime, method: str, path: str) -> None:
    response = requests.request(method, f"{runtime.base_url}{path}", timeout=10)
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}


def test_agent_route_needs_a_valid_token(runtime: LocalRuntime) -> None:
    url = f"{runtime.base_url}/agent/me"
    now = int(time.time())
    forged = auth.issue_agent_token("agent-1", secret="not-the-secret-at-all-not-the-secret")
    expired = auth.issue_agent_token("agent-1", ttl_s=60, now=now - 3600)
    valid = auth.issue_agent_token("agent-1", extra_claims={"groups": ["a", "b"], "admin": True})
    no_exp = auth.jwt.encode({"sub": "agent-1"}, auth.agent_jwt_secret(), algorithm="HS256")
    for headers in (
        {},
        {"Authorization": f"Basic {valid}"},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": f"Bearer {forged}"},
        {"Authorization": f"Bearer {expired}"},
        {"Authorization": f"Bearer {no_exp}"},
    ):
        response = requests.get(url, headers=headers, timeout=10)
        assert response.status_code == 401, headers
        assert response.json() == {"message": "Unauthorized"}

    event = echoed(requests.get(url, headers={"Authorization": f"Bearer {valid}"}, timeout=10))["event"]
    jwt_context = event["requestContext"]["authorizer"]["jwt"]
    assert jwt_context["scopes"] is None
    claims = jwt_context["claims"]
    assert claims["sub"] == "agent-1"
    assert all(isinstance(value, str) for value in claims.values())
    assert int(claims["exp"]) > now
    assert claims["groups"] == "[a b]"
    assert claims["admin"] == "true"
    assert event["headers"]["authorization"] == f"Bearer {valid}"


def test_401_says_why_like_api_gateways_jwt_authorizer(runtime: LocalRuntime) -> None:
    url = f"{runtime.base_url}/agent/me"
    expired = auth.issue_agent_token("agent-1", ttl_s=60, now=int(time.time()) - 3600)
    forged = auth.issue_agent_token("agent-1", secret="not-the-secret-at-all-not-the-secret")
    no_exp = auth.jwt.encode({"sub": "agent-1"}, auth.agent_jwt_secret(), algorithm="HS256")
    expected = {
        "": "the Authorization header is missing",
        f"Bearer {expired}": "the token has expired",
        f"Bearer {forged}": "the token signature is invalid",
        f"Bearer {no_exp}": "the token has no exp claim",
        "Bearer not-a-jwt": "the token is not a valid JWT",
        f"Basic {expired}": "the Authorization header is not a bearer token",
    }
    for authorization, reason in expected.items():
        headers = {"Authorization": authorization} if authorization else {}
        response = requests.get(url, headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json() == {"message": "Unauthorized"}
        assert response.headers["www-authenticate"] == (
            f'Bearer scope="" error="invalid_token" error_description="{reason}"'
        )


def test_the_cli_prints_why_a_token_was_refused(runtime: LocalRuntime) -> None:
    from omni.send import http  # noqa: PLC0415

    expired = auth.issue_agent_token("agent-1", ttl_s=60, now=int(time.time()) - 3600)
    result = http("GET", f"{runtime.base_url}/agent/me", headers={"Authorization": f"Bearer {expired}"})
    assert result.status == 401
    assert 'error_description="the token has expired"' in result.describe()


def test_index_page_links_the_console_openapi_and_health(runtime: LocalRuntime) -> None:
    response = requests.get(f"{runtime.base_url}/", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    for href in ('href="/console/"', 'href="/openapi.json"', 'href="/healthz"'):
        assert href in response.text
    assert requests.post(f"{runtime.base_url}/", timeout=10).status_code == 405
    assert requests.get(f"{runtime.base_url}/nothing-here", timeout=10).status_code == 404


def test_agent_secret_comes_from_the_environment(
    runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(auth.AGENT_JWT_SECRET_ENV, "another-secret-for-this-test-only-000")
    token = auth.issue_agent_token("agent-2")
    ok = requests.get(
        f"{runtime.base_url}/agent/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert ok.status_code == 200
    monkeypatch.delenv(auth.AGENT_JWT_SECRET_ENV)
    refused = requests.get(
        f"{runtime.base_url}/agent/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert refused.status_code == 401


def test_omni_token_is_accepted(runtime: LocalRuntime) -> None:
    out = io.StringIO()
    assert (
        cli.cmd_token(cli.build_parser().parse_args(["token", "--agent", "ag-7", "--ttl", "120"]), out) == 0
    )
    token = out.getvalue().strip()
    claims = auth.verify_agent_token(token)
    assert claims["sub"] == "ag-7"
    assert 100 <= claims["exp"] - time.time() <= 121
    response = requests.get(
        f"{runtime.base_url}/agent/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 200
    assert response.json()["event"]["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] == "ag-7"


def test_route_throttle_answers_429(runtime: LocalRuntime) -> None:
    statuses = [requests.get(f"{runtime.base_url}/limited", timeout=10).status_code for _ in range(4)]
    assert statuses[:2] == [200, 200]
    assert statuses[2:] == [429, 429]
    response = requests.get(f"{runtime.base_url}/limited", timeout=10)
    assert response.json() == {"message": "Too Many Requests"}
    # Other routes are not throttled by it.
    assert requests.get(f"{runtime.base_url}/items/x", timeout=10).status_code == 200


def test_default_throttle_applies_to_routes_without_one() -> None:
    with LocalRuntime(make_topology(), port=0, stage="throttle", default_throttle=Throttle(0.01, 1)) as rt:
        statuses = [requests.get(f"{rt.base_url}/plain", timeout=10).status_code for _ in range(2)]
        assert statuses == [200, 429]
        assert requests.get(f"{rt.base_url}/items/x", timeout=10).status_code == 200  # its own bucket


def test_payload_over_10_mb_is_413(runtime: LocalRuntime) -> None:
    response = requests.post(
        f"{runtime.base_url}/echo",
        data=b"x" * (10 * 1024 * 1024 + 1),
        headers={"Content-Type": "text/plain"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json() == {"message": "Request Entity Too Large"}
    # Over Lambda's 6 MB invocation payload, under API Gateway's 10 MB: 413 too.
    response = requests.post(
        f"{runtime.base_url}/echo",
        data=b"y" * (7 * 1024 * 1024),
        headers={"Content-Type": "text/plain"},
        timeout=30,
    )
    assert response.status_code == 413
    assert requests.get(f"{runtime.base_url}/items/x", timeout=10).status_code == 200


def test_handler_error_is_500_and_the_server_keeps_serving(runtime: LocalRuntime) -> None:
    for path in ("/boom", "/missing", "/really-malformed"):
        response = requests.get(f"{runtime.base_url}{path}", timeout=10)
        assert response.status_code == 500, path
        assert response.json() == {"message": "Internal Server Error"}
    assert requests.get(f"{runtime.base_url}/plain", timeout=10).status_code == 200
    assert requests.get(f"{runtime.base_url}/healthz", timeout=10).status_code == 200


def test_result_without_status_code_is_200_json(runtime: LocalRuntime) -> None:
    response = requests.get(f"{runtime.base_url}/plain", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"hello": "world"}
    text = requests.get(f"{runtime.base_url}/plain?mode=str", timeout=10)
    assert text.status_code == 200
    assert text.json() == "hello"
    assert requests.get(f"{runtime.base_url}/plain?mode=list", timeout=10).json() == [1, 2, 3]


def test_full_response_mapping(runtime: LocalRuntime) -> None:
    response = requests.get(f"{runtime.base_url}/fancy", timeout=10)
    assert response.status_code == 201
    assert response.content == b"\x00\x01\xffbinary"
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["x-one"] == "1"
    assert response.headers["x-many"] == "a, b"
    assert response.raw.headers.getlist("set-cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert response.cookies["a"] == "1"


def test_healthz_reports_pollers(runtime: LocalRuntime) -> None:
    response = requests.get(f"{runtime.base_url}/healthz", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["pollers"] == {"things": True, "work": True, "pt": True}
    poller = runtime.pollers["work"]
    poller.stop()
    try:
        down = requests.get(f"{runtime.base_url}/healthz", timeout=10)
        assert down.status_code == 503
        assert "poller of work is down" in down.json()["problems"]
    finally:
        poller.start()
    assert requests.get(f"{runtime.base_url}/healthz", timeout=10).status_code == 200


def test_mounted_routes_are_served_by_the_runtime(runtime: LocalRuntime) -> None:
    seen: list[LocalRequest] = []

    def console(request: LocalRequest) -> LocalResponse:
        seen.append(request)
        return LocalResponse(200, [("content-type", "text/html")], b"<h1>console</h1>")

    runtime.mount("/console", console)
    response = requests.get(f"{runtime.base_url}/console/index.html?x=1", timeout=10)
    assert response.status_code == 200
    assert response.text == "<h1>console</h1>"
    assert seen[0].path == "/console/index.html"
    assert seen[0].query == "x=1"
    assert requests.get(f"{runtime.base_url}/consoles", timeout=10).status_code == 404


def test_functions_get_their_environment(runtime: LocalRuntime) -> None:
    env = echoed(requests.get(f"{runtime.base_url}/items/x", timeout=10))["env"]
    assert env["OMNI_STAGE"] == "http"
    assert env["ECHO_FLAG"] == "on"
    assert env["ITEMS_TABLE"] == "omni-http-items"
    assert env["EVENT_BUS_NAME"] == "omni-http-test-events"
    assert env["OUTBOX_TABLE"] == runtime.physical[("table", "outbox")] == "omni-http-outbox"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "omni"
    assert env["AWS_ENDPOINT_URL"] == runtime.endpoint_url
    secret_id = env["API_KEY_SECRET_ID"]
    assert secret_id.startswith("arn:aws:secretsmanager:")
    value = runtime.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    assert value == "local-api-key"


def test_powertools_resolver_and_logger_accept_the_event_and_context(runtime: LocalRuntime) -> None:
    headers = {"Authorization": f"Bearer {auth.issue_agent_token('agent-9')}"}
    response = requests.get(f"{runtime.base_url}/pt/items/it-1?x=1", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "item_id": "it-1",
        "service": "pt-api",
        "query": {"x": "1"},
        "agent": "agent-9",
    }
    missing = requests.get(f"{runtime.base_url}/pt/items/missing", headers=headers, timeout=10)
    assert missing.status_code == 404
