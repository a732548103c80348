"""What every agent API router shares: repositories (one per container) and small helpers."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel

from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository

customers = CustomerRepository()
conversations = ConversationRepository(customers=customers)


def json_body(status: int, model: BaseModel) -> Response[dict[str, Any]]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=model.model_dump())


def agent_id(router: APIGatewayHttpRouter) -> str:
    """The signed-in agent (the token's ``sub``); the handler has refused requests without one."""
    authorizer = router.current_event.request_context.authorizer
    claims = authorizer.jwt_claim if authorizer else None
    return str((claims or {}).get("sub", ""))
