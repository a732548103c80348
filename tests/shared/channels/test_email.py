"""The e-mail channel's pure domain: MIME, HTML to text, quoted history, threading, the canonical message."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.channels import email as mail
from shared.contracts.events import MessageReceived
from tests.helpers import FIXTURES as SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "email"
TOKEN = "conv_01m88xwbstv2gb0cpyxfmw27cw"
SENT_AT = datetime(2026, 11, 25, 7, 0, 2, 28000, tzinfo=UTC)
RECEIVED_AT = datetime(2026, 11, 25, 7, 0, 3, tzinfo=UTC)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def receipt(
    dmarc: str = "PASS",
    recipients: tuple[str, ...] = ("support@shop.example",),
    envelope_from: str = "ana.lima@example.com",
    **others: str,
) -> mail.Receipt:
    verdicts = {"spf": "PASS", "dkim": "PASS", "spam": "PASS", "virus": "PASS", **others}
    return mail.Receipt(
        ses_message_id="o3vrnil0e2ic28trm7dfhrc2v0cnbeccl4nbp0g1",
        timestamp=SENT_AT,
        recipients=recipients,
        envelope_from=envelope_from,
        verdicts=mail.Verdicts(dmarc=dmarc, **verdicts),
        bucket="omni-test-inbound-email-123456789012",
        key="inbound/o3vrnil0e2ic28trm7dfhrc2v0cnbeccl4nbp0g1",
    )


def message_of(name: str, **kwargs: object) -> MessageReceived:
    return mail.inbound_message(mail.parse_email(fixture(name)), receipt(**kwargs), RECEIVED_AT)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- #
# Fixtures through parse_email and inbound_message
# --------------------------------------------------------------------------- #
def test_plain_text_mail_becomes_the_canonical_message() -> None:
    message = message_of("plain.eml")
    assert (message.channel, message.provider) == ("email", "ses")
    assert message.provider_message_id == "o3vrnil0e2ic28trm7dfhrc2v0cnbeccl4nbp0g1"
    assert message.sender.model_dump() == {"type": "email", "value": "ana.lima@example.com", "verified": True}
    assert message.display_name == "Ana Lima"
    assert message.recipient == "support@shop.example"
    assert message.text.startswith("Hello,\n\nmy invoice 2026-118 charges me twice")
    assert message.text.endswith("Ana — sent from my laptop")  # quoted-printable decoded
    assert message.sent_at == SENT_AT  # SES's receive time (mail.timestamp), not the Date header
    assert message.received_at == RECEIVED_AT
    assert message.attachments == ()
    assert message.conversation_hint is None
    assert message.metadata["subject"] == "My invoice is wrong"
    assert message.metadata["message_id"] == "CAF1plain0001@mail.example.com"
    assert {k: message.metadata[k] for k in ("spf", "dkim", "dmarc", "spam", "virus")} == dict.fromkeys(
        ("spf", "dkim", "dmarc", "spam", "virus"), "PASS"
    )
    assert message.metadata["body_format"] == "plain"
    assert message.metadata["raw"] == (
        "s3://omni-test-inbound-email-123456789012/inbound/o3vrnil0e2ic28trm7dfhrc2v0cnbeccl4nbp0g1"
    )
    assert "dmarc_policy" not in message.metadata


def test_html_only_mail_is_turned_into_text_without_quote_script_or_style() -> None:
    parsed = mail.parse_email(fixture("html_only.eml"))
    assert parsed.body_format == "html"
    assert parsed.subject == "Bestellung überprüfen"  # RFC 2047 decoded
    assert parsed.text == (
        "Hallo Team,\n\n"
        "meine Bestellung ist nicht angekommen. Sendungsnummer: 123 <https://track.example/123>.\n\n"
        "- Artikel A\n"
        "- Artikel B & C"
    )
    message = mail.inbound_message(parsed, receipt(), RECEIVED_AT)
    assert message.display_name == "Lima, Ana"
    assert message.metadata["body_format"] == "html"


def test_multipart_mail_prefers_text_plain_and_lists_its_attachments() -> None:
    parsed = mail.parse_email(fixture("multipart_attachment.eml"))
    assert parsed.body_format == "plain"
    assert parsed.text == "The vase arrived broken, see the photo and the delivery note."
    assert parsed.cc == ("ana.backup@example.com",)
    assert [(a.part, a.content_type, a.filename, a.size) for a in parsed.attachments] == [
        (4, "image/png", "photo.png", 70),
        (5, "application/pdf", "Lieferschein März.pdf", 45),
    ]
    message = mail.inbound_message(parsed, receipt(), RECEIVED_AT)
    base = "s3://omni-test-inbound-email-123456789012/inbound/o3vrnil0e2ic28trm7dfhrc2v0cnbeccl4nbp0g1"
    assert [a.model_dump() for a in message.attachments] == [
        {"type": "image/png", "url": f"{base}#part-4", "size": 70, "name": "photo.png"},
        {"type": "application/pdf", "url": f"{base}#part-5", "size": 45, "name": "Lieferschein März.pdf"},
    ]


def test_reply_loses_its_quoted_history_and_lists_the_ids_it_answers() -> None:
    parsed = mail.parse_email(fixture("reply_in_reply_to.eml"))
    assert parsed.text == 'It has not arrived yet, the tracking page says "label created".'
    ses_id = "0100019a1b2c3d4e-5f6a7b8c-9d0e-4f1a-8b2c-3d4e5f6a7b8c-000000@email.amazonses.com"
    assert parsed.in_reply_to == (ses_id,)
    assert parsed.references == ("CAF1older0000@mail.example.com", ses_id)
    assert mail.thread_ids(parsed.in_reply_to, parsed.references) == [
        ses_id,
        "CAF1older0000@mail.example.com",
    ]


def test_plus_address_reply_token_and_outlook_separator() -> None:
    parsed = mail.parse_email(fixture("plus_token.eml"))
    assert parsed.text == "Yes, please send the replacement to my office address."
    the_receipt = receipt(recipients=(f"support+{TOKEN}@shop.example",))
    assert mail.reply_token(mail.our_addresses(parsed, the_receipt)) == TOKEN
    message = mail.inbound_message(parsed, the_receipt, RECEIVED_AT, TOKEN, "reply-token")
    assert message.conversation_hint == TOKEN
    assert message.metadata["threaded_by"] == "reply-token"
    assert message.recipient == "support@shop.example"  # the mailbox, without the token


def test_dmarc_failure_leaves_the_sender_unverified_whatever_the_mail_claims() -> None:
    # The mail carries a forged "Authentication-Results: ... dmarc=pass": only SES's verdict counts.
    message = message_of("dmarc_fail.eml", dmarc="FAIL", spf="FAIL", dkim="FAIL")
    assert message.sender.model_dump() == {
        "type": "email",
        "value": "security@bank.example",
        "verified": False,
    }
    assert message.identities == ()
    assert message.metadata["dmarc"] == "FAIL"
    forged = mail.inbound_message(
        mail.parse_email(fixture("dmarc_fail.eml")),
        mail.Receipt(
            **{**receipt().__dict__, "verdicts": mail.Verdicts(dmarc="FAIL", dmarc_policy="reject")}
        ),
        RECEIVED_AT,
    )
    assert forged.metadata["dmarc_policy"] == "reject"
    assert forged.sender.verified is False


@pytest.mark.parametrize("dmarc", ["FAIL", "PROCESSING_FAILED", "DISABLED", mail.MISSING])
def test_only_a_dmarc_pass_verifies_the_sender(dmarc: str) -> None:
    assert message_of("plain.eml", dmarc=dmarc).sender.verified is False
    assert message_of("plain.eml", dmarc="PASS").sender.verified is True


def test_without_a_dmarc_policy_only_an_aligned_pass_verifies_the_sender() -> None:
    # plain.eml has no DKIM signature; its envelope sender is the From address itself.
    assert message_of("plain.eml", dmarc="GRAY", spf="FAIL").sender.verified is False
    assert message_of("plain.eml", dmarc="GRAY", spf="PASS").sender.verified is True


def test_malformed_mail_is_a_named_error() -> None:
    with pytest.raises(mail.UnparseableEmail, match="no header section"):
        mail.parse_email(fixture("malformed.eml"))
    with pytest.raises(mail.UnparseableEmail, match="empty"):
        mail.parse_email(b"  \r\n")


def test_the_same_mail_gives_the_same_message_every_time() -> None:
    first = message_of("multipart_attachment.eml")
    again = mail.inbound_message(
        mail.parse_email(fixture("multipart_attachment.eml")), receipt(), datetime.now(UTC)
    )
    assert first.model_dump(exclude={"received_at"}) == again.model_dump(exclude={"received_at"})


# --------------------------------------------------------------------------- #
# Senders and recipients
# --------------------------------------------------------------------------- #
def _raw(headers: str, body: str = "Hi") -> bytes:
    return f"{headers}\nContent-Type: text/plain\n\n{body}\n".encode()


def test_without_a_usable_from_the_envelope_sender_is_an_unverified_identity() -> None:
    parsed = mail.parse_email(_raw("From: not an address\nTo: support@shop.example\nSubject: x"))
    message = mail.inbound_message(parsed, receipt(envelope_from="Bounce@Relay.example"), RECEIVED_AT)
    assert message.sender.model_dump() == {
        "type": "email",
        "value": "bounce@relay.example",
        "verified": False,
    }
    assert message.metadata["sender_source"] == "envelope"


def test_several_from_mailboxes_are_never_verified() -> None:
    parsed = mail.parse_email(_raw("From: a@example.com, b@example.com\nTo: support@shop.example"))
    message = mail.inbound_message(parsed, receipt(), RECEIVED_AT)
    assert message.sender.value == "a@example.com"
    assert message.sender.verified is False


def test_no_sender_at_all_is_unparseable() -> None:
    parsed = mail.parse_email(_raw("To: support@shop.example\nSubject: who am I"))
    with pytest.raises(mail.UnparseableEmail, match="no usable sender"):
        mail.inbound_message(parsed, receipt(envelope_from=""), RECEIVED_AT)


def test_recipient_falls_back_to_the_headers_when_the_event_names_none() -> None:
    parsed = mail.parse_email(
        _raw(f"From: ana@example.com\nTo: Support <support+{TOKEN}@Shop.Example>\nDelivered-To: x@y.example")
    )
    the_receipt = receipt(recipients=())
    assert mail.our_addresses(parsed, the_receipt)[0] == "x@y.example"
    assert mail.reply_token(mail.our_addresses(parsed, the_receipt)) == TOKEN
    assert mail.inbound_message(parsed, the_receipt, RECEIVED_AT).recipient == "x@y.example"


def test_subject_stands_in_for_an_empty_body_and_long_text_is_cut() -> None:
    parsed = mail.parse_email(_raw("From: ana@example.com\nSubject: Call me back please", body=""))
    assert mail.inbound_message(parsed, receipt(), RECEIVED_AT).text == "Call me back please"
    long = mail.parse_email(_raw("From: ana@example.com", body="x" * 30_000))
    message = mail.inbound_message(long, receipt(), RECEIVED_AT)
    assert len(message.text) == mail.MAX_TEXT_CHARS
    assert message.metadata["text_truncated"] == "true"


def test_auto_replies_are_flagged() -> None:
    parsed = mail.parse_email(_raw("From: ana@example.com\nAuto-Submitted: auto-replied"))
    assert mail.inbound_message(parsed, receipt(), RECEIVED_AT).metadata["auto_submitted"] == "auto-replied"
    assert mail.parse_email(_raw("From: ana@example.com\nAuto-Submitted: no")).auto_submitted is None


def test_an_unknown_charset_still_gives_text() -> None:
    raw = b"From: ana@example.com\nContent-Type: text/plain; charset=x-no-such-charset\n\nHello \xe9\n"
    assert mail.parse_email(raw).text == "Hello \ufffd"


def test_an_attached_message_is_one_attachment() -> None:
    raw = (
        b"From: ana@example.com\nContent-Type: multipart/mixed; boundary=XX\n\n--XX\n"
        b"Content-Type: text/plain\n\nSee the forwarded mail.\n--XX\nContent-Type: message/rfc822\n\n"
        b"From: other@example.com\nSubject: inner\nContent-Type: text/plain\n\ninner body\n--XX--\n"
    )
    parsed = mail.parse_email(raw)
    assert parsed.text == "See the forwarded mail."
    [attached] = parsed.attachments
    assert (attached.part, attached.content_type, attached.filename) == (2, "message/rfc822", None)
    assert attached.size > 0


# --------------------------------------------------------------------------- #
# HTML, quotes, ids
# --------------------------------------------------------------------------- #
def test_html_to_text_marks_blockquotes_and_keeps_pre_formatting() -> None:
    html = "<div>Answer</div><blockquote>old<blockquote>older</blockquote></blockquote><pre>a  b\n c</pre>"
    text = mail.html_to_text(html)
    assert text.splitlines()[0] == "Answer"
    assert "> old" in text.splitlines()
    assert "> > older" in text.splitlines()
    assert text.endswith("a  b\n c")
    assert mail.html_to_text(
        "<p>x<a href='javascript:evil()'>link</a> <a href='mailto:a@b.c'>a@b.c</a></p>"
    ) == ("xlink a@b.c")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Fine.\n\nOn Mon, 5 Aug 2019 at 21:29, Jane <j@x.com> wrote:\n> old\n", "Fine."),
        ("Gut.\n\nAm 24.11.2026 um 10:00 schrieb Shop <s@shop.example>:\n> alt", "Gut."),
        ("Oui.\n\nLe lun. 5 août 2019 à 21:29, Jane <j@x.com> a écrit :\n> old", "Oui."),
        ("Yes.\n\n-----Original Message-----\nFrom: x\nold", "Yes."),
        ("Ja.\n\n-----Ursprüngliche Nachricht-----\nVon: x\nalt", "Ja."),
        ("Yes.\n\n________________________________\nFrom: Shop <s@shop.example>\nSent: Monday", "Yes."),
        ("Yes.\nFrom: Shop <s@shop.example>\nSent: Monday\nTo: me\nold", "Yes."),
        ("> quoted\nmy answer\n> more quoted\nsecond answer", "my answer\nsecond answer"),
        ("> everything is quoted", "> everything is quoted"),
        ("From: a customer's first line is kept", "From: a customer's first line is kept"),
        ("Only text,\nno history.", "Only text,\nno history."),
    ],
)
def test_strip_quoted(text: str, expected: str) -> None:
    assert mail.strip_quoted(text) == expected


def test_message_ids_and_provider_id_candidates() -> None:
    assert mail.message_ids("<a@b.example> <c@d.example>") == ["a@b.example", "c@d.example"]
    assert mail.message_ids("bare@id.example") == ["bare@id.example"]
    assert mail.message_ids("") == []
    assert mail.provider_id_candidates("0100abc-000000@eu-west-1.amazonses.com") == [
        "0100abc-000000",
        "0100abc-000000@eu-west-1.amazonses.com",
        "<0100abc-000000@eu-west-1.amazonses.com>",
    ]
    assert mail.provider_id_candidates("x@other.example") == ["x@other.example", "<x@other.example>"]
    assert mail.provider_id_candidates("x" * 300) == []
    assert mail.thread_ids(["a"], ["b", "c", "a"], limit=2) == ["a", "c"]


def test_reply_token_needs_a_conversation_id() -> None:
    assert mail.reply_token(["support+newsletter@shop.example", "support@shop.example"]) is None
    assert mail.reply_token(["support+conv_short@shop.example"]) is None
    assert mail.reply_token([f"Support+{TOKEN.upper()}@shop.example"]) == TOKEN
    assert mail.split_plus_address("a+b+c@x.example") == ("a@x.example", "b+c")


def test_a_mail_to_the_list_unsubscribe_address_is_an_opt_out() -> None:
    # SES's envelope recipient is the List-Unsubscribe address notify wrote.
    message = message_of("plain.eml", recipients=("support+unsubscribe-cus_01m8abc@shop.example",))
    assert (message.kind, message.keyword) == ("consent", "opt_out")
    assert message.sender.verified is True  # DMARC passed: it reaches the existing customer
    ordinary = message_of("plain.eml")
    assert (ordinary.kind, ordinary.keyword) == ("message", None)
    assert mail.unsubscribe_requested(["Support <support+UNSUBSCRIBE-cus_1@shop.example>"])
    assert not mail.unsubscribe_requested(["support+conv_01m88xwbstv2gb0cpyxfmw27cw@shop.example"])
