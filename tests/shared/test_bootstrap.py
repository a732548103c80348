"""The composition root builds each part once per container, wires them together, and can start afresh."""

from __future__ import annotations

from shared import bootstrap


def test_each_part_is_built_once_and_shared() -> None:
    bootstrap.reset()
    assert bootstrap.customers() is bootstrap.customers()
    assert bootstrap.conversations().customers is bootstrap.customers()
    assert bootstrap.publisher("omni.routing") is bootstrap.publisher("omni.routing")
    assert bootstrap.publisher("omni.routing") is not bootstrap.publisher("omni.kpi")
    desk = bootstrap.desk()
    assert desk is bootstrap.desk()
    assert (desk.conversations, desk.agents, desk.customers) == (
        bootstrap.conversations(),
        bootstrap.agents(),
        bootstrap.customers(),
    )


def test_reset_builds_afresh() -> None:
    before = (bootstrap.customers(), bootstrap.outbox(), bootstrap.desk())
    bootstrap.reset()
    after = (bootstrap.customers(), bootstrap.outbox(), bootstrap.desk())
    assert all(old is not new for old, new in zip(before, after, strict=True))
