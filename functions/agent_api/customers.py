"""Agent API: customers - look-up, profile, merge / unmerge, confirming claims, erasure, export.

A customer id that was merged into another answers with the survivor: the survivor's
body (its own ``customer_id``) with ``redirected_from`` set to the id asked for, never
404. Writes (PATCH, identity confirmation) go to the survivor the same way; merge,
unmerge and erasure refuse a merged-away id with 409 and say which customer to use.
"""

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from functions.agent_api.deps import agent_id, conversations, customers, json_body
from shared.contracts.contact import CHOICE_FIELDS, ContactChoicesPatch
from shared.contracts.events import Identity, IdentityType, format_timestamp, utc_now
from shared.contracts.models import ConversationSummary, Customer, MergeRecord
from shared.domain.identity import InvalidIdentity, normalise_value, parse_identity
from shared.platform.http import documented, error
from shared.repositories.conversation_merge import ConversationMerger
from shared.repositories.customer_choices import consent_items, with_choices
from shared.repositories.customers import (
    IdentityErased,
    IdentityTaken,
    ProfileChanged,
    ProfileState,
    identity_sk,
    to_customer,
)
from shared.services.profiles.erasure import erase_customer, export_customer
from shared.services.profiles.merge import (
    MergeRefused,
    find_root,
    merge_customers,
    merged_tree,
    unmerge_customers,
)

router = APIGatewayHttpRouter()
merger = ConversationMerger()
WRITE_ATTEMPTS = 5
_ATTRIBUTE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
_TAG = re.compile(r"^[a-z0-9][a-z0-9_\-:]{0,49}$")
#: Attributes with their own field in the PATCH body.
STANDARD_ATTRIBUTES = ("name", *CHOICE_FIELDS)


class CustomerList(BaseModel):
    model_config = ConfigDict(defer_build=True)

    customers: list[Customer]


class ConversationList(BaseModel):
    model_config = ConfigDict(defer_build=True)

    customer_id: str
    conversations: list[ConversationSummary]


class MergeBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    other_customer_id: Annotated[str, Field(min_length=1, max_length=100)]


class UnmergeBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    merge_id: Annotated[str, Field(min_length=1, max_length=100)]


class ConfirmBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    type: IdentityType
    value: Annotated[str, Field(min_length=1, max_length=320)]


AttributeScalar = Annotated[str, Field(max_length=1000)] | int | float | bool | None


class CustomerPatch(ContactChoicesPatch):
    """Fields to change; a field left out stays as it is, ``null`` clears it.

    The contact choices (channel_preferences, channel_mode, language, timezone, quiet_hours,
    consent) are those of :class:`shared.contracts.contact.ContactChoicesPatch`."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    tags: Annotated[list[str], Field(max_length=50)] | None = None
    attributes: Annotated[dict[str, AttributeScalar], Field(max_length=50)] | None = None

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        bad = [t for t in value if not _TAG.match(t)]
        if bad:
            raise ValueError(f"tags are lower-case words (a-z, 0-9, _ - :), not {bad}")
        return list(dict.fromkeys(value))

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for name in value or {}:
            if not _ATTRIBUTE_NAME.match(name):
                raise ValueError(f"attribute names are snake_case (a-z, 0-9, _), not {name!r}")
            if name in STANDARD_ATTRIBUTES:
                raise ValueError(f"{name!r} has its own field")
        return value


class MergeResult(BaseModel):
    model_config = ConfigDict(defer_build=True)

    merge: MergeRecord
    customer: Customer


class UnmergeResult(BaseModel):
    model_config = ConfigDict(defer_build=True)

    merge: MergeRecord
    survivor: Customer
    restored: Customer


class MergeList(BaseModel):
    model_config = ConfigDict(defer_build=True)

    customer_id: str
    merges: list[MergeRecord]


class ErasureResult(BaseModel):
    model_config = ConfigDict(defer_build=True)

    customer_id: str
    erased_at: str
    already_erased: bool
    profiles: list[str]
    identities: int
    conversations: int


class Export(BaseModel):
    model_config = ConfigDict(extra="allow", defer_build=True)
    exported_at: str
    customer: Customer


def _now() -> str:
    return format_timestamp(utc_now())


def _agent() -> str:
    return f"agent:{agent_id(router)}"


def _root(customer_id: str) -> tuple[ProfileState | None, Response[dict[str, Any]] | None]:
    """The active profile behind ``customer_id`` (following merges), or the error to answer."""
    root = find_root(customers, merger, customer_id, _now())
    if root.state is None:
        if root.erased_at:
            return None, error(404, f"customer {customer_id} was erased at {root.erased_at}")
        return None, error(404, f"no customer {customer_id}")
    return root.state, None


def _customer(customer_id: str, requested: str | None = None) -> Customer | None:
    """The survivor's read model, with possible matches for its claims."""
    state = customers.load(customer_id)
    if state is None:
        return None
    customer = to_customer(state, _now())
    claims = [i for i in customer.identities if not i.verified]
    if claims:
        owners = customers.owners_of([Identity(type=i.type, value=i.value) for i in claims])  # type: ignore[arg-type]
        for identity in claims:
            owner = owners.get(f"{identity.type}:{identity.value}")
            if owner and owner != customer_id:
                identity.possible_match = owner
    if requested and requested != customer_id:
        customer.redirected_from = requested
    return customer


def _refused(exc: MergeRefused) -> Response[dict[str, Any]]:
    return error(exc.status, exc.reason)


@router.get("/customers", responses=documented(200, CustomerList, 400, 401))
def find_customers(
    identity: Annotated[str, Query(description="<type>:<value>, e.g. email:ana@example.com", max_length=400)],
) -> Response[dict[str, Any]]:
    """The customers holding the identity: its verified owner first (``verification: verified``),
    then the profile of unauthenticated messages claiming it (``verification: claimed``)."""
    try:
        wanted = parse_identity(identity)
    except InvalidIdentity as exc:
        return error(400, str(exc))
    owners, claims = customers.owners_and_claims([wanted], [wanted])
    found: list[Customer] = []
    for holder, verification in ((owners.get(wanted.key), "verified"), (claims.get(wanted.key), "claimed")):
        state = find_root(customers, merger, holder, _now()).state if holder else None
        if state is None or any(c.customer_id == state.customer_id for c in found):
            continue  # gone, or the claim's profile became (or was merged into) the owner
        customer = _customer(state.customer_id)
        if customer is not None:
            customer.verification = verification  # type: ignore[assignment]
            found.append(customer)
    return json_body(200, CustomerList(customers=found))


@router.get("/customers/<customer_id>", responses=documented(200, Customer, 401, 404))
def get_customer(customer_id: str) -> Response[dict[str, Any]]:
    state, failure = _root(customer_id)
    if state is None:
        return failure  # type: ignore[return-value]
    customer = _customer(state.customer_id, customer_id)
    if customer is None:
        return error(404, f"no customer {customer_id}")
    return json_body(200, customer)


@router.get("/customers/<customer_id>/conversations", responses=documented(200, ConversationList, 401, 404))
def list_conversations(customer_id: str) -> Response[dict[str, Any]]:
    """The survivor's conversations, including those of every profile merged into it."""
    state, failure = _root(customer_id)
    if state is None:
        return failure  # type: ignore[return-value]
    found: dict[str, ConversationSummary] = {}
    for member in merged_tree(customers, state):
        for summary in conversations.list_for_customer(member.customer_id):
            found.setdefault(summary.conversation_id, summary)
    listed = sorted(found.values(), key=lambda c: c.opened_at, reverse=True)
    return json_body(200, ConversationList(customer_id=state.customer_id, conversations=listed))


@router.get("/customers/<customer_id>/merges", responses=documented(200, MergeList, 401, 404))
def list_merges(customer_id: str) -> Response[dict[str, Any]]:
    """The audit records of every merge the customer took part in, newest first."""
    state, failure = _root(customer_id)
    if state is None:
        return failure  # type: ignore[return-value]
    records = [customers.get_merge(item["merge_id"]) for item in state.history]
    return json_body(
        200,
        MergeList(customer_id=state.customer_id, merges=[MergeRecord(**r) for r in records if r]),
    )


@router.post("/customers/<customer_id>/merge", responses=documented(200, MergeResult, 400, 401, 404, 409))
def merge(customer_id: str, body: MergeBody) -> Response[dict[str, Any]]:
    """Merge ``other_customer_id`` into this customer, which survives (the agent chooses)."""
    for _ in range(WRITE_ATTEMPTS):
        try:
            merge_id = merge_customers(
                customers, merger, customer_id, body.other_customer_id, cause=_agent(), now=_now()
            )
        except MergeRefused as exc:
            return _refused(exc)
        except ProfileChanged:
            continue
        record = customers.get_merge(merge_id)
        customer = _customer(customer_id)
        if record is None or customer is None:
            return error(409, "the customers changed while merging; look them up again")
        return json_body(200, MergeResult(merge=MergeRecord(**record), customer=customer))
    return error(409, "the customers kept changing while merging; try again")


@router.post("/customers/<customer_id>/unmerge", responses=documented(200, UnmergeResult, 400, 401, 404, 409))
def unmerge(customer_id: str, body: UnmergeBody) -> Response[dict[str, Any]]:
    """Reverse a merge: identities, conversations and attribute values go back."""
    try:
        record = unmerge_customers(customers, merger, customer_id, body.merge_id, _agent(), _now())
    except MergeRefused as exc:
        return _refused(exc)
    survivor = _customer(record["survivor_id"])
    restored = _customer(record["merged_id"])
    if survivor is None or restored is None:
        return error(409, "the customers changed while unmerging; look them up again")
    return json_body(200, UnmergeResult(merge=MergeRecord(**record), survivor=survivor, restored=restored))


@router.post(
    "/customers/<customer_id>/identities/confirm", responses=documented(200, Customer, 400, 401, 404, 409)
)
def confirm_identity(customer_id: str, body: ConfirmBody) -> Response[dict[str, Any]]:
    """An agent confirms a claimed identity: it becomes verified and belongs to this customer."""
    try:
        value = normalise_value(body.type, body.value)
    except InvalidIdentity as exc:
        return error(400, str(exc))
    identity = Identity(type=body.type, value=value, verified=True)
    for _ in range(WRITE_ATTEMPTS):
        state, failure = _root(customer_id)
        if state is None:
            return failure  # type: ignore[return-value]
        link = state.link(identity_sk(identity))
        if link is None:
            return error(404, f"customer {state.customer_id} has no claimed identity {identity.key}")
        if not link.get("verified"):
            try:
                customers.confirm(state.customer_id, identity, _now(), by=_agent())
            except IdentityTaken as taken:
                return error(
                    409,
                    f"{identity.key} is verified for customer {taken.owner}; merge the two customers "
                    "instead if they are one person",
                    owner_customer_id=taken.owner,
                )
            except IdentityErased:
                return error(409, f"{identity.key} belongs to an erased customer")
            except ProfileChanged:
                continue
        customer = _customer(state.customer_id, customer_id)
        if customer is None:
            continue
        return json_body(200, customer)
    return error(409, f"customer {customer_id} kept changing; try again")


def _patch_values(
    state: ProfileState, patch: CustomerPatch, by: str, now: str
) -> tuple[dict[str, Any], list[str]]:
    profile = state.profile
    attributes = with_choices(profile.get("attributes") or {}, patch, now, by)
    given = patch.model_fields_set
    set_values: dict[str, Any] = {}
    remove: list[str] = []
    if "name" in given:
        if patch.name is None:
            attributes.pop("name", None)
        else:
            attributes["name"] = {"value": patch.name, "at": now, "source": by}
    for name, value in (patch.attributes or {}).items():
        if value is None:
            attributes.pop(name, None)
        else:
            attributes[name] = {"value": value, "at": now, "source": by}
    set_values["attributes"] = attributes
    if "name" in given:
        if patch.name is None:
            remove.append("display_name")
        else:
            set_values["display_name"] = patch.name
    if "tags" in given:
        set_values["tags"] = patch.tags or []
    set_values.update(consent_items(patch, now, by))
    set_values["updated_at"] = now
    return set_values, remove


@router.patch("/customers/<customer_id>", responses=documented(200, Customer, 400, 401, 404, 409))
def patch_customer(customer_id: str, body: CustomerPatch) -> Response[dict[str, Any]]:
    """Update preferences and attributes; each keeps ``agent:<id>`` as its source."""
    for _ in range(WRITE_ATTEMPTS):
        state, failure = _root(customer_id)
        if state is None:
            return failure  # type: ignore[return-value]
        set_values, remove = _patch_values(state, body, _agent(), _now())
        if customers.update_profile(state.customer_id, state.version, set_values, remove):
            customer = _customer(state.customer_id, customer_id)
            if customer is not None:
                return json_body(200, customer)
    return error(409, f"customer {customer_id} kept changing; try again")


@router.delete("/customers/<customer_id>", responses=documented(200, ErasureResult, 401, 404, 409))
def erase(customer_id: str) -> Response[dict[str, Any]]:
    """Right to erasure: the profile, its identities, merge records, conversations and messages."""
    now = datetime.now(UTC)
    try:
        result = erase_customer(customers, merger, customer_id, format_timestamp(now), int(now.timestamp()))
    except MergeRefused as exc:
        return _refused(exc)
    return json_body(
        200,
        ErasureResult(
            customer_id=result.customer_id,
            erased_at=result.erased_at,
            already_erased=result.already,
            profiles=result.profiles,
            identities=result.identities,
            conversations=result.conversations,
        ),
    )


@router.get("/customers/<customer_id>/export", responses=documented(200, Export, 401, 404))
def export(customer_id: str) -> Response[dict[str, Any]]:
    """Everything stored about the person, as one JSON document."""
    try:
        data = export_customer(customers, merger, customer_id, _now())
    except MergeRefused as exc:
        return _refused(exc)
    return Response(
        status_code=200,
        content_type=content_types.APPLICATION_JSON,
        body=data,
        headers={"Content-Disposition": f'attachment; filename="customer-{customer_id}.json"'},
    )
