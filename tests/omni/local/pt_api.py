"""An HTTP handler written the way the real functions are: Powertools resolver and logger."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError

logger = Logger()
app = APIGatewayHttpResolver()


@app.get("/pt/items/<item_id>")
def get_item(item_id: str) -> dict[str, Any]:
    if item_id == "missing":
        raise NotFoundError("no such item")
    event = app.current_event
    return {
        "item_id": item_id,
        "service": logger.service,
        "query": event.query_string_parameters,
        "agent": event.request_context.authorizer.jwt_claim.get("sub"),
    }


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
