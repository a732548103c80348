"""The KPI function's inputs as its queue delivers them (EventBridge envelopes in SQS records),
the conversation items profile merge and routing leave, and ``GET /kpis`` to read the result."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import boto3

from functions.agent_api.handler import handler as agent_api
from functions.kpi.handler import handler as kpi
from shared.contracts.events import format_timestamp
from shared.repositories.conversations import ConversationRepository
from shared.repositories.dynamo import serialise
from tests.helpers import context, http_event, sqs_event
from topology import CONVERSATION_RESOLVED, MESSAGE_RECORDED, NOTIFICATION_REQUESTED

AGENT = {"sub": "supervisor", "exp": "4102444800"}
DAY = datetime.fromisoformat("2026-11-02T09:00:00+00:00")


def ts(at: datetime) -> str:
    return format_timestamp(at)


def envelope(detail_type: str, detail: dict[str, Any], at: datetime, event_id: str | None = None) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": event_id or str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": "omni.test",
            "account": "123456789012",
            "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": "us-east-1",
            "resources": [],
            "detail": detail,
        }
    )


def deliver(*bodies: str, twice: bool = True) -> None:
    """Hand the events to the KPI function (each twice: a redelivery must not count)."""
    for _ in range(2 if twice else 1):
        result = kpi(sqs_event(list(bodies), queue="kpi"), context("kpi"))
        assert result["batchItemFailures"] == [], result


def conversation(
    cid: str,
    customer: str,
    opened: datetime,
    channel: str = "webchat",
    intent: str = "billing",
    lang: str = "en",
) -> None:
    """The conversation's META item as profile merge and routing leave it."""
    item = {
        "pk": f"CONV#{cid}",
        "sk": "META",
        "conversation_id": cid,
        "customer_id": customer,
        "opened_at": ts(opened),
        "opened_on": channel,
        "status": "open",
        "version": 1,
        "message_count": 1,
        "channels": [channel],
        "routing": {"intent": intent, "language": lang, "queue": "billing"},
    }
    boto3.client("dynamodb").put_item(TableName=ConversationRepository().table.name, Item=serialise(item))


def message(
    cid: str,
    customer: str,
    at: datetime,
    text: str = "hi",
    channel: str = "webchat",
    new: bool = False,
    *,
    reopened: bool = False,
    switch: bool = False,
    survey: str | None = None,
    score: int | None = None,
) -> str:
    """A ``message.recorded`` as profile merge publishes it (with the KPI flags it sets)."""
    detail = {
        "customer_id": customer,
        "conversation_id": cid,
        "message_id": f"{channel}#{uuid.uuid4().hex[:8]}",
        "channel": channel,
        "text": text,
        "sent_at": ts(at),
        "reply_to": {"type": "webchat", "value": "s-1", "verified": True},
        "new_conversation": new,
        "reopened": reopened,
        "channel_switch": switch,
        "survey": survey,
        "survey_score": score,
    }
    return envelope(MESSAGE_RECORDED, detail, at)


def reply(cid: str, customer: str, at: datetime, kind: str = "reply", nid: str | None = None) -> str:
    detail = {
        "notification_id": nid or f"route:{uuid.uuid4().hex[:8]}",
        "customer_id": customer,
        "conversation_id": cid,
        "kind": kind,
        "text": "an answer",
    }
    return envelope(NOTIFICATION_REQUESTED, detail, at)


def resolved(
    cid: str,
    customer: str,
    opened: datetime,
    at: datetime,
    by: str = "agent:ines",
    reopened: int = 0,
    escalated: bool = True,
    intent: str = "billing",
    lang: str = "en",
) -> str:
    detail = {
        "conversation_id": cid,
        "customer_id": customer,
        "intent": intent,
        "opened_at": ts(opened),
        "resolved_at": ts(at),
        "resolved_by": by,
        "escalated": escalated,
        "reopened": reopened,
        "language": lang,
    }
    return envelope(CONVERSATION_RESOLVED, detail, at)


def kpis(start: str, end: str, **filters: str) -> dict[str, Any]:
    response = agent_api(
        http_event("GET", "/kpis", claims=AGENT, query={"from": start, "to": end, **filters}),
        context("agent-api"),
    )
    assert response["statusCode"] == 200, response
    return json.loads(response["body"])
