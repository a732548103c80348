"""The KPI function under moto: scripted journeys with known answers, read back through GET /kpis.

Events are handed to the handler as the kpi queue would (EventBridge envelopes in SQS
records), each one twice: the counts must not change (the event ids kept on the state).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import boto3
import pytest

from functions.agent_api.handler import handler as agent_api
from functions.kpi import handler as kpi_module
from shared.domain import links
from shared.domain.kpis import bucket_bound, bucket_of
from shared.platform import link_settings
from shared.repositories.conversations import ConversationRepository
from shared.repositories.dynamo import serialise
from tests.helpers import REPO_ROOT, context, http_event, sqs_event
from tests.helpers.kpi import (
    AGENT,
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
from topology import (
    AGENT_ASSIGNED,
    CONVERSATION_REOPENED,
    CONVERSATION_STALLED,
    FEEDBACK_SUBMITTED,
    NOTIFICATION_REQUESTED,
)


@pytest.fixture
def no_ces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNI_CES_DELAY_S", "-1")


def test_ten_conversations_seven_resolved_on_first_contact(stack: dict[Any, str], no_ces: None) -> None:
    for i in range(10):
        cid, customer = f"conv_{i}", f"cus_{i}"
        opened = DAY + timedelta(minutes=i)
        conversation(cid, customer, opened, channel="sms" if i % 2 else "webchat")
        deliver(
            message(cid, customer, opened, channel="sms" if i % 2 else "webchat", new=True),
            reply(cid, customer, opened + timedelta(seconds=2), kind="acknowledgement"),
            reply(cid, customer, opened + timedelta(seconds=30)),
            resolved(cid, customer, opened, opened + timedelta(hours=1)),
        )
    later = DAY + timedelta(days=2)
    # conv_7: the customer writes again into the resolved conversation (a reopen).
    deliver(message("conv_7", "cus_7", later, text="still wrong", reopened=True))
    # conv_6: reopened, told by a conversation.reopened event.
    deliver(
        envelope(
            CONVERSATION_REOPENED,
            {"conversation_id": "conv_6", "customer_id": "cus_6", "reopened_at": ts(later)},
            later,
        )
    )
    # cus_8 comes back about billing within 7 days (a new conversation): a repeat contact.
    conversation("conv_8b", "cus_8", later)
    deliver(
        message("conv_8b", "cus_8", later, new=True), reply("conv_8b", "cus_8", later, kind="acknowledgement")
    )
    # cus_9 comes back about billing after 8 days, cus_5 within 7 days about something else.
    conversation("conv_9b", "cus_9", DAY + timedelta(days=8, hours=2))
    deliver(reply("conv_9b", "cus_9", DAY + timedelta(days=8, hours=2), kind="acknowledgement"))
    conversation("conv_5b", "cus_5", later, intent="delivery")
    deliver(reply("conv_5b", "cus_5", later, kind="acknowledgement"))

    day = kpis("2026-11-02", "2026-11-02")
    k = day["kpis"]
    assert (k["conversations_started"], k["conversations_resolved"], k["first_contact_resolutions"]) == (
        10,
        10,
        7,
    )
    assert k["first_contact_resolution_rate"] == 0.7
    assert k["journey_completion_rate"] == 1.0
    assert k["automated_resolution_rate"] == 0.0
    assert k["first_response_p50_s"] == k["first_response_p90_s"] == round(bucket_bound(bucket_of(30)), 1)
    assert k["resolution_time_p90_s"] == round(bucket_bound(bucket_of(3600)), 1)
    assert k["first_responses"] == 10
    assert (k["repeat_contacts"], k["reopened"]) == (0, 0)

    week = kpis("2026-11-01", "2026-11-30")["kpis"]
    assert (week["conversations_started"], week["repeat_contacts"], week["reopened"]) == (13, 1, 2)
    assert week["first_contact_resolution_rate"] == 0.7
    # Filters: by channel (even ones on web chat) and by intent.
    assert kpis("2026-11-02", "2026-11-02", channel="sms")["kpis"]["conversations_started"] == 5
    assert kpis("2026-11-01", "2026-11-30", intent="delivery")["kpis"]["conversations_started"] == 1


def test_bot_resolutions_switches_and_stalled_handovers(stack: dict[Any, str], no_ces: None) -> None:
    conversation("c-bot", "cus-a", DAY, intent="opening_hours")
    deliver(
        message("c-bot", "cus-a", DAY, new=True),
        message("c-bot", "cus-a", DAY + timedelta(minutes=1), channel="sms", switch=True),
        reply("c-bot", "cus-a", DAY + timedelta(seconds=1)),
        resolved(
            "c-bot",
            "cus-a",
            DAY,
            DAY + timedelta(minutes=5),
            by="bot",
            escalated=False,
            intent="opening_hours",
        ),
    )
    conversation("c-human", "cus-b", DAY)
    stalled = {
        "conversation_id": "c-human",
        "customer_id": "cus-b",
        "queue": "billing",
        "wait_kind": "agent",
        "waiting_since": ts(DAY),
        "waited_seconds": 900,
        "sla_seconds": 600,
        "detected_at": ts(DAY + timedelta(minutes=15)),
    }
    assigned = {
        "conversation_id": "c-human",
        "customer_id": "cus-b",
        "agent_id": "ines",
        "queue": "billing",
        "intent": "billing",
        "reason": "best_match",
        "assigned_at": ts(DAY + timedelta(minutes=16)),
    }
    deliver(
        message("c-human", "cus-b", DAY, new=True),
        envelope(CONVERSATION_STALLED, stalled, DAY + timedelta(minutes=15)),
        envelope(AGENT_ASSIGNED, assigned, DAY + timedelta(minutes=16)),
        resolved("c-human", "cus-b", DAY, DAY + timedelta(minutes=30), by="agent:ines"),
    )
    k = kpis("2026-11-02", "2026-11-02")["kpis"]
    assert (k["conversations_started"], k["conversations_resolved"]) == (2, 2)
    assert k["automated_resolution_rate"] == 0.5
    assert k["channel_switches_per_conversation"] == 0.5
    assert (k["stalled_handovers"], k["handed_over"]) == (1, 1)
    assert (
        kpis("2026-11-02", "2026-11-02", intent="opening_hours")["kpis"]["automated_resolution_rate"] == 1.0
    )


def drain_kpi_queue(stack: dict[Any, str]) -> None:
    sqs = boto3.client("sqs")
    url = stack[("queue", "kpi")]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    ces = [m for m in got if json.loads(m["Body"])["detail-type"] == "kpi.ces_due"]
    if ces:
        deliver(*(m["Body"] for m in ces))
    for m in got:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def asked(stack: dict[Any, str]) -> list[dict[str, Any]]:
    """The CES questions the KPI function put on the bus (the notify queue holds them)."""
    sqs = boto3.client("sqs")
    url = stack[("queue", "notify")]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"])["detail"] for m in got]


def resolve_meta(cid: str, at: datetime) -> None:
    """The conversation's META as the resolution leaves it (the question is only asked then)."""
    boto3.client("dynamodb").update_item(
        TableName=ConversationRepository().table.name,
        Key=serialise({"pk": f"CONV#{cid}", "sk": "META"}),
        UpdateExpression="SET #s = :r, resolved_at = :at, last_inbound_channel = :ch",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues=serialise({":r": "resolved", ":at": ts(at), ":ch": "webchat"}),
    )


def test_ces_is_asked_after_resolution_and_answers_count_once(
    stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNI_CES_DELAY_S", "0")
    cases = [("c-en", "cus-en", "en", 7), ("c-de", "cus-de", "de", 6), ("c-x", "cus-x", "en", None)]
    for cid, customer, lang, _ in cases:
        conversation(cid, customer, DAY, lang=lang)
        resolve_meta(cid, DAY + timedelta(minutes=9))
        deliver(
            message(cid, customer, DAY, new=True),
            resolved(cid, customer, DAY, DAY + timedelta(minutes=9), lang=lang),
        )
    drain_kpi_queue(stack)
    questions = {q["conversation_id"]: q for q in asked(stack)}
    assert set(questions) == {"c-en", "c-de", "c-x"}
    assert questions["c-de"]["text"].startswith("Wie einfach war es")
    assert questions["c-en"]["text"].startswith("How easy was it to get your issue solved?")
    assert "http" not in questions["c-en"]["text"]  # no public API URL: no links
    assert questions["c-en"]["kind"] == "reply"
    assert questions["c-en"]["notification_id"].startswith("ces:c-en:")
    # The question is marked on the conversation: profile merge takes the reply as the answer.
    pending = ConversationRepository().get_meta("c-en")["survey_pending"]
    assert (pending["survey"], pending["resolved_at"]) == ("ces", ts(DAY + timedelta(minutes=9)))

    # The questions themselves are no first response.
    deliver(*(envelope(NOTIFICATION_REQUESTED, q, DAY + timedelta(minutes=10)) for q in questions.values()))
    answer_at = datetime.now(tz=DAY.tzinfo) + timedelta(minutes=1)
    for cid, customer, _, score in cases:
        if score is not None:
            deliver(message(cid, customer, answer_at, text=str(score), survey="ces", score=score))
            # Answered again (a second reply marked as an answer, a link click): counted once.
            deliver(message(cid, customer, answer_at, text="1", survey="ces", score=1))
        else:  # "9": not an answer; profile merge recorded it as a message that reopened it
            deliver(message(cid, customer, answer_at, text="9", reopened=True))

    report = kpis("2026-11-02", "2026-11-02")
    k, counters = report["kpis"], report["counters"]
    assert (k["ces_answers"], k["ces_average"], k["ces_response_rate"]) == (2, 6.5, round(2 / 3, 4))
    assert (counters["ces_6"], counters["ces_7"], counters["ces_1"], counters["ces_asked"]) == (1, 1, 0, 3)
    assert k["first_responses"] == 0
    assert k["csat_answers"] == 0
    today = answer_at.date().isoformat()
    assert kpis(today, today)["kpis"]["reopened"] == 1


def feedback(cid: str, customer: str, survey: str, score: int, at: datetime) -> str:
    detail = {
        "customer_id": customer,
        "conversation_id": cid,
        "survey": survey,
        "score": score,
        "channel": "email",
        "answered_at": ts(at),
    }
    return envelope(FEEDBACK_SUBMITTED, detail, at)


def test_csat_by_link_counts_once_stored_on_the_conversation(
    stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    rules = tmp_path / "rules.toml"
    packaged = (REPO_ROOT / "shared" / "domain" / "routing_rules.toml").read_text()
    rules.write_text(packaged.replace('survey = "ces"', 'survey = "csat"'))
    monkeypatch.setenv("OMNI_ROUTING_RULES", str(rules))
    monkeypatch.setenv("OMNI_CES_DELAY_S", "0")
    monkeypatch.setenv(links.BASE_URL_ENV_VAR, "https://api.example.com/")
    monkeypatch.setenv(links.SECRET_ENV_VAR, stack[("secret", "links-signing")])
    conversation("c-l", "cus-l", DAY, lang="de")
    resolve_meta("c-l", DAY + timedelta(minutes=3))
    deliver(
        message("c-l", "cus-l", DAY, new=True),
        resolved("c-l", "cus-l", DAY, DAY + timedelta(minutes=3), lang="de"),
    )
    drain_kpi_queue(stack)
    [question] = asked(stack)
    assert question["notification_id"].startswith("csat:c-l:")
    text = question["text"]
    assert text.startswith("Wie zufrieden sind Sie")
    urls = re.findall(r"https://api\.example\.com/links/csat\?\S+", text)
    assert len(urls) == 5  # one link per score 1-5, web chat was the customer's channel
    token = parse_qs(urlparse(urls[3]).query)["t"][0]
    claims = links.verify(link_settings.links_signing_secret(), token, "csat")
    assert (claims.customer_id, claims.conversation_id, claims.channel) == ("cus-l", "c-l", "webchat")
    assert parse_qs(urlparse(urls[3]).query)["score"] == ["4"]

    at = DAY + timedelta(minutes=20)
    deliver(feedback("c-l", "cus-l", "csat", 4, at))
    # A second click, another score, and a reply marked as an answer: the first answer wins.
    deliver(feedback("c-l", "cus-l", "csat", 1, at + timedelta(minutes=1)))
    deliver(message("c-l", "cus-l", at, text="2", survey="csat", score=2))
    meta = ConversationRepository().get_meta("c-l")
    assert meta["csat"]["score"] == 4
    assert meta["csat"]["via"] == "link"
    assert "survey_pending" not in meta
    k = kpis("2026-11-02", "2026-11-02")
    assert (k["kpis"]["csat_answers"], k["kpis"]["csat_average"], k["kpis"]["csat_satisfied_rate"]) == (
        1,
        4.0,
        1.0,
    )
    assert (k["counters"]["csat_4"], k["counters"]["csat_asked"], k["kpis"]["ces_answers"]) == (1, 1, 0)


def test_a_score_outside_the_scale_or_of_a_stranger_is_not_counted(
    stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNI_CES_DELAY_S", "0")
    conversation("c-s", "cus-s", DAY)
    resolve_meta("c-s", DAY + timedelta(minutes=3))
    deliver(message("c-s", "cus-s", DAY, new=True), resolved("c-s", "cus-s", DAY, DAY + timedelta(minutes=3)))
    drain_kpi_queue(stack)
    deliver(feedback("c-s", "cus-other", "ces", 5, DAY + timedelta(minutes=5)))  # not their conversation
    deliver(feedback("c-s", "cus-s", "csat", 7, DAY + timedelta(minutes=5)))  # CSAT is 1-5
    counters = kpis("2026-11-02", "2026-11-02")["counters"]
    assert (counters["ces_count"], counters["csat_count"], counters["ces_asked"]) == (0, 0, 1)
    deliver(feedback("c-s", "cus-s", "ces", 5, DAY + timedelta(minutes=6)))
    assert kpis("2026-11-02", "2026-11-02")["counters"]["ces_5"] == 1


def test_a_reopen_before_the_question_cancels_it(
    stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNI_CES_DELAY_S", "0")
    conversation("c-r", "cus-r", DAY)
    deliver(message("c-r", "cus-r", DAY, new=True), resolved("c-r", "cus-r", DAY, DAY + timedelta(minutes=1)))
    deliver(message("c-r", "cus-r", DAY + timedelta(minutes=2), text="wait, one more thing", reopened=True))
    drain_kpi_queue(stack)
    assert asked(stack) == []


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"from": "2026-11-02", "to": "2026-11-01"}, "'to' is before 'from'"),
        ({"from": "2026-01-01", "to": "2027-12-31"}, "at most 366 days per request"),
        ({"from": "2026-02-30", "to": "2026-03-01"}, "query.from: Input should be a valid date"),
    ],
)
def test_kpis_refuses_bad_ranges(stack: dict[Any, str], query: dict[str, str], reason: str) -> None:
    response = agent_api(http_event("GET", "/kpis", claims=AGENT, query=query), context("agent-api"))
    assert response["statusCode"] == 400
    assert json.loads(response["body"])["message"].startswith(reason)
    missing = agent_api(
        http_event("GET", "/kpis", claims=AGENT, query={"from": "2026-11-01"}), context("agent-api")
    )
    assert missing["statusCode"] in (400, 422)
    unauthorised = agent_api(
        http_event("GET", "/kpis", claims=None, query={"from": "2026-11-01", "to": "2026-11-02"}),
        context("agent-api"),
    )
    assert unauthorised["statusCode"] == 401


def test_events_of_an_unknown_conversation_count_nothing(stack: dict[Any, str], no_ces: None) -> None:
    deliver(message("c-gone", "cus-gone", DAY, new=True), reply("c-gone", "cus-gone", DAY))
    assert kpis("2026-11-02", "2026-11-02")["kpis"]["conversations_started"] == 0


def test_a_second_ces_due_message_does_not_ask_again(
    stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNI_CES_DELAY_S", "0")
    conversation("c-2", "cus-2", DAY)
    resolve_meta("c-2", DAY + timedelta(minutes=1))
    deliver(message("c-2", "cus-2", DAY, new=True), resolved("c-2", "cus-2", DAY, DAY + timedelta(minutes=1)))
    sqs = boto3.client("sqs")
    url = stack[("queue", "kpi")]
    [due] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    body = json.loads(due["Body"])
    again = json.dumps({**body, "id": str(uuid.uuid4())})  # the same question scheduled twice
    deliver(due["Body"], again)
    assert len(asked(stack)) == 1
    counters = kpis("2026-11-02", "2026-11-02")["counters"]
    assert counters["ces_asked"] == 1


def test_a_reply_answer_before_a_link_click_is_the_one_counted(
    stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNI_CES_DELAY_S", "0")
    conversation("c-rl", "cus-rl", DAY)
    resolve_meta("c-rl", DAY + timedelta(minutes=3))
    deliver(
        message("c-rl", "cus-rl", DAY, new=True), resolved("c-rl", "cus-rl", DAY, DAY + timedelta(minutes=3))
    )
    drain_kpi_queue(stack)
    repo = ConversationRepository()
    at = ts(DAY + timedelta(minutes=7))
    answer = {
        "channel": "webchat",
        "text": "6",
        "sent_at": at,
        "received_at": at,
        "survey": "ces",
        "score": 6,
    }
    # Profile merge records the reply "6" as the answer (once: a redelivery is a duplicate) ...
    assert repo.record_survey_answer("c-rl", message_id="webchat#a-1", **answer) is True
    assert repo.record_survey_answer("c-rl", message_id="webchat#a-1", **answer) is False
    # ... and a later reply is no answer any more (an ordinary message, which reopens).
    assert repo.record_survey_answer("c-rl", message_id="webchat#a-2", **answer) is None
    meta = repo.get_meta("c-rl")
    assert (meta["status"], meta["ces"]["score"], meta["ces"]["via"]) == ("resolved", 6, "reply")
    assert "survey_pending" not in meta
    # The link click reaches the KPIs before the reply's message.recorded: not counted ...
    deliver(feedback("c-rl", "cus-rl", "ces", 2, DAY + timedelta(minutes=8)))
    assert kpis("2026-11-02", "2026-11-02")["counters"]["ces_count"] == 0
    # ... the reply's event counts the stored answer.
    deliver(message("c-rl", "cus-rl", DAY + timedelta(minutes=7), text="6", survey="ces", score=6))
    counters = kpis("2026-11-02", "2026-11-02")["counters"]
    assert (counters["ces_count"], counters["ces_6"], counters["ces_2"]) == (1, 1, 0)
    assert repo.get_meta("c-rl")["ces"]["score"] == 6


# No survey after the resolution of a conversation whose last message was automatic mail.
@pytest.mark.parametrize(("automated", "questions"), [(None, 1), ("list", 0)])
def test_no_survey_for_a_conversation_of_automatic_mail(
    stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch, automated: str | None, questions: int
) -> None:
    monkeypatch.setenv("OMNI_CES_DELAY_S", "0")
    conversation("c-auto", "cus-auto", DAY)
    resolve_meta("c-auto", DAY + timedelta(minutes=1))
    if automated:  # as routing leaves it after routing a newsletter
        boto3.client("dynamodb").update_item(
            TableName=ConversationRepository().table.name,
            Key=serialise({"pk": "CONV#c-auto", "sk": "META"}),
            UpdateExpression="SET automated_mail = :a",
            ExpressionAttributeValues=serialise({":a": automated}),
        )
    deliver(
        message("c-auto", "cus-auto", DAY, new=True),
        resolved("c-auto", "cus-auto", DAY, DAY + timedelta(minutes=1)),
    )
    drain_kpi_queue(stack)
    assert len(asked(stack)) == questions


def test_a_batch_is_one_write_and_a_bad_record_fails_alone(
    stack: dict[Any, str], no_ces: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(4):
        conversation(f"b-{i}", f"cus-b{i}", DAY + timedelta(minutes=i), channel="sms" if i % 2 else "webchat")
    bodies = [
        reply(f"b-{i}", f"cus-b{i}", DAY + timedelta(minutes=i, seconds=5), kind="acknowledgement")
        for i in range(4)
    ]
    bad = envelope(NOTIFICATION_REQUESTED, {"conversation_id": "b-0", "kind": "reply"}, DAY)  # no ids
    batch = sqs_event([*bodies[:2], bad, *bodies[2:]], queue="kpi")
    bad_id = batch["Records"][2]["messageId"]
    commits: list[Any] = []
    repo = kpi_module.kpis().repo
    original = repo.commit
    monkeypatch.setattr(repo, "commit", lambda plan: (commits.append(plan), original(plan))[1])

    result = kpi_module.handler(batch, context("kpi"))
    assert result["batchItemFailures"] == [{"itemIdentifier": bad_id}]
    # One commit for the batch: one ADD per counter row (web chat and SMS), the four states.
    assert len(commits) == 1
    assert set(commits[0].deltas) == {("2026-11-02", "billing", "webchat"), ("2026-11-02", "billing", "sms")}
    counted = kpis("2026-11-02", "2026-11-02")["kpis"]
    assert counted["conversations_started"] == 4

    # SQS redelivers the batch (the failed record and, after a crash, the others too): nothing twice.
    again = kpi_module.handler(batch, context("kpi"))
    assert again["batchItemFailures"] == [{"itemIdentifier": bad_id}]
    assert kpis("2026-11-02", "2026-11-02")["kpis"] == counted
    assert len(commits) == 1


def test_the_kpis_of_a_journey_are_the_same_counted_in_one_batch_or_one_by_one(
    stack: dict[Any, str], no_ces: None
) -> None:
    """The same journeys on two days: one event per batch on the first, every event in one
    batch on the second (redelivered whole); GET /kpis answers the same for both days."""
    for day, batched in ((DAY, False), (DAY + timedelta(days=1), True)):
        bodies = []
        for i in range(3):
            cid, customer, opened = f"j{batched}-{i}", f"cus-j{batched}-{i}", day + timedelta(minutes=i)
            conversation(cid, customer, opened, channel="sms" if i % 2 else "webchat")
            bodies += [
                reply(cid, customer, opened + timedelta(seconds=2), kind="acknowledgement"),
                reply(cid, customer, opened + timedelta(seconds=40)),
                resolved(cid, customer, opened, opened + timedelta(minutes=30)),
            ]
        if batched:
            deliver(*bodies)
        else:
            for body in bodies:
                deliver(body)
    one_by_one = kpis("2026-11-02", "2026-11-02")
    in_one_batch = kpis("2026-11-03", "2026-11-03")
    assert one_by_one["kpis"]["conversations_resolved"] == 3
    assert {k: v for k, v in one_by_one.items() if k not in ("from_day", "to_day")} == {
        k: v for k, v in in_one_batch.items() if k not in ("from_day", "to_day")
    }
