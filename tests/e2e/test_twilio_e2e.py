"""SMS and voice on the local runtime, driven over HTTP as Twilio and an agent would.

Requests carry Twilio's documented parameters, form-encoded, signed with Twilio's own
``RequestValidator`` over the URL the stack sees (``OMNI_PUBLIC_BASE_URL``, which the
runtime sets to its own address unless it is set already).
"""

from __future__ import annotations

import io
import json
import os
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import redirect_stdout
from typing import Any

import pytest
import requests
from twilio.request_validator import RequestValidator

from omni import cli
from omni.local.auth import issue_agent_token
from omni.local.runtime import LocalRuntime
from omni.send import twilio as sender
from shared.platform.http import PUBLIC_BASE_URL_ENV
from topology import TOPOLOGY

pytestmark = pytest.mark.e2e

TOKEN = TOPOLOGY.secret("twilio-auth-token").local_default
FORM = "application/x-www-form-urlencoded"


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(port=0, stage="twilio-e2e") as running:
        yield running


def signed_url(path: str) -> str:
    return os.environ[PUBLIC_BASE_URL_ENV].rstrip("/") + path


def post(
    runtime: LocalRuntime,
    path: str,
    params: list[tuple[str, str]],
    *,
    signature: str | None = "sign",
    url_for_signature: str | None = None,
) -> requests.Response:
    headers = {"Content-Type": FORM}
    if signature == "sign":
        signature = RequestValidator(TOKEN).compute_signature(
            url_for_signature or signed_url(path), dict(params)
        )
    if signature is not None:
        headers["X-Twilio-Signature"] = signature
    return requests.post(f"{runtime.base_url}{path}", data=params, headers=headers, timeout=10)


def agent_get(runtime: LocalRuntime, path: str, params: dict[str, str] | None = None) -> Any:
    token = issue_agent_token("agent-e2e", 600)
    response = requests.get(
        f"{runtime.base_url}{path}", params=params, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


def customer_of(runtime: LocalRuntime, phone: str) -> dict[str, Any] | None:
    found = agent_get(runtime, "/customers", {"identity": f"phone:{phone}"})["customers"]
    assert len(found) <= 1
    return found[0] if found else None


def conversations_of(runtime: LocalRuntime, customer_id: str) -> list[dict[str, Any]]:
    summaries = agent_get(runtime, f"/customers/{customer_id}/conversations")["conversations"]
    return [agent_get(runtime, f"/conversations/{s['conversation_id']}") for s in summaries]


def the_conversation(runtime: LocalRuntime, phone: str) -> dict[str, Any]:
    customer = customer_of(runtime, phone)
    assert customer is not None
    [conversation] = conversations_of(runtime, customer["customer_id"])
    return conversation


def inbound_texts(conversation: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["channel"], m["text"]) for m in conversation["messages"] if m["direction"] == "inbound"]


def enqueued_in(response: requests.Response) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(response.content)
    assert [child.tag for child in root] == ["Say", "Enqueue"]
    return root[1].text or ""


def test_sms_then_a_call_land_in_one_conversation_and_the_call_waits_in_the_sms_queue(
    runtime: LocalRuntime,
) -> None:
    phone = "+4915112340001"
    sms = post(
        runtime,
        sender.SMS_PATH,
        sender.sms_payload(sender.new_sid("SM"), phone, "Hi, my invoice charged me twice"),
    )
    assert sms.status_code == 200, sms.text
    assert sms.headers["Content-Type"].startswith("text/xml")
    assert ET.fromstring(sms.content).tag == "Response"
    runtime.wait_idle(timeout=30)
    before = the_conversation(runtime, phone)
    assert before["routing"]["queue"] == "billing"

    call_sid = sender.new_sid("CA")
    answer = post(runtime, sender.VOICE_PATH, sender.incoming_call_payload(call_sid, phone))
    assert enqueued_in(answer) == "billing"
    transcription = sender.transcription_payload(
        call_sid, phone, "I am calling about my invoice", sender.new_sid("TR"), sender.new_sid("RE")
    )
    assert post(runtime, sender.TRANSCRIPTION_PATH, transcription).status_code == 200
    ended = sender.call_status_payload(call_sid, phone, "completed", 42)
    assert post(runtime, sender.VOICE_STATUS_PATH, ended).status_code == 200
    runtime.wait_idle(timeout=30)

    customer = customer_of(runtime, phone)
    assert customer is not None
    assert [(i["type"], i["value"], i["verified"]) for i in customer["identities"]] == [
        ("phone", phone, True)
    ]
    conversation = the_conversation(runtime, phone)
    assert conversation["conversation_id"] == before["conversation_id"]
    # The agent who takes the call sees the earlier SMS first, then the call.
    messages = inbound_texts(conversation)
    assert messages[0] == ("sms", "Hi, my invoice charged me twice")
    assert sorted(messages[1:]) == [
        ("voice", "Call completed after 42 s"),
        ("voice", "I am calling about my invoice"),
        ("voice", "Incoming call"),
    ]
    assert set(conversation["channels"]) == {"sms", "voice"}
    recording = next(m for m in conversation["messages"] if m["text"] == "I am calling about my invoice")
    assert recording["attachments"][0]["type"] == "audio/wav"


def test_a_message_redelivered_or_delivered_twice_at_once_is_recorded_once(runtime: LocalRuntime) -> None:
    phone = "+4915112340002"
    again = sender.sms_payload(sender.new_sid("SM"), phone, "Where is my parcel?")
    assert [post(runtime, sender.SMS_PATH, again).status_code for _ in range(3)] == [200] * 3
    runtime.wait_idle(timeout=30)
    at_once = sender.sms_payload(sender.new_sid("SM"), phone, "Hello??")
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(post(runtime, sender.SMS_PATH, at_once).status_code))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200, 200]
    runtime.wait_idle(timeout=30)
    conversation = the_conversation(runtime, phone)
    assert inbound_texts(conversation) == [("sms", "Where is my parcel?"), ("sms", "Hello??")]


def test_stop_and_start_change_sms_consent_without_a_conversation(runtime: LocalRuntime) -> None:
    phone = "+4915112340003"
    assert (
        post(runtime, sender.SMS_PATH, sender.sms_payload(sender.new_sid("SM"), phone, "Stop")).status_code
        == 200
    )
    runtime.wait_idle(timeout=30)
    customer = customer_of(runtime, phone)
    assert customer is not None
    assert customer["consent"]["sms"]["status"] == "opted_out"
    assert conversations_of(runtime, customer["customer_id"]) == []
    assert (
        post(runtime, sender.SMS_PATH, sender.sms_payload(sender.new_sid("SM"), phone, "START")).status_code
        == 200
    )
    runtime.wait_idle(timeout=30)
    customer = customer_of(runtime, phone)
    assert customer is not None
    assert customer["consent"]["sms"]["status"] == "opted_in"
    assert conversations_of(runtime, customer["customer_id"]) == []


def test_delivery_status_callbacks_update_the_outbox(runtime: LocalRuntime) -> None:
    dynamodb = runtime.client("dynamodb")
    table = runtime.physical[("table", "outbox")]
    message_sid = sender.new_sid("SM")
    dynamodb.put_item(
        TableName=table,
        Item={
            "notification_id": {"S": "ntf-twilio-e2e"},
            "channel": {"S": "sms"},
            "status": {"S": "sent"},
            "status_rank": {"N": "1"},
            "status_history": {"M": {"sent": {"S": "2026-11-25T08:00:00.000000Z"}}},
            "provider_message_id": {"S": message_sid},
            "created_at": {"S": "2026-11-25T08:00:00.000000Z"},
        },
    )
    customer = "+4915112340004"
    delivered = sender.sms_status_payload(message_sid, "delivered", customer)
    assert post(runtime, sender.SMS_STATUS_PATH, delivered).status_code == 200
    item = dynamodb.get_item(TableName=table, Key={"notification_id": {"S": "ntf-twilio-e2e"}})["Item"]
    assert item["status"]["S"] == "delivered"
    failed = sender.sms_status_payload(message_sid, "undelivered", customer, error_code="30005")
    assert post(runtime, sender.SMS_STATUS_PATH, failed).status_code == 200
    item = dynamodb.get_item(TableName=table, Key={"notification_id": {"S": "ntf-twilio-e2e"}})["Item"]
    assert (item["status"]["S"], item["error_code"]["S"]) == ("failed", "30005")
    unknown = sender.sms_status_payload(sender.new_sid("SM"), "delivered", customer)
    assert post(runtime, sender.SMS_STATUS_PATH, unknown).status_code == 200


def test_bad_requests_get_clear_4xx_answers(runtime: LocalRuntime) -> None:
    phone = "+4915112340005"
    params = sender.sms_payload(sender.new_sid("SM"), phone, "hello")
    assert post(runtime, sender.SMS_PATH, params, signature=None).status_code == 401
    assert post(runtime, sender.SMS_PATH, params, signature="bm90IGEgc2lnbmF0dXJl").status_code == 401
    replayed = post(runtime, sender.SMS_PATH, params, url_for_signature=signed_url(sender.SMS_STATUS_PATH))
    assert replayed.status_code == 401
    assert "X-Twilio-Signature" in replayed.json()["message"]
    call = sender.incoming_call_payload(sender.new_sid("CA"), phone)
    assert post(runtime, sender.VOICE_PATH, call, signature=None).status_code == 401
    malformed = post(runtime, sender.SMS_PATH, [(k, v) for k, v in params if k != "From"])
    assert malformed.status_code == 400
    assert "From" in malformed.json()["message"]
    too_big = sender.sms_payload(sender.new_sid("SM"), phone, "x" * 70_000)
    assert post(runtime, sender.SMS_PATH, too_big).status_code == 413
    as_json = requests.post(
        f"{runtime.base_url}{sender.SMS_PATH}",
        data=json.dumps(dict(params)),
        headers={"Content-Type": "application/json", "X-Twilio-Signature": "x"},
        timeout=10,
    )
    assert as_json.status_code == 415
    runtime.wait_idle(timeout=30)
    assert customer_of(runtime, phone) is None  # nothing refused was recorded


def test_omni_send_acts_as_twilio(runtime: LocalRuntime) -> None:
    phone = "+4915112340006"

    def omni(*argv: str) -> tuple[int, str]:
        out = io.StringIO()
        with redirect_stdout(out):
            code = cli.main(["send", *argv, "--base-url", runtime.base_url])
        return code, out.getvalue()

    code, output = omni(
        "sms",
        "--from",
        phone,
        "My password does not work",
        "--media-url",
        "https://example.com/screenshot.png",
        "--media-type",
        "image/png",
    )
    assert code == 0, output
    assert output.startswith("MessageSid MM")
    runtime.wait_idle(timeout=30)
    code, output = omni(
        "voice",
        "--from",
        phone,
        "--transcription",
        "Please call me back",
        "--status",
        "completed",
        "--duration",
        "42",
    )
    assert code == 0, output
    assert "<Enqueue>technical</Enqueue>" in output
    runtime.wait_idle(timeout=30)
    conversation = the_conversation(runtime, phone)
    messages = inbound_texts(conversation)
    assert messages[0] == ("sms", "My password does not work")
    assert conversation["messages"][0]["attachments"][0]["url"] == "https://example.com/screenshot.png"
    assert sorted(messages[1:]) == [
        ("voice", "Call completed after 42 s"),
        ("voice", "Incoming call"),
        ("voice", "Please call me back"),
    ]
    code, output = omni("sms-status", "--sid", sender.new_sid("SM"), "--status", "delivered")
    assert code == 0, output
