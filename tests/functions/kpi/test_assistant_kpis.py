"""The assistant's KPIs under moto: answers, citations, tokens and cost, hand-overs by reason,
answered-and-resolved by the bot and the "was this helpful?" signal, read back through GET /kpis.
Every event is delivered twice: a redelivery counts nothing."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import boto3

from functions.agent_api.handler import handler as agent_api
from functions.kpi.handler import handler as kpi
from shared.contracts.events import format_timestamp
from shared.repositories.conversations import ConversationRepository
from shared.repositories.dynamo import serialise
from tests.helpers import context, http_event, sqs_event
from topology import CONVERSATION_RESOLVED, FEEDBACK_SUBMITTED, NOTIFICATION_REQUESTED

DAY = datetime.fromisoformat("2026-11-03T09:00:00+00:00")
AGENT = {"sub": "supervisor", "exp": "4102444800"}
CITATION = {"article_id": "returns", "title": "Returning an item"}


def envelope(detail_type: str, detail: dict[str, Any], at: datetime) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": "omni.test",
            "account": "123456789012",
            "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": "us-east-1",
            "resources": [],
            "detail": detail,
        }
    )


def deliver(*bodies: str) -> None:
    for _ in range(2):
        assert kpi(sqs_event(list(bodies), queue="kpi"), context("kpi"))["batchItemFailures"] == []


def conversation(cid: str) -> None:
    item = {
        "pk": f"CONV#{cid}",
        "sk": "META",
        "conversation_id": cid,
        "customer_id": f"cus-{cid}",
        "opened_at": format_timestamp(DAY),
        "opened_on": "webchat",
        "status": "open",
        "version": 1,
        "routing": {"intent": "general", "language": "en", "queue": "general"},
    }
    boto3.client("dynamodb").put_item(TableName=ConversationRepository().table.name, Item=serialise(item))


def notification(cid: str, at: datetime, kind: str, **extra: Any) -> str:
    detail = {
        "notification_id": f"route:{uuid.uuid4().hex[:8]}",
        "customer_id": f"cus-{cid}",
        "conversation_id": cid,
        "kind": kind,
        "text": "an answer",
        "assisted": True,
        **extra,
    }
    return envelope(NOTIFICATION_REQUESTED, detail, at)


def helpful(cid: str, at: datetime, score: int) -> str:
    detail = {
        "customer_id": f"cus-{cid}",
        "conversation_id": cid,
        "survey": "helpful",
        "score": score,
        "channel": "webchat",
        "answered_at": format_timestamp(at),
    }
    return envelope(FEEDBACK_SUBMITTED, detail, at)


def resolved_by_bot(cid: str, at: datetime) -> str:
    detail = {
        "conversation_id": cid,
        "customer_id": f"cus-{cid}",
        "resolved_at": format_timestamp(at),
        "opened_at": format_timestamp(DAY),
        "resolved_by": "bot",
        "channels": ["webchat"],
        "intent": "general",
        "escalated": False,
        "reopened": 0,
    }
    return envelope(CONVERSATION_RESOLVED, detail, at)


def report() -> dict[str, Any]:
    day = DAY.date().isoformat()
    event = http_event("GET", "/kpis", query={"from": day, "to": day}, claims=AGENT)
    response = agent_api(event, context("agent-api"))
    assert response["statusCode"] == 200, response["body"]
    return dict(json.loads(response["body"]))


def test_answers_citations_usage_resolution_feedback_and_handovers(stack: dict[Any, str]) -> None:
    for cid in ("c1", "c2", "c3"):
        conversation(cid)
    at = DAY + timedelta(minutes=1)
    usage = {"input_tokens": 800, "output_tokens": 80, "cost_usd": 0.0003}
    deliver(
        notification("c1", at, "reply", first_response=True, citations=[CITATION], **usage),
        notification("c1", at, "reply", citations=[CITATION, {"article_id": "a2", "title": "T"}], **usage),
    )
    deliver(helpful("c1", at, 1), helpful("c1", at, 0))  # the first reaction counts
    deliver(resolved_by_bot("c1", at + timedelta(minutes=5)))
    deliver(
        notification(
            "c2", at, "acknowledgement", first_handover=True, handover_reason="low_confidence", **usage
        ),
        notification("c3", at, "acknowledgement", first_handover=True, handover_reason="asked_for_person"),
    )
    deliver(helpful("c2", at, 0))
    body = report()
    assistant = body["assistant"]
    assert assistant["answers"] == 2
    assert assistant["conversations"] == 1
    assert assistant["resolved"] == 1
    assert assistant["resolution_rate"] == 1.0
    assert assistant["citations_per_answer"] == 1.5
    assert assistant["handovers_by_reason"] == {"asked_for_person": 1, "low_confidence": 1}
    assert assistant["tokens_per_answer"] == 3 * 880 / 2
    assert abs(assistant["model_cost_usd"] - 0.0009) < 1e-9
    assert abs(assistant["model_cost_per_answer_usd"] - 0.00045) < 1e-9
    assert assistant["feedback_answers"] == 2
    assert assistant["helpful_rate"] == 0.5
    assert body["kpis"]["assistant_handovers_low_confidence"] == 1
    assert body["kpis"]["handed_over"] == 2


def test_a_later_answer_is_no_first_response(stack: dict[Any, str]) -> None:
    conversation("c4")
    deliver(notification("c4", DAY + timedelta(minutes=3), "reply", citations=[CITATION]))
    kpis = report()["kpis"]
    assert kpis["assistant_answers"] == 1
    assert kpis["first_responses"] == 0
