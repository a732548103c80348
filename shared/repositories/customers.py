"""Customer profiles and identity ownership in the ``customers`` table.

Items (``pk`` / ``sk``):

* ``CUST#<id>`` / ``PROFILE`` - the profile (name, created_at, open conversation);
* ``CUST#<id>`` / ``IDENT#<type>#<value>`` - an identity of the customer, verified or claimed;
* ``IDENT#<type>#<value>`` / ``OWNER`` - which customer owns a verified identity.

An identity belongs to at most one customer at any moment: the ownership item is
written with a condition, never after a read, so two concurrent first messages from
one phone number cannot create two owners.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from shared.events import Identity
from shared.models import Customer, CustomerIdentity
from shared.repositories.dynamo import DynamoTable, cancellation_codes, serialise

PROFILE = "PROFILE"
OWNER = "OWNER"


def customer_pk(customer_id: str) -> str:
    return f"CUST#{customer_id}"


def owner_pk(identity: Identity) -> str:
    return f"IDENT#{identity.type}#{identity.value}"


def identity_sk(identity: Identity) -> str:
    return f"IDENT#{identity.type}#{identity.value}"


class IdentityTaken(Exception):
    """A verified identity is owned by another customer (a merge decision, not ours to make here)."""

    def __init__(self, identity: Identity, owner: str | None) -> None:
        super().__init__(f"{identity.key} belongs to {owner}")
        self.identity = identity
        self.owner = owner


class CustomerRepository:
    def __init__(self, table: DynamoTable | None = None) -> None:
        self.table = table or DynamoTable("CUSTOMERS_TABLE")

    # -- reads ------------------------------------------------------------- #
    def owner_of(self, identity: Identity) -> str | None:
        item = self.table.get({"pk": owner_pk(identity), "sk": OWNER})
        return item["customer_id"] if item else None

    def get_profile(self, customer_id: str) -> dict[str, Any] | None:
        return self.table.get({"pk": customer_pk(customer_id), "sk": PROFILE})

    def get(self, customer_id: str) -> Customer | None:
        items = self.table.query_all(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": customer_pk(customer_id)}},
            ConsistentRead=True,
        )
        profile = next((i for i in items if i["sk"] == PROFILE), None)
        if profile is None:
            return None
        identities = [
            CustomerIdentity(
                type=i["type"],
                value=i["value"],
                verified=bool(i.get("verified")),
                added_at=i["added_at"],
                source=i.get("source"),
            )
            for i in items
            if i["sk"].startswith("IDENT#")
        ]
        return Customer(
            customer_id=customer_id,
            display_name=profile.get("display_name"),
            created_at=profile["created_at"],
            identities=identities,
            open_conversation_id=profile.get("open_conversation_id"),
        )

    # -- writes ------------------------------------------------------------ #
    def _identity_item(
        self, customer_id: str, identity: Identity, now: str, source: str | None
    ) -> dict[str, Any]:
        return {
            "pk": customer_pk(customer_id),
            "sk": identity_sk(identity),
            "type": identity.type,
            "value": identity.value,
            "verified": identity.verified,
            "added_at": now,
            "source": source,
        }

    def create(
        self,
        customer_id: str,
        identities: list[Identity],
        now: str,
        display_name: str | None = None,
        source: str | None = None,
    ) -> None:
        """Create a customer owning every verified identity in ``identities``, atomically.

        Raises :class:`IdentityTaken` when one of them got an owner in the meantime;
        then nothing was written.
        """
        actions: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table.name,
                    "Item": serialise(
                        {
                            "pk": customer_pk(customer_id),
                            "sk": PROFILE,
                            "customer_id": customer_id,
                            "created_at": now,
                            "updated_at": now,
                            "display_name": display_name,
                        }
                    ),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        owned: list[Identity] = []
        for identity in identities:
            actions.append(
                {
                    "Put": {
                        "TableName": self.table.name,
                        "Item": serialise(self._identity_item(customer_id, identity, now, source)),
                    }
                }
            )
            if identity.verified:
                owned.append(identity)
                actions.append(
                    {
                        "Put": {
                            "TableName": self.table.name,
                            "Item": serialise(
                                {
                                    "pk": owner_pk(identity),
                                    "sk": OWNER,
                                    "customer_id": customer_id,
                                    "since": now,
                                }
                            ),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    }
                )
        try:
            self.table.client.transact_write_items(TransactItems=actions)
        except ClientError as error:
            codes = cancellation_codes(error)
            if "ConditionalCheckFailed" not in codes:
                raise
            # Find which identity was taken to tell the caller who owns it now.
            for action, code in zip(actions, codes, strict=False):
                if code == "ConditionalCheckFailed" and action["Put"]["Item"]["sk"]["S"] == OWNER:
                    taken = next(i for i in owned if owner_pk(i) == action["Put"]["Item"]["pk"]["S"])
                    raise IdentityTaken(taken, self.owner_of(taken)) from error
            raise

    def attach(self, customer_id: str, identity: Identity, now: str, source: str | None = None) -> None:
        """Add ``identity`` to the customer. A verified one is also claimed for ownership.

        Idempotent: attaching an identity the customer already has changes nothing.
        Raises :class:`IdentityTaken` when another customer owns it.
        """
        link = {
            "Put": {
                "TableName": self.table.name,
                "Item": serialise(self._identity_item(customer_id, identity, now, source)),
                # Keep the first sighting; a claimed link may be upgraded to verified.
                "ConditionExpression": (
                    "attribute_not_exists(pk) OR (verified = :false AND :verified = :true)"
                ),
                "ExpressionAttributeValues": {
                    ":false": {"BOOL": False},
                    ":true": {"BOOL": True},
                    ":verified": {"BOOL": identity.verified},
                },
            }
        }
        if not identity.verified:
            try:
                self.table.client.transact_write_items(TransactItems=[link])
            except ClientError as error:
                if "ConditionalCheckFailed" not in cancellation_codes(error):
                    raise
            return
        owner = {
            "Put": {
                "TableName": self.table.name,
                "Item": serialise(
                    {"pk": owner_pk(identity), "sk": OWNER, "customer_id": customer_id, "since": now}
                ),
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        try:
            self.table.client.transact_write_items(TransactItems=[owner, link])
        except ClientError as error:
            codes = cancellation_codes(error)
            if "ConditionalCheckFailed" not in codes:
                raise
            current = self.owner_of(identity)
            if current != customer_id:
                raise IdentityTaken(identity, current) from error
            # Already ours; the link exists too unless an earlier attempt stopped half-way,
            # which a transaction rules out. Nothing to do.

    def set_open_conversation(self, customer_id: str, conversation_id: str) -> dict[str, Any]:
        """The update action that marks ``conversation_id`` open, if none is (for a transaction)."""
        return {
            "Update": {
                "TableName": self.table.name,
                "Key": serialise({"pk": customer_pk(customer_id), "sk": PROFILE}),
                "UpdateExpression": "SET open_conversation_id = :c",
                "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(open_conversation_id)",
                "ExpressionAttributeValues": {":c": {"S": conversation_id}},
            }
        }
