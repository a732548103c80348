"""Web chat sessions and what each session shows, in the ``webchat`` table.

Items (``pk`` / ``sk``):

* ``SESSION#<id>`` / ``META`` - when it was opened, who the customer said or proved to be;
* ``SESSION#<id>`` / ``IN#<message_id>`` - a message the customer sent (the browser's
  message id is the key, so a resent message is stored once);
* ``SESSION#<id>`` / ``OUT#<notification_id>`` - a message we delivered to the session.
* ``SESSION#<id>`` / ``CONN#<connection id>`` - an open WebSocket of the session
  (:mod:`shared.repositories.webchat_connections`).

Every item has ``expires_at`` (epoch seconds), the table's TTL attribute.
"""

from __future__ import annotations

from typing import Any

from shared.platform import settings
from shared.repositories.dynamo import DynamoTable

SESSION_TTL_S = 30 * 24 * 3600
MAX_LISTED = 500
#: Optional attributes of a message the widget shows (stored only when set).
EXTRA_FIELDS = ("author_name", "sources", "survey")


def session_pk(session_id: str) -> str:
    return f"SESSION#{session_id}"


class WebchatRepository:
    def __init__(self, table: DynamoTable | None = None) -> None:
        self.table = table or DynamoTable(settings.WEBCHAT_TABLE)

    def create_session(
        self, session_id: str, created_at: str, now_epoch: int, customer: dict[str, Any]
    ) -> None:
        self.table.put_new(
            {
                "pk": session_pk(session_id),
                "sk": "META",
                "session_id": session_id,
                "created_at": created_at,
                "customer": customer,
                "expires_at": now_epoch + SESSION_TTL_S,
            }
        )

    def get_session(self, session_id: str) -> dict[str, Any] | None:
        return self.table.get({"pk": session_pk(session_id), "sk": "META"})

    def add_message(
        self,
        session_id: str,
        direction: str,
        message_id: str,
        text: str,
        timestamp: str,
        now_epoch: int,
        author: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> bool:
        """Store a message of the session; False when it is there already.

        ``extra``: what the widget shows besides the text, only when set: ``author_name``
        (an agent's first name), ``sources`` (``[{"article_id", "title"}]``), ``survey``."""
        prefix = "IN" if direction == "inbound" else "OUT"
        shown = {key: value for key, value in (extra or {}).items() if key in EXTRA_FIELDS and value}
        return self.table.put_new(
            {
                "pk": session_pk(session_id),
                "sk": f"{prefix}#{message_id}",
                "message_id": message_id,
                "direction": direction,
                "text": text,
                "timestamp": timestamp,
                "author": author,
                **shown,
                "expires_at": now_epoch + SESSION_TTL_S,
            }
        )

    def list_messages(self, session_id: str) -> list[dict[str, Any]]:
        items = self.table.query_all(
            limit=MAX_LISTED,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": session_pk(session_id)}},
            ConsistentRead=True,
        )
        messages = [
            {
                "message_id": i["message_id"],
                "direction": i["direction"],
                "text": i.get("text", ""),
                "timestamp": i["timestamp"],
                "author": i.get("author"),
                **{key: i[key] for key in EXTRA_FIELDS if i.get(key)},
            }
            for i in items
            if i["sk"].startswith(("IN#", "OUT#"))  # not META, nor the session's CONN# items
        ]
        messages.sort(key=lambda m: (m["timestamp"], m["message_id"]))
        return messages
