"""E-mail end to end on the local runtime: ``omni send email FILE.eml`` -> SES emulation ->
the e-mail function -> profile merge -> the customer's conversation, read through the agent API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omni.local.runtime import LocalRuntime
from shared.repositories.outbox import OutboxRepository
from tests.helpers import FIXTURES as SHARED_FIXTURES
from tests.helpers.e2e_email import conversation_of, send

pytestmark = pytest.mark.e2e

FIXTURES = SHARED_FIXTURES / "email"
ANA = "ana.lima@example.com"


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(port=0, stage="e2e", retry_delay_s=0.1) as running:
        yield running


def inbound_texts(conversation: dict[str, Any]) -> list[str]:
    return [m["text"] for m in conversation["messages"] if m["direction"] == "inbound"]


def test_a_mail_reaches_the_customers_conversation_once(
    runtime: LocalRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    accepted = send(runtime, capsys, str(FIXTURES / "plain.eml"))
    assert accepted["key"] == f"inbound/{accepted['messageId']}"

    customer, conversation = conversation_of(runtime, ANA)
    assert {(i["type"], i["value"], i["verified"]) for i in customer["identities"]} == {("email", ANA, True)}
    [message] = [m for m in conversation["messages"] if m["direction"] == "inbound"]
    assert message["channel"] == "email"
    assert message["message_id"] == f"email#{accepted['messageId']}"
    assert message["text"].startswith("Hello,\n\nmy invoice 2026-118 charges me twice")

    # SES delivering the same mail again (same message id, same event) changes nothing.
    assert send(runtime, capsys, "--redeliver", accepted["key"]) == accepted
    _, again = conversation_of(runtime, ANA)
    assert inbound_texts(again) == inbound_texts(conversation)


def test_a_reply_to_our_mail_joins_that_conversation(
    runtime: LocalRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    _, conversation = conversation_of(runtime, ANA)
    outbox = OutboxRepository()  # the runtime exported the tables' names to this process
    outbox.start(
        {
            "notification_id": "ntf_e2e_shipped",
            "created_at": "2026-11-24T09:00:00.000000Z",
            "conversation_id": conversation["conversation_id"],
            "channel": "email",
        }
    )
    outbox.mark(
        "ntf_e2e_shipped",
        "sent",
        "2026-11-24T09:00:01.000000Z",
        provider_message_id="0100019a1b2c3d4e-5f6a7b8c-9d0e-4f1a-8b2c-3d4e5f6a7b8c-000000",
    )
    send(runtime, capsys, str(FIXTURES / "reply_in_reply_to.eml"))
    _, after = conversation_of(runtime, ANA)
    assert after["conversation_id"] == conversation["conversation_id"]
    assert inbound_texts(after)[-1] == 'It has not arrived yet, the tracking page says "label created".'


def test_a_sender_failing_dmarc_is_never_merged_into_the_profile(
    runtime: LocalRuntime, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    spoof = tmp_path / "spoof.eml"
    spoof.write_bytes(
        (FIXTURES / "dmarc_fail.eml").read_bytes().replace(b"security@bank.example", ANA.encode())
    )
    before, conversation = conversation_of(runtime, ANA)
    send(runtime, capsys, str(spoof), "--dmarc", "FAIL", "--spf", "FAIL", "--dkim", "FAIL")

    after, same = conversation_of(runtime, ANA)
    assert after["customer_id"] == before["customer_id"]
    assert inbound_texts(same) == inbound_texts(conversation)  # nothing added to Ana's conversation
    assert not any("merge this address" in text for text in inbound_texts(same))
    # It was accepted all the same: recorded for a customer of its own, with a claimed identity.
    assert runtime.email is not None
    assert runtime.email.dropped == 0
    items = runtime.client("dynamodb").scan(TableName=runtime.physical[("table", "conversations")])["Items"]
    spoofed = [item for item in items if "merge this address" in item.get("text", {}).get("S", "")]
    assert len(spoofed) == 1
    assert spoofed[0]["pk"]["S"] != f"CONV#{conversation['conversation_id']}"
