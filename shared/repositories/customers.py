"""Customer profiles, identity ownership, merge records and erasure tombstones in the ``customers`` table.

Items (``pk`` / ``sk``):

* ``CUST#<id>`` / ``PROFILE`` - the profile: ``customer_id``, ``created_at``, ``updated_at``,
  ``status`` (``active`` | ``merged`` | ``erased``), ``version`` (optimistic lock, bumped by
  every write that a merge must not overwrite), ``display_name`` (mirror of the ``name``
  attribute), ``attributes`` (map: name -> ``{value, at, source}``; ``name``, ``language``,
  ``timezone``, ``channel_preferences`` and custom ones), ``tags`` (list),
  ``consent_<channel>`` (``{status, at, source}``), ``last_seen`` (map: channel -> latest
  provider timestamp), ``contacts`` (map: ``YYYY-MM-DD`` -> inbound messages that day, the
  last 30 days), ``retain_until_day`` (``YYYY-MM-DD``, the last day the data is kept: the last
  contact plus ``OMNI_RETENTION_DAYS``; the key of the sparse ``retention`` index, see
  :mod:`shared.domain.retention`), ``open_conversation_id``. A merged-away profile also has ``merged_into``,
  ``merge_id``, ``merged_at`` and, until its identities and conversations have all moved,
  ``merge_pending``. An erased profile keeps only ``customer_id``, ``status`` and
  ``erased_at``: its id answers "erased", and nothing about the person is left;
* ``CUST#<id>`` / ``IDENT#<type>#<value>`` - an identity of the customer, verified or claimed;
* ``CUST#<id>`` / ``MERGE#<at>#<merge id>`` - the customer's merge history (survivor or merged side);
* ``IDENT#<type>#<value>`` / ``OWNER`` - which customer owns a verified identity;
* ``MERGE#<merge id>`` / ``MERGE`` - the audit record of a merge, with what unmerge needs to
  give identities, conversations and attribute values back;
* ``TOMB#<sha256 of type:value>`` / ``TOMBSTONE`` - an erased identity: ``erased_at`` and
  ``expires_at`` (the table's TTL attribute). Only a hash is kept, no phone number or address.

An identity belongs to at most one customer at any moment: the ownership item is
written with a condition, never after a read, so two concurrent first messages from
one phone number cannot create two owners, and a merge moves it with the condition
that the merged-away customer still owns it. Every multi-item change (create, attach,
merge, unmerge, erase) is one transaction guarded by the profiles' ``version``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from shared.contracts.events import Identity
from shared.contracts.models import AttributeValue, Consent, Customer, CustomerIdentity, MergeSummary
from shared.domain.retention import RETAIN_ATTRIBUTE, RETENTION_INDEX, day_of, retain_until, retention_days
from shared.repositories.dynamo import DynamoTable, cancellation_codes, deserialise, serialise

PROFILE = "PROFILE"
OWNER = "OWNER"
TOMBSTONE = "TOMBSTONE"
MERGE = "MERGE"
IDENT_PREFIX = "IDENT#"
HISTORY_PREFIX = "MERGE#"
#: Profile attribute per channel: ``consent_sms`` = {status, at, source}.
CONSENT_PREFIX = "consent_"
ACTIVE, MERGED, ERASED = "active", "merged", "erased"
#: Identities moved in the merge transaction itself (3 actions each, 100 per transaction);
#: any further ones move right after, while the merged-away profile points to the survivor.
MOVES_PER_TRANSACTION = 30
TOMBSTONE_RETENTION_ENV = "OMNI_TOMBSTONE_RETENTION_DAYS"
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

    def link(self, sk: str) -> Item | None:
        return next((link for link in self.links if link["sk"] == sk), None)


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


class CustomerRepository:
    def __init__(self, table: DynamoTable | None = None) -> None:
        self.table = table or DynamoTable("CUSTOMERS_TABLE")

    # -- transactions ------------------------------------------------------ #
    def _transact(self, actions: list[Item]) -> list[str] | None:
        """Run a transaction: None when it was applied, else why each action failed."""
        try:
            self.table.client.transact_write_items(TransactItems=actions)
        except ClientError as error:
            codes = cancellation_codes(error)
            if "ConditionalCheckFailed" in codes or "TransactionConflict" in codes:
                return codes
            raise
        return None

    # -- reads ------------------------------------------------------------- #
    def owner_of(self, identity: Identity) -> str | None:
        item = self.table.get({"pk": owner_pk(identity), "sk": OWNER})
        return item["customer_id"] if item else None

    def owners_of(self, identities: list[Identity]) -> dict[str, str]:
        """``{identity key: owning customer id}`` for those owned, in one request."""
        keys = {owner_pk(i): i for i in identities}
        found: dict[str, str] = {}
        pending = [serialise({"pk": pk, "sk": OWNER}) for pk in keys]
        while pending:
            response = self.table.client.batch_get_item(
                RequestItems={self.table.name: {"Keys": pending[:100], "ConsistentRead": True}}
            )
            pending = pending[100:]
            for raw in response.get("Responses", {}).get(self.table.name, []):
                item = deserialise(raw)
                found[keys[item["pk"]].key] = item["customer_id"]
            pending = (
                list(response.get("UnprocessedKeys", {}).get(self.table.name, {}).get("Keys", [])) + pending
            )
        return found

    def get_profile(self, customer_id: str) -> dict[str, Any] | None:
        return self.table.get(_profile_key(customer_id))

    def load(self, customer_id: str) -> ProfileState | None:
        items = self.table.query_all(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": customer_pk(customer_id)}},
            ConsistentRead=True,
        )
        profile = next((i for i in items if i["sk"] == PROFILE), None)
        if profile is None:
            return None
        return ProfileState(
            profile=profile,
            links=[i for i in items if i["sk"].startswith(IDENT_PREFIX)],
            history=sorted(
                (i for i in items if i["sk"].startswith(HISTORY_PREFIX)), key=lambda i: i["sk"], reverse=True
            ),
        )

    def get(self, customer_id: str, today: str | None = None) -> Customer | None:
        state = self.load(customer_id)
        return to_customer(state, today) if state else None

    def get_merge(self, merge_id: str) -> Item | None:
        return self.table.get({"pk": merge_pk(merge_id), "sk": MERGE})

    def tombstone(self, identity: Identity) -> Item | None:
        return self.table.get({"pk": tombstone_pk(identity), "sk": TOMBSTONE})

    # -- identities -------------------------------------------------------- #
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

    def _owner_put(self, customer_id: str, identity: Identity, now: str, stale: str | None) -> Item:
        item = {"pk": owner_pk(identity), "sk": OWNER, "customer_id": customer_id, "since": now}
        if stale:
            # The owner's profile is gone (erased half-way): the item may be taken over.
            return _put(
                self.table.name,
                item,
                "attribute_not_exists(pk) OR customer_id = :stale",
                {":stale": stale},
            )
        return _put(self.table.name, item, "attribute_not_exists(pk)")

    def _tombstone_check(self, identity: Identity, sent_at: str) -> Item:
        return {
            "ConditionCheck": {
                "TableName": self.table.name,
                "Key": serialise({"pk": tombstone_pk(identity), "sk": TOMBSTONE}),
                "ConditionExpression": "attribute_not_exists(pk) OR erased_at < :sent",
                "ExpressionAttributeValues": serialise({":sent": sent_at}),
            }
        }

    def _raise_for(self, actions: list[Item], codes: list[str], owned: dict[int, Identity]) -> None:
        """Turn a cancelled create/attach into IdentityErased / IdentityTaken / ProfileChanged."""
        for index, code in enumerate(codes):
            if code != "ConditionalCheckFailed" or index not in owned:
                continue
            identity = owned[index]
            if "ConditionCheck" in actions[index]:
                raise IdentityErased(identity)
            raise IdentityTaken(identity, self.owner_of(identity))
        raise ProfileChanged("the profile changed; read it again")

    def create(
        self,
        customer_id: str,
        identities: list[Identity],
        now: str,
        display_name: str | None = None,
        source: str | None = None,
        *,
        sent_at: str | None = None,
        stale_owners: dict[str, str] | None = None,
    ) -> None:
        """Create a customer owning every verified identity in ``identities``, atomically.

        Raises :class:`IdentityTaken` when one of them got an owner in the meantime, and
        :class:`IdentityErased` when one was erased after ``sent_at``; then nothing was written.
        """
        attributes = (
            {"name": {"value": display_name, "at": now, "source": source or "unknown"}}
            if display_name
            else {}
        )
        actions: list[Item] = [
            _put(
                self.table.name,
                {
                    "pk": customer_pk(customer_id),
                    "sk": PROFILE,
                    "customer_id": customer_id,
                    "created_at": now,
                    "updated_at": now,
                    "status": ACTIVE,
                    "version": 0,
                    "display_name": display_name,
                    "attributes": attributes,
                    "tags": [],
                    "last_seen": {},
                    "contacts": {},
                    RETAIN_ATTRIBUTE: retain_until(day_of(now), retention_days()),
                },
                "attribute_not_exists(pk)",
            )
        ]
        owned: dict[int, Identity] = {}
        for identity in identities:
            actions.append(_put(self.table.name, self._identity_item(customer_id, identity, now, source)))
            if identity.verified:
                owned[len(actions)] = identity
                actions.append(
                    self._owner_put(customer_id, identity, now, (stale_owners or {}).get(identity.key))
                )
                if sent_at:
                    owned[len(actions)] = identity
                    actions.append(self._tombstone_check(identity, sent_at))
        codes = self._transact(actions)
        if codes is not None:
            self._raise_for(actions, codes, owned)

    def attach(
        self,
        customer_id: str,
        identity: Identity,
        now: str,
        source: str | None = None,
        *,
        sent_at: str | None = None,
        stale_owner: str | None = None,
    ) -> bool:
        """Add ``identity`` to the active customer. A verified one is also claimed for ownership.

        Idempotent: attaching an identity the customer already has (at least as strongly)
        changes nothing and returns False. Raises :class:`IdentityTaken` when another
        customer owns it, :class:`IdentityErased` for a replay of erased data, and
        :class:`ProfileChanged` when the customer was merged or erased meanwhile.
        """
        link = _put(
            self.table.name,
            self._identity_item(customer_id, identity, now, source),
            # Keep the first sighting; a claimed link may be upgraded to verified.
            "attribute_not_exists(pk) OR (verified = :false AND :verified = :true)",
            {":false": False, ":true": True, ":verified": identity.verified},
        )
        # Bumping the version makes a merge that read the customer's identities before
        # this one was added fail its condition and read them again.
        profile = _update(
            self.table.name,
            _profile_key(customer_id),
            {"updated_at": now},
            condition="#status = :active",
            condition_values={":active": ACTIVE},
            add={"version": 1},
        )
        actions = [link, profile]
        owned: dict[int, Identity] = {}
        if identity.verified:
            owned[len(actions)] = identity
            actions.append(self._owner_put(customer_id, identity, now, stale_owner))
            if sent_at:
                owned[len(actions)] = identity
                actions.append(self._tombstone_check(identity, sent_at))
        codes = self._transact(actions)
        if codes is None:
            return True
        if codes[1] == "ConditionalCheckFailed":
            raise ProfileChanged(f"customer {customer_id} is no longer active")
        if codes[0] == "ConditionalCheckFailed" and all(c in ("None", "") for c in codes[2:]):
            return False  # on the profile already, at least as strongly
        for index in owned:
            if codes[index] == "ConditionalCheckFailed" and "Put" in actions[index]:
                current = self.owner_of(identity)
                if current == customer_id:
                    return False  # ours already (a redelivery)
                raise IdentityTaken(identity, current)
        self._raise_for(actions, codes, owned)
        return False

    def confirm(self, customer_id: str, identity: Identity, now: str, by: str) -> bool:
        """An agent confirms a claimed identity: it becomes verified and owned by the customer."""
        return self.attach(customer_id, identity.model_copy(update={"verified": True}), now, source=by)

    # -- profile attributes ------------------------------------------------ #
    def set_consent(self, customer_id: str, channel: str, consent: Consent) -> bool:
        """Record a consent change unless a later one is recorded already (events arrive out of order).

        False when the stored choice is newer than ``consent`` (or the same one: a
        redelivered keyword changes nothing). At the same instant an opt-out wins.
        """
        try:
            self.table.client.update_item(
                TableName=self.table.name,
                Key=serialise(_profile_key(customer_id)),
                UpdateExpression="SET #consent = :consent, updated_at = :now ADD version :one",
                ConditionExpression=(
                    "attribute_exists(pk) AND (attribute_not_exists(#consent) OR #consent.#at < :at "
                    "OR (#consent.#at = :at AND #consent.#status <> :status AND :status = :out))"
                ),
                ExpressionAttributeNames={
                    "#consent": f"{CONSENT_PREFIX}{channel}",
                    "#at": "at",
                    "#status": "status",
                },
                ExpressionAttributeValues=serialise(
                    {
                        ":consent": consent.model_dump(),
                        ":at": consent.at,
                        ":now": consent.at,
                        ":status": consent.status,
                        ":out": "opted_out",
                        ":one": 1,
                    }
                ),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def mark_undeliverable(self, customer_id: str, identity: Identity, at: str, reason: str) -> bool:
        """Record on the customer's identity that it cannot be reached (an e-mail bounce):
        ``undeliverable`` = ``{at, reason}``, the latest report kept. False when the customer
        has no such identity (erased, moved, never had it) or a later report is recorded."""
        try:
            self.table.client.update_item(
                TableName=self.table.name,
                Key=serialise({"pk": customer_pk(customer_id), "sk": identity_sk(identity)}),
                UpdateExpression="SET undeliverable = :u",
                ConditionExpression="attribute_exists(pk) AND "
                "(attribute_not_exists(undeliverable) OR undeliverable.#at < :at)",
                ExpressionAttributeNames={"#at": "at"},
                ExpressionAttributeValues=serialise({":u": {"at": at, "reason": reason}, ":at": at}),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def set_open_conversation(self, customer_id: str, conversation_id: str) -> dict[str, Any]:
        """The update action that marks ``conversation_id`` open, if none is (for a transaction).

        Only on an active profile: a merged-away customer gets no new conversation.
        """
        return {
            "Update": {
                "TableName": self.table.name,
                "Key": serialise(_profile_key(customer_id)),
                "UpdateExpression": "SET open_conversation_id = :c",
                "ConditionExpression": (
                    "attribute_exists(pk) AND attribute_not_exists(open_conversation_id) "
                    "AND (attribute_not_exists(#status) OR #status = :active)"
                ),
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {":c": {"S": conversation_id}, ":active": {"S": ACTIVE}},
            }
        }

    def update_profile(
        self, customer_id: str, version: int, set_values: Item, remove: list[str] | None = None
    ) -> bool:
        """Write attributes of an active profile read at ``version``; False when it changed since."""
        action = _update(
            self.table.name,
            _profile_key(customer_id),
            {**set_values, "version": version + 1},
            remove=remove or [],
            condition=ACTIVE_AT_VERSION,
            condition_values={":active": ACTIVE, ":version": version},
        )["Update"]
        try:
            self.table.client.update_item(**action)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def record_contact(
        self,
        customer_id: str,
        channel: str,
        sent_at: str,
        day: str,
        forget_days: list[str],
        newer: bool,
        retain_until_day: str | None = None,
    ) -> None:
        """Count an inbound message (per day) and remember the latest one per channel.

        ``retain_until_day`` (the retention index key) is written in the same request.
        """
        names = {"#day": day}
        values: Item = {":zero": 0, ":one": 1, ":ts": sent_at}
        expression = "SET contacts.#day = if_not_exists(contacts.#day, :zero) + :one, updated_at = :ts"
        if retain_until_day:
            names["#keep"] = RETAIN_ATTRIBUTE
            values[":keep"] = retain_until_day
            expression += ", #keep = :keep"
        if newer:
            names["#ch"] = channel
            expression += ", last_seen.#ch = :ts"
        removes = []
        for i, old in enumerate(forget_days[:20]):
            names[f"#old{i}"] = old
            removes.append(f"contacts.#old{i}")
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        try:
            self.table.client.update_item(
                TableName=self.table.name,
                Key=serialise(_profile_key(customer_id)),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(contacts) AND attribute_exists(last_seen)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=serialise(values),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            # The profile was erased meanwhile: nothing to count.

    # -- merge and unmerge --------------------------------------------------- #
    def _move_actions(
        self, link: Item, from_id: str, to_id: str, replace: Item | None, now: str
    ) -> list[Item]:
        """Move one identity link (and its ownership) between customers."""
        identity = link_identity(link)
        moved = {**link, "pk": customer_pk(to_id), "moved_at": now}
        actions = [
            _delete(self.table.name, {"pk": customer_pk(from_id), "sk": link["sk"]}, "attribute_exists(pk)"),
            _put(self.table.name, replace if replace is not None else moved),
        ]
        if replace is not None and replace.get("pk") != customer_pk(to_id):
            raise ValueError("replacement link must belong to the receiving customer")
        if identity.verified:
            actions.append(
                _update(
                    self.table.name,
                    {"pk": owner_pk(identity), "sk": OWNER},
                    {"customer_id": to_id, "since": now},
                    condition="customer_id = :from",
                    condition_values={":from": from_id},
                )
            )
        return actions

    def commit_merge(
        self,
        survivor: ProfileState,
        other: ProfileState,
        survivor_set: Item,
        record: Item,
        moves: list[Item],
        now: str,
    ) -> bool:
        """Phase one of a merge, atomically: both profiles, the audit record, the first identity moves.

        ``moves`` are the survivor's link items as they must be after the move (one per
        identity of ``other``). False when either profile changed since it was read.
        """
        merge_id = record["merge_id"]
        table = self.table.name
        actions: list[Item] = [
            _update(
                table,
                _profile_key(survivor.customer_id),
                {**survivor_set, "updated_at": now, "version": survivor.version + 1},
                condition=ACTIVE_AT_VERSION,
                condition_values={":active": ACTIVE, ":version": survivor.version},
            ),
            _update(
                table,
                _profile_key(other.customer_id),
                {
                    "status": MERGED,
                    "merged_into": survivor.customer_id,
                    "merge_id": merge_id,
                    "merged_at": now,
                    "merge_pending": True,
                    "updated_at": now,
                    "version": other.version + 1,
                },
                # Out of the retention index: it is erased with the survivor it belongs to now.
                remove=["open_conversation_id", RETAIN_ATTRIBUTE],
                condition=ACTIVE_AT_VERSION,
                condition_values={":active": ACTIVE, ":version": other.version},
            ),
            _put(table, {"pk": merge_pk(merge_id), "sk": MERGE, **record}, "attribute_not_exists(pk)"),
        ]
        for customer_id, role, other_id in (
            (survivor.customer_id, "survivor", other.customer_id),
            (other.customer_id, "merged", survivor.customer_id),
        ):
            actions.append(
                _put(
                    table,
                    {
                        "pk": customer_pk(customer_id),
                        "sk": history_sk(now, merge_id),
                        "merge_id": merge_id,
                        "role": role,
                        "other_customer_id": other_id,
                        "at": now,
                        "cause": record["cause"],
                        "status": "merged",
                    },
                )
            )
        for target in moves[:MOVES_PER_TRANSACTION]:
            source = other.link(target["sk"])
            if source is None:
                continue
            actions.extend(self._move_actions(source, other.customer_id, survivor.customer_id, target, now))
        return self._transact(actions) is None

    def move_identity(self, link: Item, from_id: str, to_id: str, replace: Item | None, now: str) -> bool:
        """Move one identity after the merge transaction; False when it was moved already."""
        return self._transact(self._move_actions(link, from_id, to_id, replace, now)) is None

    def note_merge_conversations(self, merge_id: str, conversation_ids: list[str]) -> None:
        """Record (before moving them) which conversations the merge moves, for unmerge."""
        record = self.get_merge(merge_id) or {}
        known = list(record.get("conversations", []))
        added = [c for c in conversation_ids if c not in known]
        if added:
            self.table.client.update_item(
                TableName=self.table.name,
                Key=serialise({"pk": merge_pk(merge_id), "sk": MERGE}),
                UpdateExpression="SET conversations = :all",
                ExpressionAttributeValues=serialise({":all": known + added}),
            )

    def finish_merge(self, merge_id: str, merged_id: str, moved_identities: list[str]) -> None:
        """Phase two is done: the merged-away profile has nothing left to move."""
        self.table.client.transact_write_items(
            TransactItems=[
                _update(
                    self.table.name,
                    {"pk": merge_pk(merge_id), "sk": MERGE},
                    {"phase": "done", "identities": moved_identities},
                ),
                _update(self.table.name, _profile_key(merged_id), {}, remove=["merge_pending"]),
            ]
        )

    def commit_unmerge(
        self,
        survivor: ProfileState,
        other: ProfileState,
        survivor_set: Item,
        survivor_remove: list[str],
        other_set: Item,
        other_remove: list[str],
        moves_back: list[tuple[Item, Item | None]],
        record: Item,
        by: str,
        now: str,
    ) -> bool:
        """Reverse a merge atomically: profiles, identities (``(link on survivor, restored link)``),
        the audit record and both history items. False when something changed since it was read."""
        table = self.table.name
        actions: list[Item] = [
            _update(
                table,
                _profile_key(survivor.customer_id),
                {**survivor_set, "updated_at": now, "version": survivor.version + 1},
                remove=survivor_remove,
                condition=ACTIVE_AT_VERSION,
                condition_values={":active": ACTIVE, ":version": survivor.version},
            ),
            _update(
                table,
                _profile_key(other.customer_id),
                {**other_set, "status": ACTIVE, "updated_at": now, "version": other.version + 1},
                remove=["merged_into", "merge_id", "merged_at", "merge_pending", *other_remove],
                condition="#status = :merged AND version = :version AND merge_id = :merge",
                condition_values={":merged": MERGED, ":version": other.version, ":merge": record["merge_id"]},
            ),
            _update(
                table,
                {"pk": merge_pk(record["merge_id"]), "sk": MERGE},
                {"status": "unmerged", "unmerged_at": now, "unmerged_by": by},
                condition="#status = :merged",
                condition_values={":merged": "merged"},
            ),
        ]
        for state in (survivor, other):
            for item in state.history:
                if item["merge_id"] == record["merge_id"]:
                    actions.append(
                        _update(
                            table,
                            {"pk": item["pk"], "sk": item["sk"]},
                            {"status": "unmerged", "unmerged_at": now},
                        )
                    )
        for original, restored in moves_back:
            # ``original``: the link as the merged-away customer had it; ``restored``: what the
            # survivor had for the same identity before the merge (a claim), if anything.
            identity = link_identity(original)
            actions.append(_put(table, {**original, "pk": customer_pk(other.customer_id)}))
            if restored is not None:
                actions.append(_put(table, {**restored, "pk": customer_pk(survivor.customer_id)}))
            else:
                actions.append(
                    _delete(table, {"pk": customer_pk(survivor.customer_id), "sk": original["sk"]})
                )
            if identity.verified:
                actions.append(
                    _update(
                        table,
                        {"pk": owner_pk(identity), "sk": OWNER},
                        {"customer_id": other.customer_id, "since": now},
                        condition="customer_id = :from",
                        condition_values={":from": survivor.customer_id},
                    )
                )
        if len(actions) > 100:
            raise ValueError("too many identities to give back in one transaction")
        return self._transact(actions) is None

    # -- erasure ------------------------------------------------------------- #
    def begin_erasure(self, state: ProfileState, now: str, due_before: str | None = None) -> bool:
        """Mark the profile erased first: from then on nothing attaches to it or merges with it.

        With ``due_before`` (a day) only while its retention ends before that day: a message
        recorded since the profile was read moves ``retain_until_day`` and cancels the erasure.
        """
        action = _update(
            self.table.name,
            _profile_key(state.customer_id),
            {"status": ERASED, "erased_at": now, "version": state.version + 1},
            condition=ACTIVE_AT_VERSION + (" AND #keep < :before" if due_before else ""),
            condition_values={
                ":active": ACTIVE,
                ":version": state.version,
                **({":before": due_before} if due_before else {}),
            },
        )["Update"]
        if due_before:
            action["ExpressionAttributeNames"]["#keep"] = RETAIN_ATTRIBUTE
        try:
            self.table.client.update_item(**action)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # -- retention ------------------------------------------------------------ #
    def retention_bucket(self, day: str) -> list[str]:
        """Customers whose retention ends on ``day`` (the sparse index; eventually consistent)."""
        items = self.table.query_all(
            IndexName=RETENTION_INDEX,
            KeyConditionExpression="#keep = :day",
            ExpressionAttributeNames={"#keep": RETAIN_ATTRIBUTE},
            ExpressionAttributeValues={":day": {"S": day}},
        )
        return [str(i["customer_id"]) for i in items]

    def move_retention(self, customer_id: str, stored: str, wanted: str) -> bool:
        """Set ``retain_until_day`` of an active profile still at ``stored``; False when it moved."""
        return self._conditional_update(
            customer_id,
            "SET #keep = :wanted",
            "#status = :active AND #keep = :stored",
            {":wanted": wanted, ":stored": stored, ":active": ACTIVE},
        )

    def leave_retention(self, customer_id: str) -> bool:
        """Take a merged-away profile out of the retention index (its survivor's day counts)."""
        return self._conditional_update(
            customer_id, "REMOVE #keep", "#status = :merged AND attribute_exists(#keep)", {":merged": MERGED}
        )

    def _conditional_update(self, customer_id: str, expression: str, condition: str, values: Item) -> bool:
        try:
            self.table.client.update_item(
                TableName=self.table.name,
                Key=serialise(_profile_key(customer_id)),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#keep": RETAIN_ATTRIBUTE, "#status": "status"},
                ExpressionAttributeValues=serialise(values),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def erase_partition(self, customer_id: str, erased_at: str, expires_at: int) -> list[Identity]:
        """Delete everything of one customer's partition; tombstone and release its identities.

        The profile item is replaced by a marker that says only that the id was erased.
        Returns the identities that were erased.
        """
        state = self.load(customer_id)
        if state is None:
            return []
        table = self.table.name
        erased: list[Identity] = []
        for link in state.links:
            identity = link_identity(link)
            erased.append(identity)
            actions = [
                _put(
                    table,
                    {
                        "pk": tombstone_pk(identity),
                        "sk": TOMBSTONE,
                        "erased_at": erased_at,
                        "expires_at": expires_at,
                    },
                ),
                _delete(table, {"pk": customer_pk(customer_id), "sk": link["sk"]}),
            ]
            if identity.verified:
                actions.append(
                    _delete(
                        table,
                        {"pk": owner_pk(identity), "sk": OWNER},
                        "attribute_not_exists(pk) OR customer_id = :me",
                        {":me": customer_id},
                    )
                )
            if self._transact(actions) is not None:
                # Another customer owns it now (a later message re-created it): keep theirs.
                self._transact(actions[:2])
        for item in state.history:
            self.table.client.delete_item(
                TableName=table, Key=serialise({"pk": item["pk"], "sk": item["sk"]})
            )
        self.table.client.put_item(
            TableName=table,
            Item=serialise(
                {
                    "pk": customer_pk(customer_id),
                    "sk": PROFILE,
                    "customer_id": customer_id,
                    "status": ERASED,
                    "erased_at": erased_at,
                }
            ),
        )
        return erased

    def delete_merge_record(self, merge_id: str) -> None:
        self.table.client.delete_item(
            TableName=self.table.name, Key=serialise({"pk": merge_pk(merge_id), "sk": MERGE})
        )


# --------------------------------------------------------------------------- #
# Read model
# --------------------------------------------------------------------------- #


def contact_counts(contacts: dict[str, int], today: str) -> tuple[int, int]:
    """Inbound messages in the last 7 and 30 days (``today`` included), from per-day counters."""
    from datetime import date, timedelta  # noqa: PLC0415

    day = date.fromisoformat(today[:10])
    week = (day - timedelta(days=6)).isoformat()
    month = (day - timedelta(days=29)).isoformat()
    return (
        sum(n for d, n in contacts.items() if week <= d <= today[:10]),
        sum(n for d, n in contacts.items() if month <= d <= today[:10]),
    )


def to_customer(state: ProfileState, today: str | None = None) -> Customer:
    from shared.contracts.events import format_timestamp, utc_now  # noqa: PLC0415

    profile = state.profile
    attributes = {k: AttributeValue(**v) for k, v in (profile.get("attributes") or {}).items()}
    week, month = contact_counts(profile.get("contacts") or {}, today or format_timestamp(utc_now()))

    def attr(name: str) -> Any:
        value = attributes.get(name)
        return value.value if value else None

    return Customer(
        customer_id=state.customer_id,
        display_name=profile.get("display_name"),
        created_at=str(profile.get("created_at") or profile.get("erased_at") or ""),
        identities=[
            CustomerIdentity(
                type=i["type"],
                value=i["value"],
                verified=bool(i.get("verified")),
                added_at=i["added_at"],
                source=i.get("source"),
                undeliverable=i.get("undeliverable"),
            )
            for i in state.links
        ],
        open_conversation_id=profile.get("open_conversation_id"),
        consent={
            key.removeprefix(CONSENT_PREFIX): Consent(**value)
            for key, value in profile.items()
            if key.startswith(CONSENT_PREFIX)
        },
        status=state.status,  # type: ignore[arg-type]
        updated_at=profile.get("updated_at"),
        language=attr("language"),
        timezone=attr("timezone"),
        tags=list(profile.get("tags") or []),
        channel_preferences=list(attr("channel_preferences") or []),
        attributes=attributes,
        last_seen=dict(profile.get("last_seen") or {}),
        contacts_7d=week,
        contacts_30d=month,
        merges=[
            MergeSummary(
                merge_id=h["merge_id"],
                role=h["role"],
                other_customer_id=h["other_customer_id"],
                at=h["at"],
                cause=h["cause"],
                status=h.get("status", "merged"),
                unmerged_at=h.get("unmerged_at"),
            )
            for h in state.history
        ],
        merged_into=profile.get("merged_into"),
    )
