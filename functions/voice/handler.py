"""Voice channel (Twilio Voice): a call joins the caller's conversation; TwiML enqueues them.

``POST /webhooks/voice`` answers Twilio's request for TwiML while the phone rings: it
looks up the caller's open conversation and the queue routing chose for it (three key
reads), greets the caller and enqueues them there, and publishes the call as a
message of that conversation, so the agent who takes it sees the earlier chat.
``/webhooks/voice/status`` records how the call ended and
``/webhooks/voice/transcription`` what the caller said on a recording.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.voice.models import CallStatusCallback, IncomingCall, TranscriptionCallback
from shared.channels import twilio, twilio_webhook
from shared.contracts.events import Identity, utc_now
from shared.contracts.names import MESSAGE_RECEIVED
from shared.platform.bus import EventPublisher, PublishError
from shared.platform.http import error, guard_body
from shared.platform.observability import new_logger, new_tracer
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository

MAX_BODY_BYTES = 64 * 1024

logger = new_logger()
tracer = new_tracer()
app = APIGatewayHttpResolver()
twilio_webhook.install(app, logger)

publisher = EventPublisher(source="omni.voice")
customers = CustomerRepository()
conversations = ConversationRepository(customers=customers)


def _queue_for(caller: Identity, call_sid: str) -> str:
    try:
        return twilio.queue_for_caller(customers, conversations, caller)
    except Exception:  # the caller is on the line: answer them in any case
        logger.exception("queue look-up failed; using the default queue", extra={"call_sid": call_sid})
        return twilio.DEFAULT_QUEUE


@app.post("/webhooks/voice")
def incoming_call() -> Response:
    form = twilio_webhook.verified_form(app, IncomingCall)
    caller = twilio.caller_identity(form.from_, form.call_sid)
    queue = _queue_for(caller, form.call_sid)
    message = twilio.incoming_call(
        call_sid=form.call_sid,
        caller=caller,
        to=form.to,
        call_status=form.call_status or "ringing",
        queue=queue,
        received_at=utc_now(),
        caller_name=form.caller_name,
    )
    try:
        publisher.publish([(MESSAGE_RECEIVED, message)])
    except PublishError:
        # Not answered 503 like the other hooks: Twilio does not retry a call's TwiML
        # request, it would hang up on the caller. The status callback at the end of the
        # call records the call in the conversation as well.
        logger.exception("incoming call not published", extra={"call_sid": form.call_sid})
    logger.info(
        "incoming call enqueued",
        extra={"call_sid": form.call_sid, "queue": queue, "caller_type": caller.type},
    )
    return twilio_webhook.twiml(twilio.enqueue_twiml(queue, twilio.greeting(queue)))


@app.post("/webhooks/voice/status")
def call_status() -> Response:
    form = twilio_webhook.verified_form(app, CallStatusCallback)
    if form.call_status not in twilio.TERMINAL_CALL_STATUSES:
        # Progress events (ringing, answered) only if someone subscribed to them: not messages.
        logger.info("call progress ignored", extra={"call_sid": form.call_sid, "status": form.call_status})
        return twilio_webhook.twiml()
    ended_at = None
    if form.timestamp:
        try:
            ended_at = twilio.parse_timestamp(form.timestamp)
        except ValueError as exc:
            return error(400, f"Timestamp: {exc}")
    message = twilio.call_ended(
        call_sid=form.call_sid,
        caller=twilio.caller_identity(form.from_, form.call_sid),
        to=form.to,
        call_status=form.call_status,
        duration_s=form.call_duration,
        ended_at=ended_at,
        received_at=utc_now(),
    )
    publisher.publish([(MESSAGE_RECEIVED, message)])
    logger.info(
        "call ended", extra={"call_sid": form.call_sid, "status": form.call_status, "s": form.call_duration}
    )
    return twilio_webhook.twiml()


@app.post("/webhooks/voice/transcription")
def transcription() -> Response:
    form = twilio_webhook.verified_form(app, TranscriptionCallback)
    message = twilio.transcription(
        transcription_sid=form.transcription_sid,
        call_sid=form.call_sid,
        caller=twilio.caller_identity(form.from_, form.call_sid),
        to=form.to,
        status=form.transcription_status,
        text=form.transcription_text,
        recording_sid=form.recording_sid,
        recording_url=form.recording_url,
        received_at=utc_now(),
    )
    publisher.publish([(MESSAGE_RECEIVED, message)])
    logger.info(
        "call transcription accepted",
        extra={
            "call_sid": form.call_sid,
            "transcription_sid": form.transcription_sid,
            "status": form.transcription_status,
        },
    )
    return twilio_webhook.twiml()


@tracer.capture_lambda_handler
@guard_body(MAX_BODY_BYTES, accept=(twilio.FORM_CONTENT_TYPE,))
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
