"""The agent console in a real browser: Debian's Chromium, driven by Playwright.

Journey: an agent signs in at ``/console`` (local dev sign-in) and goes available; a
customer texts "my invoice is wrong" by SMS, then continues on WhatsApp from the same
number; the conversation appears in the agent's list without a reload; the agent opens
it (one customer card, both channels in the timeline, the channel switch), accepts,
replies - the reply lands in the outbox (``omni outbox``) on the customer's current
channel - and resolves.

Needs ``/usr/bin/chromium`` (``apt-get install chromium``; ``.ci/run`` installs it) and the
``playwright`` Python package; no browser is ever downloaded. Without them the test is
skipped and says why, loudly.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import requests

from omni import cli
from omni.local.auth import issue_agent_token
from omni.local.console import TOKEN_PATH, LocalConsole
from omni.local.http import LocalRequest, LocalResponse
from omni.local.runtime import LocalRuntime
from omni.send import meta as meta_sender
from omni.send import twilio as twilio_sender
from shared.platform.http import PUBLIC_BASE_URL_ENV
from tests.helpers import REPO_ROOT
from tests.helpers.browser import chromium
from topology import TOPOLOGY

pytestmark = pytest.mark.e2e

# The README's picture is refreshed only on request (OMNI_UPDATE_SCREENSHOT=1), so a test
# run leaves the work tree as it was.
SCREENSHOT = REPO_ROOT / "docs" / "console.png"
SUPERVISOR_SCREENSHOT = SCREENSHOT.with_name("supervisor.png")
STAGE = "console-e2e"
AGENT = "ines"
CUSTOMER_PHONE = "+14155550147"
TWILIO_TOKEN = TOPOLOGY.secret("twilio-auth-token").local_default
META_SECRET = TOPOLOGY.secret("meta-app-secret").local_default
WAIT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(port=0, stage=STAGE) as running:
        yield running


def supervisor(
    runtime: LocalRuntime,
    method: str,
    path: str,
    body: Any = None,
    *,
    groups: tuple[str, ...] = ("supervisors",),
) -> requests.Response:
    token = issue_agent_token("supervisor", 600, extra_claims={"cognito:groups": list(groups)})
    return requests.request(
        method,
        f"{runtime.base_url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def customer_texts(runtime: LocalRuntime, text: str) -> None:
    sid = twilio_sender.new_sid("SM")
    result = twilio_sender.post_signed(
        runtime.base_url,
        twilio_sender.SMS_PATH,
        twilio_sender.sms_payload(sid, CUSTOMER_PHONE, text),
        TWILIO_TOKEN,
        signed_base=os.environ[PUBLIC_BASE_URL_ENV],
    )
    assert result.status == 200, result.describe()
    runtime.wait_idle(timeout=30)


def customer_whatsapps(runtime: LocalRuntime, text: str) -> None:
    payload = meta_sender.whatsapp_message(
        CUSTOMER_PHONE.lstrip("+"), text, name="Ana Lima", timestamp=int(time.time()) + 1
    )
    result = meta_sender.post_signed(f"{runtime.base_url}/webhooks/whatsapp", payload, META_SECRET)
    assert result.status == 200, result.describe()
    runtime.wait_idle(timeout=30)


def outbox(runtime: LocalRuntime) -> list[dict[str, Any]]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli.main(["outbox", "--endpoint", runtime.endpoint_url, "--stage", STAGE, "--json"])
    assert code == 0
    return list(json.loads(out.getvalue()))


def test_console_serves_its_files_and_a_local_sign_in(runtime: LocalRuntime) -> None:
    base = runtime.base_url
    redirect = requests.get(f"{base}/console", allow_redirects=False, timeout=10)
    assert (redirect.status_code, redirect.headers["location"]) == (301, "/console/")
    page = requests.get(f"{base}/console/", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script src="app.js"' in page.text
    config = requests.get(f"{base}/console/config.js", timeout=10).text
    assert config.startswith("window.OMNI_CONSOLE = ")
    assert json.loads(config.split("=", 1)[1].rstrip().rstrip(";"))["localTokenUrl"] == "/_local/token"
    assert requests.get(f"{base}/console/../topology/", timeout=10).status_code == 404
    assert requests.get(f"{base}/console/nope.js", timeout=10).status_code == 404
    assert requests.post(f"{base}/console/", timeout=10).status_code == 405

    bad = requests.post(f"{base}/_local/token", json={"agent_id": "no spaces"}, timeout=10)
    assert bad.status_code == 400
    assert "agent_id" in bad.json()["message"]
    assert requests.post(f"{base}/_local/token", data=b"{", timeout=10).status_code == 400
    assert requests.get(f"{base}/_local/token", timeout=10).status_code == 405

    # A new agent gets every queue's skill; an existing one keeps its record unless told otherwise.
    signed = requests.post(f"{base}/_local/token", json={"agent_id": "otto", "name": "Otto"}, timeout=10)
    assert signed.status_code == 200, signed.text
    body = signed.json()
    assert body["agent"]["name"] == "Otto"
    assert {"billing", "general"} <= set(body["agent"]["skills"])
    me = requests.get(
        f"{base}/agents/me", headers={"Authorization": f"Bearer {body['token']}"}, timeout=10
    ).json()
    assert me["agent_id"] == "otto"
    changed = requests.post(
        f"{base}/_local/token", json={"agent_id": "otto", "skills": {"sales": 7}}, timeout=10
    ).json()
    assert changed["agent"]["skills"] == {"sales": 7}
    assert changed["agent"]["name"] == "Otto"
    again = requests.post(f"{base}/_local/token", json={"agent_id": "otto"}, timeout=10).json()
    assert again["agent"]["skills"] == {"sales": 7}


def test_local_sign_in_is_refused_to_other_machines() -> None:
    def api(request: LocalRequest) -> LocalResponse:
        raise AssertionError(f"no API call expected, got {request.method} {request.path}")

    console = LocalConsole(api)
    asked = LocalRequest("POST", TOKEN_PATH, body=b'{"agent_id": "ines"}', source_ip="192.0.2.7")
    refused = console.local(asked)
    assert refused.status == 403
    assert b"paste a token" in refused.body
    assert console.local(LocalRequest("POST", "/_local/other", source_ip="127.0.0.1")).status == 404


def test_agent_takes_an_sms_then_whatsapp_conversation_and_answers_it(
    runtime: LocalRuntime, browser: Any
) -> None:
    from playwright.sync_api import expect  # noqa: PLC0415

    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB", timezone_id="UTC")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        # 1. Sign in (local dev sign-in) and go available.
        page.goto(f"{runtime.base_url}/console/")
        page.fill("#local-agent-id", AGENT)
        page.fill("#local-agent-name", "Ines Duarte")
        page.click("#local-sign-in-button")
        expect(page.locator("#agent-name")).to_contain_text("Ines Duarte", timeout=WAIT_MS)
        expect(page.locator("#agent-name")).to_contain_text("billing")
        expect(page.locator("#mine")).to_contain_text("Nothing assigned to you")
        page.click("button.status[data-status='available']")
        expect(page.locator("body")).to_have_attribute("data-agent-status", "available", timeout=WAIT_MS)

        # 2. The customer texts, then continues on WhatsApp from the same number.
        customer_texts(runtime, "my invoice is wrong")
        item = page.locator("#mine .conversation-item")
        expect(item).to_have_count(1, timeout=WAIT_MS)  # appears without a reload
        expect(item).to_have_class(re.compile(r"(^|\s)new(\s|$)"))  # marked new
        expect(item).to_contain_text("assigned")
        customer_whatsapps(runtime, "It charged me twice for November, can you fix it?")
        [customer] = supervisor(runtime, "GET", f"/customers?identity=phone:{CUSTOMER_PHONE}").json()[
            "customers"
        ]
        tagged = supervisor(runtime, "PATCH", f"/customers/{customer['customer_id']}", {"tags": ["vip"]})
        assert tagged.status_code == 200, tagged.text
        expect(item).to_contain_text("WhatsApp", timeout=WAIT_MS)

        # 3. Open it: one customer across both channels, the switch, the hand-over context.
        item.click()
        timeline = page.locator("#timeline")
        expect(timeline.locator(".message.inbound")).to_have_count(2, timeout=WAIT_MS)
        expect(timeline.locator(".message.inbound").nth(0)).to_contain_text("SMS")
        expect(timeline.locator(".message.inbound").nth(0)).to_contain_text("my invoice is wrong")
        expect(timeline.locator(".message.inbound").nth(1)).to_contain_text("WhatsApp")
        expect(timeline.locator(".message.inbound").nth(1)).to_contain_text("charged me twice")
        expect(timeline.locator(".switch")).to_contain_text("SMS")
        expect(timeline.locator(".switch")).to_contain_text("WhatsApp")
        card = page.locator("#customer-card")
        expect(card).to_contain_text("Ana Lima")
        expect(card.locator(".vip")).to_have_text("VIP", timeout=WAIT_MS)
        expect(card.locator(".identities li.verified")).to_have_count(2)
        expect(card.locator(".identities")).to_contain_text(CUSTOMER_PHONE)

        # The agent records the customer's contact choices on the card; a bad one is refused.
        choices = card.locator("#contact-form")
        choices.locator("input[name=channel_preferences]").fill("sms, whatsapp")
        choices.locator("select[name=channel_mode]").select_option("all")
        choices.locator("input[name=timezone]").fill("Mars/Olympus")
        choices.locator("input[name=quiet_start]").fill("22:30")
        choices.locator("input[name=quiet_end]").fill("07:00")
        choices.locator("button[type=submit]").click()
        expect(page.locator("#flash")).to_contain_text("timezone", timeout=WAIT_MS)
        choices.locator("input[name=timezone]").fill("Europe/Lisbon")
        choices.locator("button[type=submit]").click()
        expect(page.locator("#flash")).to_contain_text("Contact choices saved", timeout=WAIT_MS)
        contact = supervisor(runtime, "GET", f"/customers/{customer['customer_id']}").json()["contact"]
        assert (contact["channel_preferences"], contact["channel_mode"]) == (["sms", "whatsapp"], "all")
        assert contact["timezone"] == "Europe/Lisbon"
        assert contact["quiet_hours"] == {"start": "22:30", "end": "07:00"}
        expect(page.locator("#conversation-status")).to_have_text("assigned")
        expect(page.locator("#send-reply")).to_be_disabled()

        # 4. Accept, reply; the reply goes out on WhatsApp, the channel the customer uses now.
        page.click("#accept")
        expect(page.locator("#conversation-status")).to_have_text("active", timeout=WAIT_MS)
        expect(page.locator("#reply-channel")).to_contain_text("WhatsApp")
        reply = "Sorry about that, Ana - the double charge is refunded."
        page.fill("#reply-text", reply)
        page.click("#send-reply")
        expect(page.locator("#reply-text")).to_have_value("", timeout=WAIT_MS)
        runtime.wait_idle(timeout=30)
        [sent] = [item for item in outbox(runtime) if item.get("text") == reply]
        assert sent["channel"] == "whatsapp", sent
        assert sent["conversation_id"] == customer_conversation(runtime, customer["customer_id"])
        mine = timeline.locator(".message.outbound.author-agent")
        expect(mine).to_have_count(1, timeout=WAIT_MS)
        expect(mine).to_contain_text(reply)
        expect(mine).to_contain_text("WhatsApp")
        page.fill("#reply-text", "Refund reference RF-2231 sent by mail.")
        page.click("#add-note")
        expect(timeline.locator(".note")).to_contain_text("RF-2231", timeout=WAIT_MS)
        shot = page.screenshot(path=str(SCREENSHOT) if os.environ.get("OMNI_UPDATE_SCREENSHOT") else None)
        assert len(shot) > 10_000  # a rendered page, not a blank one

        # 5. Resolve.
        page.fill("#resolution", "double charge refunded")
        page.click("#resolve")
        expect(page.locator("#conversation-status")).to_have_text("resolved", timeout=WAIT_MS)
        expect(page.locator("#conversation-meta")).to_contain_text("double charge refunded")
        final = supervisor(runtime, "GET", f"/conversations/{sent['conversation_id']}").json()
        assert (final["status"], final["resolution"]) == ("resolved", "double charge refunded")
        assert [(t["to_status"], t["by"]) for t in final["transitions"]][-2:] == [
            ("active", f"agent:{AGENT}"),
            ("resolved", f"agent:{AGENT}"),
        ]
        assert [n["text"] for n in final["notes"]] == ["Refund reference RF-2231 sent by mail."]
        assert [m["channel"] for m in final["messages"] if m["direction"] == "inbound"] == ["sms", "whatsapp"]
        assert errors == []
    finally:
        context.close()


def customer_conversation(runtime: LocalRuntime, customer_id: str) -> str:
    found = supervisor(runtime, "GET", f"/customers/{customer_id}/conversations").json()["conversations"]
    assert len(found) == 1, found
    return str(found[0]["conversation_id"])


def test_a_supervisor_sees_live_queues_and_the_kpi_charts_of_the_journey(
    runtime: LocalRuntime, browser: Any
) -> None:
    """After the agent's journey above: the supervisor view draws the figures ``GET /kpis`` gives."""
    from playwright.sync_api import expect  # noqa: PLC0415

    runtime.wait_idle(timeout=30)
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="en-GB", timezone_id="UTC")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{runtime.base_url}/console/")
        page.fill("#local-agent-id", "sofia")
        page.fill("#local-agent-name", "Sofia Reyes")
        page.check("#local-supervisor")
        page.click("#local-sign-in-button")
        expect(page.locator("#nav-supervisor")).to_be_visible(timeout=WAIT_MS)
        page.click("#nav-supervisor")
        expect(page.locator("body")).to_have_attribute("data-supervisor", "ready", timeout=WAIT_MS)
        expect(page.locator("#desk")).to_be_hidden()
        page.click(".period button[data-days='7']")
        rng = page.locator("#kpi-range")
        start, end = rng.get_attribute("data-from"), rng.get_attribute("data-to")
        want = supervisor(runtime, "GET", f"/kpis?from={start}&to={end}").json()
        k, counters = want["kpis"], want["counters"]
        assert k["conversations_started"] >= 1, want
        assert k["conversations_resolved"] >= 1, want

        def figure(chart: str) -> Any:
            return page.locator(f".chart[data-chart='{chart}'] .figure")

        expect(page.locator(".chart")).to_have_count(7)
        expect(figure("channels")).to_have_attribute("data-value", str(k["conversations_started"]))
        assert float(figure("fcr").get_attribute("data-value") or "nan") == k["first_contact_resolution_rate"]
        expect(figure("handovers")).to_have_attribute("data-value", str(k["handed_over"]))
        # Hand-overs by reason: a bar per reason GET /kpis counted, with its number.
        by_reason = want["handed_over_by_reason"]
        assert by_reason, want
        assert sum(by_reason.values()) == k["handed_over"], want
        reasons = page.locator(".chart[data-chart='handovers'] rect.bar")
        expect(reasons).to_have_count(len(by_reason))
        for reason, count in by_reason.items():
            bar = page.locator(f".chart[data-chart='handovers'] rect.bar.reason-{reason}")
            expect(bar).to_have_attribute("data-value", str(count))
        bars = page.locator(".chart[data-chart='resolutions'] rect.bar")
        expect(bars.nth(0)).to_have_attribute("data-value", str(counters["automated"]))
        expect(bars.nth(1)).to_have_attribute("data-value", str(counters["resolved"] - counters["automated"]))
        # The journey opened on SMS: its bar, and today's point on the trend line, with the number on hover.
        sms = page.locator(".chart[data-chart='channels'] rect.bar[data-label='SMS']")
        expect(sms).to_have_attribute("data-value", str(k["conversations_started"]))
        point = page.locator(f".chart[data-chart='resolution-time'] circle.point[data-day='{end}']")
        expect(point).to_have_count(1)
        expect(point.locator("title")).to_have_text(re.compile(rf"^{end}: \d"))
        expect(page.locator(".chart[data-chart='fcr'] .definition")).to_contain_text("within 7 days")
        # Live queues: one row per queue, with its SLA.
        expect(page.locator("#live-queues tr[data-queue='billing']")).to_contain_text("min")
        # A filter narrows the charts to the same figures GET /kpis gives for it.
        by_sms = supervisor(runtime, "GET", f"/kpis?from={start}&to={end}&channel=sms").json()["kpis"]
        page.select_option("#kpi-channel", "sms")
        expect(figure("channels")).to_have_attribute(
            "data-value", str(by_sms["conversations_started"]), timeout=WAIT_MS
        )
        expect(page.locator(".chart[data-chart='channels'] rect.bar")).to_have_count(1)
        page.select_option("#kpi-channel", "")
        started = str(k["conversations_started"])
        expect(figure("channels")).to_have_attribute("data-value", started, timeout=WAIT_MS)
        # docs/supervisor.png shows the demo's week instead (the last test, on request).
        shot = page.screenshot(full_page=True)
        assert len(shot) > 10_000
        assert errors == []
    finally:
        context.close()


def test_a_non_supervisor_gets_403_and_no_supervisor_page(runtime: LocalRuntime, browser: Any) -> None:
    from playwright.sync_api import expect  # noqa: PLC0415

    refused = supervisor(runtime, "GET", "/kpis/daily?from=2026-11-01&to=2026-11-07", groups=())
    assert refused.status_code == 403, refused.text
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB", timezone_id="UTC")
    page = context.new_page()
    try:
        page.goto(f"{runtime.base_url}/console/#supervisor")
        page.fill("#local-agent-id", "nadia")
        page.click("#local-sign-in-button")
        expect(page.locator("#agent-name")).to_contain_text("nadia", timeout=WAIT_MS)
        expect(page.locator("#desk")).to_be_visible()
        expect(page.locator("#supervisor")).to_be_hidden()
        expect(page.locator("#nav")).to_be_hidden()
    finally:
        context.close()


def customer_mails(runtime: LocalRuntime, folder: Path, address: str, subject: str, *verdicts: str) -> None:
    """``omni send email``: a mail from ``address`` with SES's verdicts as given."""
    raw = (
        f"From: {address}\r\nTo: support@shop.example\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@console.test>\r\n\r\n{subject}, please help.\r\n"
    )
    mail = folder / f"{subject.replace(' ', '-')}.eml"
    mail.write_text(raw)
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli.main(["send", "email", str(mail), *verdicts, "--base-url", runtime.base_url])
    assert code == 0, out.getvalue()
    runtime.wait_idle(timeout=30)


def test_customer_search_lists_the_verified_owner_and_the_claimed_profile(
    runtime: LocalRuntime, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect  # noqa: PLC0415

    address = "mira@console-search.example"
    customer_mails(runtime, tmp_path, address, "first order question")  # SES's verdicts all PASS
    customer_mails(runtime, tmp_path, address, "second order question", "--dmarc", "FAIL")  # a forged From
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB", timezone_id="UTC")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{runtime.base_url}/console/")
        page.fill("#local-agent-id", "sam")
        page.click("#local-sign-in-button")
        expect(page.locator("#agent-name")).to_contain_text("sam", timeout=WAIT_MS)
        page.fill("#customer-search-identity", f"email:{address}")
        page.click("#customer-search button[type=submit]")
        results = page.locator("#customer-results .customer-result")
        expect(results).to_have_count(2, timeout=WAIT_MS)
        expect(results.nth(0)).to_have_class(re.compile(r"(^|\s)verified(\s|$)"))
        expect(results.nth(1)).to_have_class(re.compile(r"(^|\s)claimed(\s|$)"))
        # The claimed profile's card offers the one-click merge into the verified one.
        results.nth(1).locator("button").click()
        card = page.locator("#customer-card")
        expect(card.locator("[data-merge-into]")).to_have_count(1, timeout=WAIT_MS)
        assert errors == []
    finally:
        context.close()


def test_the_supervisor_view_of_the_demo_week_for_the_readme(runtime: LocalRuntime, browser: Any) -> None:
    """On request (OMNI_UPDATE_SCREENSHOT=1): the demo's journey and past week (what ``make
    run`` plays, about a minute), then docs/supervisor.png of the supervisor view. Last in
    the module: the week's journeys are in the stack from then on."""
    if not os.environ.get("OMNI_UPDATE_SCREENSHOT"):
        pytest.skip("docs/supervisor.png is refreshed on request (OMNI_UPDATE_SCREENSHOT=1)")
    from playwright.sync_api import expect  # noqa: PLC0415

    from omni import demo  # noqa: PLC0415

    # The agent of the journeys above goes away, as in ``make run``: the demo's customers wait.
    ines = issue_agent_token(AGENT, 600)
    away = requests.put(
        f"{runtime.base_url}/agents/me/status",
        json={"status": "away"},
        headers={"Authorization": f"Bearer {ines}"},
        timeout=10,
    )
    assert away.status_code == 200, away.text
    out = io.StringIO()
    demo.play(runtime.base_url, out=out, history=True)
    assert "The supervisor view has a week of data now" in out.getvalue()
    runtime.wait_idle(timeout=60)
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="en-GB", timezone_id="UTC")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{runtime.base_url}/console/")
        page.fill("#local-agent-id", "sofia")
        page.fill("#local-agent-name", "Sofia Reyes")
        page.check("#local-supervisor")
        page.click("#local-sign-in-button")
        page.click("#nav-supervisor")
        expect(page.locator("body")).to_have_attribute("data-supervisor", "ready", timeout=WAIT_MS)
        page.click(".period button[data-days='7']")
        rng = page.locator("#kpi-range")
        start, end = rng.get_attribute("data-from"), rng.get_attribute("data-to")
        want = supervisor(runtime, "GET", f"/kpis?from={start}&to={end}").json()
        figure = page.locator(".chart[data-chart='channels'] .figure")
        expect(figure).to_have_attribute("data-value", str(want["kpis"]["conversations_started"]))
        # The week: a point a day on the trend lines, hand-overs for every reason routing names.
        expect(page.locator(".chart[data-chart='handovers'] .figure")).to_have_attribute(
            "data-value", str(want["kpis"]["handed_over"])
        )
        assert page.locator(".chart[data-chart='fcr'] circle.point").count() >= 6
        reasons = page.locator(".chart[data-chart='handovers'] rect.bar")
        expect(reasons).to_have_count(len(want["handed_over_by_reason"]))
        assert len(want["handed_over_by_reason"]) >= 4, want
        # Stalled: two customers waiting an hour for an agent, one for the agent's reply.
        expect(page.locator("#stalled li[data-wait-kind='agent']")).to_have_count(2, timeout=WAIT_MS)
        expect(page.locator("#stalled li[data-wait-kind='reply']")).to_have_count(1)
        page.screenshot(path=str(SUPERVISOR_SCREENSHOT), full_page=True)
        assert errors == []
    finally:
        context.close()
