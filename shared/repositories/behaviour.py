"""Counted behaviour events in the ``behaviour`` table: one small item per customer, rule and key.

Item ``CUST#<customer id>`` / ``RULE#<rule>#<per value>``: ``checks`` (the recent events
counted, each ``{"at", "event_id"}``), ``fired_at`` / ``fired_id`` / ``fired_event`` (when
the rule last fired, its action's idempotency key and the event that fired it),
``version`` (optimistic locking) and ``expires_at`` (TTL). Counting an event is one get and
one conditional put - no scans, whatever the number of customers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.platform import settings
from shared.repositories.dynamo import DynamoTable

MAX_ATTEMPTS = 5


class BehaviourConflict(RuntimeError):
    """The item kept changing under us; SQS redelivers the event and it is counted then."""


def tally_key(customer_id: str, rule: str, per: str) -> dict[str, str]:
    return {"pk": f"CUST#{customer_id}", "sk": f"RULE#{rule}#{per}"}


class BehaviourRepository:
    def __init__(self, table: DynamoTable | None = None) -> None:
        self.table = table or DynamoTable(settings.BEHAVIOUR_TABLE)

    def get(self, customer_id: str, rule: str, per: str) -> dict[str, Any] | None:
        return self.table.get(tally_key(customer_id, rule, per))

    def update(
        self,
        customer_id: str,
        rule: str,
        per: str,
        change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
    ) -> dict[str, Any] | None:
        """Read the item, let ``change`` give the new one (None: nothing to write), put it if unchanged.

        Returns what ``change`` returned on the attempt that was written (or needed no write).
        """
        key = tally_key(customer_id, rule, per)
        for _ in range(MAX_ATTEMPTS):
            current = self.table.get(key)
            new = change(current)
            if new is None:
                return current
            version = int(current["version"]) if current else 0
            item = {**new, **key, "version": version + 1}
            written = (
                self.table.put_if(item, "version = :v", {":v": version})
                if current
                else self.table.put_if(item, "attribute_not_exists(pk)")
            )
            if not written:
                continue  # counted concurrently: read again
            return item
        raise BehaviourConflict(f"{customer_id}/{rule}/{per}")
