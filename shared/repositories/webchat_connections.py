"""Open WebSocket connections of web chat sessions, in the ``webchat`` table.

Items (``pk`` / ``sk``):

* ``SESSION#<id>`` / ``CONN#<connection id>`` - a connection of the session (notify lists them);
* ``CONN#<connection id>`` / ``META`` - its session (``$disconnect`` only knows the connection).

Both carry ``expires_at``: API Gateway closes a WebSocket after two hours at most, so a
connection whose ``$disconnect`` never came is forgotten by the table's TTL.
"""

from __future__ import annotations

from shared.platform import settings
from shared.repositories.dynamo import DynamoTable, serialise
from shared.repositories.webchat import session_pk

CONNECTION_TTL_S = 3 * 3600


def connection_pk(connection_id: str) -> str:
    return f"CONN#{connection_id}"


class WebchatConnectionRepository:
    def __init__(self, table: DynamoTable | None = None) -> None:
        self.table = table or DynamoTable(settings.WEBCHAT_TABLE)

    def add(self, session_id: str, connection_id: str, connected_at: str, now_epoch: int) -> None:
        expires = now_epoch + CONNECTION_TTL_S
        common = {"connection_id": connection_id, "session_id": session_id, "expires_at": expires}
        client, name = self.table.client, self.table.name

        client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": name,
                        "Item": serialise(
                            {
                                "pk": session_pk(session_id),
                                "sk": connection_pk(connection_id),
                                "connected_at": connected_at,
                                **common,
                            }
                        ),
                    }
                },
                {
                    "Put": {
                        "TableName": name,
                        "Item": serialise({"pk": connection_pk(connection_id), "sk": "META", **common}),
                    }
                },
            ]
        )

    def session_of(self, connection_id: str) -> str | None:
        item = self.table.get({"pk": connection_pk(connection_id), "sk": "META"})
        return str(item["session_id"]) if item else None

    def connections(self, session_id: str) -> list[str]:
        items = self.table.query_all(
            limit=100,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :conn)",
            ExpressionAttributeValues={":pk": {"S": session_pk(session_id)}, ":conn": {"S": "CONN#"}},
            ConsistentRead=True,
        )
        return [str(item["connection_id"]) for item in items]

    def remove(self, connection_id: str, session_id: str | None = None) -> None:
        """Forget a connection (closed, or gone when notify pushed to it)."""
        session_id = session_id or self.session_of(connection_id)

        keys = [{"pk": connection_pk(connection_id), "sk": "META"}]
        if session_id:
            keys.append({"pk": session_pk(session_id), "sk": connection_pk(connection_id)})
        for key in keys:
            self.table.client.delete_item(TableName=self.table.name, Key=serialise(key))
