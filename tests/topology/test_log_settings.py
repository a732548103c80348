"""Logging is a stack setting of every function: the level and the DEBUG sampling rate."""

from __future__ import annotations

import pytest

from shared.platform import settings
from topology import TOPOLOGY, Function, function_environment


def environment(fn: Function, config: dict[str, str] | None = None) -> dict[str, str]:
    physical = {(g.kind, g.resource): "physical" for f in TOPOLOGY.functions for g in f.grants}
    return function_environment(TOPOLOGY, fn, physical, "test", config=config)


@pytest.mark.parametrize("fn", TOPOLOGY.functions, ids=lambda fn: fn.name)
def test_every_function_logs_at_info_unless_the_stack_says_otherwise(fn: Function) -> None:
    default = environment(fn)
    assert default[settings.LOG_LEVEL] == "INFO"
    assert settings.POWERTOOLS_LOGGER_SAMPLE_RATE not in default
    production = environment(fn, {"logLevel": "WARNING", "logSampleRate": "0.01"})
    assert production[settings.LOG_LEVEL] == "WARNING"
    assert production[settings.POWERTOOLS_LOGGER_SAMPLE_RATE] == "0.01"
