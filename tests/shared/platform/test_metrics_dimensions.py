"""Metrics dimensions: one process running several stages (the local stack, the tests) stays quiet."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from aws_lambda_powertools import Metrics

from shared.platform.observability import set_stage_dimension
from tests.helpers import context


def test_the_sla_sweep_runs_in_two_stages_without_a_dimension_warning(
    stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.sla_sweep import handler as module  # noqa: PLC0415

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for stage in ("test", "other", "other", "test"):
            monkeypatch.setenv("OMNI_STAGE", stage)
            module.handler({}, context("sla-sweep"))
            assert module.metrics.default_dimensions["stage"] == stage


def test_a_changed_stage_replaces_the_dimension() -> None:
    metrics = Metrics(namespace="omni-test")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            set_stage_dimension(metrics, "a")
            metrics.clear_metrics()  # what log_metrics does after each invocation
            set_stage_dimension(metrics, "b")
        assert metrics.dimension_set["stage"] == "b"
        assert metrics.default_dimensions == {"stage": "b"}
    finally:
        metrics.clear_default_dimensions()
        metrics.clear_metrics()
