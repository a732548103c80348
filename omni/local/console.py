"""The agent console on the local stack: its static files at ``/console`` and a dev sign-in.

* ``GET /console/`` serves ``omni/console/static`` (plain HTML/JS/CSS, no build step);
  ``/console/config.js`` is generated: the API is this origin, and agents sign in with
  ``POST /_local/token``.
* ``POST /_local/token`` ``{"agent_id": "ines", "name": "Ines", "skills": {"billing": 8},
  "max_concurrent": 3, "supervisor": false}``
  answers ``{"token", "agent_id", "expires_in", "agent"}``: a local
  agent token (what ``omni token --agent ID`` prints). An agent without a record is
  created through the agent API (``PUT /agents/{id}`` with a supervisor token issued
  here) with the given skills, by default every queue's skill; given ``skills`` update an
  existing record, otherwise it is left as it is. Only requests from the loopback
  interface are served: a token for any agent is a development convenience only.
  ``"supervisor": true`` puts the token in the ``supervisors`` group (the supervisor view).
* ``POST /_local/clock`` ``{"offset_s": -86400}`` shifts the stack's clock back (loopback only;
  whole seconds, 0 to 40 days; never in Lambda, where ``shift_clock`` refuses):
  the demo plays a past week's journeys through the pipeline with back-dated timestamps.

* ``GET /`` is a small index page linking the console, ``/openapi.json`` and ``/healthz``
  (served when the API has no route for ``/``).

In the cloud the same files are served by CloudFront (``infra/components/console.py``).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from html import escape
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, StrictInt, ValidationError

from omni.console import CONFIG_FILE, STATIC_DIR, config_script, content_type
from omni.local.auth import issue_agent_token
from omni.local.http import LocalRequest, LocalResponse

logger = logging.getLogger("omni.local.console")

CONSOLE_PREFIX = "/console"
LOCAL_PREFIX = "/_local"
TOKEN_PATH = f"{LOCAL_PREFIX}/token"
CLOCK_PATH = f"{LOCAL_PREFIX}/clock"
#: The demo replays at most this far back.
MAX_CLOCK_SHIFT_S = 40 * 86400
TOKEN_TTL_S = 8 * 3600
DEFAULT_MAX_CONCURRENT = 3
DEFAULT_PROFICIENCY = 5
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")
_SECURITY_HEADERS = [
    ("cache-control", "no-cache"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("content-security-policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
]

Handle = Callable[[LocalRequest], LocalResponse]


class TokenRequest(BaseModel):
    agent_id: str = Field(pattern=r"^[\w.@:-]{1,200}$")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    skills: dict[str, int] | None = None
    max_concurrent: int | None = Field(default=None, ge=1, le=50)
    #: A token in the ``supervisors`` group (the console's supervisor view, supervisor routes).
    supervisor: bool = False


class ClockRequest(BaseModel):
    #: Seconds the stack's clock runs behind the real time (0 puts it back); never ahead.
    offset_s: StrictInt = Field(ge=-MAX_CLOCK_SHIFT_S, le=0)


def console_config(api_base: str = "", token_url: str = TOKEN_PATH) -> dict[str, Any]:
    """What ``config.js`` tells the page locally."""
    return {"apiBase": api_base, "localTokenUrl": token_url, "queues": sorted(_queue_skills())}


def _queue_skills() -> set[str]:
    from shared.domain.routing_rules import load_rules  # noqa: PLC0415 - only when the console is used

    return {rule.skill for rule in load_rules().queues.values()}


def _message(status: int, text: str) -> LocalResponse:
    return LocalResponse.json(status, {"message": text}, [("cache-control", "no-store")])


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class LocalConsole:
    """Serves the console's files and the dev sign-in; ``api`` is the gateway's request handler."""

    def __init__(self, api: Handle, static_dir: Path = STATIC_DIR) -> None:
        self.api = api
        self.static_dir = static_dir

    # -------------------------------------------------------------- static files
    def serve(self, request: LocalRequest) -> LocalResponse:
        if request.method not in {"GET", "HEAD"}:
            return _message(405, "Method Not Allowed")
        if request.path == CONSOLE_PREFIX:
            return LocalResponse(301, [("location", f"{CONSOLE_PREFIX}/")])
        name = request.path[len(CONSOLE_PREFIX) + 1 :] or "index.html"
        if name == CONFIG_FILE:
            body = config_script(console_config()).encode()
            return LocalResponse(200, [("content-type", content_type(Path(name))), *_SECURITY_HEADERS], body)
        path = self.static_dir / name
        if not _FILE_NAME.match(name) or not path.is_file():
            return _message(404, "Not Found")
        return LocalResponse(
            200, [("content-type", content_type(path)), *_SECURITY_HEADERS], path.read_bytes()
        )

    # -------------------------------------------------------------- sign-in
    def local(self, request: LocalRequest) -> LocalResponse:
        if request.path == CLOCK_PATH:
            return self.clock(request)
        if request.path != TOKEN_PATH:
            return _message(404, "Not Found")
        if request.method != "POST":
            return _message(405, "Method Not Allowed")
        if not _is_loopback(request.source_ip):
            return _message(403, "local sign-in is served to this machine only; paste a token instead")
        try:
            wanted = TokenRequest.model_validate_json(request.body or b"{}")
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
            )
            return _message(400, f"invalid sign-in request: {problems}")
        if wanted.agent_id == "me":
            return _message(400, "'me' is not a valid agent id")
        groups = {"cognito:groups": ["supervisors"]} if wanted.supervisor else None
        token = issue_agent_token(wanted.agent_id, TOKEN_TTL_S, extra_claims=groups)
        found = self._call("GET", "/agents/me", token)
        if found.status == 200 and wanted.skills is None and wanted.max_concurrent is None:
            agent = json.loads(found.body)
        elif found.status in (200, 404):
            saved = self._save_agent(wanted, json.loads(found.body) if found.status == 200 else None)
            if saved.status != 200:
                return LocalResponse(saved.status, saved.headers, saved.body)
            agent = json.loads(saved.body)
        else:
            return LocalResponse(found.status, found.headers, found.body)
        logger.info("console sign-in: agent %s", wanted.agent_id)
        return LocalResponse.json(
            200,
            {"token": token, "agent_id": wanted.agent_id, "expires_in": TOKEN_TTL_S, "agent": agent},
            [("cache-control", "no-store")],
        )

    def clock(self, request: LocalRequest) -> LocalResponse:
        """``POST /_local/clock {"offset_s": -86400}``: shift the stack's clock (the functions'
        ``utc_now``, the events' time) so the demo can replay past days through the pipeline;
        ``{"offset_s": 0}`` puts it back. Loopback only, like the sign-in."""
        if request.method != "POST":
            return _message(405, "Method Not Allowed")
        if not _is_loopback(request.source_ip):
            return _message(403, "the clock is served to this machine only")
        try:
            offset = ClockRequest.model_validate_json(request.body or b"{}").offset_s
        except ValidationError:
            return _message(400, f'expected {{"offset_s": <whole seconds from -{MAX_CLOCK_SHIFT_S} to 0>}}')
        from shared.platform.clock import shift_clock  # noqa: PLC0415

        shift_clock(timedelta(seconds=offset))
        logger.debug("local clock shifted by %s s", offset)
        return LocalResponse.json(200, {"offset_s": offset}, [("cache-control", "no-store")])

    def _save_agent(self, wanted: TokenRequest, current: dict[str, Any] | None) -> LocalResponse:
        current = current or {}
        skills = wanted.skills or current.get("skills") or dict.fromkeys(_queue_skills(), DEFAULT_PROFICIENCY)
        body = {
            "name": wanted.name or current.get("name") or wanted.agent_id,
            "skills": skills,
            "max_concurrent": wanted.max_concurrent
            or current.get("max_concurrent")
            or DEFAULT_MAX_CONCURRENT,
        }
        supervisor = issue_agent_token(
            "console-local-sign-in", 60, extra_claims={"cognito:groups": ["supervisors"]}
        )
        return self._call("PUT", f"/agents/{wanted.agent_id}", supervisor, body)

    def _call(self, method: str, path: str, token: str, body: Any = None) -> LocalResponse:
        headers = [("authorization", f"Bearer {token}")]
        if body is not None:
            headers.append(("content-type", "application/json"))
        return self.api(
            LocalRequest(
                method=method,
                path=path,
                headers=headers,
                body=json.dumps(body).encode() if body is not None else b"",
            )
        )


INDEX_LINKS = (
    (f"{CONSOLE_PREFIX}/", "the agent console", "sign in as ines (the demo's agent) or any id but 'me'"),
    ("/widget/demo.html", "the web chat widget", "a demo shop page with the widget embedded"),
    ("/openapi.json", "/openapi.json", "the agent API's OpenAPI document"),
    ("/healthz", "/healthz", "the local stack's health: pollers, invocations, errors"),
)


def index_page(request: LocalRequest) -> LocalResponse:
    """``GET /``: where to go from here."""
    if request.method not in {"GET", "HEAD"}:
        return _message(405, "Method Not Allowed")
    items = "".join(
        f'<li><a href="{href}">{label}</a>: {escape(about)}</li>' for href, label, about in INDEX_LINKS
    )
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>omni (local)</title></head>'
        f"<body><h1>omni: the local stack</h1><ul>{items}</ul>"
        "<p>Agent tokens for the API: <code>.venv/bin/omni token --agent ID</code>. "
        "Deliveries: <code>.venv/bin/omni outbox</code>.</p></body></html>"
    )
    headers = [("content-type", "text/html; charset=utf-8"), *_SECURITY_HEADERS]
    return LocalResponse(200, headers, body.encode())


def mount_console(mount: Callable[[str, Handle], None], api: Handle) -> LocalConsole:
    """Serve the console (``/console``) and the dev sign-in (``/_local``) with ``mount``."""
    console = LocalConsole(api)
    mount(CONSOLE_PREFIX, console.serve)
    mount(LOCAL_PREFIX, console.local)
    return console
