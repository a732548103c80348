"""Automatic mail end to end on the local runtime (``omni send email FILE.eml``): a bounce of
our acknowledgement marks that delivery failed and creates no customer; an out-of-office
reply is a note for the agent and gets no acknowledgement."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from omni.local.auth import issue_agent_token
from omni.local.runtime import LocalRuntime
from shared.repositories.outbox import OutboxRepository
from tests.helpers.e2e_email import FIXTURES, agent_get, conversation_of, send

pytestmark = pytest.mark.e2e

SES_SENT_ID = "0100019a1b2c3d4e-5f6a7b8c-9d0e-4f1a-8b2c-3d4e5f6a7b8c-000000"
CARLA = "carla.moved@example.org"


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(port=0, stage="e2e-auto", retry_delay_s=0.1) as running:
        yield running


def customers_with(runtime: LocalRuntime, address: str) -> list[dict[str, Any]]:
    token = issue_agent_token("agent-e2e", 600)
    response = requests.get(
        f"{runtime.base_url}/customers",
        params={"identity": f"email:{address}"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return list(response.json()["customers"])


def outbound(conversation: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in conversation["messages"] if m["direction"] == "outbound"]


def test_a_bounce_marks_our_mail_failed_and_creates_no_customer(
    runtime: LocalRuntime, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    first = tmp_path / "carla.eml"
    first.write_bytes(
        (FIXTURES / "plain.eml")
        .read_bytes()
        .replace(b"Ana.Lima@Example.com", CARLA.encode())
        .replace(b"ana.lima@example.com", CARLA.encode())
    )
    accepted = send(runtime, capsys, str(first))
    _, conversation = conversation_of(runtime, CARLA)
    [acknowledgement] = outbound(conversation)
    notification_id = acknowledgement["message_id"]
    assert notification_id == f"route:email#{accepted['messageId']}"
    sent = OutboxRepository().get(notification_id)  # read only: the id SES gave our mail
    assert sent is not None
    assert sent["status"] == "sent"

    # The receiving server refuses it: a DSN comes back quoting our mail's Message-ID.
    dsn = tmp_path / "bounce.eml"
    dsn.write_bytes(
        (FIXTURES / "bounce_dsn.eml")
        .read_bytes()
        .replace(b"old.address@example.org", CARLA.encode())
        .replace(SES_SENT_ID.encode(), str(sent["provider_message_id"]).encode())
        .replace(b"X-Omni-Notification: route:email#0100bounce#email\n", b"")
    )
    send(runtime, capsys, str(dsn))

    assert customers_with(runtime, "mailer-daemon@mx1.mail.example.org") == []
    customer, after = conversation_of(runtime, CARLA)
    assert len(after["messages"]) == len(conversation["messages"])  # no message added
    [failed] = outbound(after)
    assert failed["status"] == "failed"
    assert (OutboxRepository().get(notification_id) or {})["status"] == "failed"
    [identity] = customer["identities"]
    assert identity["undeliverable"]["reason"] == "bounce:5.1.1"


def test_an_out_of_office_reply_is_a_note_and_gets_no_acknowledgement(
    runtime: LocalRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    send(runtime, capsys, str(FIXTURES / "plain.eml"))
    _, conversation = conversation_of(runtime, "ana.lima@example.com")
    assert len(outbound(conversation)) == 1  # the acknowledgement of her mail

    send(runtime, capsys, str(FIXTURES / "ooo_exchange.eml"))
    _, after = conversation_of(runtime, "ana.lima@example.com")
    assert after["messages"] == conversation["messages"]  # no customer message, no acknowledgement
    [note] = after["notes"]
    assert note["author"] == "email:auto-reply"
    assert "out of the office" in note["text"]
    assert (
        agent_get(runtime, f"/conversations/{after['conversation_id']}")["status"] == conversation["status"]
    )
