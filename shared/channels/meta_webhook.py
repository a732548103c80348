"""The one webhook shape Meta uses for WhatsApp, Messenger and Instagram.

Both Meta functions are this webhook with their own path, payload parser and channel:
the subscription handshake (GET), and notifications (POST) whose signature is checked
before anything is parsed. Customer messages are published as ``message.received``;
statuses of messages we sent update the delivery log and are published as
``delivery.status_changed``. Meta retries until it gets a 200, for days, so a retry must
do no harm: downstream every step is idempotent on the message id, and statuses only
move forward.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict

from shared.channels import meta
from shared.contracts.events import Channel, DeliveryStatusChanged, format_timestamp, utc_now
from shared.contracts.names import DELIVERY_STATUS_CHANGED, MESSAGE_RECEIVED
from shared.platform import settings
from shared.platform.bus import EventPublisher, send_to_queue
from shared.platform.config import get_secret, require_env
from shared.platform.http import error, guard_body, install_error_handlers, raw_body
from shared.platform.observability import new_logger
from shared.repositories.outbox import OutboxRepository

#: Meta batches up to 1,000 updates per notification; real ones stay far below this.
MAX_BODY_BYTES = 1024 * 1024
#: Seconds the messages of one notification may take to publish; Meta waits a few seconds
#: (and resends what it got no 200 for). What is not on the bus when the budget runs out goes
#: straight onto the profile-merge queue (the one target of ``message.received``), in the
#: envelope the bus rule would have given it, and Meta gets its 200: nothing is lost and Meta
#: never resends the batch. Downstream is idempotent on the message id.
PUBLISH_BUDGET_S = 5.0


class EventReceived(BaseModel):
    """The answer given to Meta (Meta only looks at the status code)."""

    model_config = ConfigDict(defer_build=True)

    status: Literal["EVENT_RECEIVED"] = "EVENT_RECEIVED"
    #: Customer messages published as ``message.received``.
    messages: int
    #: Delivery statuses applied to messages we sent (unknown ids included).
    statuses: int
    #: What the notification carried that is not a customer message or a status.
    ignored: int


class MetaWebhook:
    def __init__(
        self,
        name: str,
        path: str,
        parse: Callable[[bytes, datetime], Any],
        channel_of: Callable[[Any], Channel],
        confirms_unconfirmed_sends: bool = False,
    ) -> None:
        self.name = name
        self.path = path
        self.parse = parse
        self.channel_of = channel_of
        self.confirms_unconfirmed_sends = confirms_unconfirmed_sends
        self.logger = new_logger()
        self.publisher = EventPublisher(source=f"omni.{name}")
        self.outbox = OutboxRepository()
        self.app = APIGatewayHttpResolver()
        install_error_handlers(self.app)
        self.app.exception_handler([ClientError, BotoCoreError])(self._aws_unavailable)
        self.app.get(path)(self._handshake)
        self.app.post(path)(self._receive)

        @guard_body(MAX_BODY_BYTES, parse_json=False)  # signature first; the parser checks depth
        @self.logger.inject_lambda_context(clear_state=True)
        def handler(event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
            return self.app.resolve(dict(event), context)

        self.handler = handler

    def _aws_unavailable(self, exc: Exception) -> Response[dict[str, Any]]:
        self.logger.exception("AWS call failed; asking Meta to retry")
        response = error(503, "could not accept the notification right now; retry")
        response.headers["Retry-After"] = "1"
        return response

    def _handshake(self) -> Response[Any]:
        try:
            challenge = meta.answer_handshake(
                self.app.current_event.query_string_parameters,
                get_secret(settings.META_VERIFY_TOKEN_SECRET_ID),
            )
        except meta.HandshakeRefused as refused:
            self.logger.warning("webhook handshake refused", extra={"reason": refused.reason})
            return error(refused.status, refused.reason)
        self.logger.info("webhook handshake answered")
        return Response(status_code=200, content_type=content_types.TEXT_PLAIN, body=challenge)

    def _receive(self) -> Response[dict[str, Any]]:
        body = raw_body(self.app.current_event.raw_event)
        try:
            meta.verify_signature(
                get_secret(settings.META_APP_SECRET_SECRET_ID),
                body,
                self.app.current_event.headers.get(meta.SIGNATURE_HEADER),
            )
        except meta.InvalidSignature as exc:
            self.logger.warning("webhook signature refused", extra={"reason": str(exc)})
            return error(401, str(exc))
        try:
            notification = self.parse(body, utc_now())
        except meta.InvalidPayload as exc:
            self.logger.warning("webhook payload refused", extra={"reason": str(exc)})
            return error(400, str(exc))
        if not notification.known_object:
            self.logger.warning(
                "notification for another object ignored", extra={"object": notification.object}
            )
        if notification.skipped:
            self.logger.warning("webhook items skipped", extra={"skipped": notification.skipped[:50]})
        queued = self.publisher.publish_concurrently(
            [(MESSAGE_RECEIVED, message) for message in notification.messages],
            PUBLISH_BUDGET_S,
            overflow=self._overflow,
        )
        if queued:
            self.logger.warning(
                "time budget ran out: the rest queued for profile merge", extra={"queued": queued}
            )
        receipts = [
            receipt for update in notification.statuses if (receipt := self._apply(notification, update))
        ]
        # Every receipt of ours, repeats included (Meta retries): the timeline update is monotonic.
        self.publisher.publish([(DELIVERY_STATUS_CHANGED, receipt) for receipt in receipts])
        self.logger.info(
            f"{self.name} notification accepted",
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
        return Response(
            status_code=200, content_type=content_types.APPLICATION_JSON, body=answer.model_dump()
        )

    def _overflow(self, events: Sequence[tuple[str, BaseModel]]) -> None:
        """The messages the time budget left: onto profile merge's queue, as the bus rule delivers."""
        send_to_queue(
            require_env(settings.PROFILE_MERGE_QUEUE_URL),
            self.publisher.source,
            events,
            format_timestamp(utc_now()),
        )

    def _apply(self, notification: Any, update: Any) -> DeliveryStatusChanged | None:
        """Apply one status of a message we sent to the delivery log; the receipt to publish."""
        at = format_timestamp(update.at)
        channel = self.channel_of(notification)
        notification_id = self.outbox.update_status(
            update.provider_message_id, update.status, at, update.error_code
        )
        if notification_id is None and self.confirms_unconfirmed_sends and update.callback_data:
            # A send whose outcome notify could not record (unconfirmed): the echoed
            # idempotency key proves it went out and gives its id.
            notification_id = self.outbox.confirm_attempt(
                update.callback_data,
                channel,
                update.provider_message_id,
                update.status,
                at,
                update.error_code,
            )
        self.logger.info(
            "delivery status",
            extra={
                "provider_message_id": update.provider_message_id,
                "status": update.status,
                "error_code": update.error_code,
                "notification_id": notification_id,
            },
        )
        if notification_id is None:
            return None
        return DeliveryStatusChanged(
            notification_id=notification_id,
            channel=channel,
            provider_message_id=update.provider_message_id,
            status=update.status,
            at=at,
            error_code=update.error_code,
        )
