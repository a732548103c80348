"""WhatsApp channel (Meta Cloud API): subscription handshake, messages, delivery statuses.

Thin: signature, handshake and payload are ``shared.channels.meta``'s business. Each
customer message is published as ``message.received`` (a notification may carry many);
each status of a message we sent updates the delivery log. Meta retries a notification
until it gets a 200, for days, so a retry must do no harm: downstream every step is
idempotent on the WhatsApp message id, and statuses only move forward.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from functions.whatsapp.models import EventReceived
from shared.bus import EventPublisher
from shared.channels import meta
from shared.config import get_secret
from shared.events import DeliveryStatusChanged, format_timestamp, utc_now
from shared.http import error, guard_body, install_error_handlers, raw_body
from shared.repositories.outbox import OutboxRepository
from shared.topology import DELIVERY_STATUS_CHANGED, MESSAGE_RECEIVED

#: Meta batches up to 1,000 updates per notification; real ones stay far below this.
MAX_BODY_BYTES = 1024 * 1024
PATH = "/webhooks/whatsapp"

logger = Logger()
app = APIGatewayHttpResolver()
install_error_handlers(app)
publisher = EventPublisher(source="omni.whatsapp")
outbox = OutboxRepository()


@app.exception_handler([ClientError, BotoCoreError])
def _aws_unavailable(exc: Exception) -> Response[dict[str, Any]]:
    logger.exception("AWS call failed; asking Meta to retry")
    response = error(503, "could not accept the notification right now; retry")
    response.headers["Retry-After"] = "1"
    return response


@app.get(PATH)
def handshake() -> Response[Any]:
    try:
        challenge = meta.answer_handshake(
            app.current_event.query_string_parameters, get_secret("META_VERIFY_TOKEN_SECRET_ID")
        )
    except meta.HandshakeRefused as refused:
        logger.warning("webhook handshake refused", extra={"reason": refused.reason})
        return error(refused.status, refused.reason)
    logger.info("webhook handshake answered")
    return Response(status_code=200, content_type=content_types.TEXT_PLAIN, body=challenge)


@app.post(PATH)
def receive() -> Response[dict[str, Any]]:
    body = raw_body(app.current_event.raw_event)
    try:
        meta.verify_signature(
            get_secret("META_APP_SECRET_SECRET_ID"),
            body,
            app.current_event.headers.get(meta.SIGNATURE_HEADER),
        )
    except meta.InvalidSignature as exc:
        logger.warning("webhook signature refused", extra={"reason": str(exc)})
        return error(401, str(exc))
    try:
        notification = meta.parse_whatsapp(body, utc_now())
    except meta.InvalidPayload as exc:
        logger.warning("webhook payload refused", extra={"reason": str(exc)})
        return error(400, str(exc))
    if not notification.known_object:
        logger.warning("notification for another object ignored", extra={"object": notification.object})
    publisher.publish([(MESSAGE_RECEIVED, message) for message in notification.messages])
    receipts: list[DeliveryStatusChanged] = []
    for update in notification.statuses:
        notification_id = outbox.update_status(
            update.provider_message_id, update.status, format_timestamp(update.at), update.error_code
        )
        if notification_id is None and update.callback_data:
            # A send whose outcome notify could not record (unconfirmed): the echoed
            # idempotency key proves it went out and gives its id.
            notification_id = outbox.confirm_attempt(
                update.callback_data,
                "whatsapp",
                update.provider_message_id,
                update.status,
                format_timestamp(update.at),
                update.error_code,
            )
        if notification_id is not None:
            receipts.append(
                DeliveryStatusChanged(
                    notification_id=notification_id,
                    channel="whatsapp",
                    provider_message_id=update.provider_message_id,
                    status=update.status,
                    at=format_timestamp(update.at),
                    error_code=update.error_code,
                )
            )
        logger.info(
            "delivery status",
            extra={
                "provider_message_id": update.provider_message_id,
                "status": update.status,
                "error_code": update.error_code,
                "notification_id": notification_id,
            },
        )
    # Every receipt of ours, repeats included (Meta retries): the timeline update is monotonic.
    publisher.publish([(DELIVERY_STATUS_CHANGED, receipt) for receipt in receipts])
    logger.info(
        "whatsapp notification accepted",
        extra={
            "messages": [m.provider_message_id for m in notification.messages],
            "statuses": len(notification.statuses),
            "ignored": notification.ignored,
        },
    )
    answer = EventReceived(
        messages=len(notification.messages),
        statuses=len(notification.statuses),
        ignored=len(notification.ignored),
    )
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=answer.model_dump())


@guard_body(MAX_BODY_BYTES)
@logger.inject_lambda_context(clear_state=True)
def handler(event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(dict(event), context)
