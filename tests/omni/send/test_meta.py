"""``omni send`` for Meta: the payloads it builds are read back as the channel expects, signed."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from omni.send import HttpResult
from omni.send import meta as sender
from shared.channels import meta
from topology import TOPOLOGY

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "text", "expected_text", "attachment_type"),
    [
        ("text", "hello", "hello", None),
        ("image", "a photo", "a photo", "image/jpeg"),
        ("audio", "", "[audio]", "audio/ogg; codecs=opus"),
        ("document", "", "[document]", "application/pdf"),
        # Locations and chosen replies are kept as structured attachments too.
        ("location", "Shop", "[location 52.520008,13.404954] Shop", "location"),
        ("interactive", "Billing", "Billing", "reply"),
        ("button", "Talk to an agent", "Talk to an agent", "reply"),
    ],
)
def test_whatsapp_payloads_read_back(
    kind: str, text: str, expected_text: str, attachment_type: str | None
) -> None:
    payload = sender.whatsapp_message(
        "4915112345678", text, kind=kind, name="Ana", message_id="wamid.X1", timestamp=1795600800
    )
    [message] = meta.parse_whatsapp(json.dumps(payload).encode(), NOW).messages
    assert message.provider_message_id == "wamid.X1"
    assert message.sender.value == "+4915112345678"
    assert message.display_name == "Ana"
    assert message.text == expected_text
    assert message.sent_at == datetime.fromtimestamp(1795600800, UTC)
    assert [a.type for a in message.attachments] == ([attachment_type] if attachment_type else [])


def test_whatsapp_status_payload_reads_back() -> None:
    payload = sender.whatsapp_status("wamid.OUT", "failed", recipient="4915112345678", error_code=131047)
    [status] = meta.parse_whatsapp(json.dumps(payload).encode(), NOW).statuses
    assert (status.provider_message_id, status.status, status.error_code) == ("wamid.OUT", "failed", "131047")


@pytest.mark.parametrize("channel", ["messenger", "instagram"])
def test_messenger_payloads_read_back(channel: str) -> None:
    message_payload = sender.messenger_event(
        channel, "123456", "hi", message_id="m_1", timestamp_ms=1795600800123
    )
    [message] = meta.parse_messenger(json.dumps(message_payload).encode(), NOW).messages
    assert (message.channel, message.sender.type, message.sender.value) == (channel, channel, "123456")
    assert message.sent_at == datetime.fromtimestamp(1795600800.123, UTC)

    postback = sender.messenger_event(channel, "123456", "Get help", postback=True, payload="HELP")
    [tapped] = meta.parse_messenger(json.dumps(postback).encode(), NOW).messages
    assert (tapped.text, tapped.metadata["postback_payload"]) == ("Get help", "HELP")

    echo = sender.messenger_event(channel, "123456", "our answer", echo=True)
    assert meta.parse_messenger(json.dumps(echo).encode(), NOW).messages == []


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    sender.register(parser.add_subparsers(dest="channel"))
    return parser


def test_cli_signs_with_the_stacks_app_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, str, bytes | None, dict[str, str]]] = []

    def fake_http(method: str, url: str, body: bytes | None = None, headers: Any = None) -> HttpResult:
        sent.append((method, url, body, headers or {}))
        return HttpResult(200, b'{"status":"EVENT_RECEIVED"}', "application/json")

    monkeypatch.setattr(sender, "http", fake_http)
    monkeypatch.delenv("OMNI_META_APP_SECRET", raising=False)
    args = _parser().parse_args(
        ["whatsapp", "--from", "+4915112345678", "hello", "--name", "Ana", "--base-url", "http://stack"]
    )
    out = io.StringIO()
    assert args.run(args, out) == 0
    [(method, url, body, headers)] = sent
    assert (method, url) == ("POST", "http://stack/webhooks/whatsapp")
    assert body is not None
    secret = TOPOLOGY.secret("meta-app-secret").local_default
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature-256"] == expected
    assert json.loads(body)["entry"][0]["changes"][0]["value"]["messages"][0]["from"] == "4915112345678"
    assert "EVENT_RECEIVED" in out.getvalue()


def test_cli_refuses_a_text_message_without_text() -> None:
    args = _parser().parse_args(["whatsapp", "--from", "4915112345678", "--base-url", "http://stack"])
    assert args.run(args, io.StringIO()) == 2
