"""`omni kpis` after the demo journey on the local stack: the printed KPIs match the journey.

The demo: a logged-in customer writes on web chat about a double charge (billing: handed to
the billing queue, acknowledged), then writes again from another device. The test goes on
where the demo stops: an agent takes the conversation, replies and resolves it; the
customer is asked the CES question on web chat and answers "6", which leaves the
conversation resolved.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from omni import demo
from omni.cli import main
from omni.local.runtime import LocalRuntime
from tests.helpers.e2e import agent

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(port=0, stage="e2e-kpis") as running:
        yield running


def omni_kpis(runtime: LocalRuntime, *extra: str) -> str:
    out = io.StringIO()
    today = datetime.now(UTC).date().isoformat()
    argv = ["kpis", "--base-url", runtime.base_url, "--from", today, "--to", today, *extra]
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()


def line(printed: str, label: str) -> str:
    found = [row for row in printed.splitlines() if row.strip().startswith(label)]
    assert found, (label, printed)
    return found[0].strip()[len(label) :].strip()


def test_omni_kpis_after_the_demo_journey(runtime: LocalRuntime) -> None:
    timeline = demo.play(runtime.base_url, out=io.StringIO())
    runtime.wait_idle(timeout=30)
    [conversation] = timeline["conversations"]
    cid = conversation["conversation_id"]

    printed = omni_kpis(runtime)
    assert line(printed, "conversations started") == "1"
    assert line(printed, "conversations resolved") == "0"
    assert line(printed, "journey completion rate") == "0.0 %"
    assert line(printed, "handed over to a human queue") == "1"
    assert line(printed, "channel switches per conversation") == "0"
    assert line(printed, "first-contact resolution (FCR)") == "-"

    # The agent takes it, answers and resolves it.
    agent(
        runtime,
        "supervisor",
        "PUT",
        "/agents/kim",
        {"name": "Kim", "skills": {"billing": 8}, "max_concurrent": 3},
    )
    agent(runtime, "kim", "PUT", "/agents/me/status", {"status": "available"})
    agent(runtime, "kim", "POST", f"/conversations/{cid}/accept")
    agent(runtime, "kim", "POST", f"/conversations/{cid}/messages", {"text": "Refunded the second charge."})
    runtime.wait_idle(timeout=30)
    agent(runtime, "kim", "POST", f"/conversations/{cid}/resolve", {"resolution": "refund"})
    runtime.wait_idle(timeout=30)  # includes the CES question's delay

    # The CES question reached the customer on web chat; they answer it from a new session.
    messages = agent(runtime, "kim", "GET", f"/conversations/{cid}").json()["messages"]
    assert messages[-1]["direction"] == "outbound"
    assert messages[-1]["text"].startswith("How easy was it to get your issue solved?")
    session = demo.open_session(runtime.base_url)
    demo.say(runtime.base_url, session, "6")
    runtime.wait_idle(timeout=30)
    # The answer is recorded and stored, but neither reopens the conversation nor is answered.
    answered = agent(runtime, "kim", "GET", f"/conversations/{cid}").json()
    assert answered["status"] == "resolved"
    assert answered["ces"]["score"] == 6
    assert answered["ces"]["via"] == "reply"
    assert (answered["messages"][-1]["direction"], answered["messages"][-1]["text"]) == ("inbound", "6")

    printed = omni_kpis(runtime)
    assert line(printed, "conversations started") == "1"
    assert line(printed, "conversations resolved") == "1"
    assert line(printed, "journey completion rate") == "100.0 %"
    assert line(printed, "first-contact resolution (FCR)") == "100.0 %"
    assert line(printed, "automated resolution rate") == "0.0 %"
    assert line(printed, "reopened") == "0"
    assert line(printed, "CES average (1-7)") == "6"
    assert line(printed, "CES answers") == "1"
    assert line(printed, "CES response rate") == "100.0 %"
    assert line(printed, "first response p50 (s)") != "-"
    assert line(printed, "resolution time p90 (s)") != "-"

    as_json = json.loads(omni_kpis(runtime, "--json", "--intent", "billing", "--channel", "webchat"))
    assert as_json["kpis"]["conversations_resolved"] == 1
    assert as_json["counters"]["ces_6"] == 1
