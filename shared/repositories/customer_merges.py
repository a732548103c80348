"""Customer merges and unmerges in the ``customers`` table: both profiles, the audit record,
the history items and the identities moving between them, each step one transaction."""

from __future__ import annotations

from shared.domain.retention import RETAIN_ATTRIBUTE
from shared.repositories.customer_items import (
    ACTIVE,
    ACTIVE_AT_VERSION,
    MERGE,
    MERGED,
    MOVES_PER_TRANSACTION,
    OWNER,
    CustomerTable,
    Item,
    ProfileState,
    _delete,
    _profile_key,
    _put,
    _update,
    customer_pk,
    history_sk,
    link_identity,
    merge_pk,
    owner_pk,
)
from shared.repositories.dynamo import serialise


class CustomerMerges(CustomerTable):
    """The merge side of :class:`shared.repositories.customers.CustomerRepository`."""

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
        record = self.table.get({"pk": merge_pk(merge_id), "sk": MERGE}) or {}
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
