"""Web chat channel: open a session, accept its messages, list what the session shows.

Thin: validate at the edge, then the domain in ``shared.channels.webchat`` and the storage in
``shared.repositories.webchat``; each accepted message is published as
``message.received``.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.webchat.models import (
    CreateSessionRequest,
    MessageAccepted,
    PostMessageRequest,
    SessionCreated,
    SessionMessage,
    SessionMessages,
)
from shared.channels import webchat
from shared.contracts.events import format_timestamp, utc_now
from shared.contracts.names import MESSAGE_RECEIVED
from shared.domain.identity import InvalidIdentity, normalise_email
from shared.platform import settings
from shared.platform.bus import EventPublisher
from shared.platform.config import get_secret
from shared.platform.http import documented, error, guard_body, install_error_handlers
from shared.platform.ids import new_id
from shared.platform.observability import new_logger, new_tracer
from shared.repositories.webchat import WebchatRepository

MAX_BODY_BYTES = 16 * 1024

logger = new_logger()
tracer = new_tracer()
app = APIGatewayHttpResolver(enable_validation=True)
install_error_handlers(app)

sessions = WebchatRepository()
publisher = EventPublisher(source="omni.webchat")


def _authorise(session_id: str) -> webchat.SessionClaims | Response:
    try:
        token = webchat.bearer_token(app.current_event.headers.get("authorization"))
        return webchat.verify_token(get_secret(settings.WEBCHAT_TOKEN_SECRET_ID), token, session_id)
    except webchat.InvalidToken as exc:
        logger.info("web chat token refused", extra={"reason": str(exc)})
        return error(401, "a valid session token is required for this session")


@app.post("/webchat/sessions", responses=documented(201, SessionCreated, 400, 401, 413, 415))
def create_session(
    request: Annotated[CreateSessionRequest | None, Body()] = None,
) -> Response[dict[str, Any]]:
    info = request.customer if request and request.customer else None
    email = None
    if info and info.email:
        try:
            email = normalise_email(info.email)
        except InvalidIdentity as exc:
            return error(400, str(exc))
    verified = False
    if info and info.user_hash:
        try:
            webchat.verify_user_hash(
                get_secret(settings.WEBCHAT_IDENTITY_SECRET_ID), info.account_id, email, info.user_hash
            )
        except webchat.InvalidUserHash as exc:
            return error(401, str(exc))
        verified = True
    claims = webchat.SessionClaims(
        session_id=new_id("wcs"),
        verified=verified,
        account_id=info.account_id if info else None,
        email=email,
        name=info.name if info else None,
    )
    now = int(time.time())
    sessions.create_session(
        claims.session_id,
        format_timestamp(utc_now()),
        now,
        {"account_id": claims.account_id, "email": claims.email, "name": claims.name, "verified": verified},
    )
    token = webchat.issue_token(get_secret(settings.WEBCHAT_TOKEN_SECRET_ID), claims, now)
    logger.info("web chat session opened", extra={"session_id": claims.session_id, "verified": verified})
    body = SessionCreated(
        session_id=claims.session_id, token=token, expires_at=now + webchat.TOKEN_TTL_S, verified=verified
    )
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=body.model_dump())


@app.post(
    "/webchat/sessions/<session_id>/messages",
    responses=documented(202, MessageAccepted, 400, 401, 413, 415, 503),
)
def post_message(session_id: str, request: Annotated[PostMessageRequest, Body()]) -> Response[dict[str, Any]]:
    claims = _authorise(session_id)
    if isinstance(claims, Response):
        return claims
    received_at = utc_now()
    message = webchat.inbound_message(claims, request.message_id, request.text, request.sent_at, received_at)
    new = sessions.add_message(
        session_id,
        "inbound",
        request.message_id,
        request.text,
        format_timestamp(message.sent_at),
        int(time.time()),
        author="customer",
    )
    # Published on a duplicate too: the first attempt may have stopped between storing
    # and publishing. Downstream every step is idempotent on the message id.
    publisher.publish([(MESSAGE_RECEIVED, message)])
    logger.info(
        "web chat message accepted",
        extra={"session_id": session_id, "message_id": request.message_id, "duplicate": not new},
    )
    body = MessageAccepted(message_id=request.message_id, duplicate=not new)
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=body.model_dump())


@app.get("/webchat/sessions/<session_id>/messages", responses=documented(200, SessionMessages, 401))
def list_messages(session_id: str) -> Response[dict[str, Any]]:
    claims = _authorise(session_id)
    if isinstance(claims, Response):
        return claims
    messages = [SessionMessage(**m) for m in sessions.list_messages(session_id)]
    body = SessionMessages(session_id=session_id, messages=messages)
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=body.model_dump())


@tracer.capture_lambda_handler
@guard_body(MAX_BODY_BYTES)
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
