"""Amazon SES receiving, emulated: the receipt rule's S3 action, then its Lambda action.

``POST /_local/email/<function>`` is a control route of the local runtime (local only,
not part of the API the topology declares). Its body is a raw RFC 5322 message
(``Content-Type: message/rfc822``) and it does what SES does with a mail its receipt
rule matches:

1. the S3 action: the mail, with the headers SES puts on top (``Return-Path``,
   ``Received``, ``X-SES-Spam-Verdict``, ``X-SES-Virus-Verdict``, ``Received-SPF``,
   ``Authentication-Results``), is stored in the function's bucket under the trigger's
   prefix, named by a new SES-style message id;
2. the Lambda action: the function is invoked asynchronously (invocation type
   ``Event``) with the event SES sends (``Records[].ses.mail`` and ``.receipt``, in the
   shape the SES developer guide documents); a failed invocation is retried twice, like
   Lambda's asynchronous invocation, after the local retry delay
   (``$OMNI_LOCAL_RETRY_DELAY``, 1 s) instead of Lambda's minutes.

The answer is ``202 {"function", "messageId", "bucket", "key"}`` as soon as the mail is
stored; :meth:`omni.local.runtime.LocalRuntime.wait_idle` waits for the delivery.

Local differences: SES checks SPF, DKIM and DMARC and scans for spam and viruses;
locally every verdict is ``PASS`` unless the query says otherwise (``spf``, ``dkim``,
``dmarc``, ``spam``, ``virus`` = ``PASS|FAIL|GRAY|PROCESSING_FAILED|DISABLED``;
``dmarc_policy`` = ``none|quarantine|reject``, sent when DMARC failed). The rule's
recipients are the message's To and Cc addresses unless ``to`` parameters name them;
no recipient filter applies.

A JSON body ``{"key": "...", "bucket": "..."}`` delivers a mail already in the bucket:
a key under the prefix keeps its message id and, when this runtime received it, its
exact event (SES retrying the same mail: it must be recorded once); any other key is
received as a new mail.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

from botocore.exceptions import ClientError

from omni.local.http import LocalRequest, LocalResponse
from omni.local.invoker import Invoker
from omni.local.pollers import default_retry_delay
from omni.local.provision import physical_name
from topology import Function, PhysicalNames, Topology

logger = logging.getLogger("omni.local.email")

CONTROL_PREFIX = "/_local/email"
#: Lambda's asynchronous invocation: the first attempt and two retries.
ASYNC_ATTEMPTS = 3
VERDICT_NAMES = ("spf", "dkim", "dmarc", "spam", "virus")
VERDICT_STATUSES = frozenset({"PASS", "FAIL", "GRAY", "PROCESSING_FAILED", "DISABLED"})
DMARC_POLICIES = frozenset({"none", "quarantine", "reject"})
#: SES truncates the event's header list beyond this size (``headersTruncated``).
MAX_EVENT_HEADER_BYTES = 10 * 1024
#: Events kept for redelivery of the same message id.
_EVENT_CACHE_SIZE = 1000
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


class EmailRequestError(ValueError):
    """A control request we refuse; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class EmailTrigger:
    function: Function
    #: The physical bucket name.
    bucket: str
    prefix: str


@dataclass(frozen=True)
class ReceivedEmail:
    function: str
    message_id: str
    bucket: str
    key: str

    def as_json(self) -> dict[str, str]:
        return {
            "function": self.function,
            "messageId": self.message_id,
            "bucket": self.bucket,
            "key": self.key,
        }


# --------------------------------------------------------------------------- #
# What SES writes and sends
# --------------------------------------------------------------------------- #
def new_message_id() -> str:
    """An id shaped like SES's receiving message ids (40 lower-case letters and digits)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(40))


def iso_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def check_verdicts(values: Mapping[str, str]) -> dict[str, str]:
    """Every verdict, ``PASS`` unless ``values`` names another status."""
    verdicts = dict.fromkeys(VERDICT_NAMES, "PASS")
    for name, value in values.items():
        if name not in verdicts:
            raise EmailRequestError(400, f"unknown verdict {name!r}; one of {', '.join(VERDICT_NAMES)}")
        status = value.strip().upper()
        if status not in VERDICT_STATUSES:
            raise EmailRequestError(400, f"{name}={value!r}: one of {', '.join(sorted(VERDICT_STATUSES))}")
        verdicts[name] = status
    return verdicts


def _parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    if not isinstance(message, EmailMessage):  # pragma: no cover - policy.default makes EmailMessages
        raise EmailRequestError(400, "the body is not an e-mail message")
    return message


def _addresses(message: EmailMessage, name: str) -> list[str]:
    found: list[str] = []
    for header in message.get_all(name, []):
        try:
            found.extend(address.addr_spec for address in header.addresses if address.addr_spec)
        except (AttributeError, IndexError, ValueError, TypeError):
            continue
    return found


def _formatted(message: EmailMessage, name: str) -> list[str]:
    found: list[str] = []
    for header in message.get_all(name, []):
        try:
            found.extend(str(address) for address in header.addresses)
        except (AttributeError, IndexError, ValueError, TypeError):
            found.append(str(header))
    return found


def envelope_from(message: EmailMessage) -> str:
    """The MAIL FROM a sending server would use: the Return-Path, else the From address."""
    return_path = re.findall(r"<([^<>\s]+)>", str(message.get("Return-Path", "")))
    if return_path:
        return return_path[0]
    senders = _addresses(message, "From")
    return senders[0] if senders else ""


def default_recipients(message: EmailMessage) -> list[str]:
    return list(dict.fromkeys(_addresses(message, "To") + _addresses(message, "Cc")))


def ses_added_headers(
    message: EmailMessage,
    *,
    message_id: str,
    received_at: datetime,
    recipients: Sequence[str],
    verdicts: Mapping[str, str],
    region: str,
) -> list[tuple[str, str]]:
    """The headers SES puts above a received mail before storing it."""
    source = envelope_from(message)
    senders = _addresses(message, "From")
    from_domain = senders[0].rpartition("@")[2] if senders else "unknown"
    added: list[tuple[str, str]] = []
    if message.get("Return-Path") is None:
        added.append(("Return-Path", f"<{source}>"))
    added += [
        (
            "Received",
            f"from omni-local by inbound-smtp.{region}.amazonaws.com with SMTP id {message_id} "
            f"for {recipients[0] if recipients else 'unknown'}; {format_datetime(received_at)}",
        ),
        ("X-SES-Spam-Verdict", verdicts["spam"]),
        ("X-SES-Virus-Verdict", verdicts["virus"]),
        ("Received-SPF", f"{verdicts['spf'].lower()} (omni local: verdict of the request)"),
        (
            "Authentication-Results",
            f"amazonses.com; spf={verdicts['spf'].lower()}; dkim={verdicts['dkim'].lower()}; "
            f"dmarc={verdicts['dmarc'].lower()} header.from={from_domain};",
        ),
    ]
    return added


def stored_mail(raw: bytes, added: Sequence[tuple[str, str]]) -> bytes:
    """``raw`` with ``added`` on top, in the message's own line endings."""
    first_line = raw.split(b"\n", 1)[0]
    newline = b"\r\n" if first_line.endswith(b"\r") else b"\n"
    top = b"".join(f"{name}: {value}".encode() + newline for name, value in added)
    return top + raw


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", value)


def common_headers(message: EmailMessage, source: str) -> dict[str, Any]:
    common: dict[str, Any] = {"returnPath": source}
    for key, name in (("from", "From"), ("sender", "Sender"), ("replyTo", "Reply-To")):
        if message.get(name) is not None:
            common[key] = _formatted(message, name)
    common["date"] = str(message.get("Date") or format_datetime(datetime.now(UTC)))
    for key, name in (("to", "To"), ("cc", "Cc"), ("bcc", "Bcc")):
        if message.get(name) is not None:
            common[key] = _formatted(message, name)
    if message.get("Message-ID") is not None:
        common["messageId"] = str(message["Message-ID"]).strip()
    if message.get("Subject") is not None:
        common["subject"] = str(message["Subject"])
    return common


def lambda_action_event(
    stored: bytes,
    *,
    message_id: str,
    received_at: datetime,
    function_arn: str,
    recipients: Sequence[str],
    verdicts: Mapping[str, str],
    dmarc_policy: str | None = None,
) -> dict[str, Any]:
    """The event SES's Lambda action sends for the stored mail (everything but the body)."""
    message = _parse(stored)
    source = envelope_from(message)
    headers: list[dict[str, str]] = []
    size, truncated = 0, False
    for name, value in message.raw_items():
        entry = {"name": name, "value": _unfold(str(value)).strip()}
        size += len(entry["name"]) + len(entry["value"])
        if size > MAX_EVENT_HEADER_BYTES:
            truncated = True
            break
        headers.append(entry)
    timestamp = iso_timestamp(received_at)
    receipt: dict[str, Any] = {
        "timestamp": timestamp,
        "processingTimeMillis": 1,
        "recipients": list(recipients),
        "spamVerdict": {"status": verdicts["spam"]},
        "virusVerdict": {"status": verdicts["virus"]},
        "spfVerdict": {"status": verdicts["spf"]},
        "dkimVerdict": {"status": verdicts["dkim"]},
        "dmarcVerdict": {"status": verdicts["dmarc"]},
    }
    if verdicts["dmarc"] == "FAIL":
        receipt["dmarcPolicy"] = dmarc_policy or "none"
    receipt["action"] = {"type": "Lambda", "functionArn": function_arn, "invocationType": "Event"}
    return {
        "Records": [
            {
                "eventSource": "aws:ses",
                "eventVersion": "1.0",
                "ses": {
                    "mail": {
                        "timestamp": timestamp,
                        "source": source,
                        "messageId": message_id,
                        "destination": default_recipients(message),
                        "headersTruncated": truncated,
                        "headers": headers,
                        "commonHeaders": common_headers(message, source),
                    },
                    "receipt": receipt,
                },
            }
        ]
    }


# --------------------------------------------------------------------------- #
# The emulated service
# --------------------------------------------------------------------------- #
class SesReceiving:
    """The receipt rules of the topology's e-mail functions, and their control route."""

    def __init__(
        self,
        topology: Topology,
        physical: PhysicalNames,
        *,
        s3: Any,
        invoker: Invoker,
        region: str,
        account_id: str,
        stage: str,
        retry_delay_s: float | None = None,
    ) -> None:
        self.triggers: dict[str, EmailTrigger] = {
            fn.name: EmailTrigger(fn, physical[("bucket", fn.email.bucket)], fn.email.prefix)
            for fn in topology.functions
            if fn.email is not None
        }
        self.s3 = s3
        self.invoker = invoker
        self.region = region
        self.account_id = account_id
        self.stage = stage
        self.retry_delay_s = default_retry_delay() if retry_delay_s is None else max(0.0, retry_delay_s)
        self.delivered = 0
        self.dropped = 0
        self._events: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._state = threading.Condition()
        self._pending = 0
        self._threads: set[threading.Thread] = set()
        self._stop = threading.Event()

    @property
    def pending(self) -> int:
        """Deliveries not finished yet (invoking, or waiting to retry)."""
        with self._state:
            return self._pending

    def trigger(self, function: str | None = None) -> EmailTrigger:
        if function is None:
            if len(self.triggers) != 1:
                raise EmailRequestError(400, f"name the function: one of {', '.join(sorted(self.triggers))}")
            return next(iter(self.triggers.values()))
        try:
            return self.triggers[function]
        except KeyError:
            raise EmailRequestError(404, f"function {function!r} does not receive e-mail") from None

    def function_arn(self, fn: Function) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{physical_name(self.stage, fn.name)}"

    # ------------------------------------------------------------------ #
    def receive(
        self,
        raw: bytes,
        *,
        function: str | None = None,
        verdicts: Mapping[str, str] | None = None,
        recipients: Sequence[str] | None = None,
        dmarc_policy: str | None = None,
    ) -> ReceivedEmail:
        """Store a new mail (S3 action) and invoke its function asynchronously (Lambda action)."""
        trigger = self.trigger(function)
        if not raw.strip():
            raise EmailRequestError(400, "the message is empty")
        checked = check_verdicts(verdicts or {})
        if dmarc_policy is not None and dmarc_policy not in DMARC_POLICIES:
            raise EmailRequestError(400, f"dmarc_policy: one of {', '.join(sorted(DMARC_POLICIES))}")
        message = _parse(raw)
        rcpt = list(recipients) if recipients else default_recipients(message)
        if not rcpt:
            raise EmailRequestError(400, "the message has no recipient (To, Cc, or a 'to' parameter)")
        message_id = new_message_id()
        received_at = datetime.now(UTC)
        stored = stored_mail(
            raw,
            ses_added_headers(
                message,
                message_id=message_id,
                received_at=received_at,
                recipients=rcpt,
                verdicts=checked,
                region=self.region,
            ),
        )
        key = f"{trigger.prefix}{message_id}"
        self.s3.put_object(Bucket=trigger.bucket, Key=key, Body=stored)
        event = lambda_action_event(
            stored,
            message_id=message_id,
            received_at=received_at,
            function_arn=self.function_arn(trigger.function),
            recipients=rcpt,
            verdicts=checked,
            dmarc_policy=dmarc_policy,
        )
        self._remember(trigger.function.name, message_id, event)
        self._deliver(trigger.function, message_id, event)
        return ReceivedEmail(trigger.function.name, message_id, trigger.bucket, key)

    def redeliver(
        self,
        key: str,
        *,
        function: str | None = None,
        bucket: str | None = None,
        verdicts: Mapping[str, str] | None = None,
        recipients: Sequence[str] | None = None,
    ) -> ReceivedEmail:
        """Deliver a mail already in the bucket; a key under the prefix keeps its message id."""
        trigger = self.trigger(function)
        if bucket is not None and bucket != trigger.bucket:
            raise EmailRequestError(400, f"{trigger.function.name} receives into bucket {trigger.bucket!r}")
        try:
            found = self.s3.get_object(Bucket=trigger.bucket, Key=key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in {"NoSuchKey", "404", "NotFound"}:
                raise EmailRequestError(404, f"no object {key!r} in {trigger.bucket}") from None
            raise
        raw = found["Body"].read()
        message_id = key[len(trigger.prefix) :] if key.startswith(trigger.prefix) else ""
        if not message_id or "/" in message_id:
            return self.receive(raw, function=trigger.function.name, verdicts=verdicts, recipients=recipients)
        event = None if verdicts or recipients else self._remembered(trigger.function.name, message_id)
        if event is None:
            message = _parse(raw)
            event = lambda_action_event(
                raw,
                message_id=message_id,
                # Stable for the object, so delivering it again gives the same timestamp.
                received_at=found["LastModified"],
                function_arn=self.function_arn(trigger.function),
                recipients=list(recipients) if recipients else default_recipients(message),
                verdicts=check_verdicts(verdicts or {}),
            )
        self._deliver(trigger.function, message_id, event)
        return ReceivedEmail(trigger.function.name, message_id, trigger.bucket, key)

    def _remember(self, function: str, message_id: str, event: dict[str, Any]) -> None:
        with self._state:
            self._events[(function, message_id)] = event
            while len(self._events) > _EVENT_CACHE_SIZE:
                self._events.popitem(last=False)

    def _remembered(self, function: str, message_id: str) -> dict[str, Any] | None:
        with self._state:
            return self._events.get((function, message_id))

    # ------------------------------------------------------------------ #
    def _deliver(self, fn: Function, message_id: str, event: dict[str, Any]) -> None:
        with self._state:
            self._pending += 1
        thread = threading.Thread(
            target=self._run, args=(fn, message_id, event), name=f"omni-ses-{message_id[:8]}", daemon=True
        )
        with self._state:
            self._threads.add(thread)
        thread.start()

    def _run(self, fn: Function, message_id: str, event: dict[str, Any]) -> None:
        try:
            for attempt in range(ASYNC_ATTEMPTS):
                if attempt and self._stop.wait(self.retry_delay_s):
                    logger.warning("%s: stopping; the retry of mail %s is dropped", fn.name, message_id)
                    return
                result = self.invoker.invoke(fn, event)
                if result.ok:
                    with self._state:
                        self.delivered += 1
                    return
                logger.warning(
                    "%s: mail %s, attempt %d of %d failed: %s",
                    fn.name,
                    message_id,
                    attempt + 1,
                    ASYNC_ATTEMPTS,
                    result.error_type,
                )
            with self._state:
                self.dropped += 1
            logger.error(
                "%s: mail %s dropped after %d attempts (Lambda would hand it to an on-failure "
                "destination if one were configured); it is still in the bucket",
                fn.name,
                message_id,
                ASYNC_ATTEMPTS,
            )
        finally:
            with self._state:
                self._pending -= 1
                self._threads.discard(threading.current_thread())
                self._state.notify_all()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop retrying; wait for invocations in progress."""
        self._stop.set()
        with self._state:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)

    # ------------------------------------------------------------------ #
    def handle(self, request: LocalRequest) -> LocalResponse:
        """The control route: ``GET /_local/email``, ``POST /_local/email/<function>``."""
        try:
            return self._handle(request)
        except EmailRequestError as exc:
            return LocalResponse.json(exc.status, {"message": str(exc)})

    def _handle(self, request: LocalRequest) -> LocalResponse:
        rest = request.path[len(CONTROL_PREFIX) :].strip("/")
        if not rest:
            if request.method != "GET":
                raise EmailRequestError(405, "use GET here, or POST to /_local/email/<function>")
            triggers = {
                name: {"bucket": t.bucket, "prefix": t.prefix} for name, t in sorted(self.triggers.items())
            }
            return LocalResponse.json(200, {"functions": triggers})
        if "/" in rest:
            raise EmailRequestError(404, "Not Found")
        if request.method != "POST":
            raise EmailRequestError(405, "POST the raw message (message/rfc822)")
        function = unquote(rest)
        query: dict[str, list[str]] = {}
        for name, value in parse_qsl(request.query, keep_blank_values=True):
            query.setdefault(name, []).append(value)
        recipients = [address for value in query.pop("to", []) for address in value.split(",") if address]
        dmarc_policy = (query.pop("dmarc_policy", [None])[-1] or "").lower() or None
        verdicts = {name: values[-1] for name, values in query.items()}
        content_type = (request.header("content-type") or "").split(";", 1)[0].strip().lower()
        if content_type == "application/json":
            received = self._redeliver_json(function, request.body, verdicts, recipients)
        else:
            received = self.receive(
                request.body,
                function=function,
                verdicts=verdicts,
                recipients=recipients,
                dmarc_policy=dmarc_policy,
            )
        return LocalResponse.json(202, received.as_json())

    def _redeliver_json(
        self, function: str, body: bytes, verdicts: dict[str, str], recipients: list[str]
    ) -> ReceivedEmail:
        try:
            document = json.loads(body or b"null")
        except ValueError:
            raise EmailRequestError(400, "the body is not valid JSON") from None
        if not isinstance(document, dict) or not isinstance(document.get("key"), str) or not document["key"]:
            raise EmailRequestError(400, 'expected {"key": "<object key>", "bucket": "<optional>"}')
        bucket = document.get("bucket")
        if bucket is not None and not isinstance(bucket, str):
            raise EmailRequestError(400, "bucket must be a string")
        return self.redeliver(
            document["key"], function=function, bucket=bucket, verdicts=verdicts, recipients=recipients
        )
