"""E-mail channel (Amazon SES receiving): one invocation per received mail.

The receipt rule stores the raw MIME in S3 (S3 action) and then invokes this function
asynchronously (Lambda action, invocation type ``Event``) with the mail's headers and
SES's verdicts, but not its body. The function reads the raw mail, threads it into its
conversation, turns it into the canonical message and publishes ``message.received``.

What a failure does, given Lambda's asynchronous retries (two more attempts):

* transient (S3, DynamoDB or the bus unavailable or throttled): raised, so Lambda
  retries; publishing the same mail again is harmless (same ``provider_message_id`` and
  ``sent_at``: profile merge records it once);
* permanent (:class:`InvalidSesEvent`, :class:`~functions.email.repositories.RawMailMissing`,
  :class:`~shared.channels.email.UnparseableEmail`): retrying cannot help, so the error is
  logged with its name and the SES message id and the invocation succeeds (no retry).
  The raw mail stays in the bucket until the lifecycle rule expires it.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from functions.email.models import SesEvent, SesPayload, SesVerdict
from functions.email.repositories import OutboxThreads, RawMailMissing, RawMailStore
from shared.channels import email as email_channel
from shared.contracts.events import DeliveryStatusChanged, Identity, format_timestamp, utc_now
from shared.contracts.names import DELIVERY_STATUS_CHANGED, MESSAGE_RECEIVED
from shared.domain.identity import InvalidIdentity, normalise_email
from shared.platform import settings
from shared.platform.bus import EventPublisher
from shared.platform.config import require_env
from shared.platform.observability import new_logger, new_tracer

BUCKET_ENV = settings.INBOUND_EMAIL_BUCKET
PREFIX_ENV = settings.INBOUND_EMAIL_PREFIX

logger = new_logger()
tracer = new_tracer()
publisher = EventPublisher(source="omni.email")
store = RawMailStore()
threads = OutboxThreads()


class InvalidSesEvent(ValueError):
    """The invocation's event is not an SES receiving event."""


def _status(verdict: SesVerdict | None) -> str:
    return verdict.status.upper() if verdict else email_channel.MISSING


def mail_location(payload: SesPayload, bucket: str, prefix: str) -> tuple[str, str]:
    """Where the S3 action stored the mail: named by an S3-action event, else prefix + messageId."""
    action = payload.receipt.action
    if action.type == "S3" and action.bucket_name and action.object_key:
        return action.bucket_name, action.object_key
    return bucket, f"{prefix}{payload.mail.message_id}"


def receipt_of(payload: SesPayload, bucket: str, key: str) -> email_channel.Receipt:
    receipt = payload.receipt
    return email_channel.Receipt(
        ses_message_id=payload.mail.message_id,
        timestamp=payload.mail.timestamp,
        recipients=tuple(receipt.recipients),
        envelope_from=payload.mail.source,
        verdicts=email_channel.Verdicts(
            spf=_status(receipt.spf_verdict),
            dkim=_status(receipt.dkim_verdict),
            dmarc=_status(receipt.dmarc_verdict),
            spam=_status(receipt.spam_verdict),
            virus=_status(receipt.virus_verdict),
            dmarc_policy=receipt.dmarc_policy,
        ),
        bucket=bucket,
        key=key,
    )


def thread(
    parsed: email_channel.ParsedEmail, receipt: email_channel.Receipt
) -> tuple[str | None, str | None]:
    """``(conversation hint, how it was found)``: a Message-ID we sent, else a plus-address token."""
    ids = email_channel.thread_ids(parsed.in_reply_to, parsed.references)
    if ids:
        try:
            found = threads.conversation_for(ids)
        except (ClientError, BotoCoreError) as exc:
            # Threading is a hint: the mail still goes to the customer's open conversation.
            logger.warning("delivery log look-up failed; not threading by headers", extra={"error": str(exc)})
            found = None
        if found:
            return found[0], "in-reply-to"
    token = email_channel.reply_token(email_channel.our_addresses(parsed, receipt))
    return (token, "reply-token") if token else (None, None)


def process(payload: SesPayload) -> dict[str, Any]:
    """Publish one received mail; returns what happened (permanent failures are skipped)."""
    ses_id = payload.mail.message_id
    bucket, key = mail_location(payload, require_env(BUCKET_ENV), require_env(PREFIX_ENV))
    try:
        raw = store.get(bucket, key)
        parsed = email_channel.parse_email(raw)
        receipt = receipt_of(payload, bucket, key)
        if parsed.bounce is not None:
            return bounced(parsed.bounce, receipt)
        hint, threaded_by = thread(parsed, receipt)
        message = email_channel.inbound_message(parsed, receipt, utc_now(), hint, threaded_by)
    except (RawMailMissing, email_channel.UnparseableEmail) as exc:
        logger.error(
            "e-mail skipped: it cannot become a message",
            extra={"error": type(exc).__name__, "reason": str(exc), "ses_message_id": ses_id, "key": key},
        )
        return {
            "ses_message_id": ses_id,
            "status": "skipped",
            "error": type(exc).__name__,
            "reason": str(exc),
        }
    publisher.publish([(MESSAGE_RECEIVED, message)])
    logger.info(
        "e-mail accepted",
        extra={
            "ses_message_id": ses_id,
            "sender_verified": message.sender.verified,
            "dmarc": message.metadata.get("dmarc"),
            "threaded_by": threaded_by,
            "automated": message.automated,
            "attachments": len(message.attachments),
            "defects": parsed.defects,
        },
    )
    return {"ses_message_id": ses_id, "status": "published", "conversation_hint": hint}


def _address(value: object) -> str | None:
    try:
        return normalise_email(str(value).removeprefix("email:")) if value else None
    except InvalidIdentity:
        return None


def bounced(report: email_channel.Bounce, receipt: email_channel.Receipt) -> dict[str, Any]:
    """A bounce is no customer's message: it marks the mail it returns failed (delivery log,
    then the timeline and the profile through ``delivery.status_changed``) and is not published
    as a message, so it creates no customer and no conversation."""
    ses_id = receipt.ses_message_id
    item = threads.delivery_for(report.notification_keys, report.message_ids)
    result: dict[str, Any] = {"ses_message_id": ses_id, "status": "bounce"}
    if item is None:
        logger.warning(
            "bounce for no mail of ours: dropped",
            extra={"ses_message_id": ses_id, "message_ids": list(report.message_ids)},
        )
        return {**result, "matched": None}
    notification_id = str(item["notification_id"])
    attempt = (item.get("attempts") or {}).get("email") or {}
    sent_to = _address(attempt.get("to") or item.get("recipient"))
    failed = [a for a in (_address(r) for r in report.recipients) if a]
    if sent_to and failed and sent_to not in failed:
        # The report names another address than the one we sent to: not this delivery's bounce.
        logger.warning(
            "bounce names another recipient than the delivery: dropped",
            extra={"ses_message_id": ses_id, "notification_id": notification_id},
        )
        return {**result, "matched": None}
    if not report.failed:
        logger.info("delivery delayed, not failed", extra={"notification_id": notification_id})
        return {**result, "matched": notification_id, "failed": False}
    at = format_timestamp(receipt.timestamp)
    threads.outbox.mark(notification_id, "failed", at, error=report.error_code)
    address = sent_to or next(iter(failed), None)
    receipt_event = DeliveryStatusChanged(
        notification_id=notification_id,
        channel="email",
        provider_message_id=str(item.get("provider_message_id") or ses_id),
        status="failed",
        at=at,
        error_code=report.error_code,
        correlation_id=f"email#{ses_id}",
        customer_id=item.get("customer_id") or None,
        undeliverable=Identity(type="email", value=address) if address else None,
    )
    publisher.publish([(DELIVERY_STATUS_CHANGED, receipt_event)])
    logger.info(
        "bounce applied: delivery failed",
        extra={"ses_message_id": ses_id, "notification_id": notification_id, "error_code": report.error_code},
    )
    return {**result, "matched": notification_id, "failed": True}


@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        ses_event = SesEvent.model_validate(event)
    except ValidationError as exc:
        error = InvalidSesEvent(f"not an SES receiving event: {exc.error_count()} problem(s)")
        logger.error(
            "event skipped: it is not an SES receiving event",
            extra={
                "error": type(error).__name__,
                "problems": exc.errors(include_url=False, include_input=False),
            },
        )
        return {"results": [{"status": "skipped", "error": type(error).__name__, "reason": str(error)}]}
    return {"results": [process(record.ses) for record in ses_event.records]}
