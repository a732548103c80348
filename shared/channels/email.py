"""E-mail (Amazon SES receiving): raw MIME to what the customer wrote. Pure, standard library only.

SES stores the raw message in S3 and hands the function an event with its verdicts;
everything here works on the raw bytes and those verdicts, without AWS:

* :func:`parse_email` reads the MIME (``email`` package, ``policy.default``): the
  sender, the recipients, the subject, the thread headers, the text body (text/plain
  preferred, HTML turned into text by :func:`html_to_text`) with the quoted reply
  history removed by :func:`strip_quoted`, and the attachments' metadata.
* :func:`reply_token` finds the conversation id in a plus address
  (``support+conv_...@example.com``) and :func:`thread_ids` lists the Message-IDs a
  reply points at, newest first; :func:`provider_id_candidates` spells each the ways
  the delivery log may hold it.
* :func:`inbound_message` builds the canonical :class:`~shared.contracts.events.MessageReceived`.

Trust: the sender's address is a *verified* identity when SES's DMARC verdict is ``PASS``,
or when the domain publishes no DMARC policy (``GRAY``) and DKIM or SPF passed for a domain
aligned with the From domain (the rules: :mod:`shared.domain.sender_auth`). Alignment is read
from the ``DKIM-Signature`` headers' ``d=`` tags and the envelope sender; whether a signature
or SPF *passed* only from SES's verdicts. Verdict-like headers inside the message
(``Authentication-Results``, ``X-SES-*``) are never trusted: anybody can write them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from html.parser import HTMLParser
from typing import Literal

from shared.contracts.events import Attachment, Identity, MessageReceived
from shared.domain.identity import InvalidIdentity, normalise_email
from shared.domain.sender_auth import SenderAuthentication, authenticate_sender, dkim_signing_domain

CHANNEL: Literal["email"] = "email"
PROVIDER = "ses"
#: MessageReceived.text is limited to this many characters.
MAX_TEXT_CHARS = 20_000
MAX_DISPLAY_NAME_CHARS = 200
#: Attachments listed on the message; the raw mail in S3 keeps every one.
MAX_ATTACHMENTS = 50
#: Message-IDs of In-Reply-To/References looked up in the delivery log.
MAX_THREAD_IDS = 5
MAX_METADATA_CHARS = 1000
#: The attachment that points at the whole mail when the quoted history was cut from the text.
FULL_MESSAGE_NAME = "full-message.eml"
#: SES verdict statuses (``status`` of spfVerdict, dkimVerdict, dmarcVerdict, spamVerdict, virusVerdict).
VERDICT_STATUSES = ("PASS", "FAIL", "GRAY", "PROCESSING_FAILED", "DISABLED")
#: What a verdict the event does not carry is recorded as.
MISSING = "MISSING"
#: The conversation ids of shared.platform.ids.new_id("conv"): Crockford base32, lower case.
_REPLY_TOKEN = re.compile(r"^conv_[0-9abcdefghjkmnpqrstvwxyz]{26}$")


class UnparseableEmail(ValueError):
    """The raw mail cannot become a message (empty, not MIME, no usable sender)."""


# --------------------------------------------------------------------------- #
# HTML to text
# --------------------------------------------------------------------------- #
_SKIPPED_TAGS = frozenset({"script", "style", "head", "title", "template", "noscript", "svg"})
_LINE_TAGS = frozenset({"br", "div", "li", "tr", "dt", "dd", "section", "article", "header", "footer"})
_PARAGRAPH_TAGS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "pre", "blockquote", "hr", "dl"}
)


class _TextExtractor(HTMLParser):
    """Collects the visible text; ``<blockquote>`` content comes out as ``> `` quoted lines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._line: list[str] = []
        self._skip = 0
        self._quote = 0
        self._pre = 0
        #: Open links: their target (None when not worth showing) and their text so far.
        self._links: list[tuple[str | None, list[str]]] = []

    def _break(self, blank: bool = False) -> None:
        text = "".join(self._line)
        self._line = []
        text = text if self._pre else re.sub(r"[ \t\n\r\f\v\u00a0]+", " ", text).strip()
        prefix = "> " * self._quote
        if text:
            self.lines.append(prefix + text)
        if blank and self.lines and self.lines[-1].strip(" >"):
            self.lines.append(prefix.rstrip())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip += 1
            return
        if tag in _PARAGRAPH_TAGS:
            self._break(blank=True)
        elif tag in _LINE_TAGS:
            self._break()
        if tag == "blockquote":
            self._quote += 1
        elif tag == "pre":
            self._pre += 1
        elif tag == "li":
            self._line.append("- ")
        elif tag == "a":
            href = (dict(attrs).get("href") or "").strip()
            shown = href if href.startswith(("http://", "https://", "mailto:")) else None
            self._links.append((shown, []))
        elif tag in ("td", "th"):
            self._line.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip = max(0, self._skip - 1)
            return
        if tag == "a" and self._links:
            href, chunks = self._links.pop()
            label = re.sub(r"\s+", " ", "".join(chunks)).strip()
            target = href.removeprefix("mailto:") if href else None
            if target and target != label:
                self._line.append(f" <{target}>")
            return
        if tag in _PARAGRAPH_TAGS:
            self._break(blank=True)
        elif tag in _LINE_TAGS:
            self._break()
        if tag == "blockquote":
            self._quote = max(0, self._quote - 1)
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        for _, chunks in self._links:
            chunks.append(data)
        if self._pre:
            first, *rest = data.split("\n")
            self._line.append(first)
            for line in rest:
                self._break()
                self._line.append(line)
            return
        self._line.append(data)

    def text(self) -> str:
        self._break()
        return _tidy("\n".join(self.lines))


def html_to_text(html: str) -> str:
    """The readable text of an HTML body: blocks on their own lines, quotes as ``> `` lines."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    return extractor.text()


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    tidied: list[str] = []
    for line in lines:
        if not line and tidied and not tidied[-1]:
            continue  # one blank line at most
        tidied.append(line)
    return "\n".join(tidied).strip("\n")


# --------------------------------------------------------------------------- #
# Quoted history
# --------------------------------------------------------------------------- #
#: The line a mail client writes above the quoted message, per language.
_ATTRIBUTION = re.compile(
    r"^\s*(?:"
    r"On\b.{0,300}\bwrote\s*:"  # English: Gmail, Apple Mail, Thunderbird
    r"|Am\b.{0,300}\bschrieb\b.{0,300}:"  # German
    r"|Le\b.{0,300}\ba écrit\s*:"  # French
    r"|El\b.{0,300}\bescribió\s*:"  # Spanish
    r"|Op\b.{0,300}\bschreef\b.{0,300}:"  # Dutch
    r"|Il\b.{0,300}\bha scritto\s*:"  # Italian
    r"|Em\b.{0,300}\bescreveu\s*:"  # Portuguese
    r")\s*$",
    re.IGNORECASE,
)
_ATTRIBUTION_START = re.compile(r"^\s*(?:On|Am|Le|El|Op|Il|Em)\b", re.IGNORECASE)
#: Separators that start a quoted original (Outlook, Thunderbird, Apple Mail, German clients).
_SEPARATOR = re.compile(
    r"^\s*-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original"
    r"|Oorspronkelijk bericht|Messaggio originale|Mensagem original)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_RULE = re.compile(r"^\s*_{10,}\s*$")
_HEADER_FROM = re.compile(r"^\s*\*?(?:From|Von|De|Da|Van)\s*:\*?\s*\S", re.IGNORECASE)
_HEADER_NEXT = re.compile(
    r"^\s*\*?(?:Sent|Date|To|Subject|Gesendet|Datum|An|Betreff|Envoyé|Enviado|Inviato|Verzonden)\s*:",
    re.IGNORECASE,
)


def _history_start(lines: Sequence[str]) -> int | None:
    """Index of the first line of the quoted history, if any."""
    for index, line in enumerate(lines):
        if _ATTRIBUTION.match(line) or _SEPARATOR.match(line):
            return index
        following = lines[index + 1] if index + 1 < len(lines) else ""
        # Attributions wrapped over two lines ("On Mon, 5 Aug 2019, Jane Doe\n<jane@...> wrote:").
        if _ATTRIBUTION_START.match(line) and _ATTRIBUTION.match(f"{line} {following.strip()}"):
            return index
        if _RULE.match(line) and _HEADER_FROM.match(following):
            return index
        # Outlook's header block: "From: ..." followed by "Sent:"/"To:"/"Subject:".
        if index > 0 and _HEADER_FROM.match(line):
            nearby = [candidate for candidate in lines[index + 1 : index + 4] if candidate.strip()]
            if nearby and _HEADER_NEXT.match(nearby[0]):
                return index
    return None


def _quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def strip_quoted(text: str) -> str:
    """What the customer wrote, without the quoted history of earlier messages.

    Top-posted (the new text first): cuts at the first attribution line (``On ... wrote:``,
    ``Am ... schrieb ...:``), ``-----Original Message-----`` separator or Outlook/Gmail
    header block (``From: ... Sent: ...``), then drops every line that starts with ``>``.
    Bottom-posted or interleaved (the history first, ``>``-quoted): drops the attribution
    and the quoted lines and keeps what was written below them. When nothing would be
    left, the text is kept as it was.
    """
    tidy = _tidy(text)
    lines = tidy.split("\n")
    start = _history_start(lines)
    above = lines[:start] if start is not None else lines
    result = _tidy("\n".join(line for line in above if not _quoted(line)))
    # Nothing new above the history: a bottom-posted reply answers below the quote. Only
    # under an attribution and ``>`` quotes: an unquoted original (Outlook's) has no visible end.
    if not result.strip() and start is not None and _ATTRIBUTION_START.match(lines[start]):
        below = lines[start + 1 :]
        if below and not _ATTRIBUTION.match(lines[start]):
            below = below[1:]  # the attribution's second line ("<jane@example.com> wrote:")
        result = _tidy("\n".join(line for line in below if not _quoted(line)))
    return result if result.strip() else tidy


# --------------------------------------------------------------------------- #
# Addresses and thread headers
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class Mailbox:
    #: As written (case kept): a plus tag or the domain may matter to the caller.
    address: str
    display_name: str | None = None


def _mailboxes(message: EmailMessage, name: str) -> list[Mailbox]:
    found: list[Mailbox] = []
    for header in message.get_all(name, []):
        pairs: list[tuple[str, str]]
        try:
            if hasattr(header, "addresses"):
                pairs = [(a.display_name or "", a.addr_spec or "") for a in header.addresses]
            else:  # not an address header for the policy (Delivered-To)
                pairs = getaddresses([str(header)])
        except (IndexError, ValueError, TypeError):
            continue
        for display_name, raw_spec in pairs:
            spec = raw_spec.strip()
            if "@" in spec and not spec.startswith("@"):
                found.append(Mailbox(spec, display_name.strip() or None))
    return found


def _header(message: EmailMessage, name: str) -> str:
    try:
        value = message.get(name)
    except (IndexError, ValueError, TypeError):
        return ""
    return re.sub(r"\s+", " ", str(value)).strip() if value is not None else ""


def message_ids(value: str) -> list[str]:
    """The ids in a Message-ID/In-Reply-To/References header, without angle brackets."""
    found = re.findall(r"<([^<>\s]+)>", value)
    if not found:
        found = [word.strip("<>") for word in value.split() if "@" in word]
    return [item for item in found if item]


def thread_ids(
    in_reply_to: Sequence[str], references: Sequence[str], limit: int = MAX_THREAD_IDS
) -> list[str]:
    """The Message-IDs a reply points at, most specific first: In-Reply-To, then References newest first."""
    ordered = list(dict.fromkeys([*in_reply_to, *reversed(references)]))
    return ordered[:limit]


def provider_id_candidates(message_id: str) -> list[str]:
    """How the delivery log may hold the provider id of a mail we sent with this Message-ID.

    SES sends ``Message-ID: <SES-message-id@<region>.amazonses.com>`` and its API
    answers with the bare SES message id; other senders' ids are stored whole.
    """
    bare = message_id.strip().strip("<>")
    if not bare or len(bare) > 200:
        return []
    candidates = [bare, f"<{bare}>"]
    local, _, domain = bare.rpartition("@")
    if local and domain.lower().endswith("amazonses.com"):
        candidates.insert(0, local)
    return candidates


def split_plus_address(address: str) -> tuple[str, str | None]:
    """``support+tag@example.com`` -> ``("support@example.com", "tag")``."""
    local, at, domain = address.rpartition("@")
    if not at:
        return address, None
    base, plus, tag = local.partition("+")
    return (f"{base}@{domain}", tag) if plus else (address, None)


def reply_token(addresses: Iterable[str]) -> str | None:
    """The conversation id carried as a plus tag by one of ``addresses`` (``support+conv_...@``)."""
    for address in addresses:
        _, tag = split_plus_address(address.strip())
        if tag and _REPLY_TOKEN.match(tag.lower()):
            return tag.lower()
    return None


#: The plus tag notify puts into ``List-Unsubscribe`` (``<mailbox>+unsubscribe-<customer id>@``).
UNSUBSCRIBE_TAG_PREFIX = "unsubscribe-"


def unsubscribe_requested(addresses: Iterable[str]) -> bool:
    """Whether the mail went to our ``List-Unsubscribe`` address (a mail client's unsubscribe)."""
    for address in addresses:
        _, tag = split_plus_address(address.strip())
        if tag and tag.lower().startswith(UNSUBSCRIBE_TAG_PREFIX):
            return True
    return False


# --------------------------------------------------------------------------- #
# Automatic mail (RFC 3834) and bounces (RFC 3464)
# --------------------------------------------------------------------------- #
#: ``bounce``: a delivery failure report; ``auto_reply``: an out-of-office or other automatic
#: answer; ``auto_generated``: any other machine-sent mail; ``list``: bulk or mailing-list mail.
Automated = Literal["bounce", "auto_reply", "auto_generated", "list"]
#: Senders that are mail systems, not people (RFC 5321 postmaster, the MTAs' bounce sender).
_SYSTEM_SENDERS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})
#: What the common non-standard bounces (Postfix, qmail, Exchange, Gmail, Exim) say in the subject.
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery status notification|delivery (?:has )?fail|failure notice"
    r"|returned mail|mail delivery failed|could not be delivered|unzustellbar|nicht zustellbar"
    r"|unzustellbare|non remis|no se puede entregar",
    re.IGNORECASE,
)
_BULK_PRECEDENCE = frozenset({"bulk", "junk", "list"})
#: ``Message-ID:`` / ``X-Omni-Notification:`` lines of an original quoted in a bounce's text.
_QUOTED_MESSAGE_ID = re.compile(r"^[ \t>]*Message-ID:[ \t]*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
_QUOTED_NOTIFICATION = re.compile(r"^[ \t>]*X-Omni-Notification:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)
_ORIGINAL_TYPES = ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers")
MAX_BOUNCE_IDS = 5


@dataclass(frozen=True)
class Bounce:
    """What a bounce says about the mail that could not be delivered."""

    #: The addresses that failed: ``Final-Recipient`` (else ``Original-Recipient``) of the DSN's
    #: failed recipients, else ``X-Failed-Recipients``, else the returned original's ``To``.
    recipients: tuple[str, ...]
    #: The original's Message-ID (returned headers or quoted text), then In-Reply-To/References.
    message_ids: tuple[str, ...]
    #: The original's ``X-Omni-Notification`` (the idempotency key notify put on it).
    notification_keys: tuple[str, ...]
    #: The DSN's ``Status`` (``5.1.1``), when it has one.
    status: str | None
    #: The DSN's ``Diagnostic-Code``, shortened.
    diagnostic: str | None
    #: A failure (``Action: failed``, a 5.x.x status, or a non-standard bounce); False for a
    #: ``delayed``/``delivered``/``relayed`` report, which changes nothing.
    failed: bool

    @property
    def error_code(self) -> str:
        return f"bounce:{self.status}" if self.status else "bounce"


def _local_part(address: str) -> str:
    return address.rpartition("@")[0].lower()


def _is_report(message: EmailMessage) -> bool:
    return (
        message.get_content_type() == "multipart/report"
        and str(message.get_param("report-type", "", header="content-type")).lower() == "delivery-status"
    )


def _has_original(message: EmailMessage) -> bool:
    return any(part.get_content_type() in _ORIGINAL_TYPES for part in _parts(message))


def classify(message: EmailMessage, senders: Sequence[Mailbox] = ()) -> tuple[Automated | None, str | None]:
    """Whether a machine sent the mail, and which header says so (RFC 3834 section 2 and 3).

    No automatic answer ever goes to such a mail: answering an auto-reply or a bounce is
    how two systems start a mail loop.
    """
    senders = senders or tuple(_mailboxes(message, "From"))
    sender_local = _local_part(senders[0].address) if senders else ""
    return_path = _header(message, "Return-Path")
    empty_return_path = return_path.replace(" ", "") == "<>"
    system_sender = sender_local in _SYSTEM_SENDERS
    if _is_report(message):
        return "bounce", "multipart/report; report-type=delivery-status"
    if _header(message, "X-Failed-Recipients"):
        return "bounce", "X-Failed-Recipients"
    if (system_sender or empty_return_path) and (
        _has_original(message) or _BOUNCE_SUBJECT.search(_header(message, "Subject"))
    ):
        return "bounce", "mailer-daemon" if system_sender else "Return-Path: <>"
    auto_submitted = _header(message, "Auto-Submitted").lower()
    keyword = auto_submitted.split(";", 1)[0].strip()
    if keyword == "auto-replied":
        return "auto_reply", "Auto-Submitted"
    for name in ("X-Autoreply", "X-Autorespond"):
        if _header(message, name):
            return "auto_reply", name
    if keyword and keyword != "no":
        return "auto_generated", "Auto-Submitted"
    if empty_return_path:
        return "auto_generated", "Return-Path: <>"
    if system_sender:
        return "auto_generated", sender_local
    if _header(message, "Precedence").lower() in _BULK_PRECEDENCE:
        return "list", "Precedence"
    if _header(message, "List-Id"):
        return "list", "List-Id"
    return None, None


def _original(message: EmailMessage) -> EmailMessage | None:
    """The returned original (its headers at least), if the bounce carries it."""
    for part in _parts(message):
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            if isinstance(inner, EmailMessage):
                return inner
        elif kind in ("text/rfc822-headers", "message/rfc822-headers"):
            headers = _text_of(part) if kind.startswith("text/") else part.as_string().split("\n\n", 1)[-1]
            parsed = BytesParser(policy=policy.default).parsebytes(
                headers.encode("utf-8", "replace"), headersonly=True
            )
            if isinstance(parsed, EmailMessage):
                return parsed
    return None


def _dsn_fields(message: EmailMessage) -> list[dict[str, str]]:
    """The per-recipient blocks of the ``message/delivery-status`` part."""
    blocks: list[dict[str, str]] = []
    for part in _parts(message):
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        for block in payload if isinstance(payload, list) else []:
            if isinstance(block, str):
                continue
            fields = {str(k).lower(): re.sub(r"\s+", " ", str(v)).strip() for k, v in block.items()}
            if "final-recipient" in fields or "original-recipient" in fields:
                blocks.append(fields)
    return blocks


def _dsn_address(value: str) -> str:
    """``rfc822; jane@example.com`` -> ``jane@example.com``."""
    address = value.partition(";")[2] if ";" in value else value
    return address.strip().strip("<>").strip()


def bounce_report(message: EmailMessage, text: str = "") -> Bounce:
    """Read a bounce: the DSN's recipient blocks (RFC 3464), the returned original, or what a
    non-standard bounce quotes of it in its text."""
    blocks = _dsn_fields(message)
    failed_blocks = [
        b for b in blocks if b.get("action", "").lower() == "failed" or b.get("status", "").startswith("5")
    ]
    chosen = failed_blocks or blocks
    recipients = [_dsn_address(b.get("final-recipient") or b.get("original-recipient") or "") for b in chosen]
    if not recipients:
        recipients = [a.strip() for a in _header(message, "X-Failed-Recipients").split(",")]
    original = _original(message)
    if not [r for r in recipients if "@" in r] and original is not None:
        recipients = [m.address for m in _mailboxes(original, "To")]
    ids: list[str] = []
    keys: list[str] = []
    if original is not None:
        ids += message_ids(_header(original, "Message-ID"))
        keys += [k for k in [_header(original, "X-Omni-Notification")] if k]
    body = text or ""
    ids += [m.strip("<>") for m in _QUOTED_MESSAGE_ID.findall(body)]
    keys += _QUOTED_NOTIFICATION.findall(body)
    ids += message_ids(_header(message, "In-Reply-To"))
    ids += list(reversed(message_ids(_header(message, "References"))))
    status = next((b["status"] for b in chosen if b.get("status")), None)
    diagnostic = next((b["diagnostic-code"] for b in chosen if b.get("diagnostic-code")), None)
    return Bounce(
        recipients=tuple(dict.fromkeys(r for r in recipients if "@" in r))[:MAX_BOUNCE_IDS],
        message_ids=tuple(dict.fromkeys(i for i in ids if i))[:MAX_BOUNCE_IDS],
        notification_keys=tuple(dict.fromkeys(k[:300] for k in keys))[:MAX_BOUNCE_IDS],
        status=status[:20] if status else None,
        diagnostic=diagnostic[:300] if diagnostic else None,
        failed=bool(failed_blocks) or not blocks,
    )


# --------------------------------------------------------------------------- #
# The raw mail
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class AttachmentInfo:
    #: Position of the MIME part in depth-first order (0 is the whole message).
    part: int
    content_type: str
    filename: str | None
    size: int


@dataclass(frozen=True)
class ParsedEmail:
    #: The From header's mailboxes (one, normally).
    senders: tuple[Mailbox, ...]
    return_path: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    delivered_to: tuple[str, ...]
    subject: str
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    date: str
    #: What the customer wrote: the body without the quoted history.
    text: str
    #: ``plain``, ``html`` or ``none``: where the text came from.
    body_format: str
    attachments: tuple[AttachmentInfo, ...] = ()
    #: ``Auto-Submitted`` header (auto-replies, bounces), when present and not ``no``.
    auto_submitted: str | None = None
    defects: int = 0
    #: Sent by a machine (see :func:`classify`): ``bounce``, ``auto_reply``, ``auto_generated``,
    #: ``list``; None for a person's mail.
    automated: Automated | None = None
    #: The header or part that made it automatic (for the logs).
    automated_by: str | None = None
    #: What a bounce says about the mail that failed (``automated == "bounce"`` only).
    bounce: Bounce | None = None
    #: The body before the quoted history was removed (``text`` is the new part).
    full_text: str = ""
    #: The signing domains (``d=``) of the ``DKIM-Signature`` headers, in order, each once.
    dkim_domains: tuple[str, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)


def _parts(part: EmailMessage) -> Iterator[EmailMessage]:
    """Depth-first, without descending into attached messages (message/rfc822 is one part)."""
    yield part
    if part.get_content_maintype() == "multipart":
        for sub in part.iter_parts():
            yield from _parts(sub)  # type: ignore[arg-type]


def _text_of(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, ValueError, AssertionError):
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else ""


def _size_of(part: EmailMessage) -> int:
    try:
        if part.get_content_maintype() == "message":
            return len(part.as_bytes())
        payload = part.get_payload(decode=True)
    except (LookupError, UnicodeError, ValueError, TypeError):
        return 0
    return len(payload) if isinstance(payload, bytes) else 0


def _is_attachment(part: EmailMessage) -> bool:
    if part.get_content_maintype() == "multipart":
        return False
    if part.get_content_disposition() == "attachment" or part.get_filename():
        return True
    # An unnamed text/plain or text/html part is an alternative of the body, not a file.
    return part.get_content_type() not in ("text/plain", "text/html")


def parse_email(raw: bytes) -> ParsedEmail:
    """Read a raw RFC 5322 message; raises :class:`UnparseableEmail` when it is none."""
    if not raw or not raw.strip():
        raise UnparseableEmail("the raw mail is empty")
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as exc:  # the parser is lenient; anything it still raises means "not a mail"
        raise UnparseableEmail(f"the raw mail cannot be parsed: {type(exc).__name__}") from exc
    if not isinstance(message, EmailMessage) or not message.keys():
        raise UnparseableEmail("the raw mail has no header section")
    try:
        return _read(message)
    except UnparseableEmail:
        raise
    except Exception as exc:
        raise UnparseableEmail(f"the raw mail cannot be read: {type(exc).__name__}: {exc}") from exc


def _body(message: EmailMessage) -> tuple[EmailMessage | None, str, str]:
    """The body part, its text, and whether it was ``plain``, ``html`` or ``none``."""
    try:
        part = message.get_body(preferencelist=("plain", "html"))
    except (LookupError, ValueError, TypeError, AttributeError):
        part = None  # a mangled structure: the sender and attachments are still worth having
    if part is None:
        return None, "", "none"
    content = _text_of(part)  # type: ignore[arg-type]
    if part.get_content_subtype() == "html":
        return part, html_to_text(content), "html"  # type: ignore[return-value]
    return part, _tidy(content), "plain"  # type: ignore[return-value]


def _attachments(message: EmailMessage, body_part: EmailMessage | None) -> tuple[list[AttachmentInfo], int]:
    attachments: list[AttachmentInfo] = []
    defects = len(message.defects)
    for index, part in enumerate(_parts(message)):
        if part is not message:
            defects += len(part.defects)
        if part is body_part:
            continue
        try:
            if not _is_attachment(part):
                continue
            filename = part.get_filename() or None
        except (LookupError, ValueError, TypeError, AttributeError):
            defects += 1
            continue
        attachments.append(
            AttachmentInfo(
                part=index,
                content_type=part.get_content_type()[:100],
                filename=filename,
                size=_size_of(part),
            )
        )
    return attachments, defects


def _read(message: EmailMessage) -> ParsedEmail:
    body_part, text, body_format = _body(message)
    senders = tuple(_mailboxes(message, "From"))
    automated, automated_by = classify(message, senders)
    bounce = bounce_report(message, text) if automated == "bounce" else None
    attachments, defects = _attachments(message, body_part)
    return_path = next(iter(message_ids(_header(message, "Return-Path"))), None)
    auto_submitted = _header(message, "Auto-Submitted")
    return ParsedEmail(
        senders=senders,
        return_path=return_path if return_path and "@" in return_path else None,
        to=tuple(m.address for m in _mailboxes(message, "To")),
        cc=tuple(m.address for m in _mailboxes(message, "Cc")),
        delivered_to=tuple(m.address for m in _mailboxes(message, "Delivered-To")),
        subject=_header(message, "Subject"),
        message_id=next(iter(message_ids(_header(message, "Message-ID"))), None),
        in_reply_to=tuple(message_ids(_header(message, "In-Reply-To"))),
        references=tuple(message_ids(_header(message, "References"))),
        date=_header(message, "Date"),
        text=strip_quoted(text) if text else "",
        body_format=body_format,
        attachments=tuple(attachments),
        auto_submitted=auto_submitted if auto_submitted and auto_submitted.lower() != "no" else None,
        defects=defects,
        automated=automated,
        automated_by=automated_by,
        bounce=bounce,
        full_text=text,
        dkim_domains=_dkim_domains(message),
    )


#: DKIM-Signature headers read for their ``d=`` tag (a mail carries one to three, normally).
MAX_DKIM_SIGNATURES = 10


def _dkim_domains(message: EmailMessage) -> tuple[str, ...]:
    """The signing domains; none when the headers cannot be read (the sender then stays claimed)."""
    try:
        headers = message.get_all("DKIM-Signature", [])
        found = [dkim_signing_domain(str(value)) for value in headers[:MAX_DKIM_SIGNATURES]]
    except (IndexError, ValueError, TypeError, AttributeError, LookupError):
        return ()
    return tuple(dict.fromkeys(domain[:253] for domain in found if domain))


# --------------------------------------------------------------------------- #
# The canonical message
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class Verdicts:
    """SES's checks of the message (``receipt.*Verdict.status`` and ``receipt.dmarcPolicy``)."""

    spf: str = MISSING
    dkim: str = MISSING
    dmarc: str = MISSING
    spam: str = MISSING
    virus: str = MISSING
    #: The sending domain's DMARC policy; SES includes it only when DMARC failed.
    dmarc_policy: str | None = None

    @property
    def sender_verified(self) -> bool:
        """DMARC passed: SPF or DKIM passed for a domain aligned with the From domain.

        The whole rule (DMARC ``GRAY`` with an aligned DKIM or SPF pass counts too) needs
        the message's alignment evidence: :func:`authenticate` /
        :func:`shared.domain.sender_auth.authenticate_sender`.
        """
        return self.dmarc == "PASS"

    def as_metadata(self) -> dict[str, str]:
        found = {
            "spf": self.spf,
            "dkim": self.dkim,
            "dmarc": self.dmarc,
            "spam": self.spam,
            "virus": self.virus,
        }
        if self.dmarc_policy:
            found["dmarc_policy"] = self.dmarc_policy
        return found


@dataclass(frozen=True)
class Receipt:
    """What SES says about one received mail (the event's ``mail`` and ``receipt``)."""

    ses_message_id: str
    #: ``mail.timestamp``: when SES received it; the message's provider timestamp.
    timestamp: datetime
    #: ``receipt.recipients``: our addresses the receipt rule matched (envelope RCPT TO).
    recipients: tuple[str, ...]
    #: ``mail.source``: the envelope MAIL FROM.
    envelope_from: str
    verdicts: Verdicts
    bucket: str
    key: str


def authenticate(parsed: ParsedEmail, receipt: Receipt) -> SenderAuthentication:
    """Whether the (single) From address is proven by SES's verdicts and the message's alignment."""
    if len(parsed.senders) != 1:
        # None, or several From mailboxes: no check can vouch for one of them in particular.
        return SenderAuthentication(False, None, f"{len(parsed.senders)} From mailboxes")
    verdicts = receipt.verdicts
    return authenticate_sender(
        parsed.senders[0].address,
        dmarc=verdicts.dmarc,
        dkim=verdicts.dkim,
        spf=verdicts.spf,
        dkim_domains=parsed.dkim_domains,
        envelope_senders=(receipt.envelope_from, parsed.return_path),
    )


def _sender(parsed: ParsedEmail, receipt: Receipt) -> tuple[Identity, str | None, str]:
    """The sender identity, display name, and where the address came from."""
    if parsed.senders:
        first = parsed.senders[0]
        try:
            value = normalise_email(first.address)
        except InvalidIdentity:
            pass
        else:
            verified = authenticate(parsed, receipt).verified
            return Identity(type="email", value=value, verified=verified), first.display_name, "from"
    for fallback in (parsed.return_path, receipt.envelope_from):
        if fallback:
            try:
                value = normalise_email(fallback)
            except InvalidIdentity:
                continue
            return Identity(type="email", value=value, verified=False), None, "envelope"
    raise UnparseableEmail("the mail has no usable sender address (From, Return-Path, envelope)")


def our_addresses(parsed: ParsedEmail, receipt: Receipt) -> list[str]:
    """Our addresses the mail was sent to: the rule's recipients, else its To/Cc/Delivered-To."""
    if receipt.recipients:
        return list(receipt.recipients)
    return list(dict.fromkeys([*parsed.delivered_to, *parsed.to, *parsed.cc]))


def _clip(value: str, limit: int = MAX_METADATA_CHARS) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def inbound_message(
    parsed: ParsedEmail,
    receipt: Receipt,
    received_at: datetime,
    conversation_hint: str | None = None,
    threaded_by: str | None = None,
) -> MessageReceived:
    """The canonical ``message.received`` of one mail; the same mail always gives the same one
    (apart from ``received_at``), so a redelivery is recorded once downstream.

    A mail to our ``List-Unsubscribe`` address is an opt-out of e-mail for the customer the
    sender resolves to (only a verified sender reaches an existing customer).
    """
    sender, display_name, sender_source = _sender(parsed, receipt)
    ours = our_addresses(parsed, receipt)
    unsubscribe = unsubscribe_requested(ours)
    recipient = None
    for address in ours:
        try:
            recipient = normalise_email(split_plus_address(address)[0])
            break
        except InvalidIdentity:
            continue
    text = parsed.text or parsed.subject
    metadata = {
        "subject": _clip(parsed.subject),
        **receipt.verdicts.as_metadata(),
        "sender_source": sender_source,
        "sender_auth": _clip(authenticate(parsed, receipt).reason, 200),
        "body_format": parsed.body_format,
        "raw": _clip(f"s3://{receipt.bucket}/{receipt.key}", 2048),
    }
    if len(text) > MAX_TEXT_CHARS:
        text = text[: MAX_TEXT_CHARS - 1] + "…"
        metadata["text_truncated"] = "true"
    optional = {
        "message_id": parsed.message_id,
        "in_reply_to": " ".join(parsed.in_reply_to),
        "references": " ".join(parsed.references),
        "date": parsed.date,
        "auto_submitted": parsed.auto_submitted,
        "threaded_by": threaded_by if conversation_hint else None,
        "automated_by": parsed.automated_by,
    }
    metadata.update({key: _clip(value) for key, value in optional.items() if value})
    if len(parsed.attachments) > MAX_ATTACHMENTS:
        metadata["attachments_listed"] = f"{MAX_ATTACHMENTS} of {len(parsed.attachments)}"
    attachments = tuple(
        Attachment(
            type=info.content_type,
            url=f"s3://{receipt.bucket}/{receipt.key}#part-{info.part}",
            size=info.size,
            name=info.filename,
        )
        for info in parsed.attachments[:MAX_ATTACHMENTS]
    )
    if parsed.full_text and parsed.full_text != parsed.text:
        # The quoted history was cut from the text: the whole mail stays one click away.
        metadata["quoted_text_removed"] = "true"
        whole = Attachment(
            type="message/rfc822",
            url=_clip(f"s3://{receipt.bucket}/{receipt.key}", 2048),
            name=FULL_MESSAGE_NAME,
        )
        attachments = (*attachments, whole)
    return MessageReceived(
        kind="consent" if unsubscribe else "message",
        keyword="opt_out" if unsubscribe else None,
        channel=CHANNEL,
        provider=PROVIDER,
        provider_message_id=receipt.ses_message_id,
        sender=sender,
        display_name=display_name[:MAX_DISPLAY_NAME_CHARS] if display_name else None,
        recipient=recipient,
        text=text,
        attachments=attachments,
        sent_at=receipt.timestamp,
        received_at=received_at,
        conversation_hint=conversation_hint,
        metadata=metadata,
        automated=parsed.automated,
    )
