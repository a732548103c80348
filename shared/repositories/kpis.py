"""The ``kpis`` table: KPI counters per day, intent and channel, and the KPI function's state.

Items (``pk`` / ``sk``):

* ``KPI#<YYYY-MM>`` / ``<YYYY-MM-DD>#<intent>#<channel>`` - the counters of one day, intent
  and channel (``started``, ``resolved``, ``fcr``, ..., histogram buckets ``frt_bNN`` /
  ``rt_bNN``, survey answers ``ces_<score>`` / ``csat_<score>``). One partition per month:
  a report for a date range is one query per month of the range (``sk BETWEEN``), never
  a scan.
* ``CONV#<conversation id>`` / ``STATE`` - what the KPI function knows of a conversation:
  when and where it was opened, its (first) intent, whether it is resolved and counted as
  first-contact resolution, the counts not yet attributed because the intent was unknown,
  the survey asked and answered, and the ids of the latest events that changed it.
* ``LAST#<customer id>#<intent>`` / ``LAST`` - the customer's latest conversation on that
  intent (repeat contacts, FCR lost to a new conversation within 7 days).

:meth:`KpiRepository.commit` writes the effect of a batch of events (the KPI function
sums a batch's increments in memory): the state items (condition: the version read) and
one counter increment (``ADD``) per counter row, however many of the batch's events moved
it. When the batch changed only one state item that is a single conditional write;
otherwise one transaction, so counters and state never part and concurrent batches
touching one conversation cannot lose each other's changes. The ids of the events that
changed something, kept on their conversation's state in the same write, make a
redelivered event count nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from shared.platform import settings
from shared.repositories.dynamo import CONDITION_FAILED, CONFLICT, DynamoTable, serialise, serialise_value

STATE = "STATE"
LAST = "LAST"
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


class StateConflict(RuntimeError):
    """A state item changed since it was read: read again and redo the event."""


@dataclass
class Plan:
    """The effect of one event or of a batch of them: counter deltas (summed over the batch),
    state items to write or delete, other table items."""

    event_id: str
    deltas: dict[CounterKey, dict[str, int]] = field(default_factory=lambda: defaultdict(dict))
    #: ``(pk, sk)`` -> the item as it should be; its ``version`` is the one read (None: new).
    puts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    deletes: dict[tuple[str, str], int | None] = field(default_factory=dict)
    #: Further transaction items (of other tables).
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

    @property
    def size(self) -> int:
        """Items the write touches (a transaction holds at most :data:`MAX_TRANSACTION_ITEMS`)."""
        counters = sum(1 for deltas in self.deltas.values() if any(deltas.values()))
        return len(self.puts) + len(self.deletes) + counters + len(self.extra)


class KpiRepository:
    def __init__(self, table_name: str | None = None, client: Any = None) -> None:
        self.table = DynamoTable(settings.KPIS_TABLE, table_name, client)

    # -- state --------------------------------------------------------------- #
    def get(self, key: tuple[str, str]) -> dict[str, Any] | None:
        return self.table.get({"pk": key[0], "sk": key[1]})

    # -- writing one batch of events ------------------------------------------ #
    def commit(self, plan: Plan) -> None:
        """Write ``plan``: one conditional put when it only changes one state item, else one
        transaction. :class:`StateConflict` when a state item changed since it was read."""
        conflict = StateConflict(f"state changed while counting event {plan.event_id}")
        if len(plan.puts) == 1 and not (plan.deltas or plan.deletes or plan.extra):
            [item] = plan.puts.values()
            if self.table.conditional("put_item", **self._put(item)) is None:
                raise conflict
            return
        states = self._state_actions(plan)
        items = [*states, *self._counter_actions(plan), *plan.extra]
        if len(items) > MAX_TRANSACTION_ITEMS:
            raise ValueError(f"one write touches {len(items)} items, more than a transaction holds")
        cancelled = self.table.transact(items)
        if cancelled is None:
            return
        if any(code in (CONDITION_FAILED, CONFLICT) for code in cancelled.codes[: len(states)]):
            raise conflict from cancelled.error
        raise cancelled.error

    def _state_actions(self, plan: Plan) -> list[dict[str, Any]]:
        """The version-guarded puts and deletes of the plan's state items."""
        items: list[dict[str, Any]] = [{"Put": self._put(item)} for item in plan.puts.values()]
        for (pk, sk), version in plan.deletes.items():
            delete: dict[str, Any] = {"TableName": self.table.name, "Key": serialise({"pk": pk, "sk": sk})}
            if version is not None:
                delete["ConditionExpression"] = "version = :v"
                delete["ExpressionAttributeValues"] = {":v": serialise_value(version)}
            items.append({"Delete": delete})
        return items

    def _counter_actions(self, plan: Plan) -> list[dict[str, Any]]:
        """One ``ADD`` update per counter item the plan moves."""
        items: list[dict[str, Any]] = []
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
        return items

    def _put(self, item: dict[str, Any]) -> dict[str, Any]:
        """A put of ``item`` guarded by the version it was read with (absent: new)."""
        version = item.get("version")
        put: dict[str, Any] = {
            "TableName": self.table.name,
            "Item": serialise({**item, "version": (version or 0) + 1}),
        }
        if version is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "version = :v"
            put["ExpressionAttributeValues"] = {":v": serialise_value(version)}
        return put

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

    # -- the supervisor view's time series ------------------------------------ #
    def daily(self, start: date, end: date, limit: int = 5000) -> list[dict[str, Any]]:
        """The counter items of ``start`` .. ``end`` for a daily series: one query per month
        partition the range touches (two at most for the 31 days the view asks for), paged
        with ``Limit``, and at most ``limit`` items in all (a day holds one item per intent
        and channel that saw traffic)."""
        rows: list[dict[str, Any]] = []
        month = date(start.year, start.month, 1)
        while month <= end and len(rows) < limit:
            rows += self.table.query_all(
                limit=limit - len(rows),
                KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
                ExpressionAttributeValues=serialise(
                    {
                        ":pk": counters_pk(month.isoformat()),
                        ":lo": start.isoformat(),
                        ":hi": f"{end.isoformat()}~",
                    }
                ),
            )
            month = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
        return rows
