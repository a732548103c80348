"""The agent API: customers, their identities across channels, and their conversations.

Every route but ``/openapi.json`` needs a JWT bearer token. API Gateway's JWT
authorizer checks it in the cloud (the local runtime emulates the authorizer with
HS256); this function refuses any request that arrives without verified claims, so a
route wired without the authorizer by mistake is closed, not open. The routes live in
one router per resource (``customers.py``, ``conversations.py``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.agent_api import agents, conversations, customers, knowledge, kpis, notifications, queues
from shared.platform.http import check_body, install_error_handlers, json_response
from shared.platform.observability import new_logger, new_tracer, set_correlation

OPENAPI_PATH = "/openapi.json"
#: Request bodies are small JSON documents (a reply is at most a few KB of text).
MAX_BODY_BYTES = 256 * 1024

logger = new_logger()
tracer = new_tracer()
app = APIGatewayHttpResolver(enable_validation=True)
app.configure_openapi(
    title="omni agent API",
    version="0.1.0",
    description="Customers, their identities across channels, and their conversations.",
)
install_error_handlers(app)
app.include_router(customers.router)
app.include_router(conversations.router)
app.include_router(agents.router)
app.include_router(queues.router)
app.include_router(notifications.router)
app.include_router(kpis.router)
app.include_router(knowledge.router)


@app.get(OPENAPI_PATH, include_in_schema=False)
def openapi() -> Response[str]:
    return Response(
        status_code=200, content_type=content_types.APPLICATION_JSON, body=app.get_openapi_json_schema()
    )


def _agent_id(event: dict[str, Any]) -> str | None:
    claims = ((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt", {}).get("claims") or {}
    sub = claims.get("sub")
    return str(sub) if sub else None


@tracer.capture_lambda_handler
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("rawPath") != OPENAPI_PATH:
        agent = _agent_id(event)
        if agent is None:
            return json_response(401, {"error": "Unauthorized", "message": "a valid agent token is required"})
        logger.append_keys(agent_id=agent)
        refused = check_body(event, MAX_BODY_BYTES)
        if refused is not None:
            return refused
    # Events this request causes carry its id as their correlation id.
    set_correlation(logger, (event.get("requestContext") or {}).get("requestId"))
    return app.resolve(event, context)
