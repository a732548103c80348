"""Automatic mail (RFC 3834), bounces (RFC 3464 and the common non-standard forms) and quoted
history in replies: the e-mail channel's pure functions, on fixtures in the real formats."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.channels import email as mail
from tests.helpers import FIXTURES as SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "email"
SES_SENT_ID = "0100019a1b2c3d4e-5f6a7b8c-9d0e-4f1a-8b2c-3d4e5f6a7b8c-000000"
SENT_AT = datetime(2026, 11, 26, 8, 0, 5, tzinfo=UTC)


def parse(name: str) -> mail.ParsedEmail:
    return mail.parse_email((FIXTURES / name).read_bytes())


def raw(headers: str, body: str = "Hello") -> bytes:
    return f"{headers}\nContent-Type: text/plain; charset=utf-8\n\n{body}\n".encode()


def receipt() -> mail.Receipt:
    return mail.Receipt(
        ses_message_id="o3vrnil0e2ic28trm7dfhrc2v0cnbeccl4nbp0g1",
        timestamp=SENT_AT,
        recipients=("support@shop.example",),
        envelope_from="",
        verdicts=mail.Verdicts(dmarc="PASS"),
        bucket="inbound-bucket",
        key="inbound/o3vrnil0e2ic28trm7dfhrc2v0cnbeccl4nbp0g1",
    )


# --------------------------------------------------------------------------- #
# Classification
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ("Auto-Submitted: auto-replied", "auto_reply"),
        ("Auto-Submitted: Auto-Replied; owner-email=x@y.example", "auto_reply"),
        ("X-Autoreply: yes", "auto_reply"),
        ("X-Autorespond: vacation", "auto_reply"),
        ("Auto-Submitted: auto-generated", "auto_generated"),
        ("Auto-Submitted: auto-notified", "auto_generated"),
        ("Return-Path: <>", "auto_generated"),
        ("Precedence: bulk", "list"),
        ("Precedence: junk", "list"),
        ("Precedence: list", "list"),
        ("List-Id: News <news.vendor.example>", "list"),
        ("Auto-Submitted: no", None),
        ("Precedence: first-class", None),
    ],
)
def test_automatic_mail_is_recognised_by_its_headers(headers: str, kind: str | None) -> None:
    parsed = mail.parse_email(raw(f"From: ana@example.com\n{headers}"))
    assert parsed.automated == kind


def test_a_system_sender_is_automatic_and_with_a_bounce_subject_a_bounce() -> None:
    assert mail.parse_email(raw("From: postmaster@example.org")).automated == "auto_generated"
    assert mail.parse_email(raw("From: MAILER-DAEMON@example.org")).automated == "auto_generated"
    bounced = mail.parse_email(
        raw("From: Mail Delivery System <Mailer-Daemon@example.org>\nSubject: Undeliverable")
    )
    assert bounced.automated == "bounce"
    assert mail.parse_email(raw("From: ana@example.com\nSubject: undelivered parcel")).automated is None


def test_a_person_writing_is_not_automatic() -> None:
    parsed = parse("plain.eml")
    assert (parsed.automated, parsed.automated_by, parsed.bounce) == (None, None, None)


def test_fixtures_are_classified() -> None:
    assert parse("ooo_exchange.eml").automated == "auto_reply"
    assert parse("ooo_vacation.eml").automated == "auto_reply"
    assert parse("list_newsletter.eml").automated == "list"
    assert parse("bounce_dsn.eml").automated == "bounce"
    assert parse("bounce_quoted.eml").automated == "bounce"


def test_the_canonical_message_carries_the_classification() -> None:
    message = mail.inbound_message(parse("ooo_vacation.eml"), receipt(), SENT_AT)
    assert message.automated == "auto_reply"
    assert message.metadata["automated_by"] == "Auto-Submitted"
    assert mail.inbound_message(parse("plain.eml"), receipt(), SENT_AT).automated is None


# --------------------------------------------------------------------------- #
# Bounces
# --------------------------------------------------------------------------- #
def test_an_rfc3464_report_names_the_failed_recipient_and_the_original() -> None:
    bounce = parse("bounce_dsn.eml").bounce
    assert bounce is not None
    assert bounce.recipients == ("old.address@example.org",)
    assert bounce.message_ids[0] == f"{SES_SENT_ID}@eu-west-1.amazonses.com"
    assert bounce.notification_keys == ("route:email#0100bounce#email",)
    assert bounce.status == "5.1.1"
    assert bounce.diagnostic is not None
    assert "User unknown" in bounce.diagnostic
    assert bounce.failed
    assert bounce.error_code == "bounce:5.1.1"


def test_a_non_standard_bounce_quoting_the_original_is_read_from_its_text() -> None:
    bounce = parse("bounce_quoted.eml").bounce
    assert bounce is not None
    assert bounce.message_ids == (f"{SES_SENT_ID}@eu-west-1.amazonses.com",)
    assert bounce.failed
    assert bounce.error_code == "bounce"


def test_an_attached_original_gives_its_message_id_and_recipient() -> None:
    original = (
        "From: support@shop.example\nTo: gone@example.net\nMessage-ID: <orig-1@shop.example>\n"
        "X-Omni-Notification: ntf_9#email\n\nHello"
    )
    bounce_mail = (
        "From: Mail Delivery Subsystem <mailer-daemon@googlemail.example>\nTo: support@shop.example\n"
        "Subject: Delivery Status Notification (Failure)\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="b"\n\n--b\nContent-Type: text/plain\n\n'
        "Address not found.\n--b\nContent-Type: message/rfc822\n\n"
        f"{original}\n--b--\n"
    )
    parsed = mail.parse_email(bounce_mail.encode())
    assert parsed.automated == "bounce"
    assert parsed.bounce is not None
    assert parsed.bounce.recipients == ("gone@example.net",)
    assert parsed.bounce.message_ids == ("orig-1@shop.example",)
    assert parsed.bounce.notification_keys == ("ntf_9#email",)


def test_a_delay_report_is_no_failure() -> None:
    text = (FIXTURES / "bounce_dsn.eml").read_text()
    delayed = text.replace("Action: failed", "Action: delayed").replace("Status: 5.1.1", "Status: 4.4.1")
    bounce = mail.parse_email(delayed.encode()).bounce
    assert bounce is not None
    assert not bounce.failed
    assert bounce.recipients == ("old.address@example.org",)


def test_x_failed_recipients_makes_a_bounce() -> None:
    parsed = mail.parse_email(raw("From: someone@example.org\nX-Failed-Recipients: lost@example.net"))
    assert parsed.automated == "bounce"
    assert parsed.bounce is not None
    assert parsed.bounce.recipients == ("lost@example.net",)


# --------------------------------------------------------------------------- #
# Quoted history
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Bottom-posted under an English or German attribution and ``>`` quotes.
        ("On Mon, 5 Aug 2019 at 21:29, Jane <j@x.com> wrote:\n> old\n> older\n\nMy answer.", "My answer."),
        ("Am 24.11.2026 um 10:00 schrieb Shop <s@shop.example>:\n> alt\n\nNeu hier.", "Neu hier."),
        # The attribution wrapped over two lines.
        ("On Mon, 5 Aug 2019, Jane Doe\n<jane@x.com> wrote:\n> old\n\nBelow.", "Below."),
        # Interleaved answers keep every unquoted line.
        ("On Mon, Jane wrote:\n> q1\nA1\n> q2\nA2", "A1\nA2"),
        # Top-posted forms stay as they were.
        ("Top.\n\nOn Mon, 5 Aug 2019 at 21:29, Jane <j@x.com> wrote:\n> old", "Top."),
        ("Oben.\n\nVon: Shop <s@shop.example>\nGesendet: Montag\nAn: mich\nalt", "Oben."),
        # Below an unquoted original nobody can tell where it ends: kept whole.
        (
            "-----Original Message-----\nFrom: x\nold\n\nnew",
            "-----Original Message-----\nFrom: x\nold\n\nnew",
        ),
    ],
)
def test_strip_quoted_keeps_the_new_part(text: str, expected: str) -> None:
    assert mail.strip_quoted(text) == expected


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            "reply_bottom_posted.eml",
            "Thanks, but the parcel was left at the wrong address.\nCan you ask the carrier?",
        ),
        ("reply_outlook_german.eml", "Die Rechnung stimmt jetzt, danke."),
        ("reply_gmail_html.eml", "It arrived today, thank you!"),
        ("reply_in_reply_to.eml", 'It has not arrived yet, the tracking page says "label created".'),
    ],
)
def test_replies_record_the_new_part_and_keep_the_full_body(fixture: str, expected: str) -> None:
    parsed = parse(fixture)
    assert parsed.text == expected
    assert parsed.full_text != parsed.text
    assert expected in parsed.full_text
    message = mail.inbound_message(parsed, receipt(), SENT_AT)
    assert message.text == expected
    assert message.metadata["quoted_text_removed"] == "true"
    whole = message.attachments[-1]
    assert (whole.type, whole.name, whole.url) == (
        "message/rfc822",
        mail.FULL_MESSAGE_NAME,
        "s3://inbound-bucket/inbound/o3vrnil0e2ic28trm7dfhrc2v0cnbeccl4nbp0g1",
    )


def test_a_mail_without_history_gets_no_full_body_attachment() -> None:
    message = mail.inbound_message(parse("plain.eml"), receipt(), SENT_AT)
    assert "quoted_text_removed" not in message.metadata
    assert all(a.name != mail.FULL_MESSAGE_NAME for a in message.attachments)
