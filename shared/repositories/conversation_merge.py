"""Conversations moving with a customer merge, unmerge and erasure, in the ``conversations`` table.

Uses the item layout of :mod:`shared.repositories.conversations` (``CONV#<id>`` / ``META``
with ``customer_id`` (index ``by-customer``), ``version`` and counters; ``CONV#<id>`` /
``MSG#<timestamp>#<message id>``) and adds these attributes:

* on ``META`` of a conversation whose thread was merged into another one:
  ``status = "merged"``, ``merged_into`` (the conversation that now holds its messages),
  ``status_before_merge`` (given back by unmerge) and ``merge_id``;
* on ``META`` of the conversation that received the messages: ``merged_threads`` (list of
  the conversations merged into it);
* on each ``MSG#`` item copied into the receiving conversation: ``merged_from`` (the
  conversation it was copied from), so unmerge removes exactly the copies.

The merged conversation keeps its own messages (nothing is deleted by a merge), and
its ``customer_id`` is moved to the survivor like every other conversation of the
merged-away customer, so the survivor lists it. Copies are written before the two META
updates, which are one transaction guarded by both versions: a message appended to
either conversation meanwhile makes it start again, and a repeat copies nothing twice.

``SEEN#<message id>`` / ``SEEN`` items are only read, and survive an erasure: they hold
no personal data, and one that points to an erased conversation marks a replay of an
erased person's message.
"""

from __future__ import annotations

from typing import Any

from shared.platform import settings
from shared.repositories import conversation_keys
from shared.repositories.conversation_keys import (
    BY_CUSTOMER_INDEX,
    HANDOVER,
    MAX_ATTEMPTS,
    MESSAGE_PREFIX,
    META,
    SWITCH_PREFIX,
    conversation_pk,
    meta_key,
)
from shared.repositories.conversation_views import fields as _fields
from shared.repositories.conversation_views import history_of, switches_of
from shared.repositories.dynamo import DynamoTable, serialise

#: Copies (or deletions) per transaction, besides the META update.
CHUNK = 90


class ThreadMergeConflict(RuntimeError):
    """Messages kept arriving in the conversations being merged; try again later."""


class ConversationMerger:
    def __init__(self, table: DynamoTable | None = None) -> None:
        self.table = table or DynamoTable(settings.CONVERSATIONS_TABLE)

    # -- reads --------------------------------------------------------------- #
    def _meta(self, conversation_id: str) -> dict[str, Any] | None:
        return self.table.get({"pk": conversation_pk(conversation_id), "sk": META})

    def _items(self, conversation_id: str) -> list[dict[str, Any]]:
        return self.table.query_all(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": conversation_pk(conversation_id)}},
            ConsistentRead=True,
        )

    def list_ids(self, customer_id: str) -> list[str]:
        """Every conversation listed under ``customer_id`` (all pages of the index)."""
        items = self.table.query_all(
            IndexName=BY_CUSTOMER_INDEX,
            KeyConditionExpression="customer_id = :c",
            ExpressionAttributeValues={":c": {"S": customer_id}},
        )
        return [i["conversation_id"] for i in items]

    def recorded_in_erased(self, message_id: str) -> bool:
        """The message was recorded once, in a conversation that has been erased since.

        ``SEEN#<message id>`` outlives an erasure (it holds no personal data): a provider
        retry or replay of an erased person's message is recognised even when the channel
        gives it a new timestamp (Twilio's SMS webhook carries none).
        """
        seen = self.table.get({"pk": f"SEEN#{message_id}", "sk": "SEEN"})
        if seen is None or not seen.get("conversation_id"):
            return False
        return self._meta(str(seen["conversation_id"])) is None

    def export(self, conversation_id: str) -> dict[str, Any] | None:
        """Every item of a conversation, as stored (META first, then messages in order)."""
        items = self._items(conversation_id)
        meta = next((i for i in items if i["sk"] == META), None)
        if meta is None:
            return None
        conversation = _fields(meta)
        # The history, channel switches and hand-over kept in their own items (see
        # shared.repositories.conversations), exported as part of the conversation.
        conversation["transitions"] = history_of(meta, items)
        if any(i["sk"].startswith(SWITCH_PREFIX) for i in items):
            conversation["channel_switches"] = switches_of(meta, items)
        handover = next((_fields(i) for i in items if i["sk"] == HANDOVER), None)
        if handover is not None:
            conversation["handover"] = handover
        return {
            "conversation": conversation,
            "messages": [_fields(i) for i in items if i["sk"].startswith(MESSAGE_PREFIX)],
        }

    # -- writes -------------------------------------------------------------- #
    def repoint(self, conversation_id: str, from_customer: str, to_customer: str) -> bool:
        """List the conversation under ``to_customer``; False if it is not ``from_customer``'s."""
        return self.table.update_if(
            meta_key(conversation_id),
            "SET customer_id = :to",
            "customer_id = :from",
            {":to": to_customer, ":from": from_customer},
        )

    def merge_thread(self, source_id: str, target_id: str, merge_id: str) -> bool:
        """Make ``target_id`` the one thread holding the messages of both conversations.

        Idempotent: True once the source is marked merged into the target (now or before);
        False when either conversation is gone.
        """
        for _ in range(MAX_ATTEMPTS):
            source = self._meta(source_id)
            target = self._meta(target_id)
            if source is None or target is None:
                return False
            if source.get("merged_into") == target_id:
                return True
            messages = [i for i in self._items(source_id) if i["sk"].startswith(MESSAGE_PREFIX)]
            copies = self._missing_copies(messages, source_id, target_id)
            # Copies beyond the last chunk go first, each chunk on its own (a put of an
            # identical item is harmless when repeated); the last chunk goes with the META
            # updates, which count every message of the source exactly once.
            for start in range(0, max(len(copies) - CHUNK, 0), CHUNK):
                self._write_copies(copies[start : start + CHUNK])
            last = copies[max(len(copies) - CHUNK, 0) :] if copies else []
            actions: list[dict[str, Any]] = [
                {"Put": {"TableName": self.table.name, "Item": serialise(copy)}} for copy in last
            ]
            actions += [
                self._receive_thread(target, source_id, source, len(messages)),
                {
                    "Update": {
                        "TableName": self.table.name,
                        "Key": serialise({"pk": conversation_pk(source_id), "sk": META}),
                        "UpdateExpression": (
                            "SET #status = :merged, merged_into = :target, status_before_merge = :before, "
                            "merge_id = :merge, version = :next"
                        ),
                        "ConditionExpression": "version = :version",
                        "ExpressionAttributeNames": {"#status": "status"},
                        "ExpressionAttributeValues": serialise(
                            {
                                ":merged": "merged",
                                ":target": target_id,
                                ":before": source.get("status", "open"),
                                ":merge": merge_id,
                                ":version": source["version"],
                                ":next": source["version"] + 1,
                            }
                        ),
                    }
                },
            ]
            if self._transact(actions):
                return True
        raise ThreadMergeConflict(f"{source_id} -> {target_id}")

    def _missing_copies(
        self, messages: list[dict[str, Any]], source_id: str, target_id: str
    ) -> list[dict[str, Any]]:
        """Copies for ``target_id`` of the ``messages`` of ``source_id`` it does not hold yet."""
        present = {i["sk"] for i in self._items(target_id) if i.get("merged_from") == source_id}
        return [
            {**m, "pk": conversation_pk(target_id), "merged_from": source_id}
            for m in messages
            if m["sk"] not in present
        ]

    def _receive_thread(
        self, target: dict[str, Any], source_id: str, source: dict[str, Any], count: int
    ) -> dict[str, Any]:
        """Transaction item: ``target``'s META counts the ``count`` messages of ``source`` it now holds."""
        channels = list(dict.fromkeys([*target.get("channels", []), *source.get("channels", [])]))
        values: dict[str, Any] = {
            ":n": count,
            ":channels": channels,
            ":source_list": [source_id],
            ":empty": [],
            ":version": target["version"],
            ":next": target["version"] + 1,
        }
        expression = (
            "SET message_count = message_count + :n, channels = :channels, version = :next, "
            "merged_threads = list_append(if_not_exists(merged_threads, :empty), :source_list)"
        )
        latest = source.get("last_message_at")
        if latest and latest > target.get("last_message_at", ""):
            expression += ", last_message_at = :latest"
            values[":latest"] = latest
        return {
            "Update": {
                "TableName": self.table.name,
                "Key": serialise({"pk": target["pk"], "sk": META}),
                "UpdateExpression": expression,
                "ConditionExpression": "version = :version",
                "ExpressionAttributeValues": serialise(values),
            }
        }

    def forward_if_merged(self, conversation_id: str, message_sk: str) -> str:
        """The thread a just-recorded message belongs in, copying it there if its conversation
        was merged into another while it was being recorded. Idempotent."""
        for _ in range(MAX_ATTEMPTS):
            meta = self._meta(conversation_id)
            if meta is None or meta.get("status") != "merged" or not meta.get("merged_into"):
                return conversation_id
            target_id = str(meta["merged_into"])
            target = self._meta(target_id)
            message = self.table.get({"pk": conversation_pk(conversation_id), "sk": message_sk})
            if target is None or message is None:
                return conversation_id
            copy = {**message, "pk": conversation_pk(target_id), "merged_from": conversation_id}
            cancelled = self.table.transact(
                [
                    {
                        "Put": {
                            "TableName": self.table.name,
                            "Item": serialise(copy),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": serialise({"pk": conversation_pk(target_id), "sk": META}),
                            "UpdateExpression": ("SET message_count = message_count + :one, version = :next"),
                            "ConditionExpression": "version = :version",
                            "ExpressionAttributeValues": serialise(
                                {":one": 1, ":version": target["version"], ":next": target["version"] + 1}
                            ),
                        }
                    },
                ]
            )
            if cancelled is not None and not cancelled.condition_failed(0):
                continue
            # Copied (now, or before).
            return self.forward_if_merged(target_id, message_sk)
        raise ThreadMergeConflict(f"forward {message_sk} from {conversation_id}")

    def unmerge_thread(self, source_id: str, target_id: str) -> bool:
        """Take the copies of ``source_id``'s messages out of ``target_id`` and reopen the source.

        Messages that arrived in the joint thread after the merge stay in the target.
        Idempotent: False when there was nothing to undo.
        """
        for _ in range(MAX_ATTEMPTS):
            source = self._meta(source_id)
            target = self._meta(target_id)
            if source is None or source.get("merged_into") != target_id:
                return False
            copies = (
                [i for i in self._items(target_id) if i.get("merged_from") == source_id] if target else []
            )
            for start in range(0, max(len(copies) - CHUNK, 0), CHUNK):
                self._delete_items(copies[start : start + CHUNK])
            last = copies[max(len(copies) - CHUNK, 0) :] if copies else []
            actions: list[dict[str, Any]] = [
                {"Delete": {"TableName": self.table.name, "Key": serialise({"pk": c["pk"], "sk": c["sk"]})}}
                for c in last
            ]
            if target is not None:
                remaining = [t for t in target.get("merged_threads", []) if t != source_id]
                actions.append(
                    {
                        "Update": {
                            "TableName": self.table.name,
                            "Key": serialise({"pk": conversation_pk(target_id), "sk": META}),
                            "UpdateExpression": (
                                "SET message_count = message_count - :n, merged_threads = :rest, "
                                "version = :next"
                            ),
                            "ConditionExpression": "version = :version",
                            "ExpressionAttributeValues": serialise(
                                {
                                    ":n": int(source.get("message_count", 0)),
                                    ":rest": remaining,
                                    ":version": target["version"],
                                    ":next": target["version"] + 1,
                                }
                            ),
                        }
                    }
                )
            actions.append(
                {
                    "Update": {
                        "TableName": self.table.name,
                        "Key": serialise({"pk": conversation_pk(source_id), "sk": META}),
                        "UpdateExpression": (
                            "SET #status = :before, version = :next "
                            "REMOVE merged_into, status_before_merge, merge_id"
                        ),
                        "ConditionExpression": "version = :version",
                        "ExpressionAttributeNames": {"#status": "status"},
                        "ExpressionAttributeValues": serialise(
                            {
                                ":before": source.get("status_before_merge", "open"),
                                ":version": source["version"],
                                ":next": source["version"] + 1,
                            }
                        ),
                    }
                }
            )
            if self._transact(actions):
                return True
        raise ThreadMergeConflict(f"unmerge {source_id} from {target_id}")

    def erase(self, conversation_id: str) -> int:
        """Delete a conversation with all its messages; the number of items deleted."""
        items = self._items(conversation_id)
        for start in range(0, len(items), 25):
            self._delete_items(items[start : start + 25])
        return len(items)

    # -- helpers ------------------------------------------------------------- #
    def _transact(self, actions: list[dict[str, Any]]) -> bool:
        return self.table.transact(actions) is None

    def _write_copies(self, copies: list[dict[str, Any]]) -> None:
        self._batch([{"PutRequest": {"Item": serialise(c)}} for c in copies])

    def _delete_items(self, items: list[dict[str, Any]]) -> None:
        self._batch([{"DeleteRequest": {"Key": serialise({"pk": i["pk"], "sk": i["sk"]})}} for i in items])

    def _batch(self, requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), 25):
            pending = requests[start : start + 25]
            while pending:
                response = self.table.client.batch_write_item(RequestItems={self.table.name: pending})
                pending = response.get("UnprocessedItems", {}).get(self.table.name, [])

    def forward_message_if_merged(self, conversation_id: str, sent_at: str, message_id: str) -> str:
        """:meth:`forward_if_merged` for the message ``message_id`` sent at ``sent_at``."""
        return self.forward_if_merged(conversation_id, conversation_keys.message_sk(sent_at, message_id))
