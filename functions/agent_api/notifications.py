"""Agent API: notifications (``POST /notifications``).

Validates the request at the edge (the customer exists, the template exists and every
variable it needs is given) and publishes ``notification.requested``; notify delivers
it on the customer's channel, respecting consent, quiet hours and the WhatsApp window.
The same ``notification_id`` sent twice is delivered once.
"""

import re
import uuid
from typing import Annotated, Any, Literal, Self

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from functions.agent_api.deps import agent_id, customers, json_body
from shared.contracts.events import Channel, NotificationRequested
from shared.contracts.names import NOTIFICATION_REQUESTED
from shared.outbound.templates import TemplateError, TemplateStore
from shared.platform.bus import EventPublisher
from shared.platform.http import documented, error

router = APIGatewayHttpRouter()
publisher = EventPublisher(source="omni.agent-api")
templates = TemplateStore()
_ID = re.compile(r"^[A-Za-z0-9_.:#-]{1,150}$")


class NotificationBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    customer_id: Annotated[str, Field(min_length=1, max_length=100)]
    #: A template in shared/templates (its variables in ``variables``) ...
    template: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    variables: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=1000)]] = Field(
        default_factory=dict, max_length=50
    )
    #: ... or free text.
    text: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    subject: Annotated[str, Field(max_length=300)] | None = None
    urgency: Literal["transactional", "marketing"] = "transactional"
    urgent: bool = False
    channel: Channel | None = None
    language: Annotated[str, Field(max_length=35)] | None = None
    #: Idempotency key: the same id requested twice is delivered once (generated when absent).
    notification_id: Annotated[str, Field(max_length=150)] | None = None

    @model_validator(mode="after")
    def _template_or_text(self) -> Self:
        if (self.template is None) == (self.text is None):
            raise ValueError("give either template (with variables) or text")
        if self.notification_id is not None and not _ID.match(self.notification_id):
            raise ValueError("notification_id may contain letters, digits and _ . : # - only")
        return self


class NotificationAccepted(BaseModel):
    model_config = ConfigDict(defer_build=True)

    notification_id: str
    customer_id: str
    status: Literal["requested"] = "requested"


@router.post("/notifications", responses=documented(202, NotificationAccepted, 400, 401, 404))
def request_notification(body: NotificationBody) -> Response[dict[str, Any]]:
    """Ask notify to reach a customer with a template or free text."""
    profile = customers.get_profile(body.customer_id)
    if profile is None:
        return error(404, f"no customer {body.customer_id}")
    if body.template is not None:
        try:
            templates.get(body.template).render(body.variables, body.language or profile.get("language"))
        except TemplateError as exc:
            return error(400, str(exc), code=exc.code)
    request = NotificationRequested(
        notification_id=body.notification_id or f"api:{uuid.uuid4().hex}",
        customer_id=body.customer_id,
        kind="notification",
        urgency=body.urgency,
        urgent=body.urgent,
        text=body.text or "",
        template=body.template,
        variables=body.variables,
        channel=body.channel,
        language=body.language,
        subject=body.subject,
        author=f"agent:{agent_id(router)}",
    )
    publisher.publish([(NOTIFICATION_REQUESTED, request)])
    return json_body(
        202, NotificationAccepted(notification_id=request.notification_id, customer_id=body.customer_id)
    )
