"""The SMS function under moto: Twilio's documented webhook payloads, signed by Twilio's own validator.

Fixtures follow Twilio's "request to your incoming message webhook URL" and message
status callback parameters. Duplicate deliveries are checked through the whole
pipeline: the webhook, the bus rule, and profile merge.
"""

from __future__ import annotations

import base64
import json
import threading
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from twilio.request_validator import RequestValidator

from functions.profile_merge.handler import handler as profile_merge
from functions.sms import handler as sms
from shared.contracts.events import Identity, MessageReceived, format_timestamp, utc_now
from shared.contracts.models import Conversation
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository
from shared.repositories.outbox import OutboxRepository
from shared.services.profiles.inbound import record_message
from tests.helpers import context, http_event, sqs_event
from topology import TOPOLOGY

TOKEN = TOPOLOGY.secret("twilio-auth-token").local_default
PUBLIC_BASE = "https://hooks.example.com"
FORM = "application/x-www-form-urlencoded"
CUSTOMER = "+4915112345678"
ACCOUNT_SID = "AC1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c"
OUR_NUMBER = "+14155550100"


def inbound(message_sid: str, body: str, from_: str = CUSTOMER, **extra: str) -> dict[str, str]:
    """An incoming-message webhook, with the parameters Twilio documents for it."""
    return {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": message_sid,
        "NumMedia": "0",
        "ToCity": "SAN FRANCISCO",
        "FromZip": "",
        "SmsSid": message_sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": body,
        "FromCountry": "DE",
        "To": OUR_NUMBER,
        "ToZip": "94105",
        "NumSegments": "1",
        "MessageSid": message_sid,
        "AccountSid": ACCOUNT_SID,
        "From": from_,
        "ApiVersion": "2010-04-01",
        **extra,
    }


def status_callback(message_sid: str, status: str, error_code: str | None = None) -> dict[str, str]:
    params = {
        "SmsSid": message_sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": CUSTOMER,
        "MessageSid": message_sid,
        "AccountSid": ACCOUNT_SID,
        "From": OUR_NUMBER,
        "ApiVersion": "2010-04-01",
    }
    if error_code:
        params["ErrorCode"] = error_code
    return params


def sid(n: int, prefix: str = "SM") -> str:
    return f"{prefix}{n:032x}"


def sign(url: str, params: dict[str, str], token: str = TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


def event(
    path: str,
    params: dict[str, str] | None = None,
    *,
    signature: str | None = "sign",
    signed_url: str | None = None,
    raw: bytes | None = None,
    content_type: str = FORM,
    encoded: bool = True,
) -> dict[str, Any]:
    """The API Gateway event for Twilio's POST; bodies arrive base64-encoded, as for any form."""
    body = raw if raw is not None else urlencode(params or {}).encode()
    headers = {"content-type": content_type, "i-twilio-idempotency-token": "a1b2c3"}
    if signature == "sign":
        signature = sign(signed_url or PUBLIC_BASE + path, params or {})
    if signature is not None:
        headers["x-twilio-signature"] = signature
    built = http_event("POST", path, body=body.decode("latin-1"), headers=headers)
    if encoded:
        built["body"] = base64.b64encode(body).decode()
        built["isBase64Encoded"] = True
    return built


def call(built: dict[str, Any]) -> tuple[int, str, str]:
    response = sms.handler(built, context("sms"))
    return response["statusCode"], response["headers"].get("Content-Type", ""), response.get("body", "")


@pytest.fixture
def twilio_stack(stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch) -> dict[Any, str]:
    monkeypatch.setenv("OMNI_PUBLIC_BASE_URL", PUBLIC_BASE)
    return stack


def received(stack: dict[Any, str]) -> list[dict[str, Any]]:
    """Every event the bus rule put on the profile-merge queue (consumed)."""
    sqs = boto3.client("sqs")
    url = stack[("queue", "profile-merge")]
    found: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            return found
        for message in batch:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def merge(envelopes: list[dict[str, Any]]) -> None:
    """Run the profile-merge function on the events, in one batch."""
    result = profile_merge(sqs_event([json.dumps(e) for e in envelopes]), context("profile-merge"))
    assert result["batchItemFailures"] == []


def merge_concurrently(envelopes: list[dict[str, Any]]) -> None:
    """Record each event at the same moment, as concurrent profile-merge containers would.

    (The handler module itself is one container: its Powertools objects are not shared
    between concurrent invocations in Lambda, so threads go through the service layer.)
    """
    customers = CustomerRepository()
    conversations = ConversationRepository(customers=customers)
    failures: list[BaseException] = []
    barrier = threading.Barrier(len(envelopes))

    def run(envelope: dict[str, Any]) -> None:
        message = MessageReceived.model_validate(envelope["detail"])
        barrier.wait()
        try:
            record_message(customers, conversations, message, format_timestamp(utc_now()))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in envelopes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def conversation_of(phone: str) -> Conversation:
    customers = CustomerRepository()
    owner = customers.owner_of(Identity(type="phone", value=phone, verified=True))
    assert owner
    profile = customers.get_profile(owner)
    assert profile
    assert profile.get("open_conversation_id")
    found = ConversationRepository(customers=customers).get(profile["open_conversation_id"])
    assert found
    return found


# --------------------------------------------------------------------------- #
# Inbound messages
# --------------------------------------------------------------------------- #
def test_inbound_sms_answers_empty_twiml_and_publishes_the_canonical_message(
    twilio_stack: dict[Any, str],
) -> None:
    params = inbound(sid(1), "Hi, my invoice is wrong")
    status, content_type, body = call(event("/webhooks/sms", params))
    assert (status, content_type) == (200, "text/xml")
    assert body.endswith("<Response/>")
    [envelope] = received(twilio_stack)
    assert (envelope["source"], envelope["detail-type"]) == ("omni.sms", "message.received")
    detail = envelope["detail"]
    assert detail["kind"] == "message"
    assert (detail["channel"], detail["provider"], detail["provider_message_id"]) == ("sms", "twilio", sid(1))
    assert detail["sender"] == {"type": "phone", "value": CUSTOMER, "verified": True}
    assert detail["recipient"] == OUR_NUMBER
    assert detail["text"] == "Hi, my invoice is wrong"
    assert detail["attachments"] == []
    assert detail["metadata"]["account_sid"] == ACCOUNT_SID
    assert detail["sent_at"].endswith("Z")


def test_a_national_number_is_normalised(
    twilio_stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNI_DEFAULT_PHONE_REGION", "DE")
    call(event("/webhooks/sms", inbound(sid(2), "hallo", from_="0151 12345678")))
    [envelope] = received(twilio_stack)
    assert envelope["detail"]["sender"]["value"] == CUSTOMER


def test_mms_media_become_attachments(twilio_stack: dict[Any, str]) -> None:
    media = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid(3, 'MM')}/Media"
    params = inbound(
        sid(3, "MM"),
        "the broken part",
        NumMedia="2",
        MediaContentType0="image/jpeg",
        MediaUrl0=f"{media}/ME{1:032x}",
        MediaContentType1="application/pdf",
        MediaUrl1=f"{media}/ME{2:032x}",
    )
    assert call(event("/webhooks/sms", params))[0] == 200
    [envelope] = received(twilio_stack)
    assert envelope["detail"]["attachments"] == [
        {"type": "image/jpeg", "url": f"{media}/ME{1:032x}", "size": None, "name": None},
        {"type": "application/pdf", "url": f"{media}/ME{2:032x}", "size": None, "name": None},
    ]


def test_a_plain_text_body_is_accepted_too(twilio_stack: dict[Any, str]) -> None:
    assert call(event("/webhooks/sms", inbound(sid(4), "hi"), encoded=False))[0] == 200


def test_without_a_public_base_url_the_api_domain_is_signed(
    twilio_stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OMNI_PUBLIC_BASE_URL")
    params = inbound(sid(5), "hi")
    assert call(event("/webhooks/sms", params, signed_url="https://api.example.com/webhooks/sms"))[0] == 200
    assert call(event("/webhooks/sms", params))[0] == 401  # signed for hooks.example.com


# --------------------------------------------------------------------------- #
# Refusals
# --------------------------------------------------------------------------- #
def test_missing_forged_and_misdirected_signatures_get_401(twilio_stack: dict[Any, str]) -> None:
    params = inbound(sid(6), "hi")
    refusals = [
        event("/webhooks/sms", params, signature=None),
        event("/webhooks/sms", params, signature=""),
        event("/webhooks/sms", params, signature=sign(PUBLIC_BASE + "/webhooks/sms", params, "wrong-token")),
        # A valid signature of another request: replayed to another URL, or with other parameters.
        event("/webhooks/sms", params, signed_url=PUBLIC_BASE + "/webhooks/sms/status"),
        event("/webhooks/sms", params, signed_url="https://elsewhere.example.com/webhooks/sms"),
        event(
            "/webhooks/sms",
            params,
            signature=sign(PUBLIC_BASE + "/webhooks/sms", {**params, "Body": "something else"}),
        ),
    ]
    for built in refusals:
        status, content_type, body = call(built)
        assert (status, content_type) == (401, "application/json"), body
        assert "X-Twilio-Signature" in json.loads(body)["message"]
    assert received(twilio_stack) == []


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({k: v for k, v in inbound(sid(7), "hi").items() if k != "MessageSid"}, "MessageSid"),
        (inbound("SM-not-a-sid", "hi"), "MessageSid"),
        (inbound(sid(7), "hi", from_="not a phone"), "From"),
        (
            inbound(
                sid(7), "hi", NumMedia="2", MediaUrl0="https://x.example/a", MediaContentType0="image/png"
            ),
            "MediaUrl1",
        ),
        (inbound(sid(7), "hi", NumMedia="eleven"), "NumMedia"),
        ({}, "MessageSid"),
    ],
)
def test_malformed_bodies_get_400_with_the_reason(
    twilio_stack: dict[Any, str], params: dict[str, str], reason: str
) -> None:
    status, _, body = call(event("/webhooks/sms", params))
    assert status == 400, body
    assert reason in json.loads(body)["message"]


def test_undecodable_form_gets_400(twilio_stack: dict[Any, str]) -> None:
    status, _, body = call(event("/webhooks/sms", raw=b"Body=%FF%FE&From", signature="whatever"))
    assert status == 400
    assert "form" in json.loads(body)["message"] or "UTF-8" in json.loads(body)["message"]


def test_size_and_content_type_limits(twilio_stack: dict[Any, str]) -> None:
    big = inbound(sid(8), "x" * (sms.MAX_BODY_BYTES + 1))
    assert call(event("/webhooks/sms", big))[0] == 413
    json_body = json.dumps(inbound(sid(8), "hi")).encode()
    assert call(event("/webhooks/sms", raw=json_body, content_type="application/json"))[0] == 415
    assert call(event("/webhooks/sms", raw=b"hi", content_type="text/plain"))[0] == 415


def test_bus_failure_gets_503_so_twilio_may_retry(
    twilio_stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Refusing:
        def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
            return {
                "FailedEntryCount": len(Entries),
                "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "x"} for _ in Entries],
            }

    monkeypatch.setattr(sms.publisher, "_client", Refusing())
    monkeypatch.setattr(sms.publisher, "backoff_s", 0)
    status, _, body = call(event("/webhooks/sms", inbound(sid(9), "hi")))
    assert status == 503, body


# --------------------------------------------------------------------------- #
# Redelivery, through the whole pipeline
# --------------------------------------------------------------------------- #
def test_the_same_message_delivered_three_times_is_recorded_once(twilio_stack: dict[Any, str]) -> None:
    params = inbound(sid(10), "Where is my refund?")
    for _ in range(3):
        assert call(event("/webhooks/sms", params))[0] == 200
    envelopes = received(twilio_stack)
    assert len(envelopes) == 3  # each attempt is published; downstream records it once
    merge(envelopes)
    merge(envelopes)  # and SQS may hand them over again
    conversation = conversation_of(CUSTOMER)
    assert [(m.channel, m.text) for m in conversation.messages] == [("sms", "Where is my refund?")]
    assert conversation.message_count == 1


def test_the_same_message_delivered_twice_at_the_same_moment_is_recorded_once(
    twilio_stack: dict[Any, str],
) -> None:
    params = inbound(sid(11), "Is anyone there?")
    # The webhook keeps no state: two deliveries publish two identical events, which
    # concurrent profile-merge invocations then record at the same moment.
    assert [call(event("/webhooks/sms", params))[0] for _ in range(2)] == [200, 200]
    envelopes = received(twilio_stack)
    assert len(envelopes) == 2
    merge_concurrently(envelopes)
    conversation = conversation_of(CUSTOMER)
    assert [m.text for m in conversation.messages] == ["Is anyone there?"]
    customers = CustomerRepository()
    owner = customers.owner_of(Identity(type="phone", value=CUSTOMER, verified=True))
    assert owner
    assert len(ConversationRepository(customers=customers).list_for_customer(owner)) == 1


# --------------------------------------------------------------------------- #
# Consent keywords
# --------------------------------------------------------------------------- #
def test_stop_and_start_change_consent_instead_of_opening_a_conversation(
    twilio_stack: dict[Any, str],
) -> None:
    assert call(event("/webhooks/sms", inbound(sid(20), " stop ")))[0] == 200
    [stop] = received(twilio_stack)
    assert (stop["detail"]["kind"], stop["detail"]["keyword"]) == ("consent", "opt_out")
    merge([stop])
    customers = CustomerRepository()
    owner = customers.owner_of(Identity(type="phone", value=CUSTOMER, verified=True))
    assert owner
    customer = customers.get(owner)
    assert customer
    assert customer.consent["sms"].status == "opted_out"
    assert customer.open_conversation_id is None

    assert call(event("/webhooks/sms", inbound(sid(21), "START")))[0] == 200
    [start] = received(twilio_stack)
    assert start["detail"]["keyword"] == "opt_in"
    merge([start])
    customer = customers.get(owner)
    assert customer
    assert customer.consent["sms"].status == "opted_in"
    assert customer.open_conversation_id is None


def test_help_and_advanced_opt_out_keywords(twilio_stack: dict[Any, str]) -> None:
    call(event("/webhooks/sms", inbound(sid(22), "Help")))
    call(event("/webhooks/sms", inbound(sid(23), "ALTO", OptOutType="STOP")))
    call(event("/webhooks/sms", inbound(sid(24), "stop the double charge please")))
    details = sorted((e["detail"] for e in received(twilio_stack)), key=lambda d: d["provider_message_id"])
    assert [(d["kind"], d["keyword"]) for d in details] == [
        ("consent", "help"),
        ("consent", "opt_out"),
        ("message", None),
    ]


# --------------------------------------------------------------------------- #
# Delivery status callbacks
# --------------------------------------------------------------------------- #
def _sent_sms(notification_id: str, message_sid: str) -> OutboxRepository:
    outbox = OutboxRepository()
    outbox.start(
        {
            "notification_id": notification_id,
            "customer_id": "cus_1",
            "channel": "sms",
            "recipient": f"phone:{CUSTOMER}",
            "text": "Your refund is on its way",
            "created_at": "2026-11-25T08:00:00.000000Z",
        }
    )
    outbox.mark(notification_id, "sent", "2026-11-25T08:00:01.000000Z", provider_message_id=message_sid)
    return outbox


def test_status_callbacks_update_our_outbound_message(twilio_stack: dict[Any, str]) -> None:
    outbox = _sent_sms("ntf-1", sid(30))
    status, content_type, _ = call(event("/webhooks/sms/status", status_callback(sid(30), "delivered")))
    assert (status, content_type) == (200, "text/xml")
    item = outbox.get("ntf-1")
    assert item
    assert item["status"] == "delivered"
    # Out of order: a late "sent" does not undo "delivered".
    assert call(event("/webhooks/sms/status", status_callback(sid(30), "sent")))[0] == 200
    item = outbox.get("ntf-1")
    assert item
    assert item["status"] == "delivered"
    assert received(twilio_stack) == []  # statuses are not inbound messages


def test_undelivered_keeps_twilios_error_code(twilio_stack: dict[Any, str]) -> None:
    outbox = _sent_sms("ntf-2", sid(31))
    assert call(event("/webhooks/sms/status", status_callback(sid(31), "undelivered", "30003")))[0] == 200
    item = outbox.get("ntf-2")
    assert item
    assert (item["status"], item["error_code"]) == ("failed", "30003")


def test_status_of_an_unknown_message_or_an_unknown_status_is_still_200(twilio_stack: dict[Any, str]) -> None:
    outbox = _sent_sms("ntf-3", sid(32))
    assert call(event("/webhooks/sms/status", status_callback(sid(99), "delivered")))[0] == 200
    assert call(event("/webhooks/sms/status", status_callback(sid(32), "something-new")))[0] == 200
    item = outbox.get("ntf-3")
    assert item
    assert item["status"] == "sent"


def test_status_callbacks_are_authenticated_and_validated(twilio_stack: dict[Any, str]) -> None:
    outbox = _sent_sms("ntf-4", sid(33))
    params = status_callback(sid(33), "failed", "30007")
    assert call(event("/webhooks/sms/status", params, signature=None))[0] == 401
    assert call(event("/webhooks/sms/status", params, signed_url=PUBLIC_BASE + "/webhooks/sms"))[0] == 401
    status, _, body = call(event("/webhooks/sms/status", {**params, "MessageStatus": ""}))
    assert status == 400
    assert "MessageStatus" in json.loads(body)["message"]
    item = outbox.get("ntf-4")
    assert item
    assert item["status"] == "sent"
