"""The web chat widget on the local stack: ``/widget/omni-chat.js`` and a demo shop at ``/widget/demo.html``.

The demo page embeds the widget with one tag pointing ``data-api`` at this server and
``data-socket`` at the local ``webchat`` WebSocket API, and carries a "sign in" button with a
``user_hash`` computed as a shop's server would (with the local identity secret), so
``identify`` can be tried. Its Content-Security-Policy is the one the README asks of a
host page: the widget needs nothing more.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html import escape
from urllib.parse import urlsplit

from omni.console import content_type
from omni.local.http import LocalRequest, LocalResponse
from omni.widget import DEMO_PAGE, STATIC_DIR, content_security_policy, script_tag

WIDGET_PREFIX = "/widget"
DEMO_CUSTOMER = {"account_id": "acct-1001", "email": "ana.lima@example.com", "name": "Ana Lima"}
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")
_HOST = re.compile(r"^[A-Za-z0-9.\-\[\]:]{1,200}$")

Handle = Callable[[LocalRequest], LocalResponse]


def _not_found() -> LocalResponse:
    return LocalResponse.json(404, {"message": "Not Found"}, [("cache-control", "no-store")])


class LocalWidget:
    """``socket_url``: the local ``webchat`` WebSocket API's URL (``ws://127.0.0.1:<port>/``), if any."""

    def __init__(self, base_url: Callable[[], str], socket_url: Callable[[], str | None]) -> None:
        self.base_url = base_url
        self.socket_url = socket_url

    def serve(self, request: LocalRequest) -> LocalResponse:
        if request.method not in {"GET", "HEAD"}:
            return LocalResponse.json(405, {"message": "Method Not Allowed"})
        if request.path in (WIDGET_PREFIX, f"{WIDGET_PREFIX}/"):
            return LocalResponse(302, [("location", f"{WIDGET_PREFIX}/{DEMO_PAGE}")])
        name = request.path[len(WIDGET_PREFIX) + 1 :]
        if name == DEMO_PAGE:
            return self.demo(request)
        path = STATIC_DIR / name
        if not _FILE_NAME.match(name) or not path.is_file():
            return _not_found()
        headers = [
            ("content-type", content_type(path)),
            ("cache-control", "no-cache"),
            ("x-content-type-options", "nosniff"),
            ("cross-origin-resource-policy", "cross-origin"),
        ]
        return LocalResponse(200, headers, path.read_bytes())

    def demo(self, request: LocalRequest) -> LocalResponse:
        """The demo shop, addressed as the browser addressed this server (localhost or 127.0.0.1)."""
        host = request.header("host") or ""
        base = f"http://{host}" if _HOST.match(host) else self.base_url()
        socket = self.socket_url()
        if socket:
            parts = urlsplit(socket)
            socket = f"{parts.scheme}://{urlsplit(base).hostname}:{parts.port}/"
        tag = script_tag("omni-chat.js", base, socket, title="Nordlicht Outdoor", color="#2f4a3a")
        values = {**DEMO_CUSTOMER, "user_hash": demo_user_hash(DEMO_CUSTOMER["account_id"])}
        page = (STATIC_DIR / DEMO_PAGE).read_text()
        for key, value in values.items():
            page = page.replace("{" + key + "}", escape(value))
        page = page.replace("{tag_text}", escape(tag)).replace("{tag}", tag)
        headers = [
            ("content-type", "text/html; charset=utf-8"),
            ("cache-control", "no-cache"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
            ("content-security-policy", content_security_policy(base, socket)),
        ]
        return LocalResponse(200, headers, page.encode())


def demo_user_hash(subject: str) -> str:
    """What the shop's server computes for a signed-in customer (the README's snippet)."""
    from omni.send import secret_value  # noqa: PLC0415
    from shared.channels.webchat import compute_user_hash  # noqa: PLC0415

    return compute_user_hash(secret_value("webchat-identity"), subject)


def mount_widget(
    mount: Callable[[str, Handle], None], base_url: Callable[[], str], socket_url: Callable[[], str | None]
) -> LocalWidget:
    widget = LocalWidget(base_url, socket_url)
    mount(WIDGET_PREFIX, widget.serve)
    return widget
