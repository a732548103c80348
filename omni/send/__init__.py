"""``omni send <channel>``: act as each provider against a running stack.

Each module builds its provider's real payload with a valid signature and posts it to
the local stack (or any ``--base-url``), so a person can try every channel by hand.
A module exposes ``register(subparsers)``, adding one sub-command per channel it serves;
each sub-command's function takes the parsed arguments and an output stream and
returns the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The modules that register senders, in the order their channels are listed.
SENDER_MODULES = ("omni.send.webchat", "omni.send.twilio", "omni.send.meta", "omni.send.email")
DEFAULT_BASE_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class HttpResult:
    status: int
    body: bytes
    content_type: str
    #: Why a 401 was refused, as API Gateway's JWT authorizer says it.
    www_authenticate: str = ""

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def describe(self) -> str:
        text = self.body.decode(errors="replace")
        reason = f" (www-authenticate: {self.www_authenticate})" if self.www_authenticate else ""
        return f"{self.status} {text[:500]}{reason}"


def register_all(subparsers: Any) -> None:
    for name in SENDER_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a channel not built yet
        module.register(subparsers)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--base-url",
        help=f"the stack's HTTP API (default: the running omni local's, else {DEFAULT_BASE_URL})",
    )


def base_url(args: argparse.Namespace) -> str:
    if getattr(args, "base_url", None):
        return str(args.base_url).rstrip("/")
    state = Path(".omni") / "local.json"
    if state.is_file():
        try:
            return str(json.loads(state.read_text())["base_url"]).rstrip("/")
        except (ValueError, KeyError):
            pass
    return DEFAULT_BASE_URL


def secret_value(name: str) -> str:
    """A secret as the local stack knows it: its ``OMNI_*`` variable, else the documented default."""
    from topology import TOPOLOGY  # noqa: PLC0415

    secret = TOPOLOGY.secret(name)
    return os.environ.get(secret.local_env_var) or secret.local_default


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> HttpResult:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310 - a URL the user gave
            return HttpResult(response.status, response.read(), response.headers.get("Content-Type", ""))
    except urllib.error.HTTPError as error:
        return HttpResult(
            error.code,
            error.read(),
            error.headers.get("Content-Type", ""),
            error.headers.get("WWW-Authenticate", ""),
        )
    except urllib.error.URLError as error:  # no stack listening: say so, without a traceback
        raise SystemExit(f"omni send: cannot reach {url}: {error.reason}") from error
