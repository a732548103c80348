"""One customer per e-mail sender, end to end through SES-style deliveries (``omni send email``).

A domain without DMARC whose mail carries an aligned DKIM signature proves its sender; mail
without any aligned authentication still reaches one customer (claimed) that a look-up finds;
a DMARC FAIL mail using a verified customer's address stays out of that customer's
conversation and is shown as a possible match; a later DMARC PASS upgrades a claimed profile.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omni.local.runtime import LocalRuntime
from tests.helpers.e2e_email import FIXTURES, agent_get, send

pytestmark = pytest.mark.e2e

NO_DMARC_ALIGNED_DKIM = ("--dmarc", "GRAY", "--dkim", "PASS", "--spf", "FAIL")
NO_AUTHENTICATION = ("--dmarc", "GRAY", "--dkim", "FAIL", "--spf", "FAIL")


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(port=0, stage="e2e-ident", retry_delay_s=0.1) as running:
        yield running


def mail(tmp_path: Path, address: str, number: int) -> str:
    """A mail from ``address`` (a DKIM signature of mail.smallco.example) with its own Message-ID."""
    raw = (
        (FIXTURES / "dkim_no_dmarc.eml")
        .read_bytes()
        .replace(b"Kim@SmallCo.example", address.encode())
        .replace(b"20261207081400.4711", f"20261207081400.{number}".encode())
        .replace(b"has not arrived yet", f"has not arrived yet ({number})".encode())
    )
    path = tmp_path / f"mail-{number}.eml"
    path.write_bytes(raw)
    return str(path)


def customers_with(runtime: LocalRuntime, address: str) -> list[dict[str, Any]]:
    return list(agent_get(runtime, f"/customers?identity=email:{address}")["customers"])


def conversations_of(runtime: LocalRuntime, customer_id: str) -> list[dict[str, Any]]:
    summaries = agent_get(runtime, f"/customers/{customer_id}/conversations")["conversations"]
    return [agent_get(runtime, f"/conversations/{s['conversation_id']}") for s in summaries]


def directions(conversation: dict[str, Any]) -> list[str]:
    return [m["direction"] for m in conversation["messages"] if m["direction"] in ("inbound", "outbound")]


def test_two_mails_without_dmarc_but_with_aligned_dkim_are_one_verified_customer(
    runtime: LocalRuntime, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    address = "kim@smallco.example"
    send(runtime, capsys, mail(tmp_path, "Kim@SmallCo.example", 1), *NO_DMARC_ALIGNED_DKIM)
    send(runtime, capsys, mail(tmp_path, "Kim@SmallCo.example", 2), *NO_DMARC_ALIGNED_DKIM)

    [customer] = customers_with(runtime, address)
    assert customer["verification"] == "verified"
    assert [(i["value"], i["verified"]) for i in customer["identities"]] == [(address, True)]
    [conversation] = conversations_of(runtime, customer["customer_id"])
    assert directions(conversation).count("inbound") == 2
    assert directions(conversation).count("outbound") == 1  # one acknowledgement


def test_two_mails_without_any_aligned_authentication_are_one_claimed_customer(
    runtime: LocalRuntime, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    address = "lee@nodmarc.example"
    send(runtime, capsys, mail(tmp_path, address, 3), *NO_AUTHENTICATION)
    send(runtime, capsys, mail(tmp_path, address, 4), *NO_AUTHENTICATION)

    [customer] = customers_with(runtime, address)
    assert customer["verification"] == "claimed"
    assert [(i["value"], i["verified"]) for i in customer["identities"]] == [(address, False)]
    [conversation] = conversations_of(runtime, customer["customer_id"])
    assert directions(conversation).count("inbound") == 2
    assert directions(conversation).count("outbound") == 1


def test_a_dmarc_fail_mail_with_a_verified_customers_address_is_only_a_possible_match(
    runtime: LocalRuntime, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    address = "ana@verified.example"
    send(runtime, capsys, mail(tmp_path, address, 5))  # SES's verdicts all PASS
    [owner] = customers_with(runtime, address)
    [before] = conversations_of(runtime, owner["customer_id"])

    send(runtime, capsys, mail(tmp_path, address, 6), "--dmarc", "FAIL", "--dmarc-policy", "reject")
    found = customers_with(runtime, address)
    first, spoof = found
    assert (first["customer_id"], first["verification"]) == (owner["customer_id"], "verified")
    assert spoof["verification"] == "claimed"
    [identity] = spoof["identities"]
    assert (identity["value"], identity["verified"], identity["possible_match"]) == (
        address,
        False,
        owner["customer_id"],
    )
    [after] = conversations_of(runtime, owner["customer_id"])
    assert after["conversation_id"] == before["conversation_id"]
    assert after["messages"] == before["messages"]  # nothing read or written in Ana's conversation
    [separate] = conversations_of(runtime, spoof["customer_id"])
    assert separate["conversation_id"] != before["conversation_id"]


def test_a_later_dmarc_pass_upgrades_the_claimed_profile(
    runtime: LocalRuntime, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    address = "noor@later.example"
    send(runtime, capsys, mail(tmp_path, address, 7), *NO_AUTHENTICATION)
    [claimed] = customers_with(runtime, address)
    assert claimed["verification"] == "claimed"

    send(runtime, capsys, mail(tmp_path, address, 8), "--dmarc", "PASS")
    [upgraded] = customers_with(runtime, address)
    assert (upgraded["customer_id"], upgraded["verification"]) == (claimed["customer_id"], "verified")
    assert [(i["value"], i["verified"]) for i in upgraded["identities"]] == [(address, True)]
    [conversation] = conversations_of(runtime, upgraded["customer_id"])
    assert directions(conversation).count("inbound") == 2
