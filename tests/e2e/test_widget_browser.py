"""The web chat widget in a real browser: Debian's Chromium, driven by Playwright.

On the demo shop (``/widget/demo.html``) a customer opens the widget and writes; the
message reaches the agent API as a web chat conversation; the agent (Ines) accepts and
replies through the API, and the reply appears in the widget without a reload, with the
hand-over shown; a reload keeps the conversation; HTML in a message is shown as text;
the survey after the resolution is answered with a button. ``identify`` with a valid
``user_hash`` verifies the customer, a wrong one is refused.

Needs ``/usr/bin/chromium`` and the ``playwright`` Python package (as the console's browser
test); without them the test is skipped and says why, loudly. ``docs/widget.png`` is
refreshed on request (``OMNI_UPDATE_SCREENSHOT=1``).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests

from omni.local.runtime import LocalRuntime
from omni.local.widget import DEMO_CUSTOMER
from tests.helpers import REPO_ROOT
from tests.helpers.browser import chromium
from tests.helpers.e2e import agent

pytestmark = pytest.mark.e2e

SCREENSHOT = REPO_ROOT / "docs" / "widget.png"
STAGE = "widget-e2e"
AGENT = "ines"
WAIT_MS = 15_000
XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(port=0, stage=STAGE) as running:
        signed = requests.post(
            f"{running.base_url}/_local/token", json={"agent_id": AGENT, "name": "Ines Duarte"}, timeout=10
        )
        assert signed.status_code == 200, signed.text
        agent(running, AGENT, "PUT", "/agents/me/status", {"status": "available"})
        yield running


def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def conversation_of(runtime: LocalRuntime, session_id: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        path = f"/customers?identity=webchat:{session_id}"
        customers = requests.get(
            f"{runtime.base_url}{path}",
            headers={"Authorization": "Bearer " + _token()},
            timeout=10,
        )
        if customers.status_code != 200 or not customers.json()["customers"]:
            return None
        customer_id = customers.json()["customers"][0]["customer_id"]
        found = agent(runtime, "supervisor", "GET", f"/customers/{customer_id}/conversations").json()
        return found["conversations"][0] if found["conversations"] else None

    found = eventually(find)
    assert found, f"no conversation for web chat session {session_id}"
    return agent(runtime, "supervisor", "GET", f"/conversations/{found['conversation_id']}").json()


def _token() -> str:
    from omni.local.auth import issue_agent_token  # noqa: PLC0415

    return issue_agent_token("supervisor", 600, extra_claims={"cognito:groups": ["supervisors"]})


def new_page(
    browser: Any, locale: str = "en-GB", init_script: str | None = None
) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(viewport={"width": 1100, "height": 760}, locale=locale, timezone_id="UTC")
    if init_script:
        context.add_init_script(init_script)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    return context, page, problems


def test_widget_files_are_served_within_budget_and_the_demo_has_a_strict_csp(runtime: LocalRuntime) -> None:
    script = requests.get(f"{runtime.base_url}/widget/omni-chat.js", timeout=10)
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    demo = requests.get(f"{runtime.base_url}/widget/demo.html", timeout=10)
    assert demo.status_code == 200
    assert f'data-api="{runtime.base_url}"' in demo.text
    assert 'data-socket="ws://127.0.0.1:' in demo.text
    csp = demo.headers["content-security-policy"]
    assert "'unsafe-inline'" not in csp
    assert "connect-src 'self' " + runtime.base_url in csp
    assert requests.get(f"{runtime.base_url}/widget/../omni/cli.py", timeout=10).status_code == 404
    assert requests.post(f"{runtime.base_url}/widget/demo.html", timeout=10).status_code == 405


def test_a_customer_chats_with_an_agent_on_the_demo_shop(runtime: LocalRuntime, browser: Any) -> None:
    from playwright.sync_api import expect  # noqa: PLC0415

    context, page, problems = new_page(browser)
    try:
        page.goto(f"{runtime.base_url}/widget/demo.html")
        launcher = page.get_by_role("button", name="Open chat")
        expect(launcher).to_be_visible(timeout=WAIT_MS)
        launcher.click()
        log = page.get_by_role("log")
        expect(log).to_be_visible()
        expect(page.get_by_role("dialog")).to_have_attribute("aria-label", "Nordlicht Outdoor")
        page.get_by_role("textbox", name="Your message").fill("my invoice is wrong, I was charged twice")
        page.get_by_role("button", name="Send", exact=True).click()
        mine = log.locator(".msg.in")
        expect(mine).to_have_count(1)
        expect(mine.first).to_have_attribute("data-status", "sent", timeout=WAIT_MS)
        session_id = page.evaluate("window.omniChat.session().session_id")

        # The agent API sees a web chat conversation; Ines (available, billing) gets it.
        conversation = conversation_of(runtime, session_id)
        cid = conversation["conversation_id"]
        assert [m["channel"] for m in conversation["messages"] if m["direction"] == "inbound"] == ["webchat"]
        runtime.wait_idle(timeout=30)
        agent(runtime, AGENT, "POST", f"/conversations/{cid}/accept")
        reply = "Hi, sorry about that - the second charge is refunded today."
        agent(runtime, AGENT, "POST", f"/conversations/{cid}/messages", {"text": reply})
        # Pushed over the WebSocket (polling is the fallback): no reload.
        expect(page.locator("#omni-chat")).to_have_attribute("data-socket", "open", timeout=WAIT_MS)
        answer = log.locator(".msg.out[data-author='agent']")
        expect(answer).to_contain_text(reply, timeout=8_000)
        expect(answer).to_contain_text("Ines")
        expect(log.locator(".note")).to_have_text("You are now talking to Ines")
        shot = page.screenshot(path=str(SCREENSHOT) if os.environ.get("OMNI_UPDATE_SCREENSHOT") else None)
        assert len(shot) > 10_000

        # The socket drops (API Gateway closes it): the widget connects again by itself.
        sockets = runtime.websockets["webchat"]
        [first] = list(sockets.connections)
        dropped = requests.delete(
            f"{sockets.management_endpoint}/@connections/{quote(first, safe='')}", timeout=10
        )
        assert dropped.status_code == 204
        assert eventually(lambda: set(sockets.connections) - {first}, timeout=10)
        expect(page.locator("#omni-chat")).to_have_attribute("data-socket", "open", timeout=WAIT_MS)
        # Offline and back.
        context.set_offline(True)
        expect(page.get_by_role("status")).to_have_text(re.compile("You are offline"))
        context.set_offline(False)
        expect(page.get_by_role("status")).to_be_hidden(timeout=WAIT_MS)

        # HTML from anyone is text.
        page.get_by_role("textbox", name="Your message").fill(XSS)
        page.keyboard.press("Enter")
        shown = log.locator(".msg.in").nth(1)
        expect(shown.locator(".text")).to_have_text(XSS)
        expect(shown).to_have_attribute("data-status", "sent", timeout=WAIT_MS)
        assert page.locator("#omni-chat img").count() == 0
        agent(runtime, AGENT, "POST", f"/conversations/{cid}/messages", {"text": "<b>bold?</b> " + XSS})
        expect(answer.nth(1).locator(".text")).to_have_text("<b>bold?</b> " + XSS, timeout=8_000)
        assert page.locator("#omni-chat img, #omni-chat b").count() == 0

        # Closed: a new reply counts as unread on the launcher.
        page.get_by_role("button", name="Close chat").click()
        agent(runtime, AGENT, "POST", f"/conversations/{cid}/messages", {"text": "Anything else?"})
        expect(page.get_by_role("button", name="Open chat, 1 unread")).to_be_visible(timeout=8_000)

        # A reload keeps the session and its conversation.
        page.reload()
        expect(page.get_by_role("button", name="Open chat, 1 unread")).to_be_visible(timeout=WAIT_MS)
        page.get_by_role("button", name="Open chat, 1 unread").click()
        assert page.evaluate("window.omniChat.session().session_id") == session_id
        expect(log.locator(".msg.out[data-author='agent']")).to_have_count(3, timeout=WAIT_MS)
        expect(log.locator(".msg.in")).to_have_count(2)
        expect(log.locator(".msg.in").nth(1).locator(".text")).to_have_text(XSS)

        # Resolved: the survey question offers its scores; a click answers it.
        agent(runtime, AGENT, "POST", f"/conversations/{cid}/resolve", {"resolution": "refunded"})
        runtime.wait_idle(timeout=60)  # the question goes out after its delay
        scores = log.locator(".scores button")
        expect(scores).to_have_count(7, timeout=WAIT_MS)
        scores.nth(5).click()
        expect(log.locator(".msg.in").nth(2)).to_have_attribute("data-status", "sent", timeout=WAIT_MS)
        expect(scores.nth(0)).to_be_disabled()
        runtime.wait_idle(timeout=30)
        final = agent(runtime, "supervisor", "GET", f"/conversations/{cid}").json()
        assert [m["text"] for m in final["messages"] if m["direction"] == "inbound"][-1] == "6"
        assert problems == []
    finally:
        context.close()


def test_identify_verifies_a_signed_customer_and_refuses_a_wrong_hash(
    runtime: LocalRuntime, browser: Any
) -> None:
    from playwright.sync_api import expect  # noqa: PLC0415

    # No WebSocket in this browser: the widget polls.
    context, page, problems = new_page(browser, locale="de-DE", init_script="window.WebSocket = undefined;")
    try:
        page.goto(f"{runtime.base_url}/widget/demo.html")
        # German by the browser's language.
        expect(page.get_by_role("button", name="Chat öffnen")).to_be_visible(timeout=WAIT_MS)
        refused = page.evaluate(
            """c => window.omniChat.identify(c).then(r => "accepted", e => e.message)""",
            {**DEMO_CUSTOMER, "user_hash": "0" * 64},
        )
        assert refused == "user_hash does not match"
        assert page.evaluate("window.omniChat.session()") is None

        page.click("#sign-in")  # the demo shop's button: the user_hash its server computed
        expect(page.locator("#signed-in")).to_have_text(
            f"Signed in as {DEMO_CUSTOMER['name']}", timeout=WAIT_MS
        )
        page.evaluate("window.omniChat.open()")
        page.get_by_role("textbox", name="Ihre Nachricht").fill("Wo ist mein Paket?")
        page.get_by_role("button", name="Senden").click()
        expect(page.locator("#omni-chat .msg.in")).to_have_attribute("data-status", "sent", timeout=WAIT_MS)
        runtime.wait_idle(timeout=30)
        # The answer arrives by polling.
        expect(page.locator("#omni-chat .msg.out:not(.greeting)").first).to_be_visible(timeout=WAIT_MS)
        assert page.locator("#omni-chat").get_attribute("data-socket") is None

        # A bot answer's sources are shown; only http(s) URLs become links.
        def with_sources(route: Any) -> None:
            listed = route.fetch().json()
            listed["messages"].append(
                {
                    "message_id": "n-sources",
                    "direction": "outbound",
                    "text": "Returns are free within 30 days.",
                    "timestamp": "2999-01-01T00:00:00.000000Z",
                    "author": "bot",
                    "sources": [
                        {"article_id": "returns", "title": "Returns", "url": "https://shop.example/returns"},
                        {"article_id": "x", "title": "Not a link", "url": "javascript:alert(1)"},
                    ],
                }
            )
            route.fulfill(json=listed)

        page.route(
            "**/webchat/sessions/*/messages",
            lambda route: with_sources(route) if route.request.method == "GET" else route.continue_(),
        )
        sources = page.locator("#omni-chat .msg[data-id='n-sources'] .sources")
        expect(sources.get_by_role("link", name="Returns")).to_have_attribute(
            "href", "https://shop.example/returns", timeout=WAIT_MS
        )
        expect(sources.locator("a")).to_have_count(1)
        expect(sources).to_contain_text("Not a link")
        found = agent(
            runtime, "supervisor", "GET", f"/customers?identity=account:{DEMO_CUSTOMER['account_id']}"
        )
        [customer] = found.json()["customers"]
        identities = {(i["type"], i["value"]): i["verified"] for i in customer["identities"]}
        assert identities[("account", DEMO_CUSTOMER["account_id"])] is True
        assert identities[("email", DEMO_CUSTOMER["email"])] is True
        assert problems == []
    finally:
        context.close()
