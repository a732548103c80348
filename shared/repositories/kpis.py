"""The ``kpis`` table: KPI counters per day, intent and channel, and the KPI function's state.

Items (``pk`` / ``sk``):

* ``KPI#<YYYY-MM>`` / ``<YYYY-MM-DD>#<intent>#<channel>`` - the counters of one day, intent
  and channel (``started``, ``resolved``, ``fcr``, ..., histogram buckets ``frt_bNN`` /
  ``rt_bNN``, CES ``ces_<score>``). One partition per month: a report for a date range is
  one query per month of the range (``sk BETWEEN``), never a scan.
* ``CONV#<conversation id>`` / ``STATE`` - what the KPI function knows of a conversation:
  when and where it was opened, its (first) intent, whether it is resolved and counted as
  first-contact resolution, the counts not yet attributed because the intent was unknown.
* ``LAST#<customer id>#<intent>`` / ``LAST`` - the customer's latest conversation on that
  intent (repeat contacts, FCR lost to a new conversation within 7 days).
* ``CES#<customer id>`` / ``PENDING`` - a CES question waiting for the customer's next reply.
* ``SEEN#<event id>`` / ``SEEN`` - the event was counted (expires after 30 days).

:meth:`KpiRepository.commit` writes one event's effect in one transaction: the seen
marker (condition: absent), the counter increments (``ADD``), and the state items
(condition: the version read), so an event counts once and concurrent events of one
conversation cannot lose each other's changes.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from botocore.exceptions import ClientError

from shared.repositories.dynamo import DynamoTable, cancellation_codes, serialise, serialise_value

STATE = "STATE"
LAST = "LAST"
PENDING = "PENDING"
SEEN = "SEEN"
SEEN_TTL_S = 30 * 24 * 3600
#: DynamoDB's limit of items per transaction.
MAX_TRANSACTION_ITEMS = 100

CounterKey = tuple[str, str, str]  # (day, intent, channel)


def counters_pk(day: str) -> str:
    return f"KPI#{day[:7]}"


def counters_sk(day: str, intent: str, channel: str) -> str:
    return f"{day}#{intent}#{channel}"


def conversation_state_key(conversation_id: str) -> tuple[str, str]:
    return f"CONV#{conversation_id}", STATE


def last_contact_key(customer_id: str, intent: str) -> tuple[str, str]:
    return f"LAST#{customer_id}#{intent}", LAST


def ces_pending_key(customer_id: str) -> tuple[str, str]:
    return f"CES#{customer_id}", PENDING


class StateConflict(RuntimeError):
    """A state item changed since it was read: read again and redo the event."""


@dataclass
class Plan:
    """One event's effect: counter deltas, state items to write or delete, other table items."""

    event_id: str
    deltas: dict[CounterKey, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    #: ``(pk, sk)`` -> the item as it should be; its ``version`` is the one read (None: new).
    puts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    deletes: dict[tuple[str, str], int | None] = field(default_factory=dict)
    #: Further transaction items (the CES answer on the conversation).
    extra: list[dict[str, Any]] = field(default_factory=list)

    def add(self, day: str, intent: str, channel: str, counter: str, value: int = 1) -> None:
        if value:
            bucket = self.deltas[(day, intent, channel)]
            bucket[counter] = bucket.get(counter, 0) + int(value)

    def put(self, item: dict[str, Any]) -> None:
        key = (item["pk"], item["sk"])
        self.deletes.pop(key, None)
        self.puts[key] = item

    def delete(self, item: dict[str, Any]) -> None:
        key = (item["pk"], item["sk"])
        self.puts.pop(key, None)
        self.deletes[key] = item.get("version")


class KpiRepository:
    def __init__(self, table_name: str | None = None, client: Any = None) -> None:
        self.table = DynamoTable("KPIS_TABLE", table_name, client)

    # -- state --------------------------------------------------------------- #
    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        return self.table.get({"pk": key[0], "sk": key[1]})

    def seen(self, event_id: str) -> bool:
        return self.table.get({"pk": f"SEEN#{event_id}", "sk": SEEN}) is not None

    # -- writing one event --------------------------------------------------- #
    def commit(self, plan: Plan, now_epoch: float | None = None) -> bool:
        """Write ``plan`` atomically; False when the event was counted before."""
        now_epoch = time.time() if now_epoch is None else now_epoch
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table.name,
                    "Item": serialise(
                        {"pk": f"SEEN#{plan.event_id}", "sk": SEEN, "expires_at": int(now_epoch) + SEEN_TTL_S}
                    ),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        for (day, intent, channel), deltas in plan.deltas.items():
            counters = {name: value for name, value in deltas.items() if value}
            if not counters:
                continue
            names = {f"#c{i}": name for i, name in enumerate(counters)}
            values = {f":c{i}": serialise_value(value) for i, value in enumerate(counters.values())}
            names.update({"#day": "day", "#intent": "intent", "#channel": "channel"})
            values.update(
                {
                    ":day": serialise_value(day),
                    ":intent": serialise_value(intent),
                    ":ch": serialise_value(channel),
                }
            )
            items.append(
                {
                    "Update": {
                        "TableName": self.table.name,
                        "Key": serialise({"pk": counters_pk(day), "sk": counters_sk(day, intent, channel)}),
                        "UpdateExpression": "SET #day = :day, #intent = :intent, #channel = :ch ADD "
                        + ", ".join(f"#c{i} :c{i}" for i in range(len(counters))),
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": values,
                    }
                }
            )
        states_from = len(items)
        for item in plan.puts.values():
            version = item.get("version")
            written = {**item, "version": (version or 0) + 1}
            put: dict[str, Any] = {"TableName": self.table.name, "Item": serialise(written)}
            if version is None:
                put["ConditionExpression"] = "attribute_not_exists(pk)"
            else:
                put["ConditionExpression"] = "version = :v"
                put["ExpressionAttributeValues"] = {":v": serialise_value(version)}
            items.append({"Put": put})
        for (pk, sk), version in plan.deletes.items():
            delete: dict[str, Any] = {"TableName": self.table.name, "Key": serialise({"pk": pk, "sk": sk})}
            if version is not None:
                delete["ConditionExpression"] = "version = :v"
                delete["ExpressionAttributeValues"] = {":v": serialise_value(version)}
            items.append({"Delete": delete})
        items.extend(plan.extra)
        if len(items) > MAX_TRANSACTION_ITEMS:
            raise ValueError(f"one event touches {len(items)} items, more than a transaction holds")
        try:
            self.table.client.transact_write_items(TransactItems=items)
        except ClientError as error:
            codes = cancellation_codes(error)
            if not codes:
                raise
            if codes[0] == "ConditionalCheckFailed":
                return False
            if any(code == "ConditionalCheckFailed" for code in codes[states_from:]):
                raise StateConflict(f"state changed while counting event {plan.event_id}") from error
            raise
        return True

    # -- reading counters ---------------------------------------------------- #
    def counters(self, start: date, end: date) -> list[dict[str, Any]]:
        """Every counter item from ``start`` to ``end`` (days, both included): one query per month."""
        rows: list[dict[str, Any]] = []
        month = date(start.year, start.month, 1)
        while month <= end:
            rows += self.table.query_all(
                KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
                ExpressionAttributeValues=serialise(
                    {
                        ":pk": f"KPI#{month.isoformat()[:7]}",
                        ":lo": start.isoformat(),
                        # "#" sorts before letters and digits: every item of the last day is below "~".
                        ":hi": f"{end.isoformat()}~",
                    }
                ),
            )
            month = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
        return rows
