"""``GET /kpis/daily``: the supervisor view's daily series, under moto.

Journeys are counted by the KPI function from events (as in ``tests/functions/kpi/test_handler.py``), then
read back per day; the range as a whole must agree with ``GET /kpis``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest

from functions.agent_api.handler import app
from functions.agent_api.handler import handler as agent_api
from shared.repositories.conversations import ConversationRepository
from shared.repositories.dynamo import serialise
from tests.helpers import context, http_event
from tests.helpers.kpi import (
    DAY,
    conversation,
    deliver,
    envelope,
    kpis,
    message,
    reply,
    resolved,
    ts,
)
from topology import AGENT_ASSIGNED

SUPERVISOR = {"sub": "sofia", "exp": "4102444800", "cognito:groups": "[supervisors]"}
AGENT = {"sub": "ines", "exp": "4102444800"}


def series(query: dict[str, str], claims: dict[str, Any] | None = SUPERVISOR) -> dict[str, Any]:
    response = agent_api(http_event("GET", "/kpis/daily", claims=claims, query=query), context("agent-api"))
    return {"status": response["statusCode"], **json.loads(response["body"])}


@pytest.fixture
def week(stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Three days of journeys: day 0 two resolved by an agent (one by SMS), day 2 one by the bot."""
    monkeypatch.setenv("OMNI_CES_DELAY_S", "-1")
    for i, channel in enumerate(("webchat", "sms")):
        cid, customer, opened = f"c{i}", f"cus{i}", DAY + timedelta(minutes=i)
        conversation(cid, customer, opened, channel=channel)
        deliver(
            message(cid, customer, opened, channel=channel, new=True),
            reply(cid, customer, opened + timedelta(seconds=2), kind="acknowledgement"),
            resolved(cid, customer, opened, opened + timedelta(minutes=10)),
        )
    opened = DAY + timedelta(days=2)
    conversation("c2", "cus2", opened, intent="delivery")
    deliver(
        message("c2", "cus2", opened, new=True),
        reply("c2", "cus2", opened + timedelta(seconds=1)),
        resolved(
            "c2", "cus2", opened, opened + timedelta(minutes=30), by="bot", escalated=False, intent="delivery"
        ),
    )


def test_every_day_of_the_range_with_its_kpis_and_the_whole_as_get_kpis(week: None) -> None:
    got = series({"from": "2026-11-01", "to": "2026-11-07"})
    assert got["status"] == 200, got
    assert [d["day"] for d in got["days"]] == [f"2026-11-0{n}" for n in range(1, 8)]
    started = [d["kpis"]["conversations_started"] for d in got["days"]]
    assert started == [0, 2, 0, 1, 0, 0, 0]
    assert got["days"][1]["kpis"]["first_contact_resolution_rate"] == 1.0
    assert got["days"][1]["kpis"]["resolution_time_p50_s"] is not None
    assert got["days"][0]["kpis"]["first_contact_resolution_rate"] is None  # nothing resolved
    assert got["days"][3]["kpis"]["automated_resolution_rate"] == 1.0
    whole = kpis("2026-11-01", "2026-11-07")
    assert got["kpis"] == whole["kpis"]
    assert got["counters"] == whole["counters"]
    assert got["started_by_channel"] == {"sms": 1, "webchat": 2}
    assert got["handed_over_by_intent"] == {"billing": 2}
    assert got["handed_over_by_reason"] == whole["handed_over_by_reason"] == {"intent": 2}
    assert (got["channels"], got["intents"]) == (["sms", "webchat"], ["billing", "delivery"])


def routed(cid: str, **decision: Any) -> None:
    """Routing's decision on the conversation (what the KPI function reads the reason from)."""
    routing = {"intent": "billing", "queue": "billing", "automated": False, **decision}
    boto3.client("dynamodb").update_item(
        TableName=ConversationRepository().table.name,
        Key=serialise({"pk": f"CONV#{cid}", "sk": "META"}),
        UpdateExpression="SET #r = :r",
        ExpressionAttributeNames={"#r": "routing"},
        ExpressionAttributeValues=serialise({":r": routing}),
    )


def assigned(cid: str, customer: str, at: datetime) -> str:
    detail = {
        "conversation_id": cid,
        "customer_id": customer,
        "agent_id": "ines",
        "queue": "billing",
        "intent": "billing",
        "reason": "best_match",
        "assigned_at": ts(at),
    }
    return envelope(AGENT_ASSIGNED, detail, at)


def test_hand_overs_are_counted_once_per_conversation_by_routings_reason(
    stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNI_CES_DELAY_S", "-1")
    journeys = [
        ("h1", {"escalated": True, "handover_reason": "asked_for_person"}),
        ("h2", {"handover_reason": "no_bot_answer"}),
        ("h3", {"handover_reason": "intent"}),
        ("h4", {"intent": "general", "queue": "general"}),  # decided before reasons were named
        ("h5", {"escalated": True}),  # likewise: the customer asked for a person
        ("h6", {"intent": "hours", "automated": True}),  # an agent took a bot conversation
    ]
    for i, (cid, decision) in enumerate(journeys):
        opened = DAY + timedelta(minutes=i)
        conversation(cid, f"cus-{cid}", opened)
        routed(cid, **decision)
        first = (
            assigned(cid, f"cus-{cid}", opened + timedelta(seconds=5))
            if cid in ("h3", "h6")
            else reply(cid, f"cus-{cid}", opened + timedelta(seconds=2), kind="acknowledgement")
        )
        # Each delivered twice, and a later hand-over of the same conversation counts nothing.
        deliver(first)
        deliver(assigned(cid, f"cus-{cid}", opened + timedelta(minutes=1)))
    # A later decision does not change the reason counted.
    routed("h1", handover_reason="intent")
    deliver(reply("h1", "cus-h1", DAY + timedelta(hours=1), kind="acknowledgement"))

    want = {
        "asked_for_person": 2,
        "no_bot_answer": 1,
        "intent": 1,
        "not_understood": 1,
        "other": 1,
    }
    whole = kpis("2026-11-01", "2026-11-07")
    assert whole["handed_over_by_reason"] == want
    assert whole["kpis"]["handed_over"] == sum(want.values()) == 6
    assert whole["counters"]["handover_asked_for_person"] == 2
    got = series({"from": "2026-11-01", "to": "2026-11-07"})
    assert got["handed_over_by_reason"] == want
    # The filters apply: by intent (the conversation's), by channel.
    assert kpis("2026-11-01", "2026-11-07", channel="sms")["handed_over_by_reason"] == {}


def test_filters_select_conversations_by_channel_and_intent(week: None) -> None:
    sms = series({"from": "2026-11-01", "to": "2026-11-07", "channel": "sms"})
    assert sms["kpis"]["conversations_started"] == 1
    assert sms["started_by_channel"] == {"sms": 1}
    assert sms["channels"] == ["sms", "webchat"]  # what the filter can offer, whatever it is set to
    delivery = series({"from": "2026-11-01", "to": "2026-11-07", "intent": "delivery"})
    assert [d["kpis"]["conversations_resolved"] for d in delivery["days"]] == [0, 0, 0, 1, 0, 0, 0]
    assert delivery["kpis"] == kpis("2026-11-01", "2026-11-07", intent="delivery")["kpis"]


def test_a_range_over_two_months_reads_both_partitions(week: None) -> None:
    got = series({"from": "2026-10-20", "to": "2026-11-03"})
    assert got["status"] == 200
    assert len(got["days"]) == 15
    assert got["kpis"]["conversations_started"] == 2


def test_only_supervisors_may_read_it(week: None) -> None:
    refused = series({"from": "2026-11-01", "to": "2026-11-07"}, claims=AGENT)
    assert refused["status"] == 403
    assert "supervisors" in refused["message"]
    assert series({"from": "2026-11-01", "to": "2026-11-07"}, claims=None)["status"] == 401


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"from": "2026-11-02", "to": "2026-11-01"}, "'to' is before 'from'"),
        ({"from": "2026-10-01", "to": "2026-11-01"}, "at most 31 days per request"),
        ({"from": "2026-02-30", "to": "2026-03-01"}, "query.from: Input should be a valid date"),
    ],
)
def test_bad_ranges_are_refused(stack: dict[Any, str], query: dict[str, str], reason: str) -> None:
    got = series(query)
    assert got["status"] == 400
    assert got["message"].startswith(reason)


def test_documented_in_the_openapi() -> None:
    spec = json.loads(app.get_openapi_json_schema())
    route = spec["paths"]["/kpis/daily"]["get"]
    assert {"200", "400", "401", "403"} <= set(route["responses"])
    assert {p["name"] for p in route["parameters"]} == {"from", "to", "channel", "intent"}
