"""The e-mail channel applies the sender-authentication rules to real header shapes."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.channels import email as mail
from tests.helpers import FIXTURES as SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "email"


def receipt(envelope_from: str, **verdicts: str) -> mail.Receipt:
    return mail.Receipt(
        ses_message_id="9f2kq0r7c1lq3t0m6v5n8b4x2z1y0w9u8t7s6r5q",
        timestamp=datetime(2026, 12, 7, 8, 14, 2, tzinfo=UTC),
        recipients=("support@shop.example",),
        envelope_from=envelope_from,
        verdicts=mail.Verdicts(**{"spam": "PASS", "virus": "PASS", **verdicts}),
        bucket="omni-test-inbound-email-123456789012",
        key="inbound/9f2kq0r7c1lq3t0m6v5n8b4x2z1y0w9u8t7s6r5q",
    )


def sender(fixture: str, envelope_from: str, **verdicts: str) -> tuple[bool, str]:
    parsed = mail.parse_email((FIXTURES / fixture).read_bytes())
    message = mail.inbound_message(
        parsed, receipt(envelope_from, **verdicts), datetime(2026, 12, 7, 8, 14, 3, tzinfo=UTC)
    )
    return message.sender.verified, message.metadata["sender_auth"]


def test_the_dkim_signature_of_a_mail_without_dmarc_verifies_its_sender() -> None:
    parsed = mail.parse_email((FIXTURES / "dkim_no_dmarc.eml").read_bytes())
    assert parsed.dkim_domains == ("mail.smallco.example",)
    # The ESP's bounce address is aligned too, but SPF failed here: DKIM alone carries it.
    verified, reason = sender(
        "dkim_no_dmarc.eml", "bounces@esp-bounces.example", dmarc="GRAY", dkim="PASS", spf="FAIL"
    )
    assert verified
    assert reason == "dmarc=GRAY, dkim aligned (mail.smallco.example)"


def test_a_mail_without_dmarc_and_without_aligned_pass_stays_claimed() -> None:
    verified, reason = sender(
        "dkim_no_dmarc.eml", "bounces@esp-bounces.example", dmarc="GRAY", dkim="FAIL", spf="PASS"
    )
    assert not verified
    assert reason == "dmarc=GRAY, no aligned dkim or spf pass"


def test_spf_alignment_reads_the_envelope_sender_then_the_return_path() -> None:
    verified, reason = sender(
        "dkim_no_dmarc.eml",
        "bounces+kim=smallco.example@em1234.smallco.example",
        dmarc="GRAY",
        dkim="FAIL",
        spf="PASS",
    )
    assert verified
    assert reason == "dmarc=GRAY, spf aligned (em1234.smallco.example)"
    verified, _ = sender("dkim_no_dmarc.eml", "", dmarc="GRAY", dkim="FAIL", spf="PASS")
    assert verified  # no envelope sender in the event: the Return-Path SES wrote on top


def test_two_signatures_one_of_an_esp_do_not_verify_by_dkim() -> None:
    parsed = mail.parse_email((FIXTURES / "dkim_two_signatures.eml").read_bytes())
    assert parsed.dkim_domains == ("esp.example", "smallco.example")
    verified, _ = sender(
        "dkim_two_signatures.eml",
        "0100019a7c2e-4f1b-9a2d@mailer.esp.example",
        dmarc="GRAY",
        dkim="PASS",
        spf="PASS",
    )
    assert not verified


def test_dmarc_fail_stays_claimed_even_with_an_aligned_signature() -> None:
    verified, reason = sender(
        "dkim_no_dmarc.eml", "kim@smallco.example", dmarc="FAIL", dkim="PASS", spf="PASS"
    )
    assert not verified
    assert reason == "dmarc=FAIL"
