"""Push a web chat session's new message to its open WebSockets (API Gateway Management API).

Best effort on top of polling: the message is already stored when it is pushed, and the
widget's ``GET .../messages`` shows it either way. A connection API Gateway reports gone
(``GoneException``, HTTP 410) is forgotten; any other failure is logged and skipped.
The management endpoint comes from the environment (the notify function's grant on the
``webchat`` WebSocket API); without it nothing is pushed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger

from shared.platform import settings
from shared.repositories.webchat_connections import WebchatConnectionRepository

logger = Logger(child=True)
_clients: dict[str, Any] = {}


def management_client(endpoint: str) -> Any:
    """One ``apigatewaymanagementapi`` client per endpoint (its creation costs a cold start)."""
    if endpoint not in _clients:
        import boto3  # noqa: PLC0415
        from botocore.config import Config  # noqa: PLC0415

        _clients[endpoint] = boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=endpoint,
            config=Config(connect_timeout=2, read_timeout=4, retries={"mode": "standard", "max_attempts": 2}),
        )
    return _clients[endpoint]


class WebchatPusher:
    def __init__(
        self,
        connections: WebchatConnectionRepository | None = None,
        endpoint: str | None = None,
        client: Any = None,
    ) -> None:
        self.connections = connections or WebchatConnectionRepository()
        self._endpoint = endpoint
        self._client = client

    @property
    def endpoint(self) -> str | None:
        if self._endpoint:
            return self._endpoint
        return os.environ.get(settings.WEBCHAT_WEBSOCKET_ENDPOINT) or None

    def push(self, session_id: str, message: Mapping[str, Any]) -> int:
        """Send ``{"type": "message", "message": ...}`` to each connection; returns how many got it."""
        endpoint = self.endpoint
        if not endpoint:
            return 0
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        client = self._client or management_client(endpoint)
        data = json.dumps({"type": "message", "message": dict(message)}).encode()
        delivered = 0
        for connection_id in self.connections.connections(session_id):
            try:
                client.post_to_connection(ConnectionId=connection_id, Data=data)
                delivered += 1
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "GoneException":
                    self.connections.remove(connection_id, session_id)
                    continue
                logger.warning(
                    "web chat push failed", extra={"connection_id": connection_id, "error": str(exc)}
                )
            except BotoCoreError as exc:
                logger.warning(
                    "web chat push failed", extra={"connection_id": connection_id, "error": str(exc)}
                )
        return delivered
