"""The delivery log (``outbox`` table): one item per notification id, with its status.

The item is written before anything is sent, with a condition on the notification id,
so a notification requested twice is delivered once; its ``created_at`` is reused as
the message timestamp by every retry, which keeps the downstream writes idempotent.
"""

from __future__ import annotations

from typing import Any

from shared.repositories.dynamo import DynamoTable, serialise

Status = str  # queued | sent | delivered | read | failed


class OutboxRepository:
    def __init__(self, table: DynamoTable | None = None) -> None:
        self.table = table or DynamoTable("OUTBOX_TABLE")

    def start(self, item: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Record a delivery as queued; returns the stored item and whether it is new."""
        stored = {**item, "status": "queued"}
        if self.table.put_new(stored, key_attr="notification_id"):
            return stored, True
        existing = self.table.get({"notification_id": item["notification_id"]})
        if existing is None:  # deleted between the two calls: treat as new
            self.table.put_new(stored, key_attr="notification_id")
            return stored, True
        return existing, False

    def mark(
        self,
        notification_id: str,
        status: Status,
        at: str,
        provider_message_id: str | None = None,
        error: str | None = None,
    ) -> None:
        names = {"#status": "status"}
        values: dict[str, Any] = {":status": status, ":at": at}
        expression = "SET #status = :status, updated_at = :at"
        if provider_message_id:
            expression += ", provider_message_id = :pid"
            values[":pid"] = provider_message_id
        if error:
            expression += ", #error = :error"
            names["#error"] = "error"
            values[":error"] = error
        self.table.client.update_item(
            TableName=self.table.name,
            Key=serialise({"notification_id": notification_id}),
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=serialise(values),
        )

    def get(self, notification_id: str) -> dict[str, Any] | None:
        return self.table.get({"notification_id": notification_id})
