"""Counts every AWS request the functions make while the local stack runs.

:class:`Meter` patches, for the benchmark process only:

* ``botocore.client.BaseClient._make_request`` — called once per API call (retries are
  inside it), with the serialised request and the low-level parsed response, whatever
  client made the call (``shared.platform.aws``'s, a repository's, a boto3 resource's);
* ``omni.local.invoker.Invoker.invoke`` — one Lambda invocation: which function, how
  long; the calls made during it (same thread) are attributed to that function;
* ``omni.local.pollers.SqsPoller.process`` — one event source mapping batch: how many
  records the queue delivered.

Calls made outside an invocation (the local pollers' own receives and deletes, the
runtime's idle checks) are *not* priced as measured: the event source mapping is
modelled instead (see :mod:`bench.prices`).

DynamoDB request units are computed from item sizes with DynamoDB's documented rules
(moto's ``ConsumedCapacity`` is a constant, not a measurement): the item before and
after each write is read with a separate, uncounted client.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.client

from omni.local.invoker import InvocationResult, Invoker
from omni.local.pollers import SqsPoller
from topology import TOPOLOGY

OUTSIDE = "<runtime>"
#: Powertools' HTTP resolvers keep the current event in a class attribute
#: (``BaseRouter.current_event``), shared by every function of one process: two HTTP
#: functions running at once in the local runtime would read each other's request. In
#: Lambda each function has its own process; in the benchmark the HTTP functions take turns.
HTTP_FUNCTIONS = frozenset(fn.name for fn in TOPOLOGY.functions if fn.routes)
HTTP_TURNS = threading.RLock()
KB = 1024
_local = threading.local()


# --------------------------------------------------------------------------- #
# DynamoDB item sizes (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html)
# --------------------------------------------------------------------------- #
def _number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").lstrip("0") or "0"
    return math.ceil(len(digits.split("e")[0].split("E")[0]) / 2) + 1


def value_size(value: dict[str, Any]) -> int:
    """Bytes of one low-level AttributeValue (``{"S": ...}``, ``{"M": {...}}``...)."""
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return _number_size(inner)
    if kind == "B":
        return len(inner) if isinstance(inner, bytes | bytearray) else len(inner) * 3 // 4
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(_number_size(n) for n in inner)
    if kind == "BS":
        return sum(len(b) for b in inner)
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in inner.items())
    return 0


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def attribute_sizes(item: dict[str, Any]) -> dict[str, int]:
    """Bytes each attribute of a low-level item counts for (its name and its value)."""
    return {name: len(name.encode()) + value_size(value) for name, value in item.items()}


def write_units(size: int) -> int:
    return max(1, math.ceil(size / KB))


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / (4 * KB)))
    return float(units) if consistent else units / 2


@dataclass(frozen=True)
class IndexWrite:
    """What one item write cost one index: why, which of its attributes changed, units."""

    index: str
    cause: str
    attributes: str
    units: int
    writes: int


@dataclass
class TableSchema:
    keys: tuple[str, ...]
    #: index name -> (key attributes, projection type, attributes an INCLUDE index projects)
    gsis: dict[str, tuple[tuple[str, ...], str, tuple[str, ...]]]


# --------------------------------------------------------------------------- #
# The meter
# --------------------------------------------------------------------------- #
#: Assumed in-region round trip of one AWS API call from Lambda, ms (typical p50; DynamoDB
#: documents "single-digit millisecond" latency). The cloud estimate of an invocation's duration
#: replaces the time the call took against the local emulator with these.
CALL_LATENCY_MS: dict[tuple[str, str], float] = {
    ("dynamodb", "GetItem"): 5,
    ("dynamodb", "PutItem"): 6,
    ("dynamodb", "UpdateItem"): 6,
    ("dynamodb", "DeleteItem"): 6,
    ("dynamodb", "Query"): 7,
    ("dynamodb", "BatchGetItem"): 8,
    ("dynamodb", "BatchWriteItem"): 10,
    ("dynamodb", "TransactGetItems"): 10,
    ("dynamodb", "TransactWriteItems"): 15,
    ("events", "PutEvents"): 20,
    ("secretsmanager", "GetSecretValue"): 25,
    ("s3", "GetObject"): 25,
}
SERVICE_LATENCY_MS = {"sqs": 10.0, "sesv2": 60.0, "apigatewaymanagementapi": 20.0}
DEFAULT_LATENCY_MS = 15.0


def call_latency_ms(service: str, operation: str) -> float:
    return CALL_LATENCY_MS.get((service, operation), SERVICE_LATENCY_MS.get(service, DEFAULT_LATENCY_MS))


@dataclass
class Invocation:
    function: str
    #: Wall time of the invocation minus the meter's own work, in ms.
    duration_ms: float
    ok: bool
    #: The function's first invocation in this process: its duration includes the imports.
    cold: bool = False
    #: Of ``duration_ms``: time spent waiting for the local emulator's answers.
    aws_ms: float = 0.0
    #: What the same AWS calls are assumed to take in the cloud (:data:`CALL_LATENCY_MS`).
    modelled_aws_ms: float = 0.0

    @property
    def cloud_ms(self) -> float:
        """Estimated duration in Lambda: the function's own time plus modelled AWS round trips."""
        return max(1.0, self.duration_ms - self.aws_ms + self.modelled_aws_ms)


@dataclass
class Snapshot:
    """What was counted between two points (see :meth:`Meter.window`)."""

    calls: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (function, service, op)
    wru: Counter[str] = field(default_factory=Counter)  # function -> write request units
    rru: Counter[str] = field(default_factory=Counter)  # function -> read request units
    wru_by_op: Counter[tuple[str, str]] = field(default_factory=Counter)  # (table, op)
    rru_by_op: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: (table, item kind, "item" | "index") -> WRU; item kind is the sort key's prefix (META, MSG...).
    wru_by_item: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    #: (table, index, cause, attributes, function) -> index WRU. Cause: "key changed" (the
    #: old index item deleted and a new one put), "projected attribute changed", "entered"
    #: or "left" (a sparse index); attributes: the index's attributes whose value changed.
    wru_by_index: Counter[tuple[str, str, str, str, str]] = field(default_factory=Counter)
    #: (table, item kind) -> the largest such item a write left behind: its size in bytes and
    #: the size of each of its attributes (name and value, the way DynamoDB counts them).
    largest: dict[tuple[str, str], tuple[int, dict[str, int]]] = field(default_factory=dict)
    #: (table, item kind) -> WRU those writes would cost if every item were at most 1 KB.
    wru_small: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: (table, item kind) -> RRU; a query's units are shared among the kinds it returned, by size.
    rru_by_item: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: (table, item kind, operation) -> how often a request named (or a query returned) such an
    #: item: a transaction of three items counts once for each of them.
    item_requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    put_event_entries: Counter[str] = field(default_factory=Counter)  # function -> 64 KB chunks
    #: (function, detail type) -> 64 KB chunks published.
    put_event_types: Counter[tuple[str, str]] = field(default_factory=Counter)
    sqs_chunks: Counter[str] = field(default_factory=Counter)  # function -> 64 KB request chunks
    invocations: list[Invocation] = field(default_factory=list)
    batches: Counter[str] = field(default_factory=Counter)  # queue -> batches
    records: Counter[str] = field(default_factory=Counter)  # queue -> records delivered

    def calls_of(self, function: str | None = None) -> Counter[tuple[str, str]]:
        out: Counter[tuple[str, str]] = Counter()
        for (fn, service, op), n in self.calls.items():
            if fn != OUTSIDE and (function is None or fn == function):
                out[(service, op)] += n
        return out


class Meter:
    def __init__(self, endpoint_url: str, region: str) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.data = Snapshot()
        #: Every call since :meth:`install`, whatever window was open.
        self.total_calls: Counter[tuple[str, str, str]] = Counter()
        self._lock = threading.Lock()
        self._schemas: dict[str, TableSchema] = {}
        self._raw = boto3.session.Session(region_name=region).client("dynamodb", endpoint_url=endpoint_url)
        self._saved: dict[str, Any] = {}
        self.warm: set[str] = set()

    # ------------------------------------------------------------------ #
    def install(self) -> Meter:
        meter = self
        original_request = botocore.client.BaseClient._make_request
        original_invoke = Invoker.invoke
        original_process = SqsPoller.process

        def _make_request(client: Any, operation_model: Any, request_dict: Any, request_context: Any) -> Any:
            if getattr(_local, "internal", False):
                return original_request(client, operation_model, request_dict, request_context)
            service = client.meta.service_model.service_name
            operation = operation_model.name
            function = getattr(_local, "function", None) or OUTSIDE
            overhead_started = time.perf_counter()
            body = _json_body(request_dict) if service in ("dynamodb", "events", "sqs") else {}
            before = meter._before(operation, body) if service == "dynamodb" and function != OUTSIDE else None
            overhead = time.perf_counter() - overhead_started
            call_started = time.perf_counter()
            http, parsed = original_request(client, operation_model, request_dict, request_context)
            overhead_started = time.perf_counter()
            _local.aws = getattr(_local, "aws", 0.0) + overhead_started - call_started
            _local.modelled = getattr(_local, "modelled", 0.0) + call_latency_ms(service, operation) / 1000
            with meter._lock:
                meter.data.calls[(function, service, operation)] += 1
                meter.total_calls[(function, service, operation)] += 1
            if function != OUTSIDE:
                try:
                    meter._account(function, service, operation, body, parsed, before)
                except Exception as exc:  # the benchmark must never break the handler
                    print(f"meter: could not account {service}.{operation}: {exc!r}", file=sys.stderr)
            # The meter's own work (item reads for the request units) is not the function's time.
            _local.overhead = (
                getattr(_local, "overhead", 0.0) + overhead + time.perf_counter() - overhead_started
            )
            return http, parsed

        def invoke(invoker: Invoker, function: Any, event: Any) -> InvocationResult:
            name = function if isinstance(function, str) else function.name
            previous = getattr(_local, "function", None)
            _local.function = name
            _local.overhead = 0.0
            _local.aws = 0.0
            _local.modelled = 0.0
            try:
                if name in HTTP_FUNCTIONS:
                    with HTTP_TURNS:
                        started = time.perf_counter()
                        result = original_invoke(invoker, function, event)
                else:
                    started = time.perf_counter()
                    result = original_invoke(invoker, function, event)
                elapsed_ms = (time.perf_counter() - started - _local.overhead) * 1000
            finally:
                _local.function = previous
            with meter._lock:
                cold = name not in meter.warm
                meter.warm.add(name)
                meter.data.invocations.append(
                    Invocation(
                        name,
                        elapsed_ms,
                        result.ok,
                        cold,
                        aws_ms=_local.aws * 1000,
                        modelled_aws_ms=_local.modelled * 1000,
                    )
                )
            return result

        def process(poller: SqsPoller, messages: list[dict[str, Any]]) -> set[str]:
            with meter._lock:
                meter.data.batches[poller.queue.name] += 1
                meter.data.records[poller.queue.name] += len(messages)
            return original_process(poller, messages)

        self._saved = {"request": original_request, "invoke": original_invoke, "process": original_process}
        botocore.client.BaseClient._make_request = _make_request  # type: ignore[method-assign]
        Invoker.invoke = invoke  # type: ignore[method-assign]
        SqsPoller.process = process  # type: ignore[method-assign]
        return self

    def uninstall(self) -> None:
        if self._saved:
            botocore.client.BaseClient._make_request = self._saved["request"]  # type: ignore[method-assign]
            Invoker.invoke = self._saved["invoke"]  # type: ignore[method-assign]
            SqsPoller.process = self._saved["process"]  # type: ignore[method-assign]
            self._saved = {}

    @contextmanager
    def window(self) -> Iterator[Snapshot]:
        """Counts only what happens inside the ``with`` block (into the yielded snapshot)."""
        with self._lock:
            saved, self.data = self.data, Snapshot()
        try:
            yield self.data
        finally:
            with self._lock:
                self.data = saved

    # ------------------------------------------------------------------ #
    @contextmanager
    def _internal(self) -> Iterator[None]:
        previous = getattr(_local, "internal", False)
        _local.internal = True
        try:
            yield
        finally:
            _local.internal = previous

    def schema(self, table: str) -> TableSchema:
        cached = self._schemas.get(table)
        if cached is not None:
            return cached
        with self._internal():
            described = self._raw.describe_table(TableName=table)["Table"]
        keys = tuple(k["AttributeName"] for k in described["KeySchema"])
        gsis = {
            g["IndexName"]: (
                tuple(k["AttributeName"] for k in g["KeySchema"]),
                g.get("Projection", {}).get("ProjectionType", "ALL"),
                tuple(g.get("Projection", {}).get("NonKeyAttributes") or ()),
            )
            for g in described.get("GlobalSecondaryIndexes") or []
        }
        schema = TableSchema(keys, gsis)
        self._schemas[table] = schema
        return schema

    def _fetch(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        with self._internal():
            found = self._raw.get_item(TableName=table, Key=key, ConsistentRead=True)
        return found.get("Item")

    def _key(self, table: str, item: dict[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in self.schema(table).keys if name in item}

    def _write_targets(self, operation: str, body: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
        """(table, key, action) of every item a write touches."""
        targets: list[tuple[str, dict[str, Any], str]] = []
        if operation == "PutItem":
            targets.append((body["TableName"], self._key(body["TableName"], body["Item"]), "Put"))
        elif operation in ("UpdateItem", "DeleteItem"):
            targets.append((body["TableName"], body["Key"], operation[:-4]))
        elif operation == "TransactWriteItems":
            for action in body.get("TransactItems", []):
                (kind, spec), *_ = action.items()
                key = spec["Key"] if "Key" in spec else self._key(spec["TableName"], spec["Item"])
                targets.append((spec["TableName"], key, kind))
        elif operation == "BatchWriteItem":
            for table, requests in body.get("RequestItems", {}).items():
                for request in requests:
                    if "PutRequest" in request:
                        targets.append((table, self._key(table, request["PutRequest"]["Item"]), "Put"))
                    else:
                        targets.append((table, request["DeleteRequest"]["Key"], "Delete"))
        return targets

    def _before(self, operation: str, body: dict[str, Any]) -> list[Any]:
        return [
            (table, key, action, self._fetch(table, key))
            for table, key, action in self._write_targets(operation, body)
        ]

    def _gsi_units(
        self, table: str, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> tuple[int, int]:
        """Write units the table's indexes consume, and how many index writes that is."""
        writes = self._gsi_writes(table, old, new)
        return sum(w.units for w in writes), sum(w.writes for w in writes)

    def _gsi_writes(
        self, table: str, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> list[IndexWrite]:
        """What one item write costs each of the table's indexes, and why.

        DynamoDB's rules (developer guide, "Global secondary indexes", writes): an index is
        written only when the item's index copy changes; a changed index key is two writes
        (the old index item deleted, the new one put); an item entering or leaving a sparse
        index is one; a changed projected attribute (same key) is one; an update that sets
        an attribute to the value it already had changes nothing and writes no index.
        """
        found: list[IndexWrite] = []
        schema = self.schema(table)
        for name, (keys, projection, included) in schema.gsis.items():
            old_in = bool(old) and all(k in old for k in keys)
            new_in = bool(new) and all(k in new for k in keys)
            if not old_in and not new_in:
                continue
            projected = (*schema.keys, *keys, *included)

            def view(item: Any, projection: str = projection, projected: tuple[str, ...] = projected) -> Any:
                """The index's copy of ``item`` (what it stores, and what a write of it costs)."""
                if not item:
                    return {}
                if projection == "ALL":
                    return item
                return {k: item[k] for k in projected if k in item}

            before, after = view(old if old_in else None), view(new if new_in else None)
            changed = ",".join(sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)))
            if old_in and new_in:
                same_key = all(old[k] == new[k] for k in keys)  # type: ignore[index]
                if not same_key:
                    units = write_units(item_size(before)) + write_units(item_size(after))
                    found.append(IndexWrite(name, "key changed", changed, units, 2))
                elif before != after:
                    # Only a change of a projected attribute writes the index.
                    units = write_units(max(item_size(before), item_size(after)))
                    found.append(IndexWrite(name, "projected attribute changed", changed, units, 1))
            else:
                cause = "entered" if new_in else "left"
                found.append(IndexWrite(name, cause, changed, write_units(item_size(after or before)), 1))
        return found

    def _account(
        self,
        function: str,
        service: str,
        operation: str,
        body: dict[str, Any],
        parsed: dict[str, Any],
        before: list[Any] | None,
    ) -> None:
        if service == "events" and operation == "PutEvents":
            chunks = sum(
                max(1, math.ceil(len(json.dumps(entry).encode()) / (64 * KB))) for entry in body["Entries"]
            )
            with self._lock:
                self.data.put_event_entries[function] += chunks
                for entry in body["Entries"]:
                    size = len(json.dumps(entry).encode())
                    key = (function, str(entry.get("DetailType", "?")))
                    self.data.put_event_types[key] += max(1, math.ceil(size / (64 * KB)))
        elif service == "sqs":
            size = len(json.dumps(body).encode())
            with self._lock:
                self.data.sqs_chunks[function] += max(1, math.ceil(size / (64 * KB)))
        elif service == "dynamodb":
            self._account_dynamodb(function, operation, body, parsed, before or [])

    def _account_dynamodb(
        self, function: str, operation: str, body: dict[str, Any], parsed: dict[str, Any], before: list[Any]
    ) -> None:
        wru = 0.0
        rru = 0.0
        transactional = operation == "TransactWriteItems"
        failed = "Error" in parsed or "CancellationReasons" in parsed
        for table, key, action, old in before:
            new = None if action == "Delete" else self._fetch(table, key)
            factor = 2 if transactional else 1
            base = write_units(max(item_size(old), item_size(new))) * factor
            index_writes: list[IndexWrite] = []
            if not failed and action != "ConditionCheck" and old != new:
                index_writes = self._gsi_writes(table, old, new)
            index_units = sum(w.units for w in index_writes)
            units = base + index_units
            wru += units
            self._count_units(table, operation, wru=units)
            kind = _item_kind(key)
            short = table.split("-", 2)[-1]
            with self._lock:
                self.data.wru_by_item[(short, kind, "item")] += base
                self.data.wru_by_item[(short, kind, "index")] += index_units
                self.data.wru_small[(short, kind)] += factor + sum(w.writes for w in index_writes)
                for w in index_writes:
                    self.data.wru_by_index[(short, w.index, w.cause, w.attributes, function)] += w.units
                size = item_size(new)
                if new and size > self.data.largest.get((short, kind), (0, {}))[0]:
                    self.data.largest[(short, kind)] = (size, attribute_sizes(new))
                self.data.item_requests[(short, kind, operation)] += 1
        if operation in ("GetItem", "BatchGetItem", "TransactGetItems"):
            rru = self._account_point_reads(operation, body)
        elif operation in ("Query", "Scan"):
            rru = self._account_query(operation, body, parsed)
        with self._lock:
            self.data.wru[function] += wru
            self.data.rru[function] += rru

    def _count_units(self, table: str, operation: str, *, wru: float = 0, rru: float = 0) -> None:
        short = table.split("-", 2)[-1]
        with self._lock:
            if wru:
                self.data.wru_by_op[(short, operation)] += wru
            if rru:
                self.data.rru_by_op[(short, operation)] += rru

    def _account_point_reads(self, operation: str, body: dict[str, Any]) -> float:
        total = 0.0
        if operation == "GetItem":
            reads = [(body["TableName"], body["Key"], bool(body.get("ConsistentRead")), 1)]
        elif operation == "BatchGetItem":
            reads = [
                (table, key, bool(spec.get("ConsistentRead")), 1)
                for table, spec in body.get("RequestItems", {}).items()
                for key in spec["Keys"]
            ]
        else:
            reads = [
                (item["Get"]["TableName"], item["Get"]["Key"], True, 2)
                for item in body.get("TransactItems", [])
            ]
        for table, key, consistent, factor in reads:
            units = read_units(item_size(self._fetch(table, key)), consistent) * factor
            total += units
            self._count_units(table, operation, rru=units)
            self._count_item(table, _item_kind(key), operation, units)
        return total

    def _count_item(self, table: str, kind: str, operation: str, rru: float, requests: int = 1) -> None:
        short = table.split("-", 2)[-1]
        with self._lock:
            self.data.rru_by_item[(short, kind)] += rru
            self.data.item_requests[(short, kind, operation)] += requests

    def _account_query(self, operation: str, body: dict[str, Any], parsed: dict[str, Any]) -> float:
        table = body["TableName"]
        items = parsed.get("Items") or []
        if "ProjectionExpression" in body or body.get("Select") not in (None, "ALL_ATTRIBUTES"):
            items = self._unprojected(operation, body)
        size = sum(item_size(item) for item in items)
        units = read_units(size, bool(body.get("ConsistentRead")))
        self._count_units(table, operation, rru=units)
        by_kind: Counter[str] = Counter()
        for item in items:
            by_kind[_item_kind(item)] += item_size(item)
        if not by_kind:
            self._count_item(table, "(none)", operation, units)
        for kind, kind_size in by_kind.items():
            self._count_item(table, kind, operation, units * kind_size / max(1, size))
        return units

    def _unprojected(self, operation: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The same query without its projection: what DynamoDB read (and charges for)."""
        request = {k: v for k, v in body.items() if k not in ("ProjectionExpression", "Select")}
        used = " ".join(str(request.get(k, "")) for k in ("KeyConditionExpression", "FilterExpression"))
        names = {k: v for k, v in (request.get("ExpressionAttributeNames") or {}).items() if k in used}
        request.pop("ExpressionAttributeNames", None)
        if names:
            request["ExpressionAttributeNames"] = names
        with self._internal():
            method = self._raw.query if operation == "Query" else self._raw.scan
            return list(method(**request).get("Items") or [])


def _item_kind(key: dict[str, Any]) -> str:
    """``META``, ``MSG``, ``PROFILE``, ``OWNER``... : the sort key's (else partition key's) prefix."""
    raw = key.get("sk") or key.get("pk") or {}
    text = str(next(iter(raw.values()), "")) if isinstance(raw, dict) else str(raw)
    prefix = text.split("#", 1)[0] or "?"
    # The KPI counter rows' sort key starts with their day (``2026-11-02#intent#channel``).
    return (
        "DAY" if len(prefix) == 10 and prefix[4::3] == "--" and prefix.replace("-", "").isdigit() else prefix
    )


def take_turns() -> Callable[[], None]:
    """Make the HTTP functions take turns (see :data:`HTTP_TURNS`) without counting anything.

    Returns the function that undoes it.
    """
    original = Invoker.invoke

    def invoke(invoker: Invoker, function: Any, event: Any) -> InvocationResult:
        name = function if isinstance(function, str) else function.name
        if name in HTTP_FUNCTIONS:
            with HTTP_TURNS:
                return original(invoker, function, event)
        return original(invoker, function, event)

    Invoker.invoke = invoke  # type: ignore[method-assign]

    def undo() -> None:
        Invoker.invoke = original  # type: ignore[method-assign]

    return undo


def _json_body(request_dict: dict[str, Any]) -> dict[str, Any]:
    raw = request_dict.get("body")
    if isinstance(raw, bytes | bytearray):
        raw = raw.decode()
    if isinstance(raw, str) and raw.startswith("{"):
        try:
            return dict(json.loads(raw))
        except ValueError:
            return {}
    if isinstance(raw, dict):  # query protocol (form) bodies
        return dict(raw)
    return {}


def timed() -> float:
    return time.perf_counter()


def group_invocations(invocations: list[Invocation]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = defaultdict(list)
    for inv in invocations:
        out[inv.function].append(inv.duration_ms)
    return out
