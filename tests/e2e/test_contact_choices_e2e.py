"""The customer's contact choices end to end, through the public interfaces only.

Customers appear by writing to us (a signed WhatsApp webhook, an inbound e-mail); their
choices are set with ``PATCH /customers/{id}``, a reply keyword on WhatsApp and the signed
preferences link of an e-mail; then ``POST /notifications`` and ``omni outbox`` show where
and when each notification went. Nothing is written into a table.

Independent of the time of day: the zones are chosen relative to the real clock (a zone
where it is night now, one where it is midday), and notify's clock is moved past the end of
the quiet hours only to let the deferred notification go.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from functions.notify import handler as notify_handler
from omni import cli
from omni.local.auth import issue_agent_token
from omni.local.runtime import LocalRuntime
from tests.helpers.e2e_email import FIXTURES as EMAIL_FIXTURES
from tests.helpers.e2e_email import send as send_email
from tests.helpers.e2e_meta import post as post_meta
from tests.helpers.e2e_meta import whatsapp_payload

pytestmark = pytest.mark.e2e

STAGE = "choices-e2e"
ANA = "ana.lima@example.com"  # the sender of tests/fixtures/email/plain.eml


class ShiftedClock:
    """The real time, moved forward by ``shift`` (notify's clock)."""

    def __init__(self) -> None:
        self.shift = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.shift


@pytest.fixture(scope="module")
def clock() -> Iterator[ShiftedClock]:
    fake = ShiftedClock()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(notify_handler, "clock", fake)
        patch.setattr(notify_handler, "MAX_DEFER_S", 1)  # one-second hops instead of 15 minutes
        patch.setattr(notify_handler, "_notifier", None)
        yield fake


@pytest.fixture(scope="module")
def runtime(clock: ShiftedClock) -> Iterator[LocalRuntime]:
    with LocalRuntime(port=0, stage=STAGE, retry_delay_s=0.1) as running:
        yield running


# --------------------------------------------------------------------------- #
# Driving the stack as a customer, an agent and a company system would
# --------------------------------------------------------------------------- #
def agent(
    runtime: LocalRuntime, method: str, path: str, body: Any = None, **params: str
) -> requests.Response:
    token = issue_agent_token("agent-e2e", 600)
    return requests.request(
        method,
        f"{runtime.base_url}{path}",
        json=body,
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )


def whatsapp_customer(runtime: LocalRuntime, wa_id: str, text: str = "Hello") -> dict[str, Any]:
    """The customer a WhatsApp message (sent now) from ``wa_id`` makes: reachable on WhatsApp and SMS."""
    write_whatsapp(runtime, wa_id, f"wamid.CHOICES{wa_id}", text)
    found = agent(runtime, "GET", "/customers", identity=f"whatsapp:+{wa_id}").json()["customers"]
    [customer] = found
    return dict(customer)


def write_whatsapp(runtime: LocalRuntime, wa_id: str, wamid: str, text: str) -> None:
    payload = json.loads(whatsapp_payload(wa_id, wamid, text))
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int(time.time()))
    assert post_meta(runtime, "whatsapp", json.dumps(payload).encode()).status_code == 200
    runtime.wait_idle(timeout=30)


def choose(runtime: LocalRuntime, customer_id: str, **choices: Any) -> dict[str, Any]:
    response = agent(runtime, "PATCH", f"/customers/{customer_id}", choices)
    assert response.status_code == 200, response.text
    return dict(response.json())


def notify(runtime: LocalRuntime, customer_id: str, notification_id: str, *, urgent: bool) -> None:
    body = {"customer_id": customer_id, "text": "Your order has shipped.", "notification_id": notification_id}
    response = agent(runtime, "POST", "/notifications", {**body, "urgent": urgent})
    assert response.status_code == 202, response.text


def outbox(runtime: LocalRuntime) -> dict[str, dict[str, Any]]:
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["outbox", "--endpoint", runtime.endpoint_url, "--stage", STAGE, "--json"]) == 0
    return {item["notification_id"]: item for item in json.loads(out.getvalue())}


def sent(runtime: LocalRuntime, notification_id: str) -> dict[str, Any]:
    runtime.wait_idle(timeout=30)
    item = outbox(runtime)[notification_id]
    assert item["status"] == "sent", item
    return item


def zone_at(hour: int) -> str:
    """An IANA zone where the local time is now between ``hour``:00 and ``hour``:59."""
    offset = (hour - datetime.now(UTC).hour + 12) % 24 - 12  # -12..+11 hours from UTC
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"  # Etc/GMT-9 is UTC+9


# --------------------------------------------------------------------------- #
# The agent API
# --------------------------------------------------------------------------- #
def test_the_preferred_channel_is_used_all_sends_on_each_an_opted_out_one_never(
    runtime: LocalRuntime,
) -> None:
    customer = whatsapp_customer(runtime, "4915190000001")
    cid = customer["customer_id"]

    profile = choose(runtime, cid, channel_preferences=["sms"])
    assert profile["contact"]["channel_preferences"] == ["sms"]
    assert profile["contact"]["set_at"]
    notify(runtime, cid, "choices:preferred", urgent=True)
    item = sent(runtime, "choices:preferred")
    assert item["channels"] == ["sms"]  # not WhatsApp, the default order's first

    choose(runtime, cid, channel_preferences=["sms", "whatsapp"], channel_mode="all")
    notify(runtime, cid, "choices:all", urgent=True)
    assert sorted(sent(runtime, "choices:all")["channels"]) == ["sms", "whatsapp"]

    profile = choose(runtime, cid, consent={"sms": "opted_out"})
    assert profile["contact"]["consent"] == {"sms": "opted_out"}
    notify(runtime, cid, "choices:opted-out", urgent=True)
    item = sent(runtime, "choices:opted-out")
    assert item["channels"] == ["whatsapp"]
    assert "sms" not in item["attempts"]


def test_invalid_choices_get_a_400_naming_the_field(runtime: LocalRuntime) -> None:
    cid = whatsapp_customer(runtime, "4915190000002")["customer_id"]
    for body, field in (
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"channel_preferences": ["sms", "email", "sms"]}, "channel_preferences"),
        ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "quiet_hours.start"),
        ({"channel_mode": "sometimes"}, "channel_mode"),
    ):
        response = agent(runtime, "PATCH", f"/customers/{cid}", body)
        assert response.status_code == 400, (body, response.text)
        assert [p["field"] for p in response.json()["problems"]] == [field]


def test_quiet_hours_are_the_customers_in_their_zone(runtime: LocalRuntime, clock: ShiftedClock) -> None:
    night = whatsapp_customer(runtime, "4915190000003")["customer_id"]
    day = whatsapp_customer(runtime, "4915190000004")["customer_id"]
    window = {"start": "22:00", "end": "06:00"}
    choose(runtime, night, channel_preferences=["sms"], timezone=zone_at(3), quiet_hours=window)
    choose(runtime, day, channel_preferences=["sms"], timezone=zone_at(12), quiet_hours=window)

    notify(runtime, day, "choices:day", urgent=False)
    assert sent(runtime, "choices:day")["channels"] == ["sms"]  # midday there: at once

    notify(runtime, night, "choices:night", urgent=False)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and outbox(runtime).get("choices:night", {}).get("deferrals", 0) < 2:
        time.sleep(0.2)
    item = outbox(runtime)["choices:night"]
    assert (item["status"], item["attempts"]) == ("queued", {})
    until = datetime.fromisoformat(item["deferred_until"].replace("Z", "+00:00"))
    local = until.astimezone(ZoneInfo(zone_at(3)))
    assert (local.hour, local.minute) == (6, 0)  # the end of the window, in the customer's zone
    assert timedelta(hours=2) < until - datetime.now(UTC) < timedelta(hours=4)

    clock.shift = until - datetime.now(UTC) + timedelta(seconds=1)  # the window ends
    try:
        item = sent(runtime, "choices:night")
    finally:
        clock.shift = timedelta()
    assert item["channels"] == ["sms"]
    assert list(item["attempts"]) == ["sms"]  # sent once


# --------------------------------------------------------------------------- #
# The customer: a reply keyword, the preferences link
# --------------------------------------------------------------------------- #
def test_a_reply_keyword_sets_the_channel_is_confirmed_and_not_routed(runtime: LocalRuntime) -> None:
    customer = whatsapp_customer(runtime, "4915190000005", text="SMS only")
    cid = customer["customer_id"]
    assert customer["contact"]["channel_preferences"] == ["sms"]
    assert customer["attributes"]["channel_preferences"]["source"] == "whatsapp:keyword"
    assert agent(runtime, "GET", f"/customers/{cid}/conversations").json()["conversations"] == []

    [confirmation] = [
        i
        for i in outbox(runtime).values()
        if i["notification_id"].startswith("channel-keyword:") and i["customer_id"] == cid
    ]
    assert (confirmation["status"], confirmation["channel"]) == ("sent", "whatsapp")
    assert confirmation["text"].startswith("Done: we will contact you by SMS only.")

    notify(runtime, cid, "choices:after-keyword", urgent=True)
    assert sent(runtime, "choices:after-keyword")["channels"] == ["sms"]

    write_whatsapp(runtime, "4915190000005", "wamid.CHOICESde", "WhatsApp bitte")
    [customer] = agent(runtime, "GET", "/customers", identity="whatsapp:+4915190000005").json()["customers"]
    assert customer["contact"]["channel_preferences"] == ["whatsapp"]
    german = outbox(runtime)["channel-keyword:whatsapp#wamid.CHOICESde"]
    assert german["text"].startswith("Erledigt: Wir kontaktieren Sie nur per WhatsApp.")


def test_an_sms_reply_keyword_in_german_chooses_every_channel_and_is_not_routed(
    runtime: LocalRuntime,
) -> None:
    phone = "+4915190000006"
    sms = ["send", "sms", "--from", phone, "--base-url", runtime.base_url]
    with redirect_stdout(io.StringIO()):
        assert cli.main([*sms, "Hallo, wo ist meine Bestellung?"]) == 0
    runtime.wait_idle(timeout=30)
    [customer] = agent(runtime, "GET", "/customers", identity=f"phone:{phone}").json()["customers"]
    cid = customer["customer_id"]
    [conversation] = agent(runtime, "GET", f"/customers/{cid}/conversations").json()["conversations"]
    before = agent(runtime, "GET", f"/conversations/{conversation['conversation_id']}").json()

    with redirect_stdout(io.StringIO()):
        assert cli.main([*sms, "SMS und WhatsApp!"]) == 0
    runtime.wait_idle(timeout=30)

    [customer] = agent(runtime, "GET", "/customers", identity=f"phone:{phone}").json()["customers"]
    assert customer["contact"]["channel_preferences"] == ["sms", "whatsapp"]
    assert customer["contact"]["channel_mode"] == "all"
    assert customer["attributes"]["channel_preferences"]["source"] == "sms:keyword"
    [confirmation] = [
        i
        for i in outbox(runtime).values()
        if i["notification_id"].startswith("channel-keyword:") and i["customer_id"] == cid
    ]
    assert (confirmation["status"], confirmation["channel"]) == ("sent", "sms")
    assert confirmation["text"].startswith("Erledigt: Wir kontaktieren Sie per SMS und WhatsApp.")
    # Not a message of the conversation, and nothing routed: the agent's view is as it was.
    after = agent(runtime, "GET", f"/conversations/{conversation['conversation_id']}").json()
    assert len(after["messages"]) == len(before["messages"])
    assert after.get("routing") == before.get("routing")


def test_the_preferences_link_of_an_email_changes_the_next_notification(
    runtime: LocalRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    send_email(runtime, capsys, str(EMAIL_FIXTURES / "plain.eml"))
    [customer] = agent(runtime, "GET", "/customers", identity=f"email:{ANA}").json()["customers"]
    cid = customer["customer_id"]
    notify(runtime, cid, "choices:mail", urgent=True)
    mail = sent(runtime, "choices:mail")["attempts"]["email"]["request"]["body"]["Content"]["Raw"]["Data"]
    match = re.search(r"Choose how and when we contact you: (\S+)", mail)
    assert match, mail
    link = match.group(1)
    assert link.startswith(f"{runtime.base_url}/links/preferences?t=")

    as_json = {"Accept": "application/json"}
    shown = requests.get(link, headers=as_json, timeout=10)
    assert shown.status_code == 200, shown.text
    assert shown.json()["contact"]["channel_preferences"] == []
    assert '<input name="timezone"' in requests.get(link, timeout=10).text  # the page is a form

    bad = requests.post(link, data={"quiet_hours": "25:00-07:00"}, headers=as_json, timeout=10)
    assert bad.status_code == 400
    assert "quiet_hours.start" in bad.json()["message"]

    saved = requests.post(
        link,
        data={"timezone": "Asia/Tokyo", "quiet_hours": "23:00-06:30", "opted_out": "email"},
        headers=as_json,
        timeout=10,
    )
    assert saved.status_code == 200, saved.text
    profile = agent(runtime, "GET", f"/customers/{cid}").json()
    assert profile["contact"]["timezone"] == "Asia/Tokyo"
    assert profile["contact"]["quiet_hours"] == {"start": "23:00", "end": "06:30"}
    assert profile["consent"]["email"]["source"] == "email:preferences-link"

    notify(runtime, cid, "choices:after-link", urgent=True)
    runtime.wait_idle(timeout=30)
    item = outbox(runtime)["choices:after-link"]
    assert item["status"] == "failed"  # e-mail, the only channel, is opted out: nothing goes
    assert item["attempts"] == {}


def test_the_preferences_link_in_the_web_chat_changes_the_next_notification(runtime: LocalRuntime) -> None:
    opened = requests.post(f"{runtime.base_url}/webchat/sessions", json={"customer": {}}, timeout=10)
    assert opened.status_code == 201, opened.text
    session = opened.json()
    chat = f"{runtime.base_url}/webchat/sessions/{session['session_id']}/messages"
    as_customer = {"Authorization": f"Bearer {session['token']}"}
    message = {
        "message_id": "choices-webchat-1",
        "sent_at": datetime.now(UTC).isoformat(),
        "text": "Hi, order?",
    }
    posted = requests.post(chat, json=message, headers=as_customer, timeout=10)
    assert posted.status_code == 202, posted.text
    runtime.wait_idle(timeout=30)
    identity = f"webchat:{session['session_id']}"
    [customer] = agent(runtime, "GET", "/customers", identity=identity).json()["customers"]
    cid = customer["customer_id"]

    notify(runtime, cid, "choices:webchat", urgent=True)
    assert sent(runtime, "choices:webchat")["channels"] == ["webchat"]
    # The customer reads the notification in the chat, with the link as its last line.
    texts = [m["text"] for m in requests.get(chat, headers=as_customer, timeout=10).json()["messages"]]
    [notification] = [t for t in texts if t.startswith("Your order has shipped.")]
    match = re.search(r"Choose how and when we contact you: (\S+)$", notification)
    assert match, notification
    link = match.group(1)
    assert link.startswith(f"{runtime.base_url}/links/preferences?t=")

    saved = requests.post(
        link, data={"timezone": "America/Sao_Paulo"}, headers={"Accept": "application/json"}, timeout=10
    )
    assert saved.status_code == 200, saved.text
    assert agent(runtime, "GET", f"/customers/{cid}").json()["contact"]["timezone"] == "America/Sao_Paulo"
    assert requests.post(link[:-3] + "xyz", data={"timezone": "UTC"}, timeout=10).status_code in (400, 403)
