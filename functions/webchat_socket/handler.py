"""Web chat push: the WebSocket API's ``$connect`` and ``$disconnect`` routes.

``$connect`` carries ``?session_id=...&token=...`` (a browser cannot set headers on a
WebSocket): the session token is verified as on the HTTP routes, then the connection is
stored with its session so notify can push the session's messages to it. A refused
token answers 401, which makes API Gateway refuse the upgrade. ``$disconnect`` forgets
the connection. The widget keeps polling ``GET .../messages``; the push only makes a
delivered message appear at once.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.channels import webchat
from shared.contracts.events import format_timestamp, utc_now
from shared.platform import settings
from shared.platform.config import get_secret
from shared.platform.observability import new_logger, new_tracer
from shared.repositories.webchat_connections import WebchatConnectionRepository

logger = new_logger()
tracer = new_tracer()
connections = WebchatConnectionRepository()


def _status(code: int) -> dict[str, Any]:
    return {"statusCode": code}


def on_connect(event: dict[str, Any], connection_id: str) -> dict[str, Any]:
    query = event.get("queryStringParameters") or {}
    session_id, token = query.get("session_id"), query.get("token")
    if not session_id or not token:
        logger.info("web chat socket refused", extra={"reason": "session_id and token are required"})
        return _status(401)
    try:
        webchat.verify_token(get_secret(settings.WEBCHAT_TOKEN_SECRET_ID), token, session_id)
    except webchat.InvalidToken as exc:
        logger.info("web chat socket refused", extra={"reason": str(exc)})
        return _status(401)
    connections.add(session_id, connection_id, format_timestamp(utc_now()), int(time.time()))
    logger.info("web chat socket connected", extra={"session_id": session_id})
    return _status(200)


@tracer.capture_lambda_handler
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = event.get("requestContext") or {}
    route, connection_id = request.get("routeKey"), request.get("connectionId")
    if not connection_id:
        return _status(400)
    if route == "$connect":
        return on_connect(event, str(connection_id))
    if route == "$disconnect":
        connections.remove(str(connection_id))
        return _status(200)
    return _status(400)
