"""The declaration's consistency checks: the real topology passes, each broken rule is named."""

from __future__ import annotations

import dataclasses

from topology import TOPOLOGY, Grant, validate


def test_the_declared_topology_has_no_problem() -> None:
    assert validate(TOPOLOGY) == []


def _with_function(**changes: object) -> list[str]:
    routing = next(fn for fn in TOPOLOGY.functions if fn.name == "routing")
    changed = dataclasses.replace(routing, **changes)
    functions = tuple(changed if fn is routing else fn for fn in TOPOLOGY.functions)
    return validate(dataclasses.replace(TOPOLOGY, functions=functions))


def test_a_grant_of_an_unknown_table_is_named() -> None:
    problems = _with_function(grants=(Grant("table", "nowhere", "read"),))
    assert "function 'routing' is granted unknown table 'nowhere'" in problems


def test_an_undefined_access_level_is_named() -> None:
    problems = _with_function(grants=(Grant("table", "conversations", "own"),))  # type: ignore[arg-type]
    assert "function 'routing': 'own' is not defined for a table" in problems


def test_a_function_without_trigger_is_named() -> None:
    problems = _with_function(queue=None)
    assert "function 'routing' has no trigger" in problems
    assert "queue 'routing' has no consumer" in problems


def test_a_visibility_timeout_shorter_than_six_function_timeouts_is_named() -> None:
    routing = next(fn for fn in TOPOLOGY.functions if fn.name == "routing")
    queue = TOPOLOGY.queue(routing.queue or "")
    problems = _with_function(timeout_s=queue.visibility_timeout_s)
    assert any(p.startswith(f"queue {queue.name!r}: visibility timeout") for p in problems)


def test_duplicate_names_are_named() -> None:
    problems = validate(dataclasses.replace(TOPOLOGY, tables=(*TOPOLOGY.tables, TOPOLOGY.tables[0])))
    assert f"duplicate table name {TOPOLOGY.tables[0].name!r}" in problems


def test_a_rule_to_an_unknown_queue_is_named() -> None:
    rule = dataclasses.replace(TOPOLOGY.rules[0], name="stray", target_queue="nowhere")
    problems = validate(dataclasses.replace(TOPOLOGY, rules=(*TOPOLOGY.rules, rule)))
    assert "rule 'stray' targets unknown queue 'nowhere'" in problems
