"""What a consumer's cold start must not pay for (issue 16: handler import ≤ 1.3 x ``import boto3``).

Timing is left to ``bench/coldstart.py`` (the machine is shared): these tests check the causes.
Powertools' parser models build their validators when their module is imported, so a consumer
must not import them (its SQS record and EventBridge event models are its own, built on the first
record); no model of ours is built at import (``defer_build``); and the modules that define many
pydantic models keep their annotations evaluated by Python, not handed to pydantic as strings
(each would be compiled and evaluated at import).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from pydantic import BaseModel

from tests.helpers import REPO_ROOT
from topology import TOPOLOGY, Function

CONSUMERS = [fn for fn in TOPOLOGY.functions if fn.queue]
#: Modules whose pydantic models every consumer (or one of the slower ones) defines at import.
MODEL_MODULES = (
    "shared.contracts.contact",
    "shared.contracts.events",
    "shared.contracts.models",
    "shared.platform.consumer",
    "shared.repositories.agents",
    "functions.proactive.events",
    "functions.agent_api.agents",
    "functions.agent_api.conversations",
    "functions.agent_api.customers",
    "functions.agent_api.knowledge",
    "functions.agent_api.kpis",
    "functions.agent_api.notifications",
    "functions.agent_api.queues",
)


def _run(code: str) -> Any:
    """Run ``code`` in a fresh interpreter (after boto3, as in Lambda); its last line is JSON."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "LAMBDA_", "_X_AMZN"))}
    done = subprocess.run(
        [sys.executable, "-c", "import boto3\n" + code],
        capture_output=True,
        text=True,
        env={**base, "PYTHONPATH": str(REPO_ROOT), "AWS_DEFAULT_REGION": "us-east-1"},
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _loaded_after_import(module: str) -> list[str]:
    """The modules importing ``module`` loads."""
    return list(
        _run(
            "import importlib, json, sys\n"
            "before = set(sys.modules)\n"
            f"importlib.import_module({module!r})\n"
            "print(json.dumps(sorted(set(sys.modules) - before)))"
        )
    )


@pytest.mark.parametrize("fn", CONSUMERS, ids=lambda fn: fn.name)
def test_a_consumer_imports_no_powertools_parser_model(fn: Function) -> None:
    loaded = _loaded_after_import(fn.module)
    assert [m for m in loaded if m.startswith("aws_lambda_powertools.utilities.parser")] == []


@pytest.mark.parametrize("name", MODEL_MODULES)
def test_model_annotations_are_not_strings(name: str) -> None:
    module = importlib.import_module(name)
    models = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == name
    ]
    assert models
    stringly = {
        f"{model.__name__}.{field}"
        for model in models
        for field, annotation in vars(model).get("__annotations__", {}).items()
        if isinstance(annotation, str)
    }
    assert stringly == set(), "drop `from __future__ import annotations` from " + name


def test_importing_a_handler_builds_no_model_of_ours() -> None:
    """Every model of ours defers its validators to first use (``defer_build``): none is built at import."""
    modules = [fn.module for fn in TOPOLOGY.functions]
    built = _run(
        "import importlib, json\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "import pydantic\n"
        "seen, todo = set(), [pydantic.BaseModel]\n"
        "while todo:\n"
        "    for sub in todo.pop().__subclasses__():\n"
        "        if sub not in seen: seen.add(sub); todo.append(sub)\n"
        "print(json.dumps(sorted(f'{m.__module__}.{m.__qualname__}' for m in seen\n"
        "    if m.__module__.partition('.')[0] in ('shared', 'functions') and m.__pydantic_complete__)))"
    )
    assert built == []
