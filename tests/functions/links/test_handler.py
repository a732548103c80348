"""The links function under moto: GET changes nothing, POST unsubscribes (RFC 8058 one-click)
or records a survey answer; bad, forged and expired links are clear 4xx answers."""

from __future__ import annotations

import base64
import html
import json
import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import boto3
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.links import actions, pages
from functions.links.handler import handler
from functions.notify import handler as notify_handler
from functions.notify.notifier import Notifier
from shared.contracts.events import Identity, NotificationRequested
from shared.contracts.models import Consent
from shared.domain import links
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository, customer_pk
from shared.repositories.dynamo import serialise
from shared.repositories.outbox import OutboxRepository
from tests.helpers import context, http_event
from topology import TOPOLOGY

SECRET = TOPOLOGY.secret("links-signing").local_default
ROUTE = "/links/{purpose}"
EMAIL = Identity(type="email", value="ana@example.com", verified=True)
ONE_CLICK = "List-Unsubscribe=One-Click"
NOON = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)


def mint(purpose: links.Purpose = "unsubscribe", **claims: Any) -> str:
    fields: dict[str, Any] = {"customer_id": "c1", "channel": "email"}
    fields.update(claims)
    return links.sign(SECRET, purpose, **fields)


def call(
    method: str,
    purpose: str,
    query: dict[str, str] | None = None,
    *,
    body: bytes | None = None,
    content_type: str = "application/x-www-form-urlencoded",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], str]:
    all_headers = dict(headers or {})
    encoded = None
    if body is not None:
        all_headers["content-type"] = content_type
        encoded = base64.b64encode(body).decode()  # API Gateway base64-encodes form bodies
    event = http_event(
        method, ROUTE, path_parameters={"purpose": purpose}, query=query, headers=all_headers, body=encoded
    )
    if body is not None:
        event["isBase64Encoded"] = True
    response = handler(event, context("links"))
    return response["statusCode"], response.get("headers") or {}, response.get("body") or ""


def make_customer(customer_id: str = "c1", **consent: str) -> None:
    customers = CustomerRepository()
    address = EMAIL if customer_id == "c1" else Identity(type="email", value=f"{customer_id}@example.com")
    customers.create(customer_id, [address], "2026-01-01T00:00:00.000000Z")
    for channel, status in consent.items():
        customers.set_consent(
            customer_id, channel, Consent(status=status, at="2026-02-01T00:00:00.000000Z", source="test")
        )


def email_consent(customer_id: str = "c1") -> dict[str, Any] | None:
    profile = CustomerRepository().get_profile(customer_id) or {}
    return profile.get("consent_email")


def kpi_events(stack: dict[Any, str]) -> list[dict[str, Any]]:
    """What reached the KPI queue through the bus rule (feedback.submitted is counted there)."""
    sqs = boto3.client("sqs")
    found: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=stack[("queue", "kpi")], MaxNumberOfMessages=10)
        if not batch.get("Messages"):
            return found
        found += [json.loads(m["Body"]) for m in batch["Messages"]]


# --------------------------------------------------------------------------- #
# Unsubscribe
# --------------------------------------------------------------------------- #
def test_get_shows_a_confirmation_page_and_changes_nothing(stack: dict[Any, str]) -> None:
    make_customer(email="opted_in")
    token = mint()
    for _ in range(3):  # a mail scanner, a link preview, the customer
        status, headers, page = call("GET", "unsubscribe", {"t": token})
        assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert '<form method="post" action="?t=' + token + '">' in page
    assert '<input type="hidden" name="List-Unsubscribe" value="One-Click">' in page
    assert not re.search(r"(src|href)=", page)  # nothing loaded from anywhere
    assert email_consent()["status"] == "opted_in"  # type: ignore[index]
    assert kpi_events(stack) == []


def test_one_click_post_opts_out_and_a_second_click_is_fine(stack: dict[Any, str]) -> None:
    make_customer(email="opted_in")
    token = mint()
    status, _, page = call("POST", "unsubscribe", {"t": token}, body=ONE_CLICK.encode())
    assert status == 200
    assert "You are unsubscribed" in page
    consent = email_consent()
    assert consent is not None
    assert (consent["status"], consent["source"]) == ("opted_out", "unsubscribe-link")
    first_at = consent["at"]
    assert call("POST", "unsubscribe", {"t": token}, body=ONE_CLICK.encode())[0] == 200
    assert email_consent()["status"] == "opted_out"  # type: ignore[index]
    assert email_consent()["at"] >= first_at  # type: ignore[index]
    # Only e-mail: the other channels keep their choice.
    assert (CustomerRepository().get_profile("c1") or {}).get("consent_sms") is None


def test_after_unsubscribing_email_notifications_are_skipped_for_consent(stack: dict[Any, str]) -> None:
    make_customer(email="opted_in")
    notifier = Notifier(
        outbox=OutboxRepository(),
        conversations=ConversationRepository(),
        customers=CustomerRepository(),
        adapters=notify_handler.build_adapters(mode="local"),
    )
    sale = {"template": "spring_sale", "variables": {"first_name": "Ana", "discount_code": "SPRING"}}
    first = NotificationRequested(
        notification_id="sale-1", customer_id="c1", kind="notification", urgency="marketing", **sale
    )
    assert notifier.handle(first, NOON).status == "sent"

    assert call("POST", "unsubscribe", {"t": mint()}, body=ONE_CLICK.encode())[0] == 200

    second = NotificationRequested(
        notification_id="sale-2", customer_id="c1", kind="notification", urgency="marketing", **sale
    )
    outcome = notifier.handle(second, NOON)
    assert outcome.status == "failed"
    assert ("email", "no_marketing_opt_in") in outcome.skipped
    shipped = NotificationRequested(
        notification_id="n-3", customer_id="c1", kind="notification", text="Shipped"
    )
    outcome = notifier.handle(shipped, NOON)
    assert outcome.status == "failed"
    assert ("email", "opted_out") in outcome.skipped
    assert OutboxRepository().get("sale-2")["attempts"] == {}  # type: ignore[index]


def test_multipart_one_click_and_a_plain_form_post_work_too(stack: dict[Any, str]) -> None:
    make_customer()
    body = b'--XyZ\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--XyZ--\r\n'
    status, _, _ = call(
        "POST", "unsubscribe", {"t": mint()}, body=body, content_type="multipart/form-data; boundary=XyZ"
    )
    assert status == 200
    assert email_consent()["status"] == "opted_out"  # type: ignore[index]
    make_customer("c2")
    assert call("POST", "unsubscribe", {"t": mint(customer_id="c2")})[0] == 200  # no body at all
    assert email_consent("c2")["status"] == "opted_out"  # type: ignore[index]


def test_a_merged_customer_is_opted_out_on_the_profile_that_survived(stack: dict[Any, str]) -> None:
    make_customer("c-new")
    customers = CustomerRepository()
    customers.create(
        "c-old", [Identity(type="phone", value="+351910000009", verified=True)], "2026-01-01T00:00:00Z"
    )
    customers.table.client.update_item(
        TableName=customers.table.name,
        Key=serialise({"pk": customer_pk("c-old"), "sk": "PROFILE"}),
        UpdateExpression="SET #s = :merged, merged_into = :into",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues=serialise({":merged": "merged", ":into": "c-new"}),
    )
    assert call("POST", "unsubscribe", {"t": mint(customer_id="c-old")}, body=ONE_CLICK.encode())[0] == 200
    assert email_consent("c-new")["status"] == "opted_out"  # type: ignore[index]
    assert email_consent("c-old") is None


def test_a_merge_committed_during_the_opt_out_is_followed(stack: dict[Any, str]) -> None:
    make_customer("c-new")
    customers = CustomerRepository()
    customers.create(
        "c-old", [Identity(type="phone", value="+351910000008", verified=True)], "2026-01-01T00:00:00Z"
    )
    written: list[str] = []
    real = customers.set_consent

    def set_then_merge(customer_id: str, channel: str, consent: Consent) -> bool:
        written.append(customer_id)
        changed = real(customer_id, channel, consent)
        if customer_id == "c-old":  # the merge lands right after our write
            customers.table.client.update_item(
                TableName=customers.table.name,
                Key=serialise({"pk": customer_pk("c-old"), "sk": "PROFILE"}),
                UpdateExpression="SET #s = :merged, merged_into = :into",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=serialise({":merged": "merged", ":into": "c-new"}),
            )
        return changed

    customers.set_consent = set_then_merge  # type: ignore[method-assign]
    claims = links.verify(SECRET, mint(customer_id="c-old"), "unsubscribe")
    done = actions.unsubscribe(customers, claims, NOON)
    assert (done.result, done.customer_id) == ("opted_out", "c-new")
    assert written == ["c-old", "c-new"]
    assert email_consent("c-new")["status"] == "opted_out"  # type: ignore[index]


def test_unknown_customer_is_told_they_are_unsubscribed_and_nothing_is_created(stack: dict[Any, str]) -> None:
    status, _, page = call("POST", "unsubscribe", {"t": mint(customer_id="nobody")}, body=ONE_CLICK.encode())
    assert status == 200
    assert "You are unsubscribed" in page
    assert CustomerRepository().get_profile("nobody") is None


# --------------------------------------------------------------------------- #
# Bad links and bad requests
# --------------------------------------------------------------------------- #
def _flip_signature(token: str) -> str:
    body, signature = token.split(".")
    return f"{body}.{('A' if signature[0] != 'A' else 'B') + signature[1:]}"


def test_bad_links_are_clear_4xx_and_change_nothing(stack: dict[Any, str]) -> None:
    make_customer(email="opted_in")
    expired = links.sign(
        SECRET, "unsubscribe", customer_id="c1", channel="email", now=time.time() - 400 * 86400
    )
    cases: list[tuple[str, dict[str, str], int, str]] = [
        ("unsubscribe", {"t": _flip_signature(mint())}, 403, "signature is not valid"),
        (
            "unsubscribe",
            {"t": links.sign("other-secret", "unsubscribe", customer_id="c1", channel="email")},
            403,
            "signature",
        ),
        ("unsubscribe", {"t": mint("ces", conversation_id="conv-1")}, 403, "signature is not valid"),
        ("ces", {"t": mint(), "score": "5"}, 403, "signature is not valid"),
        ("unsubscribe", {"t": expired}, 410, "expired"),
        ("unsubscribe", {"t": "not-a-token"}, 400, "malformed"),
        ("unsubscribe", {}, 400, "no token"),
        ("delete-everything", {"t": mint()}, 404, "no such link"),
        ("unsubscribe", {"t": mint(channel="fax")}, 400, "no channel we know"),
    ]
    for method in ("GET", "POST"):
        for purpose, query, expected, reason in cases:
            body = ONE_CLICK.encode() if method == "POST" else None
            status, headers, page = call(method, purpose, query, body=body)
            assert (method, purpose, status) == (method, purpose, expected), page
            assert headers["Content-Type"].startswith("text/html")
            assert reason in page
            status, headers, text = call(
                method, purpose, query, body=body, headers={"accept": "application/json"}
            )
            assert status == expected
            assert reason in json.loads(text)["message"]
    assert email_consent()["status"] == "opted_in"  # type: ignore[index]
    assert kpi_events(stack) == []


def test_pages_escape_what_they_show(stack: dict[Any, str]) -> None:
    status, _, page = call("GET", "unsubscribe", {"t": "<script>alert(1)</script>"})
    assert status == 400
    assert "<script>" not in page
    status, _, page = call("GET", "csat", {"t": mint("csat", conversation_id="conv-1"), "score": "<b>"})
    assert status == 400
    assert "<b>" not in page
    assert "&lt;b&gt;" not in page  # the reason names the scale, not what was sent


BAD_BODIES = [
    (b'{"List-Unsubscribe":"One-Click"}', "application/json", 415, "Unsupported Media Type"),
    (b"x" * 5000, "application/x-www-form-urlencoded", 413, "Payload Too Large"),
    (b"List-Unsubscribe=Two-Clicks", "application/x-www-form-urlencoded", 400, "must be One-Click"),
    (b"\xff\xfe=\x00", "application/x-www-form-urlencoded", 400, "not UTF-8"),
    (
        b"List-Unsubscribe",
        "application/x-www-form-urlencoded",
        400,
        "not application/x-www-form-urlencoded",
    ),
    (b"--a\r\n\r\n--a--", "multipart/form-data", 400, "no boundary"),
    (b"garbage", "multipart/form-data; boundary=zz", 400, "multipart form"),
]


def test_bad_bodies_are_4xx(stack: dict[Any, str]) -> None:
    make_customer(email="opted_in")
    for body, content_type, status, reason in BAD_BODIES:
        got, _, text = call("POST", "unsubscribe", {"t": mint()}, body=body, content_type=content_type)
        assert got == status, (body, text)
        assert reason in text
    assert email_consent()["status"] == "opted_in"  # type: ignore[index]


# --------------------------------------------------------------------------- #
# Survey answers
# --------------------------------------------------------------------------- #
def test_get_survey_page_offers_the_scale_and_publishes_nothing(stack: dict[Any, str]) -> None:
    token = mint("csat", conversation_id="conv-1", channel="webchat")
    status, _, page = call("GET", "csat", {"t": token})
    assert status == 200
    assert [int(v) for v in re.findall(r'name="score" value="(\d)"', page)] == [1, 2, 3, 4, 5]
    status, _, page = call("GET", "csat", {"t": token, "score": "4"})
    assert status == 200
    assert "Your answer: 4" in page
    assert f'action="{html.escape("?" + urlencode({"t": token, "score": "4"}))}"' in page
    assert kpi_events(stack) == []


def test_post_score_publishes_feedback_submitted(stack: dict[Any, str]) -> None:
    token = mint("ces", customer_id="c9", conversation_id="conv-7", channel="email")
    before = datetime.now(UTC)
    status, _, page = call("POST", "ces", {"t": token, "score": "6"})
    assert status == 200
    assert "Thank you" in page
    [event] = kpi_events(stack)
    assert (event["source"], event["detail-type"]) == ("omni.links", "feedback.submitted")
    detail = event["detail"]
    assert {k: detail[k] for k in ("customer_id", "conversation_id", "survey", "score", "channel")} == {
        "customer_id": "c9",
        "conversation_id": "conv-7",
        "survey": "ces",
        "score": 6,
        "channel": "email",
    }
    answered = datetime.fromisoformat(detail["answered_at"].replace("Z", "+00:00"))
    assert before <= answered <= datetime.now(UTC)
    # The score may come from the page's buttons (a form field) instead of the query.
    status, _, text = call(
        "POST",
        "csat",
        {"t": mint("csat", conversation_id="conv-7")},
        body=b"score=5",
        headers={"accept": "application/json"},
    )
    assert (status, json.loads(text)["score"]) == (200, 5)
    assert [e["detail"]["survey"] for e in kpi_events(stack)] == ["csat"]


BAD_SCORES = [
    ("ces", {"score": "8"}, None, "between 1 and 7"),
    ("ces", {"score": "0"}, None, "between 1 and 7"),
    ("csat", {"score": "6"}, None, "between 1 and 5"),
    ("csat", {"score": "abc"}, None, "whole number"),
    ("csat", {"score": "-1"}, None, "whole number"),
    ("csat", {"score": "9" * 5000}, None, "whole number"),
    ("ces", {}, b"score=" + b"7" * 2000, "whole number"),
    ("csat", {}, None, "is required: a whole number"),
    ("csat", {"score": "2"}, b"score=3", "different scores"),
]


def test_bad_scores_are_400(stack: dict[Any, str]) -> None:
    for purpose, query, body, reason in BAD_SCORES:
        token = mint(purpose, conversation_id="conv-1")
        status, _, text = call("POST", purpose, {"t": token, **query}, body=body)
        assert status == 400, (purpose, query, text)
        assert reason in text
    assert kpi_events(stack) == []


def test_a_survey_link_without_a_conversation_is_refused(stack: dict[Any, str]) -> None:
    token = mint("ces")
    assert call("GET", "ces", {"t": token, "score": "3"})[0] == 400
    status, _, text = call("POST", "ces", {"t": token, "score": "3"})
    assert status == 400
    assert "does not name a conversation" in text
    assert kpi_events(stack) == []


def test_other_methods_and_paths_never_reach_a_5xx(stack: dict[Any, str]) -> None:
    for query in ({"t": ""}, {"t": "." * 1500}, {"t": "a.b", "score": "9" * 50}, {"t": mint(), "t2": "x"}):
        for purpose in ("unsubscribe", "ces", "csat", "", "UNSUBSCRIBE"):
            for method in ("GET", "POST"):
                status = call(method, purpose, query)[0]
                assert 200 <= status < 500, (method, purpose, query, status)


# --------------------------------------------------------------------------- #
# The form reader on hostile bodies (pure: no stack)
# --------------------------------------------------------------------------- #
_MULTIPART = b'--b\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--b--\r\n'


@settings(max_examples=200, deadline=None)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=200).map(str.encode),
        st.binary(max_size=40).map(lambda junk: _MULTIPART[: len(junk) % len(_MULTIPART)] + junk),
    ),
    content_type=st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=b",
            'multipart/form-data; boundary="b"',
            "multipart/form-data",
            'multipart/form-data; boundary="',
            "multipart/form-data; boundary=\u00e9",
        ]
    ),
)
def test_the_form_reader_raises_only_bad_form(body: bytes, content_type: str) -> None:
    try:
        fields = pages.parse_form(body, {"content-type": content_type})
    except pages.BadForm:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())


def test_the_form_reader_reads_both_one_click_encodings() -> None:
    expected = {"List-Unsubscribe": "One-Click"}
    assert (
        pages.parse_form(ONE_CLICK.encode(), {"Content-Type": "application/x-www-form-urlencoded"})
        == expected
    )
    assert pages.parse_form(_MULTIPART, {"content-type": "multipart/form-data; boundary=b"}) == expected
    assert pages.parse_form(b"", {}) == {}
