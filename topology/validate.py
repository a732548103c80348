"""Consistency checks of a topology: one small check per rule, run in a fixed order."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from topology.iam import ACTIONS
from topology.model import WEBSOCKET_SPECIAL_ROUTES, Function, Topology


class _Named(Protocol):
    @property
    def name(self) -> str: ...


#: The declared names of each kind of resource a grant may name.
Names = dict[str, set[str]]


def validate(topology: Topology) -> list[str]:
    """Consistency problems of a topology; empty when it can be deployed."""
    names = declared_names(topology)
    problems = duplicate_names(topology)
    route_keys: set[str] = set()
    consumers: dict[str, str] = {}
    for fn in topology.functions:
        problems += trigger_problems(fn, names)
        problems += http_route_problems(fn, route_keys)
        problems += websocket_route_problems(fn, names, route_keys)
        problems += consumer_problems(topology, fn, names, consumers)
        problems += grant_problems(fn, names)
    problems += queue_problems(topology, consumers)
    problems += rule_problems(topology, names)
    problems += environment_problems(topology)
    return problems


def declared_names(topology: Topology) -> Names:
    return {
        "table": {t.name for t in topology.tables},
        "queue": {q.name for q in topology.queues},
        "secret": {s.name for s in topology.secrets},
        "bucket": {b.name for b in topology.buckets},
        "email-identity": {i.name for i in topology.email_identities},
        "websocket": {a.name for a in topology.websocket_apis},
        "bus": {topology.bus.name},
    }


def duplicate_names(topology: Topology) -> list[str]:
    problems: list[str] = []
    kinds: tuple[tuple[str, Iterable[_Named]], ...] = (
        ("table", topology.tables),
        ("queue", topology.queues),
        ("secret", topology.secrets),
        ("function", topology.functions),
        ("rule", topology.rules),
        ("bucket", topology.buckets),
        ("email identity", topology.email_identities),
        ("websocket api", topology.websocket_apis),
    )
    for kind, items in kinds:
        seen: set[str] = set()
        for item in items:
            if item.name in seen:
                problems.append(f"duplicate {kind} name {item.name!r}")
            seen.add(item.name)
    return problems


def trigger_problems(fn: Function, names: Names) -> list[str]:
    problems: list[str] = []
    triggers = (fn.routes, fn.websocket_routes, fn.queue, fn.schedules, fn.email)
    if fn.email and fn.email.bucket not in names["bucket"]:
        problems.append(f"function {fn.name!r} receives e-mail into unknown bucket {fn.email.bucket!r}")
    if not any(triggers):
        problems.append(f"function {fn.name!r} has no trigger")
    return problems


def http_route_problems(fn: Function, route_keys: set[str]) -> list[str]:
    """Routes declared twice (``route_keys``: the keys seen so far, updated)."""
    problems: list[str] = []
    for route in fn.routes:
        if route.route_key in route_keys:
            problems.append(f"route {route.route_key!r} is declared twice")
        route_keys.add(route.route_key)
    return problems


def websocket_route_problems(fn: Function, names: Names, route_keys: set[str]) -> list[str]:
    problems: list[str] = []
    for ws in fn.websocket_routes:
        if ws.api not in names["websocket"]:
            problems.append(f"function {fn.name!r} has a route of unknown websocket api {ws.api!r}")
        if ws.route_key.startswith("$") and ws.route_key not in WEBSOCKET_SPECIAL_ROUTES:
            problems.append(f"websocket route {ws.route_key!r} is not one of {WEBSOCKET_SPECIAL_ROUTES}")
        key = f"{ws.api} {ws.route_key}"
        if key in route_keys:
            problems.append(f"websocket route {ws.route_key!r} of {ws.api!r} is declared twice")
        route_keys.add(key)
    return problems


def consumer_problems(topology: Topology, fn: Function, names: Names, consumers: dict[str, str]) -> list[str]:
    """The queue ``fn`` consumes: known, consumed once (``consumers``, updated), visible long enough."""
    if not fn.queue:
        return []
    if fn.queue not in names["queue"]:
        return [f"function {fn.name!r} consumes unknown queue {fn.queue!r}"]
    if fn.queue in consumers:
        return [f"queue {fn.queue!r} has two consumers"]
    consumers[fn.queue] = fn.name
    queue = topology.queue(fn.queue)
    if queue.visibility_timeout_s < 6 * fn.timeout_s:
        return [
            f"queue {queue.name!r}: visibility timeout {queue.visibility_timeout_s}s is below "
            f"6x the timeout of {fn.name!r} ({fn.timeout_s}s)"
        ]
    return []


def grant_problems(fn: Function, names: Names) -> list[str]:
    problems: list[str] = []
    for grant in fn.grants:
        if grant.resource not in names[grant.kind]:
            problems.append(f"function {fn.name!r} is granted unknown {grant.kind} {grant.resource!r}")
        elif (grant.kind, grant.access) not in ACTIONS:
            problems.append(f"function {fn.name!r}: {grant.access!r} is not defined for a {grant.kind}")
    return problems


def queue_problems(topology: Topology, consumers: dict[str, str]) -> list[str]:
    problems: list[str] = []
    for queue in topology.queues:
        if queue.name not in consumers:
            problems.append(f"queue {queue.name!r} has no consumer")
        if queue.max_receive_count < 1:
            problems.append(f"queue {queue.name!r}: maxReceiveCount must be at least 1")
    return problems


def rule_problems(topology: Topology, names: Names) -> list[str]:
    return [
        f"rule {rule.name!r} targets unknown queue {rule.target_queue!r}"
        for rule in topology.rules
        if rule.target_queue not in names["queue"]
    ]


def environment_problems(topology: Topology) -> list[str]:
    """The local runtime runs every function in one process with one environment, so a
    variable must mean the same thing for every function that has it."""
    problems: list[str] = []
    merged: dict[str, str] = {}
    for fn in topology.functions:
        for key, value in fn.environment.items():
            if merged.setdefault(key, value) != value:
                problems.append(f"environment variable {key!r} differs between functions")
    return problems
