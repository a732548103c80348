"""Customer profiles, identity ownership, merge records and erasure tombstones in the ``customers`` table.

Items (``pk`` / ``sk``):

* ``CUST#<id>`` / ``PROFILE`` - the profile: ``customer_id``, ``created_at``, ``updated_at``,
  ``status`` (``active`` | ``merged`` | ``erased``), ``version`` (optimistic lock, bumped by
  every write that a merge must not overwrite), ``display_name`` (mirror of the ``name``
  attribute), ``attributes`` (map: name -> ``{value, at, source}``; ``name``, the contact choices
  ``channel_preferences``, ``channel_mode``, ``language``, ``timezone``, ``quiet_hours``
  (:mod:`shared.repositories.customer_choices`) and custom ones), ``tags`` (list),
  ``consent_<channel>`` (``{status, at, source}``), ``last_seen`` (map: channel -> provider
  timestamp of the latest contact), ``contacts`` (map: ``YYYY-MM-DD`` -> contacts that day, the
  last 30 days; a contact is a conversation opened or reopened, or the first message of a day on
  a channel - see :meth:`shared.repositories.customer_profile.CustomerProfile.contact_due`),
  ``retain_until_day`` (``YYYY-MM-DD``, the last day the data is kept: the last
  contact plus ``OMNI_RETENTION_DAYS``; the key of the sparse ``retention`` index, see
  :mod:`shared.domain.retention`), ``open_conversation_id``. A merged-away profile also has ``merged_into``,
  ``merge_id``, ``merged_at`` and, until its identities and conversations have all moved,
  ``merge_pending``. An erased profile keeps only ``customer_id``, ``status`` and
  ``erased_at``: its id answers "erased", and nothing about the person is left;
* ``CUST#<id>`` / ``IDENT#<type>#<value>`` - an identity of the customer, verified or claimed;
* ``CUST#<id>`` / ``MERGE#<at>#<merge id>`` - the customer's merge history (survivor or merged side);
* ``IDENT#<type>#<value>`` / ``OWNER`` - which customer owns a verified identity;
* ``IDENT#<type>#<value>`` / ``CLAIM`` - the profile a message whose sender is only *claimed*
  (an e-mail without sender authentication) resolves to: one per claimed address, written
  with a condition like ``OWNER`` so two concurrent first mails cannot create two; it may
  point to a profile merged since (follow ``merged_into``);
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

from typing import Any

from shared.contracts.contact import ContactChoices, ContactChoicesPatch
from shared.contracts.events import Identity
from shared.contracts.models import Consent, Customer
from shared.domain.retention import RETAIN_ATTRIBUTE, RETENTION_INDEX, day_of, retain_until, retention_days
from shared.platform import settings
from shared.repositories.customer_choices import read_choices
from shared.repositories.customer_items import (
    ACTIVE,
    ACTIVE_AT_VERSION,
    CLAIM,
    CONSENT_PREFIX,
    DEFAULT_TOMBSTONE_RETENTION_DAYS,
    ERASED,
    HISTORY_PREFIX,
    IDENT_PREFIX,
    IDENTITY_CHANGE_PREFIX,
    MERGE,
    MERGED,
    MOVES_PER_TRANSACTION,
    OWNER,
    PROFILE,
    TOMBSTONE,
    TOMBSTONE_RETENTION_ENV,
    IdentityErased,
    IdentityTaken,
    Item,
    ProfileChanged,
    ProfileState,
    _delete,
    _profile_key,
    _put,
    _update,
    customer_pk,
    history_sk,
    identity_sk,
    link_identity,
    merge_pk,
    owner_pk,
    tombstone_pk,
    tombstone_retention_days,
)
from shared.repositories.customer_merges import CustomerMerges
from shared.repositories.customer_profile import ContactUpdate, CustomerProfile
from shared.repositories.customer_views import contact_counts, to_customer
from shared.repositories.dynamo import CONDITION_FAILED, DynamoTable, deserialise, serialise

__all__ = [
    "ACTIVE",
    "CLAIM",
    "CONSENT_PREFIX",
    "DEFAULT_TOMBSTONE_RETENTION_DAYS",
    "ERASED",
    "HISTORY_PREFIX",
    "IDENTITY_CHANGE_PREFIX",
    "IDENT_PREFIX",
    "MERGE",
    "MERGED",
    "MOVES_PER_TRANSACTION",
    "OWNER",
    "PROFILE",
    "TOMBSTONE",
    "TOMBSTONE_RETENTION_ENV",
    "ContactUpdate",
    "CustomerProfile",
    "CustomerRepository",
    "IdentityErased",
    "IdentityTaken",
    "ProfileChanged",
    "ProfileState",
    "contact_counts",
    "customer_pk",
    "history_sk",
    "identity_sk",
    "link_identity",
    "merge_pk",
    "owner_pk",
    "to_customer",
    "tombstone_pk",
    "tombstone_retention_days",
]


class CustomerRepository(CustomerMerges):
    def __init__(self, table: DynamoTable | None = None) -> None:
        self.table = table or DynamoTable(settings.CUSTOMERS_TABLE)

    # -- reads ------------------------------------------------------------- #
    def owner_of(self, identity: Identity) -> str | None:
        item = self.table.get({"pk": owner_pk(identity), "sk": OWNER})
        return item["customer_id"] if item else None

    def owners_of(self, identities: list[Identity]) -> dict[str, str]:
        """``{identity key: owning customer id}`` for those owned, in one request."""
        return self.owners_and_claims(identities, [])[0]

    def owners_and_claims(
        self, identities: list[Identity], claimed: list[Identity]
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Owners of ``identities`` and claim holders of ``claimed`` (``{identity key: customer id}``
        each), in one request."""
        keys = {owner_pk(i): i for i in [*identities, *claimed]}
        wanted = [(owner_pk(i), OWNER) for i in identities] + [(owner_pk(i), CLAIM) for i in claimed]
        owners: dict[str, str] = {}
        claims: dict[str, str] = {}
        pending = [serialise({"pk": pk, "sk": sk}) for pk, sk in dict.fromkeys(wanted)]
        while pending:
            response = self.table.client.batch_get_item(
                RequestItems={self.table.name: {"Keys": pending[:100], "ConsistentRead": True}}
            )
            pending = pending[100:]
            for raw in response.get("Responses", {}).get(self.table.name, []):
                item = deserialise(raw)
                found = claims if item["sk"] == CLAIM else owners
                found[keys[item["pk"]].key] = item["customer_id"]
            pending = (
                list(response.get("UnprocessedKeys", {}).get(self.table.name, {}).get("Keys", [])) + pending
            )
        return owners, claims

    def claim_holder(self, identity: Identity) -> str | None:
        """The profile a claimed sender ``identity`` resolves to (maybe merged since), if any."""
        item = self.table.get({"pk": owner_pk(identity), "sk": CLAIM})
        return item["customer_id"] if item else None

    def _claim_put(self, customer_id: str, identity: Identity, now: str, stale: str | None) -> Item:
        item = {"pk": owner_pk(identity), "sk": CLAIM, "customer_id": customer_id, "since": now}
        if stale:
            # The holder is gone, or became the verified owner: the claim moves to a new profile.
            return _put(
                self.table.name, item, "attribute_not_exists(pk) OR customer_id = :stale", {":stale": stale}
            )
        return _put(self.table.name, item, "attribute_not_exists(pk)")

    def hold_claim(self, customer_id: str, identity: Identity, now: str) -> bool:
        """Make ``customer_id`` the claim holder of ``identity`` unless it has one; False when it has."""
        action = self._claim_put(customer_id, identity, now, None)["Put"]
        return self.table.conditional("put_item", **action) is not None

    def scan_partitions(self, page: int = 500) -> list[ProfileState]:
        """Every customer partition (profile, identity links, merge history), by a full scan.

        For one-off repairs run by an operator (``omni repair duplicates``), never per message.
        """
        found: dict[str, list[Item]] = {}
        request: dict[str, Any] = {
            "TableName": self.table.name,
            "FilterExpression": "begins_with(pk, :cust)",
            "ExpressionAttributeValues": {":cust": {"S": "CUST#"}},
            "Limit": page,
        }
        while True:
            response = self.table.client.scan(**request)
            for raw in response.get("Items", []):
                item = deserialise(raw)
                found.setdefault(item["pk"], []).append(item)
            if not response.get("LastEvaluatedKey"):
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        states = []
        for items in found.values():
            profile = next((i for i in items if i["sk"] == PROFILE), None)
            if profile is not None and "customer_id" in profile:
                states.append(
                    ProfileState(
                        profile=profile,
                        links=[i for i in items if i["sk"].startswith(IDENT_PREFIX)],
                        history=[i for i in items if i["sk"].startswith(HISTORY_PREFIX)],
                    )
                )
        return states

    def get_profile(self, customer_id: str) -> dict[str, Any] | None:
        return self.table.get(_profile_key(customer_id))

    def profile(self, customer_id: str) -> CustomerProfile | None:
        """The customer's profile, typed (strongly consistent)."""
        item = self.table.get(_profile_key(customer_id))
        return CustomerProfile.from_item(item) if item else None

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
            if code != CONDITION_FAILED or index not in owned:
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
        claim: Identity | None = None,
        stale_claim: str | None = None,
        first_contact: bool = False,
    ) -> CustomerProfile:
        """Create a customer owning every verified identity in ``identities``, atomically; the
        profile as written.

        With ``claim`` it also becomes the claim holder of that (claimed) identity, replacing
        ``stale_claim`` if given. ``first_contact``: the message sent at ``sent_at`` on ``source``
        is the customer's first contact, counted in the profile as it is created (no second write
        to count it). Raises :class:`IdentityTaken` when one of them got an owner (or the claim a
        holder) in the meantime, and :class:`IdentityErased` when one was erased after
        ``sent_at``; then nothing was written.
        """
        attributes = (
            {"name": {"value": display_name, "at": now, "source": source or "unknown"}}
            if display_name
            else {}
        )
        profile: Item = {
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
        }
        if first_contact and sent_at and source:
            update = CustomerProfile.from_item(profile).contact_due(
                source, sent_at, now, retention_days(), new_contact=True
            )
            if update is not None:
                profile.update(
                    last_seen={source: sent_at},
                    contacts={update.day: 1},
                    **({RETAIN_ATTRIBUTE: update.retain_until_day} if update.retain_until_day else {}),
                )
        actions: list[Item] = [_put(self.table.name, profile, "attribute_not_exists(pk)")]
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
        if claim is not None:
            owned[len(actions)] = claim
            actions.append(self._claim_put(customer_id, claim, now, stale_claim))
        codes = self._transact(actions)
        if codes is not None:
            self._raise_for(actions, codes, owned)
        return CustomerProfile.from_item(profile)

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
        if codes[1] == CONDITION_FAILED:
            raise ProfileChanged(f"customer {customer_id} is no longer active")
        if codes[0] == CONDITION_FAILED and all(c in ("None", "") for c in codes[2:]):
            return False  # on the profile already, at least as strongly
        for index in owned:
            if codes[index] == CONDITION_FAILED and "Put" in actions[index]:
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
    def contact_choices(self, customer_id: str) -> ContactChoices | None:
        """The customer's contact choices (None: no such profile)."""
        profile = self.get_profile(customer_id)
        return read_choices(profile) if profile is not None else None

    def set_choices(self, customer_id: str, patch: ContactChoicesPatch, at: str, source: str) -> bool:
        """Record the customer's own choices (a reply keyword, the preferences link) made at ``at``.

        A choice recorded later than ``at`` is kept (messages and clicks arrive out of order):
        then nothing changes and the answer is False, as it is for a profile that is not active.
        Consent per channel follows :meth:`set_consent`.
        """
        choices = patch.choices()
        changed = False
        if choices:
            names: dict[str, str] = {"#at": "at", "#status": "status"}
            values: Item = {":at": at, ":one": 1, ":active": ACTIVE}
            sets, removes = ["updated_at = :at"], []
            conditions = ["attribute_exists(pk)", "#status = :active"]
            for i, (name, value) in enumerate(choices.items()):
                names[f"#c{i}"] = name
                if value is None:
                    removes.append(f"attributes.#c{i}")
                else:
                    values[f":c{i}"] = {"value": value, "at": at, "source": source}
                    sets.append(f"attributes.#c{i} = :c{i}")
                conditions.append(f"(attribute_not_exists(attributes.#c{i}) OR attributes.#c{i}.#at < :at)")
            expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
            changed = self.table.update_if(
                _profile_key(customer_id),
                expression + " ADD version :one",
                " AND ".join(conditions),
                values,
                names,
            )
        for channel, status in (patch.consent or {}).items():
            consent = Consent(status=status, at=at, source=source)
            changed = self.set_consent(customer_id, channel, consent) or changed
        return changed

    def set_consent(self, customer_id: str, channel: str, consent: Consent) -> bool:
        """Record a consent change unless a later one is recorded already (events arrive out of order).

        False when the stored choice is newer than ``consent`` (or the same one: a
        redelivered keyword changes nothing). At the same instant an opt-out wins.
        """
        return self.table.update_if(
            _profile_key(customer_id),
            "SET #consent = :consent, updated_at = :now ADD version :one",
            "attribute_exists(pk) AND (attribute_not_exists(#consent) OR #consent.#at < :at "
            "OR (#consent.#at = :at AND #consent.#status <> :status AND :status = :out))",
            {
                ":consent": consent.model_dump(),
                ":at": consent.at,
                ":now": consent.at,
                ":status": consent.status,
                ":out": "opted_out",
                ":one": 1,
            },
            {"#consent": f"{CONSENT_PREFIX}{channel}", "#at": "at", "#status": "status"},
        )

    def record_identity_change(self, customer_id: str, kind: str, entry: dict[str, str]) -> bool:
        """Record on the profile what the provider reported about the customer's identity
        (``kind``: ``user_changed_number``, ``customer_identity_changed``), ``entry["at"]`` the
        report's time; the latest report of a kind is kept. False when the profile is gone or a
        later (or the same) report is recorded."""
        return self.table.update_if(
            _profile_key(customer_id),
            "SET #change = :entry, updated_at = :at ADD version :one",
            "attribute_exists(pk) AND (attribute_not_exists(#change) OR #change.#at < :at)",
            {":entry": entry, ":at": entry["at"], ":one": 1},
            {"#change": f"{IDENTITY_CHANGE_PREFIX}{kind}", "#at": "at"},
        )

    def mark_undeliverable(self, customer_id: str, identity: Identity, at: str, reason: str) -> bool:
        """Record on the customer's identity that it cannot be reached (an e-mail bounce):
        ``undeliverable`` = ``{at, reason}``, the latest report kept. False when the customer
        has no such identity (erased, moved, never had it) or a later report is recorded."""
        return self.table.update_if(
            {"pk": customer_pk(customer_id), "sk": identity_sk(identity)},
            "SET undeliverable = :u",
            "attribute_exists(pk) AND (attribute_not_exists(undeliverable) OR undeliverable.#at < :at)",
            {":u": {"at": at, "reason": reason}, ":at": at},
            {"#at": "at"},
        )

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
        return self.table.conditional("update_item", **action) is not None

    def record_contact(self, customer_id: str, update: ContactUpdate) -> None:
        """Count a contact (per day) and remember the latest one per channel
        (:meth:`CustomerProfile.contact_due` says when a message is one).

        ``retain_until_day`` (the retention index key) is written in the same request.
        """
        names: dict[str, str] = {}
        values: Item = {":ts": update.sent_at}
        expression = "SET updated_at = :ts"
        if update.count:
            names["#day"] = update.day
            values.update({":zero": 0, ":one": 1})
            expression += ", contacts.#day = if_not_exists(contacts.#day, :zero) + :one"
        if update.retain_until_day:
            names["#keep"] = RETAIN_ATTRIBUTE
            values[":keep"] = update.retain_until_day
            expression += ", #keep = :keep"
        if update.newer:
            names["#ch"] = update.channel
            expression += ", last_seen.#ch = :ts"
        removes = []
        for i, old in enumerate(update.forget_days[:20]):
            names[f"#old{i}"] = old
            removes.append(f"contacts.#old{i}")
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        # False when the profile was erased meanwhile: nothing to count.
        self.table.update_if(
            _profile_key(customer_id),
            expression,
            "attribute_exists(contacts) AND attribute_exists(last_seen)",
            values,
            names,
        )

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
        return self.table.conditional("update_item", **action) is not None

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
        return self.table.update_if(
            _profile_key(customer_id),
            expression,
            condition,
            values,
            {"#keep": RETAIN_ATTRIBUTE, "#status": "status"},
        )

    def erase_partition(
        self, customer_id: str, erased_at: str, expires_at: int, claim_holders: list[str] | None = None
    ) -> list[Identity]:
        """Delete everything of one customer's partition; tombstone and release its identities.

        The profile item is replaced by a marker that says only that the id was erased.
        A claim item of one of its identities held by this customer or one of
        ``claim_holders`` (the profiles erased with it) goes too: it names the address.
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
            self._release_claim(identity, [customer_id, *(claim_holders or [])])
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

    def _release_claim(self, identity: Identity, holders: list[str]) -> None:
        """Delete the claim item of ``identity`` if one of ``holders`` holds it."""
        names = {f":h{i}": holder for i, holder in enumerate(dict.fromkeys(holders[:99]))}
        self.table.conditional(
            "delete_item",
            Key=serialise({"pk": owner_pk(identity), "sk": CLAIM}),
            ConditionExpression=f"customer_id IN ({', '.join(names)})",
            ExpressionAttributeValues=serialise(names),
        )

    def delete_merge_record(self, merge_id: str) -> None:
        self.table.client.delete_item(
            TableName=self.table.name, Key=serialise({"pk": merge_pk(merge_id), "sk": MERGE})
        )
