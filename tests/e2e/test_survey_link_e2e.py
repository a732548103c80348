"""A survey answered by link on the local stack: question with signed score links -> click -> KPI.

The customer writes on web chat, an agent resolves the conversation, the KPI function asks
the CES question on web chat with one signed link per score (the local runtime gives it its
own address as ``OMNI_PUBLIC_API_URL``). Opening a link (what a link previewer does) changes
nothing; the click (POST) publishes ``feedback.submitted``, which the KPI function stores on
the conversation and counts once - a second click does not count again.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests

from omni import demo
from omni.cli import main
from omni.local.runtime import LocalRuntime
from tests.helpers.e2e import agent

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(port=0, stage="e2e-survey-link") as running:
        yield running


def kpi_line(runtime: LocalRuntime, label: str) -> str:
    out = io.StringIO()
    today = datetime.now(UTC).date().isoformat()
    with contextlib.redirect_stdout(out):
        assert main(["kpis", "--base-url", runtime.base_url, "--from", today, "--to", today]) == 0
    [row] = [r.strip() for r in out.getvalue().splitlines() if r.strip().startswith(label)]
    return row[len(label) :].strip()


def test_a_score_clicked_in_the_web_chat_is_stored_and_counted_once(runtime: LocalRuntime) -> None:
    session = demo.open_session(runtime.base_url)
    demo.say(runtime.base_url, session, "I was charged twice, my invoice is wrong")
    runtime.wait_idle(timeout=30)
    customer = agent(runtime, "kim", "GET", f"/customers?identity=account:{demo.ACCOUNT_ID}").json()
    customer_id = customer.get("customer_id") or customer["customers"][0]["customer_id"]
    [conversation] = agent(runtime, "kim", "GET", f"/customers/{customer_id}/conversations").json()[
        "conversations"
    ]
    cid = conversation["conversation_id"]

    agent(
        runtime,
        "supervisor",
        "PUT",
        "/agents/kim",
        {"name": "Kim", "skills": {"billing": 8}, "max_concurrent": 3},
    )
    agent(runtime, "kim", "PUT", "/agents/me/status", {"status": "available"})
    agent(runtime, "kim", "POST", f"/conversations/{cid}/accept")
    agent(runtime, "kim", "POST", f"/conversations/{cid}/resolve", {"resolution": "refund"})
    runtime.wait_idle(timeout=30)  # includes the question's delay

    question = agent(runtime, "kim", "GET", f"/conversations/{cid}").json()["messages"][-1]
    assert question["direction"] == "outbound"
    links = dict(re.findall(r"^(\d): (https?://\S+)$", question["text"], flags=re.MULTILINE))
    assert sorted(links) == [str(n) for n in range(1, 8)]
    assert all(url.startswith(f"{runtime.base_url}/links/ces?t=") for url in links.values())

    # A link previewer opens it: a page with a button, nothing recorded.
    preview = requests.get(links["5"], timeout=10)
    assert preview.status_code == 200
    assert "<form" in preview.text
    runtime.wait_idle(timeout=30)
    assert agent(runtime, "kim", "GET", f"/conversations/{cid}").json().get("ces") is None

    # The customer clicks 5, then clicks again.
    for _ in range(2):
        clicked = requests.post(links["5"], timeout=10)
        assert clicked.status_code == 200, clicked.text
    runtime.wait_idle(timeout=30)

    answered = agent(runtime, "kim", "GET", f"/conversations/{cid}").json()
    assert answered["status"] == "resolved"
    assert (answered["ces"]["score"], answered["ces"]["via"]) == (5, "link")
    assert kpi_line(runtime, "CES answers") == "1"
    assert kpi_line(runtime, "CES average (1-7)") == "5"

    # A forged score link is refused and changes nothing.
    forged = requests.post(links["5"].replace("t=", "t=x"), timeout=10)
    assert forged.status_code in (400, 403)
