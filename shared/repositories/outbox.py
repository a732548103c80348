"""The delivery log (``outbox`` table): one item per notification id, with its status.

The item is written before anything is sent, with a condition on the notification id,
so a notification requested twice is delivered once; its ``created_at`` is reused as
the message timestamp by every retry, which keeps the downstream writes idempotent.

Each channel tried gets an *attempt* in the item's ``attempts`` map, keyed by channel
(the idempotency key is ``<notification id>#<channel>``):
``{state, key, provider, started_at, request, provider_message_id, details, error}``
with ``state`` ``attempting`` (written with a condition before the provider is
called), then ``accepted``, ``failed`` or ``unconfirmed`` (written after). ``request``
is the provider request as sent (locally: instead of sending).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from shared.platform import settings
from shared.repositories.dynamo import DynamoTable, serialise

Status = str  # queued | sent | delivered | read | failed
BY_PROVIDER_ID_INDEX = "by-provider-id"
#: Provider callbacks arrive out of order; a status never goes back to an earlier one.
STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}
ATTEMPTING = "attempting"
_SAME_ATTEMPT = "#attempts.#c.#state = :attempting AND #attempts.#c.started_at = :started"


class OutboxRepository:
    def __init__(self, table: DynamoTable | None = None) -> None:
        self.table = table or DynamoTable(settings.OUTBOX_TABLE)

    def start(self, item: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Record a delivery as queued; returns the stored item and whether it is new."""
        stored = {
            **item,
            "status": "queued",
            "status_rank": 0,
            "status_history": {"queued": item["created_at"]},
            "attempts": {},
        }
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
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Set the delivery's status (never back to an earlier one); ``extra`` attributes too."""
        names = {"#status": "status", "#history": "status_history", "#s": status}
        values: dict[str, Any] = {":status": status, ":at": at, ":rank": STATUS_RANK[status]}
        expression = "SET #status = :status, status_rank = :rank, updated_at = :at, #history.#s = :at"
        for index, (name, value) in enumerate((extra or {}).items()):
            if value is None:
                continue
            names[f"#x{index}"] = name
            values[f":x{index}"] = value
            expression += f", #x{index} = :x{index}"
        if provider_message_id:
            expression += ", provider_message_id = :pid"
            values[":pid"] = provider_message_id
        if error:
            expression += ", #error = :error"
            names["#error"] = "error"
            values[":error"] = error
        written = self.table.update_if(
            {"notification_id": notification_id},
            expression,
            # A fast provider's "delivered" callback may have come first: keep it.
            "attribute_not_exists(status_rank) OR status_rank < :rank",
            values,
            names,
        )
        if not written and provider_message_id:
            # The status stays, but the id must be known for callbacks.
            self.table.client.update_item(
                TableName=self.table.name,
                Key=serialise({"notification_id": notification_id}),
                UpdateExpression="SET provider_message_id = :pid",
                ExpressionAttributeValues=serialise({":pid": provider_message_id}),
            )

    def record_sent(
        self,
        notification_id: str,
        at: str,
        settled: list[tuple[str, str | None, dict[str, str] | None]],
        provider_message_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """The provider(s) accepted: settle this run's attempts (``(channel, provider message id,
        details)``, each still ``attempting``) and set the status ``sent``, in one write.

        One UpdateItem instead of one per attempt plus one for the status: the delivery log is
        written three times per message (queued, attempting, sent) instead of four. When the
        condition fails (a receipt raced ahead, another run took an attempt over) it falls
        back to the separate writes, each with its own condition, as before.
        """
        names: dict[str, str] = {"#status": "status", "#history": "status_history", "#s": "sent"}
        values: dict[str, Any] = {
            ":status": "sent",
            ":at": at,
            ":rank": STATUS_RANK["sent"],
            ":attempting": ATTEMPTING,
            ":accepted": "accepted",
        }
        parts = ["#status = :status", "status_rank = :rank", "updated_at = :at", "#history.#s = :at"]
        conditions = ["(attribute_not_exists(status_rank) OR status_rank < :rank)"]
        if settled:
            names.update({"#attempts": "attempts", "#state": "state"})
        for index, (channel, pid, details) in enumerate(settled):
            names[f"#c{index}"] = channel
            path = f"#attempts.#c{index}"
            parts += [f"{path}.#state = :accepted", f"{path}.finished_at = :at"]
            conditions.append(f"{path}.#state = :attempting")
            if pid:
                values[f":p{index}"] = pid
                parts.append(f"{path}.provider_message_id = :p{index}")
            if details:
                values[f":d{index}"] = details
                parts.append(f"{path}.details = :d{index}")
        for index, (name, value) in enumerate((extra or {}).items()):
            if value is None:
                continue
            names[f"#x{index}"] = name
            values[f":x{index}"] = value
            parts.append(f"#x{index} = :x{index}")
        if provider_message_id:
            values[":pid"] = provider_message_id
            parts.append("provider_message_id = :pid")
        if not settled:
            del values[":attempting"], values[":accepted"]
        if self.table.update_if(
            {"notification_id": notification_id},
            "SET " + ", ".join(parts),
            " AND ".join(conditions),
            values,
            names,
        ):
            return
        for channel, pid, details in settled:
            self.settle_attempt(
                notification_id, channel, "accepted", at, provider_message_id=pid, details=details
            )
        self.mark(notification_id, "sent", at, provider_message_id=provider_message_id, extra=extra)

    def notification_for_provider_id(self, provider_message_id: str) -> str | None:
        items = self.table.query_all(
            limit=1,
            IndexName=BY_PROVIDER_ID_INDEX,
            KeyConditionExpression="provider_message_id = :p",
            ExpressionAttributeValues={":p": {"S": provider_message_id}},
        )
        return items[0]["notification_id"] if items else None

    def update_status(
        self, provider_message_id: str, status: Status, at: str, error_code: str | None = None
    ) -> str | None:
        """Apply a provider's delivery-status callback to the delivery it sent.

        Returns the notification id, or None when the id is not one of ours. A status
        earlier than the stored one (``sent`` after ``delivered``) is ignored.
        """
        if status not in STATUS_RANK:
            raise ValueError(f"unknown delivery status {status!r}")
        notification_id = self.notification_for_provider_id(provider_message_id)
        if notification_id is None:
            return None
        self._apply_status(notification_id, status, at, error_code)
        return notification_id

    def confirm_attempt(
        self,
        idempotency_key: str,
        channel: str,
        provider_message_id: str,
        status: Status,
        at: str,
        error_code: str | None = None,
    ) -> str | None:
        """Confirm an ``unconfirmed`` attempt from a receipt that echoes its idempotency key
        (WhatsApp's ``biz_opaque_callback_data``), then apply the receipt's status.

        The attempt becomes ``accepted`` with the provider's id, which later receipts find
        by. Returns the notification id, or None when the key names no unconfirmed
        attempt on ``channel`` (nothing is changed then).
        """
        if status not in STATUS_RANK:
            raise ValueError(f"unknown delivery status {status!r}")
        notification_id, _, key_channel = idempotency_key.rpartition("#")
        if not notification_id or key_channel != channel:
            return None
        confirmed = self.table.update_if(
            {"notification_id": notification_id},
            "SET #attempts.#c.#state = :accepted, #attempts.#c.provider_message_id = :pid, "
            "#attempts.#c.confirmed_at = :at, provider_message_id = :pid REMOVE unconfirmed",
            "#attempts.#c.#state = :unconfirmed AND attribute_not_exists(provider_message_id)",
            {":accepted": "accepted", ":unconfirmed": "unconfirmed", ":pid": provider_message_id, ":at": at},
            {"#attempts": "attempts", "#c": channel, "#state": "state"},
        )
        if not confirmed:
            return None
        self._apply_status(notification_id, status, at, error_code)
        return notification_id

    def _apply_status(self, notification_id: str, status: Status, at: str, error_code: str | None) -> None:
        names = {"#status": "status"}
        values: dict[str, Any] = {":status": status, ":at": at, ":rank": STATUS_RANK[status]}
        expression = "SET #status = :status, status_rank = :rank, updated_at = :at, #history.#s = :at"
        names["#history"] = "status_history"
        names["#s"] = status
        if error_code:
            expression += ", error_code = :code"
            values[":code"] = error_code
        self.table.update_if(
            {"notification_id": notification_id},
            expression,
            "attribute_exists(notification_id) AND "
            "(attribute_not_exists(status_rank) OR status_rank < :rank)",
            values,
            names,
        )

    def get(self, notification_id: str) -> dict[str, Any] | None:
        return self.table.get({"notification_id": notification_id})

    # -- deferral ------------------------------------------------------------ #
    def defer(self, notification_id: str, until: str, at: str) -> None:
        """Note that the delivery waits (quiet hours) until ``until``; the status stays queued."""
        self.table.client.update_item(
            TableName=self.table.name,
            Key=serialise({"notification_id": notification_id}),
            UpdateExpression="SET deferred_until = :until, updated_at = :at ADD deferrals :one",
            ExpressionAttributeValues=serialise({":until": until, ":at": at, ":one": 1}),
        )

    # -- attempts (one per channel) --------------------------------------------- #
    def begin_attempt(
        self, notification_id: str, channel: str, attempt: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """Record an attempt on ``channel`` unless there is one; returns it and whether it is new."""
        stored = {**attempt, "state": ATTEMPTING}
        for _ in range(2):
            try:
                written = self.table.update_if(
                    {"notification_id": notification_id},
                    "SET #attempts.#c = :attempt",
                    "attribute_exists(notification_id) AND attribute_not_exists(#attempts.#c)",
                    {":attempt": stored},
                    {"#attempts": "attempts", "#c": channel},
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "ValidationException":
                    raise
                # An item written before attempts existed: give it the map, then try again.
                self.table.client.update_item(
                    TableName=self.table.name,
                    Key=serialise({"notification_id": notification_id}),
                    UpdateExpression="SET #attempts = if_not_exists(#attempts, :empty)",
                    ExpressionAttributeNames={"#attempts": "attempts"},
                    ExpressionAttributeValues=serialise({":empty": {}}),
                )
                continue
            if written:
                return stored, True
            break
        item = self.get(notification_id) or {}
        existing = (item.get("attempts") or {}).get(channel)
        if existing is None:
            raise RuntimeError(f"attempt {notification_id}#{channel} vanished")
        return existing, False

    def renew_attempt(self, notification_id: str, channel: str, started_at: str, now: str) -> bool:
        """Take over a stale attempt (new lease); False when someone else did first."""
        return self.table.update_if(
            {"notification_id": notification_id},
            "SET #attempts.#c.started_at = :now, #attempts.#c.renewed = :true",
            _SAME_ATTEMPT,
            {":now": now, ":started": started_at, ":attempting": ATTEMPTING, ":true": True},
            {"#attempts": "attempts", "#c": channel, "#state": "state"},
        )

    def settle_attempt(
        self,
        notification_id: str,
        channel: str,
        state: str,
        at: str,
        provider_message_id: str | None = None,
        details: dict[str, str] | None = None,
        error: str | None = None,
    ) -> None:
        """Move an attempt from ``attempting`` to ``accepted``/``failed``/``unconfirmed`` (once)."""
        names = {"#attempts": "attempts", "#c": channel, "#state": "state"}
        values: dict[str, Any] = {":state": state, ":at": at, ":attempting": ATTEMPTING}
        expression = "SET #attempts.#c.#state = :state, #attempts.#c.finished_at = :at"
        for name, value in (
            ("provider_message_id", provider_message_id),
            ("details", details),
            ("error", error),
        ):
            if value:
                names[f"#{name}"] = name
                values[f":{name}"] = value
                expression += f", #attempts.#c.#{name} = :{name}"
        self.table.update_if(
            {"notification_id": notification_id},
            expression,
            "#attempts.#c.#state = :attempting",
            values,
            names,
        )

    def release_attempt(self, notification_id: str, channel: str, started_at: str) -> None:
        """Forget an attempt the provider did not accept (busy), so the retry starts afresh."""
        self.table.update_if(
            {"notification_id": notification_id},
            "REMOVE #attempts.#c",
            _SAME_ATTEMPT,
            {":attempting": ATTEMPTING, ":started": started_at},
            {"#attempts": "attempts", "#c": channel, "#state": "state"},
        )
