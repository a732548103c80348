"""Conversations and their messages in the ``conversations`` table.

Items (``pk`` / ``sk``):

* ``CONV#<id>`` / ``META`` - status, routing, channels, switches, counters; carries
  ``customer_id`` and ``opened_at``, the keys of the ``by-customer`` index;
* ``CONV#<id>`` / ``MSG#<timestamp>#<message id>`` - one message. The sort key starts
  with the provider's timestamp, so a query returns the conversation in the order the
  customer wrote it, whatever order the messages arrived in.

A message is written together with the update of its META item in one transaction
whose condition is that the message does not exist yet: a redelivered message has no
second effect, and a crash cannot leave the counters out of step with the messages.
The META update is guarded by a version number (optimistic locking), so concurrent
messages of one conversation cannot lose each other's channel switches.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from shared.events import Identity
from shared.models import ChannelSwitch, Conversation, ConversationSummary, Message, RoutingDecision
from shared.repositories.customers import CustomerRepository
from shared.repositories.dynamo import DynamoTable, cancellation_codes, serialise

META = "META"
BY_CUSTOMER_INDEX = "by-customer"
MAX_ATTEMPTS = 5


def conversation_pk(conversation_id: str) -> str:
    return f"CONV#{conversation_id}"


def message_sk(timestamp: str, message_id: str) -> str:
    return f"MSG#{timestamp}#{message_id}"


class ConcurrentUpdate(RuntimeError):
    """The conversation kept changing under us; the caller should retry the message later."""


class ConversationNotFound(LookupError):
    pass


class ConversationRepository:
    def __init__(self, table: DynamoTable | None = None, customers: CustomerRepository | None = None) -> None:
        self.table = table or DynamoTable("CONVERSATIONS_TABLE")
        self._customers = customers

    @property
    def customers(self) -> CustomerRepository:
        if self._customers is None:
            self._customers = CustomerRepository()
        return self._customers

    # -- reads ------------------------------------------------------------- #
    def get_meta(self, conversation_id: str) -> dict[str, Any] | None:
        return self.table.get({"pk": conversation_pk(conversation_id), "sk": META})

    def get(self, conversation_id: str, message_limit: int = 1000) -> Conversation | None:
        items = self.table.query_all(
            limit=message_limit + 1,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": conversation_pk(conversation_id)}},
            ConsistentRead=True,
        )
        meta = next((i for i in items if i["sk"] == META), None)
        if meta is None:
            return None
        messages = [_message(i) for i in items if i["sk"].startswith("MSG#")]
        return Conversation(
            **_summary(meta).model_dump(),
            messages=messages,
            channel_switches=[ChannelSwitch(**s) for s in meta.get("channel_switches", [])],
            reply_to=meta.get("reply_to"),
        )

    def list_for_customer(self, customer_id: str, limit: int = 100) -> list[ConversationSummary]:
        items = self.table.query_all(
            limit=limit,
            IndexName=BY_CUSTOMER_INDEX,
            KeyConditionExpression="customer_id = :c",
            ExpressionAttributeValues={":c": {"S": customer_id}},
            ScanIndexForward=False,
        )
        return [_summary(i) for i in items]

    # -- writes ------------------------------------------------------------ #
    def open_for(self, customer_id: str, conversation_id: str, now: str, channel: str) -> bool:
        """Create conversation ``conversation_id`` and make it the customer's open one.

        False when the customer got an open conversation in the meantime (then nothing
        was written and the caller uses that one).
        """
        meta = {
            "pk": conversation_pk(conversation_id),
            "sk": META,
            "conversation_id": conversation_id,
            "customer_id": customer_id,
            "status": "open",
            "opened_at": now,
            "opened_on": channel,
            "version": 0,
            "message_count": 0,
            "channels": [],
            "channel_switches": [],
        }
        try:
            self.table.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table.name,
                            "Item": serialise(meta),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    self.customers.set_open_conversation(customer_id, conversation_id),
                ]
            )
        except ClientError as error:
            if "ConditionalCheckFailed" in cancellation_codes(error):
                return False
            raise
        return True

    def record_inbound(
        self,
        conversation_id: str,
        message_id: str,
        channel: str,
        text: str,
        sent_at: str,
        reply_to: Identity,
        attachments: list[dict[str, Any]] | None = None,
        received_at: str | None = None,
    ) -> bool:
        """Append an inbound message; False when it was recorded before (a redelivery)."""
        item = {
            "pk": conversation_pk(conversation_id),
            "sk": message_sk(sent_at, message_id),
            "message_id": message_id,
            "direction": "inbound",
            "channel": channel,
            "text": text,
            "timestamp": sent_at,
            "received_at": received_at,
            "author": "customer",
            "attachments": attachments or [],
        }

        def change(meta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
            values: dict[str, Any] = {
                ":one": 1,
                ":channel": channel,
                ":channel_list": [channel],
                ":empty": [],
                ":reply_to": reply_to.model_dump(),
                ":ts": sent_at,
            }
            expression = (
                "SET message_count = message_count + :one, last_inbound_channel = :channel, "
                "last_channel = :channel, reply_to = :reply_to, last_inbound_at = :ts"
            )
            if channel not in meta.get("channels", []):
                expression += ", channels = list_append(if_not_exists(channels, :empty), :channel_list)"
            previous = meta.get("last_inbound_channel")
            if previous and previous != channel:
                switch = ChannelSwitch(
                    from_channel=previous, to_channel=channel, at=sent_at, message_id=message_id
                )
                values[":switch"] = [switch.model_dump()]
                expression += (
                    ", channel_switches = list_append(if_not_exists(channel_switches, :empty), :switch)"
                )
            if sent_at > meta.get("last_message_at", ""):
                expression += ", last_message_at = :ts"
            return expression, values

        return self._append(conversation_id, item, change)

    def record_outbound(
        self,
        conversation_id: str,
        message_id: str,
        channel: str,
        text: str,
        timestamp: str,
        author: str,
        status: str,
    ) -> bool:
        """Append an outbound message (a reply, an acknowledgement); False if already there."""
        item = {
            "pk": conversation_pk(conversation_id),
            "sk": message_sk(timestamp, message_id),
            "message_id": message_id,
            "direction": "outbound",
            "channel": channel,
            "text": text,
            "timestamp": timestamp,
            "author": author,
            "status": status,
        }

        def change(meta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
            expression = (
                "SET message_count = message_count + :one, last_outbound_at = :ts, last_channel = :channel"
            )
            if timestamp > meta.get("last_message_at", ""):
                expression += ", last_message_at = :ts"
            return expression, {":one": 1, ":ts": timestamp, ":channel": channel}

        return self._append(conversation_id, item, change)

    def _append(self, conversation_id: str, item: dict[str, Any], change: Any) -> bool:
        key = {"pk": conversation_pk(conversation_id), "sk": META}
        for _ in range(MAX_ATTEMPTS):
            meta = self.table.get(key)
            if meta is None:
                raise ConversationNotFound(conversation_id)
            expression, values = change(meta)
            values[":version"] = meta["version"]
            values[":next"] = meta["version"] + 1
            try:
                self.table.client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self.table.name,
                                "Item": serialise(item),
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                        {
                            "Update": {
                                "TableName": self.table.name,
                                "Key": serialise(key),
                                "UpdateExpression": expression + ", version = :next",
                                "ConditionExpression": "version = :version",
                                "ExpressionAttributeValues": serialise(values),
                            }
                        },
                    ]
                )
            except ClientError as error:
                codes = cancellation_codes(error)
                if codes and codes[0] == "ConditionalCheckFailed":
                    return False  # the message is there already
                if "ConditionalCheckFailed" in codes:
                    continue  # META changed since we read it: read again
                raise
            return True
        raise ConcurrentUpdate(conversation_id)

    def set_routing(
        self, conversation_id: str, decision: RoutingDecision, status: str, previous: RoutingDecision | None
    ) -> bool:
        """Record the routing decision for a message; False if that message was routed before.

        The decision it replaces is kept as ``previous_routing`` so a redelivered message
        can tell what the customer was told before.
        """
        values: dict[str, Any] = {
            ":decision": decision.model_dump(),
            ":status": status,
            ":empty": [],
            ":message_list": [decision.message_id],
            ":message": decision.message_id,
        }
        expression = (
            "SET routing = :decision, #status = :status, "
            "routed_messages = list_append(if_not_exists(routed_messages, :empty), :message_list)"
        )
        if previous is not None:
            expression += ", previous_routing = :previous"
            values[":previous"] = previous.model_dump()
        try:
            self.table.client.update_item(
                TableName=self.table.name,
                Key=serialise({"pk": conversation_pk(conversation_id), "sk": META}),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk) AND NOT contains(routed_messages, :message)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=serialise(values),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                if self.get_meta(conversation_id) is None:
                    raise ConversationNotFound(conversation_id) from error
                return False
            raise
        return True


def _summary(meta: dict[str, Any]) -> ConversationSummary:
    routing = meta.get("routing")
    return ConversationSummary(
        conversation_id=meta["conversation_id"],
        customer_id=meta["customer_id"],
        status=meta["status"],
        opened_at=meta["opened_at"],
        last_message_at=meta.get("last_message_at"),
        last_channel=meta.get("last_channel"),
        channels=meta.get("channels", []),
        message_count=meta.get("message_count", 0),
        routing=RoutingDecision(**routing) if routing else None,
    )


def _message(item: dict[str, Any]) -> Message:
    return Message(
        message_id=item["message_id"],
        direction=item["direction"],
        channel=item["channel"],
        text=item.get("text", ""),
        timestamp=item["timestamp"],
        author=item.get("author"),
        status=item.get("status"),
        attachments=item.get("attachments", []),
    )
