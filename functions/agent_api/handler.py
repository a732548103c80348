"""The agent API (read side): customers and their conversations.

Every route but ``/openapi.json`` needs a JWT bearer token. API Gateway's JWT
authorizer checks it in the cloud (the local runtime emulates the authorizer with
HS256); this function refuses any request that arrives without verified claims, so a
route wired without the authorizer by mistake is closed, not open.
"""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from shared.http import documented, error, install_error_handlers
from shared.identity import InvalidIdentity, parse_identity
from shared.models import Conversation, ConversationSummary, Customer
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository

logger = Logger()
app = APIGatewayHttpResolver(enable_validation=True)
app.configure_openapi(
    title="omni agent API",
    version="0.1.0",
    description="Customers, their identities across channels, and their conversations.",
)
install_error_handlers(app)
customers = CustomerRepository()
conversations = ConversationRepository(customers=customers)


class CustomerList(BaseModel):
    customers: list[Customer]


class ConversationList(BaseModel):
    customer_id: str
    conversations: list[ConversationSummary]


def _json(status: int, model: BaseModel) -> Response[dict[str, Any]]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=model.model_dump())


@app.get("/customers", responses=documented(200, CustomerList, 400, 401))
def find_customers(
    identity: Annotated[str, Query(description="<type>:<value>, e.g. email:ana@example.com", max_length=400)],
) -> Response[dict[str, Any]]:
    try:
        wanted = parse_identity(identity)
    except InvalidIdentity as exc:
        return error(400, str(exc))
    owner = customers.owner_of(wanted)
    found = customers.get(owner) if owner else None
    return _json(200, CustomerList(customers=[found] if found else []))


@app.get("/customers/<customer_id>", responses=documented(200, Customer, 401, 404))
def get_customer(customer_id: str) -> Response[dict[str, Any]]:
    customer = customers.get(customer_id)
    if customer is None:
        return error(404, f"no customer {customer_id}")
    return _json(200, customer)


@app.get("/customers/<customer_id>/conversations", responses=documented(200, ConversationList, 401, 404))
def list_conversations(customer_id: str) -> Response[dict[str, Any]]:
    if customers.get_profile(customer_id) is None:
        return error(404, f"no customer {customer_id}")
    return _json(
        200,
        ConversationList(customer_id=customer_id, conversations=conversations.list_for_customer(customer_id)),
    )


@app.get("/conversations/<conversation_id>", responses=documented(200, Conversation, 401, 404))
def get_conversation(conversation_id: str) -> Response[dict[str, Any]]:
    conversation = conversations.get(conversation_id)
    if conversation is None:
        return error(404, f"no conversation {conversation_id}")
    return _json(200, conversation)


@app.get("/openapi.json", include_in_schema=False)
def openapi() -> Response[str]:
    return Response(
        status_code=200, content_type=content_types.APPLICATION_JSON, body=app.get_openapi_json_schema()
    )


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    path = event.get("rawPath", "")
    if path != "/openapi.json":
        agent = _agent_id_from(event)
        if agent is None:
            return {
                "statusCode": 401,
                "headers": {"Content-Type": content_types.APPLICATION_JSON},
                "body": '{"error":"Unauthorized","message":"a valid agent token is required"}',
            }
        logger.append_keys(agent_id=agent)
    return app.resolve(event, context)


def _agent_id_from(event: dict[str, Any]) -> str | None:
    claims = ((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt", {}).get("claims") or {}
    sub = claims.get("sub")
    return str(sub) if sub else None
