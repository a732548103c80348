"""Behaviour events from the company's systems: the documented schema.

Business systems publish behaviour events to the bus with a source starting with
``omni.`` (e.g. ``omni.shop``) - the bus rules only take that prefix:

* ``order.status_checked`` ``{"customer_id" | "identity": {"type", "value"}, "order_id",
  "at", "tracking_url"?, "status"?}`` - the customer looked at an order's status;
* ``page.viewed`` ``{"customer_id" | "identity", "url" and/or "page", "at"}`` - the
  customer viewed a page of the company's site.

``at`` is an ISO 8601 timestamp with a time zone. The customer is ``customer_id`` or the
owner of ``identity`` (normalised like every identity, e.g. ``phone`` to E.164).
"""

from typing import Annotated, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from shared.contracts.events import IdentityType
from shared.contracts.names import ORDER_STATUS_CHECKED, PAGE_VIEWED

_Text = Annotated[str, Field(min_length=1, max_length=200)]


class CustomerRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    type: IdentityType
    value: Annotated[str, Field(min_length=1, max_length=320)]


class BehaviourDetail(BaseModel):
    """Detail of ``order.status_checked`` and ``page.viewed``. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    customer_id: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    identity: CustomerRef | None = None
    at: AwareDatetime
    order_id: _Text | None = None
    status: _Text | None = None
    tracking_url: Annotated[str, Field(min_length=1, max_length=2048)] | None = None
    url: Annotated[str, Field(min_length=1, max_length=2048)] | None = None
    page: _Text | None = None

    @model_validator(mode="after")
    def _customer(self) -> Self:
        if self.customer_id is None and self.identity is None:
            raise ValueError("give customer_id or identity")
        return self


#: Fields each event type must carry (one of each tuple).
REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    ORDER_STATUS_CHECKED: (("order_id",),),
    PAGE_VIEWED: (("url", "page"),),
}
#: Event fields a rule may count by and use in template variables.
EVENT_FIELDS = ("order_id", "status", "tracking_url", "url", "page")


class InvalidBehaviourEvent(ValueError):
    pass


def check_event(detail_type: str, detail: BehaviourDetail) -> None:
    """Raise :class:`InvalidBehaviourEvent` when ``detail`` lacks what its type requires."""
    if detail_type not in REQUIRED:
        raise InvalidBehaviourEvent(f"unknown behaviour event {detail_type!r}")
    for alternatives in REQUIRED[detail_type]:
        if all(getattr(detail, name) is None for name in alternatives):
            raise InvalidBehaviourEvent(f"{detail_type} needs {' or '.join(alternatives)}")
