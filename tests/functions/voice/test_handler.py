"""The voice function under moto: TwiML for incoming calls, status and transcription callbacks.

Fixtures follow Twilio's documented Voice request parameters (incoming call, status
callback, ``<Record transcribeCallback>``); signatures come from Twilio's validator.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import threading
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from botocore.exceptions import ClientError
from twilio.request_validator import RequestValidator

from functions.profile_merge.handler import handler as profile_merge
from functions.routing.router import NOT_ROUTED, Router
from functions.sms.handler import handler as sms_handler
from functions.voice import handler as voice
from shared.contracts.events import Identity, MessageReceived, MessageRecorded, format_timestamp, utc_now
from shared.contracts.models import Conversation, RoutingDecision
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository
from shared.repositories.dynamo import serialise, serialise_value
from shared.services.profiles.inbound import record_message
from tests.helpers import context, http_event, sqs_event
from topology import TOPOLOGY

TOKEN = TOPOLOGY.secret("twilio-auth-token").local_default
PUBLIC_BASE = "https://hooks.example.com"
CALLER = "+4915112345678"
OUR_NUMBER = "+14155550100"
ACCOUNT_SID = "AC1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c"


def sid(prefix: str, n: int) -> str:
    return f"{prefix}{n:032x}"


def call_params(call_sid: str, status: str, from_: str = CALLER) -> dict[str, str]:
    """The parameters Twilio sends with every request about a call."""
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": status,
        "Direction": "inbound",
        "From": from_,
        "FromCity": "",
        "FromCountry": "DE",
        "FromState": "",
        "FromZip": "",
        "To": OUR_NUMBER,
        "ToCity": "SAN FRANCISCO",
        "ToCountry": "US",
        "ToState": "CA",
        "ToZip": "94105",
    }


def status_params(call_sid: str, status: str, duration: int | None = None, **extra: str) -> dict[str, str]:
    params = {
        **call_params(call_sid, status),
        "CallbackSource": "call-progress-events",
        "SequenceNumber": "0",
        "Timestamp": "Wed, 25 Nov 2026 08:05:42 +0000",
        **extra,
    }
    if duration is not None:
        params["CallDuration"] = str(duration)
    return params


def transcription_params(call_sid: str, text: str, n: int = 1, status: str = "completed") -> dict[str, str]:
    account = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}"
    return {
        **call_params(call_sid, "completed"),
        "TranscriptionSid": sid("TR", n),
        "TranscriptionText": text,
        "TranscriptionStatus": status,
        "TranscriptionType": "fast",
        "TranscriptionUrl": f"{account}/Transcriptions/{sid('TR', n)}",
        "RecordingSid": sid("RE", n),
        "RecordingUrl": f"{account}/Recordings/{sid('RE', n)}",
    }


def event(
    path: str,
    params: dict[str, str],
    *,
    signature: str | None = "sign",
    signed_url: str | None = None,
    token: str = TOKEN,
    content_type: str = "application/x-www-form-urlencoded",
) -> dict[str, Any]:
    body = urlencode(params).encode()
    headers = {"content-type": content_type}
    if signature == "sign":
        signature = RequestValidator(token).compute_signature(signed_url or PUBLIC_BASE + path, params)
    if signature is not None:
        headers["x-twilio-signature"] = signature
    built = http_event("POST", path, body="", headers=headers)
    built["body"] = base64.b64encode(body).decode()
    built["isBase64Encoded"] = True
    return built


def call(built: dict[str, Any], function: Any = None) -> tuple[int, str, str]:
    response = (function or voice.handler)(built, context("voice"))
    return response["statusCode"], response["headers"].get("Content-Type", ""), response.get("body", "")


def enqueued(twiml: str) -> tuple[str, str]:
    """``(greeting, queue)`` of a TwiML answer, checking its structure."""
    root = ET.fromstring(twiml.encode())
    assert root.tag == "Response"
    assert [child.tag for child in root] == ["Say", "Enqueue"]
    return root[0].text or "", root[1].text or ""


@pytest.fixture
def twilio_stack(stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch) -> dict[Any, str]:
    monkeypatch.setenv("OMNI_PUBLIC_BASE_URL", PUBLIC_BASE)
    return stack


def drain(stack: dict[Any, str], queue: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    url = stack[("queue", queue)]
    found: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


def consume(stack: dict[Any, str], queue: str, function: Any, name: str) -> int:
    envelopes = drain(stack, queue)
    if envelopes:
        result = function(sqs_event([json.dumps(e) for e in envelopes]), context(name))
        assert result["batchItemFailures"] == []
    return len(envelopes)


def route_to(conversation_id: str, queue: str) -> None:
    """Record a routing decision on the conversation (META ``routing``) as routing does.

    The voice function reads only the queue; the whole pipeline with the real routing
    function runs in tests/e2e/test_twilio_e2e.py.
    """
    decision = RoutingDecision(
        queue=queue,
        intent=queue,
        reason="test",
        automated=False,
        message_id=f"sms#{sid('SM', 1)}",
        decided_at="2026-11-25T08:00:00.000000Z",
    )
    conversations = ConversationRepository()
    conversations.table.client.update_item(
        TableName=conversations.table.name,
        Key=serialise({"pk": f"CONV#{conversation_id}", "sk": "META"}),
        UpdateExpression="SET #routing = :routing",
        ExpressionAttributeNames={"#routing": "routing"},
        ExpressionAttributeValues={":routing": serialise_value(decision.model_dump())},
    )


def conversation_of(identity: Identity) -> Conversation:
    customers = CustomerRepository()
    owner = customers.owner_of(identity)
    assert owner
    conversations = ConversationRepository(customers=customers).list_for_customer(owner)
    assert len(conversations) == 1
    found = ConversationRepository(customers=customers).get(conversations[0].conversation_id)
    assert found
    return found


PHONE = Identity(type="phone", value=CALLER, verified=True)


# --------------------------------------------------------------------------- #
# The incoming call
# --------------------------------------------------------------------------- #
def test_an_unknown_caller_is_greeted_and_enqueued_in_the_general_queue(twilio_stack: dict[Any, str]) -> None:
    status, content_type, twiml = call(event("/webhooks/voice", call_params(sid("CA", 1), "ringing")))
    assert (status, content_type) == (200, "text/xml")
    greeting, queue = enqueued(twiml)
    assert queue == "general"
    assert greeting.startswith("Thank you for calling")
    [envelope] = drain(twilio_stack, "profile-merge")
    assert envelope["source"] == "omni.voice"
    detail = envelope["detail"]
    assert (detail["kind"], detail["channel"], detail["provider"]) == ("call", "voice", "twilio")
    assert detail["provider_message_id"] == sid("CA", 1)
    assert detail["sender"] == {"type": "phone", "value": CALLER, "verified": True}
    assert detail["recipient"] == OUR_NUMBER
    assert detail["metadata"]["call_status"] == "ringing"
    assert detail["metadata"]["queue"] == "general"


def test_sms_then_a_call_from_that_number_is_one_customer_one_conversation_in_the_sms_queue(
    twilio_stack: dict[Any, str],
) -> None:
    sms = {
        "MessageSid": sid("SM", 1),
        "SmsSid": sid("SM", 1),
        "AccountSid": ACCOUNT_SID,
        "From": CALLER,
        "To": OUR_NUMBER,
        "Body": "My invoice charged me twice",
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
    assert call(event("/webhooks/sms", sms), sms_handler)[0] == 200
    consume(twilio_stack, "profile-merge", profile_merge, "profile-merge")
    routed = conversation_of(PHONE)
    route_to(routed.conversation_id, "billing")

    status, _, twiml = call(event("/webhooks/voice", call_params(sid("CA", 2), "ringing")))
    assert status == 200
    greeting, queue = enqueued(twiml)
    assert queue == "billing"  # the queue routing chose for the SMS
    assert "billing team" in greeting
    consume(twilio_stack, "profile-merge", profile_merge, "profile-merge")

    conversation = conversation_of(PHONE)
    assert conversation.conversation_id == routed.conversation_id
    inbound = [(m.channel, m.text) for m in conversation.messages if m.direction == "inbound"]
    assert inbound == [("sms", "My invoice charged me twice"), ("voice", "Incoming call")]
    assert conversation.channels == ["sms", "voice"]


def test_a_withheld_number_is_answered_and_its_callbacks_stay_together(twilio_stack: dict[Any, str]) -> None:
    call_sid = sid("CA", 3)
    status, _, twiml = call(event("/webhooks/voice", call_params(call_sid, "ringing", from_="Anonymous")))
    assert status == 200
    assert enqueued(twiml)[1] == "general"
    params = {**status_params(call_sid, "completed", 30), "From": "Anonymous"}
    assert call(event("/webhooks/voice/status", params))[0] == 200
    senders = {json.dumps(e["detail"]["sender"]) for e in drain(twilio_stack, "profile-merge")}
    assert senders == {json.dumps({"type": "external", "value": f"twilio-call:{call_sid}", "verified": True})}


def test_a_failing_look_up_still_answers_the_caller(
    twilio_stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(identity: Identity) -> str | None:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "GetItem")

    monkeypatch.setattr(voice.customers, "owner_of", broken)
    status, _, twiml = call(event("/webhooks/voice", call_params(sid("CA", 4), "ringing")))
    assert status == 200
    assert enqueued(twiml)[1] == "general"


class _RefusingBus:
    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "FailedEntryCount": len(Entries),
            "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "x"} for _ in Entries],
        }


def test_when_the_bus_refuses_the_caller_is_still_enqueued_but_callbacks_get_503(
    twilio_stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(voice.publisher, "_client", _RefusingBus())
    monkeypatch.setattr(voice.publisher, "backoff_s", 0)
    status, _, twiml = call(event("/webhooks/voice", call_params(sid("CA", 5), "ringing")))
    assert status == 200
    assert enqueued(twiml)[1] == "general"
    assert call(event("/webhooks/voice/status", status_params(sid("CA", 5), "completed", 3)))[0] == 503
    params = transcription_params(sid("CA", 5), "hello")
    assert call(event("/webhooks/voice/transcription", params))[0] == 503


# --------------------------------------------------------------------------- #
# Status and transcription callbacks
# --------------------------------------------------------------------------- #
def test_the_end_of_a_call_is_recorded_with_its_duration_at_twilios_time(
    twilio_stack: dict[Any, str],
) -> None:
    status, content_type, body = call(
        event("/webhooks/voice/status", status_params(sid("CA", 6), "completed", 42))
    )
    assert (status, content_type) == (200, "text/xml")
    assert ET.fromstring(body.encode()).tag == "Response"
    [envelope] = drain(twilio_stack, "profile-merge")
    detail = envelope["detail"]
    assert detail["kind"] == "call_status"
    assert detail["provider_message_id"] == f"{sid('CA', 6)}:status:completed"
    assert detail["text"] == "Call completed after 42 s"
    assert detail["sent_at"] == "2026-11-25T08:05:42.999999Z"  # Twilio's second, at its end
    assert detail["metadata"] == {"call_sid": sid("CA", 6), "call_status": "completed", "duration_s": "42"}


def test_unanswered_and_progress_statuses(twilio_stack: dict[Any, str]) -> None:
    assert call(event("/webhooks/voice/status", status_params(sid("CA", 7), "in-progress")))[0] == 200
    assert call(event("/webhooks/voice/status", status_params(sid("CA", 7), "ringing")))[0] == 200
    assert drain(twilio_stack, "profile-merge") == []  # progress events are not messages
    assert call(event("/webhooks/voice/status", status_params(sid("CA", 8), "no-answer")))[0] == 200
    [envelope] = drain(twilio_stack, "profile-merge")
    assert envelope["detail"]["text"] == "Call not answered"


def test_a_transcription_becomes_a_message_with_its_recording(twilio_stack: dict[Any, str]) -> None:
    params = transcription_params(sid("CA", 9), "Hi, I was charged twice for my November invoice.")
    status, content_type, _ = call(event("/webhooks/voice/transcription", params))
    assert (status, content_type) == (200, "text/xml")
    [envelope] = drain(twilio_stack, "profile-merge")
    detail = envelope["detail"]
    assert detail["kind"] == "transcription"
    assert detail["provider_message_id"] == sid("TR", 1)
    assert detail["text"] == "Hi, I was charged twice for my November invoice."
    assert detail["attachments"] == [
        {"type": "audio/wav", "url": params["RecordingUrl"], "size": None, "name": sid("RE", 1)}
    ]
    assert detail["metadata"]["call_sid"] == sid("CA", 9)


def test_a_failed_transcription_still_records_the_recording(twilio_stack: dict[Any, str]) -> None:
    params = transcription_params(sid("CA", 10), "", n=2, status="failed")
    assert call(event("/webhooks/voice/transcription", params))[0] == 200
    [envelope] = drain(twilio_stack, "profile-merge")
    assert envelope["detail"]["text"] == "(The recording could not be transcribed.)"
    assert envelope["detail"]["attachments"][0]["url"] == params["RecordingUrl"]


def test_a_call_its_transcription_and_its_end_are_one_conversation_each_recorded_once(
    twilio_stack: dict[Any, str],
) -> None:
    call_sid = sid("CA", 11)
    requests = [
        event("/webhooks/voice", call_params(call_sid, "ringing")),
        event("/webhooks/voice/transcription", transcription_params(call_sid, "Please call me back", n=3)),
        event("/webhooks/voice/status", status_params(call_sid, "completed", 65)),
    ]
    # Twilio retries: each request arrives three times; the copies are then recorded at
    # the same moment by concurrent profile-merge invocations.
    assert [call(r)[0] for r in requests for _ in range(3)] == [200] * 9
    envelopes = drain(twilio_stack, "profile-merge")
    assert len(envelopes) == 9
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
    conversation = conversation_of(PHONE)
    assert sorted(m.text for m in conversation.messages if m.direction == "inbound") == [
        "Call completed after 65 s",
        "Incoming call",
        "Please call me back",
    ]


# --------------------------------------------------------------------------- #
# Refusals
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/webhooks/voice", call_params(sid("CA", 12), "ringing")),
        ("/webhooks/voice/status", status_params(sid("CA", 12), "completed", 5)),
        ("/webhooks/voice/transcription", transcription_params(sid("CA", 12), "hi")),
    ],
)
def test_every_route_checks_the_signature(
    twilio_stack: dict[Any, str], path: str, params: dict[str, str]
) -> None:
    refused = [
        event(path, params, signature=None),
        event(path, params, token="not-the-auth-token"),
        event(path, params, signed_url=PUBLIC_BASE + "/webhooks/voice/other"),
        event(
            path,
            params,
            signature=RequestValidator(TOKEN).compute_signature(
                PUBLIC_BASE + path, {**params, "From": "+15555550123"}
            ),
        ),
    ]
    for built in refused:
        status, _, body = call(built)
        assert status == 401, body
    assert drain(twilio_stack, "profile-merge") == []


@pytest.mark.parametrize(
    ("path", "params", "reason"),
    [
        (
            "/webhooks/voice",
            {k: v for k, v in call_params(sid("CA", 13), "ringing").items() if k != "CallSid"},
            "CallSid",
        ),
        ("/webhooks/voice", call_params("CA-short", "ringing"), "CallSid"),
        (
            "/webhooks/voice/status",
            status_params(sid("CA", 13), "completed", Timestamp="yesterday"),
            "Timestamp",
        ),
        (
            "/webhooks/voice/status",
            {**status_params(sid("CA", 13), "completed"), "CallDuration": "-3"},
            "CallDuration",
        ),
        (
            "/webhooks/voice/transcription",
            {**transcription_params(sid("CA", 13), "x"), "TranscriptionSid": ""},
            "TranscriptionSid",
        ),
    ],
)
def test_malformed_callbacks_get_400(
    twilio_stack: dict[Any, str], path: str, params: dict[str, str], reason: str
) -> None:
    status, _, body = call(event(path, params))
    assert status == 400, body
    assert reason in json.loads(body)["message"]


def test_size_and_content_type_limits(twilio_stack: dict[Any, str]) -> None:
    params = call_params(sid("CA", 14), "ringing")
    assert call(event("/webhooks/voice", params, content_type="application/json"))[0] == 415
    big = {**params, "CallerName": "x" * (voice.MAX_BODY_BYTES + 1)}
    assert call(event("/webhooks/voice", big))[0] == 413


def test_routing_ignores_the_call_itself_and_keeps_the_conversations_queue() -> None:
    """A call starting or ending is not something the customer said: it changes no routing."""
    assert {"call", "call_status"} <= set(NOT_ROUTED)
    event = MessageRecorded(
        kind="call",
        customer_id="cus_x",
        conversation_id="conv_x",
        message_id="voice#CA1",
        channel="voice",
        text="Incoming call",
        sent_at=_dt.datetime.now(_dt.UTC),
        reply_to=Identity(type="phone", value="+4915112345678", verified=True),
    )

    class NoConversations:
        def get_meta(self, conversation_id: str) -> None:
            raise AssertionError("a call must not be routed")

    router = Router.__new__(Router)
    router.conversations = NoConversations()  # type: ignore[assignment]
    assert router.route(event, "2026-11-25T08:00:00.000000Z") == []
