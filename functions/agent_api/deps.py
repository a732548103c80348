"""What every agent API router shares: repositories (one per container) and small helpers."""

import re
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel

from shared import bootstrap

customers = bootstrap.customers()
conversations = bootstrap.conversations()


def json_body(status: int, model: BaseModel) -> Response[dict[str, Any]]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=model.model_dump())


#: Members of this group (the token's ``cognito:groups``/``groups`` claim) manage agents and may
#: transfer or resolve a conversation another agent holds.
SUPERVISORS = "supervisors"


def groups(claims: dict[str, Any]) -> set[str]:
    raw = claims.get("cognito:groups") or claims.get("groups") or []
    if isinstance(raw, str):  # API Gateway hands list claims over as "[a b]"
        return set(re.findall(r"[\w.-]+", raw))
    return {str(g) for g in raw}


def is_supervisor(router: APIGatewayHttpRouter) -> bool:
    authorizer = router.current_event.request_context.authorizer
    claims = (authorizer.jwt_claim if authorizer else None) or {}
    return SUPERVISORS in groups(claims)


def agent_id(router: APIGatewayHttpRouter) -> str:
    """The signed-in agent (the token's ``sub``); the handler has refused requests without one."""
    authorizer = router.current_event.request_context.authorizer
    claims = authorizer.jwt_claim if authorizer else None
    return str((claims or {}).get("sub", ""))
