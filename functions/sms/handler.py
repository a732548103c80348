"""SMS channel (Twilio Messaging): inbound messages, STOP/START/HELP, delivery statuses.

Thin: the signature and form parsing, the keywords and the canonical message are in
``shared.channels.twilio``; every accepted message is published as ``message.received``
and answered with empty TwiML. Refusals: 401 (signature), 400 (malformed form),
413/415 (size, content type); 503 when the bus refuses the event, so Twilio may retry.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.sms.models import InboundSms, MessageStatusCallback
from shared.channels import twilio, twilio_webhook
from shared.contracts.events import DeliveryStatusChanged, format_timestamp, utc_now
from shared.contracts.names import DELIVERY_STATUS_CHANGED, MESSAGE_RECEIVED
from shared.domain.identity import InvalidIdentity
from shared.platform.bus import EventPublisher
from shared.platform.http import error, guard_body
from shared.platform.observability import new_logger, new_tracer
from shared.repositories.outbox import OutboxRepository

#: Twilio's webhooks are a few kilobytes; an MMS with ten media URLs stays well below this.
MAX_BODY_BYTES = 64 * 1024

logger = new_logger()
tracer = new_tracer()
app = APIGatewayHttpResolver()
twilio_webhook.install(app, logger)

publisher = EventPublisher(source="omni.sms")
outbox = OutboxRepository()


@app.post("/webhooks/sms")
def inbound() -> Response:
    form = twilio_webhook.verified_form(app, InboundSms)
    try:
        sender = twilio.phone_identity(form.from_)
    except InvalidIdentity as exc:
        return error(400, f"From: {exc}")
    metadata = {"account_sid": form.account_sid}
    if form.num_segments:
        metadata["num_segments"] = form.num_segments
    if form.messaging_service_sid:
        metadata["messaging_service_sid"] = form.messaging_service_sid
    message = twilio.inbound_sms(
        message_sid=form.message_sid,
        sender=sender,
        to=form.to,
        body=form.body,
        media=[(m.url, m.content_type) for m in form.media],
        received_at=utc_now(),
        opt_out_type=form.opt_out_type,
        metadata=metadata,
    )
    # A retry of the same MessageSid is published again: downstream records it once.
    publisher.publish([(MESSAGE_RECEIVED, message)])
    logger.info(
        "SMS accepted",
        extra={"message_sid": form.message_sid, "kind": message.kind, "media": len(form.media)},
    )
    return twilio_webhook.twiml()


@app.post("/webhooks/sms/status")
def status_callback() -> Response:
    form = twilio_webhook.verified_form(app, MessageStatusCallback)
    status = twilio.delivery_status(form.message_status)
    if status is None:
        logger.info(
            "SMS status ignored", extra={"message_sid": form.message_sid, "status": form.message_status}
        )
        return twilio_webhook.twiml()
    at = format_timestamp(utc_now())
    notification_id = outbox.update_status(form.message_sid, status, at, form.error_code or None)
    if notification_id is not None:
        # Every receipt of ours, repeats included: the timeline update is monotonic.
        receipt = DeliveryStatusChanged(
            notification_id=notification_id,
            channel="sms",
            provider_message_id=form.message_sid,
            status=status,
            at=at,
            error_code=form.error_code or None,
        )
        publisher.publish([(DELIVERY_STATUS_CHANGED, receipt)])
    # Twilio does not retry a status callback, so an id we do not know is answered 200 too.
    log = logger.warning if notification_id is None else logger.info
    log(
        "SMS status applied" if notification_id else "SMS status for an unknown message",
        extra={
            "message_sid": form.message_sid,
            "twilio_status": form.message_status,
            "status": status,
            "error_code": form.error_code,
            "notification_id": notification_id,
        },
    )
    return twilio_webhook.twiml()


@tracer.capture_lambda_handler
@guard_body(MAX_BODY_BYTES, accept=(twilio.FORM_CONTENT_TYPE,))
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
