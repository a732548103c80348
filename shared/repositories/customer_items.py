"""Keys, item builders and the profile state of the ``customers`` table
(the item layout is described in :mod:`shared.repositories.customers`)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.contracts.events import Identity
from shared.platform import settings
from shared.repositories.dynamo import DynamoTable, serialise

if TYPE_CHECKING:
    from shared.repositories.customer_profile import CustomerProfile

PROFILE = "PROFILE"
OWNER = "OWNER"
#: Sort key of the item naming the profile a *claimed* sender address resolves to.
CLAIM = "CLAIM"
TOMBSTONE = "TOMBSTONE"
MERGE = "MERGE"
IDENT_PREFIX = "IDENT#"
HISTORY_PREFIX = "MERGE#"
#: Profile attribute per channel: ``consent_sms`` = {status, at, source}.
CONSENT_PREFIX = "consent_"
#: Profile attribute per kind of identity change a provider reported (the latest kept):
#: ``identity_change_user_changed_number`` = {at, message_id, from, to}.
IDENTITY_CHANGE_PREFIX = "identity_change_"
ACTIVE, MERGED, ERASED = "active", "merged", "erased"
#: Identities moved in the merge transaction itself (3 actions each, 100 per transaction);
#: any further ones move right after, while the merged-away profile points to the survivor.
MOVES_PER_TRANSACTION = 30
TOMBSTONE_RETENTION_ENV = settings.OMNI_TOMBSTONE_RETENTION_DAYS
#: Longer than every way an old event can come back: the bus archive (30 days) and
#: provider retries (Meta: up to 7 days).
DEFAULT_TOMBSTONE_RETENTION_DAYS = 90

Item = dict[str, Any]


def customer_pk(customer_id: str) -> str:
    return f"CUST#{customer_id}"


def owner_pk(identity: Identity) -> str:
    return f"IDENT#{identity.type}#{identity.value}"


def identity_sk(identity: Identity) -> str:
    return f"IDENT#{identity.type}#{identity.value}"


def tombstone_pk(identity: Identity) -> str:
    return "TOMB#" + hashlib.sha256(identity.key.encode()).hexdigest()


def merge_pk(merge_id: str) -> str:
    return f"MERGE#{merge_id}"


def history_sk(at: str, merge_id: str) -> str:
    return f"{HISTORY_PREFIX}{at}#{merge_id}"


def tombstone_retention_days() -> int:
    return int(os.environ.get(TOMBSTONE_RETENTION_ENV, DEFAULT_TOMBSTONE_RETENTION_DAYS))


def link_identity(link: Item) -> Identity:
    return Identity(type=link["type"], value=link["value"], verified=bool(link.get("verified")))


class IdentityTaken(Exception):
    """A verified identity is owned by another customer."""

    def __init__(self, identity: Identity, owner: str | None) -> None:
        super().__init__(f"{identity.key} belongs to {owner}")
        self.identity = identity
        self.owner = owner


class IdentityErased(Exception):
    """The identity was erased after the message was sent: a replay of the erased person's data."""

    def __init__(self, identity: Identity) -> None:
        super().__init__(f"{identity.type} identity was erased")
        self.identity = identity


class ProfileChanged(Exception):
    """A profile changed (or was merged or erased) since it was read: read again and retry."""


@dataclass
class ProfileState:
    """Everything in a customer's partition, read in one query."""

    profile: Item
    links: list[Item] = field(default_factory=list)
    history: list[Item] = field(default_factory=list)

    @property
    def customer_id(self) -> str:
        return str(self.profile["customer_id"])

    @property
    def status(self) -> str:
        return str(self.profile.get("status", ACTIVE))

    @property
    def version(self) -> int:
        return int(self.profile.get("version", 0))

    def aggregate(self) -> CustomerProfile:
        """The profile item, typed."""
        from shared.repositories.customer_profile import CustomerProfile  # noqa: PLC0415 - cycle

        return CustomerProfile.from_item(self.profile)

    def link(self, sk: str) -> Item | None:
        return next((link for link in self.links if link["sk"] == sk), None)

    def link_of(self, identity: Identity) -> Item | None:
        """This customer's link item of ``identity``, if the profile has it."""
        return self.link(identity_sk(identity))

    def adopted(self, link: Item) -> Item:
        """``link`` (another customer's link item) as an item of this customer's partition."""
        return {**link, "pk": customer_pk(self.customer_id)}


def _put(table: str, item: Item, condition: str | None = None, values: Item | None = None) -> Item:
    action: Item = {"TableName": table, "Item": serialise(item)}
    if condition:
        action["ConditionExpression"] = condition
    if values:
        action["ExpressionAttributeValues"] = serialise(values)
    return {"Put": action}


def _delete(table: str, key: Item, condition: str | None = None, values: Item | None = None) -> Item:
    action: Item = {"TableName": table, "Key": serialise(key)}
    if condition:
        action["ConditionExpression"] = condition
    if values:
        action["ExpressionAttributeValues"] = serialise(values)
    return {"Delete": action}


def _update(
    table: str,
    key: Item,
    set_values: Item,
    remove: list[str] | tuple[str, ...] = (),
    condition: str | None = None,
    condition_values: Item | None = None,
    add: Item | None = None,
) -> Item:
    """An Update action: ``SET`` every attribute in ``set_values`` (by name), ``REMOVE`` ``remove``."""
    names: dict[str, str] = {"#status": "status"} if condition and "#status" in condition else {}
    values: Item = dict(condition_values or {})
    parts: list[str] = []
    sets = []
    for i, (name, value) in enumerate(set_values.items()):
        names[f"#s{i}"] = name
        values[f":s{i}"] = value
        sets.append(f"#s{i} = :s{i}")
    if sets:
        parts.append("SET " + ", ".join(sets))
    if remove:
        removes = []
        for i, name in enumerate(remove):
            names[f"#r{i}"] = name
            removes.append(f"#r{i}")
        parts.append("REMOVE " + ", ".join(removes))
    if add:
        adds = []
        for i, (name, value) in enumerate(add.items()):
            names[f"#a{i}"] = name
            values[f":a{i}"] = value
            adds.append(f"#a{i} :a{i}")
        parts.append("ADD " + ", ".join(adds))
    action: Item = {
        "TableName": table,
        "Key": serialise(key),
        "UpdateExpression": " ".join(parts),
        "ExpressionAttributeNames": names,
    }
    if values:
        action["ExpressionAttributeValues"] = serialise(values)
    if condition:
        action["ConditionExpression"] = condition
    return {"Update": action}


def _profile_key(customer_id: str) -> Item:
    return {"pk": customer_pk(customer_id), "sk": PROFILE}


ACTIVE_AT_VERSION = "#status = :active AND version = :version"


class CustomerTable:
    """What the parts of the customers repository share: the table and its transactions."""

    table: DynamoTable

    def _transact(self, actions: list[Item]) -> list[str] | None:
        """Run a transaction: None when it was applied, else why each action failed."""
        cancelled = self.table.transact(actions)
        return cancelled.codes if cancelled is not None else None
