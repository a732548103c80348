"""Every function logs through the PII-masking formatter, as it runs in Lambda (one process each)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from topology import TOPOLOGY

# Imports each handler with its own service name (as Lambda and the local runtime do: loggers
# of one service share a handler, and the first one decides its formatter), then reports the
# formatter of every Powertools Logger the module holds, directly or in a module-level object.
PROBE = textwrap.dedent(
    """
    import importlib, json, os, sys
    from aws_lambda_powertools import Logger
    found = {}
    for name, module_name in json.loads(sys.argv[1]).items():
        os.environ["POWERTOOLS_SERVICE_NAME"] = name
        module = importlib.import_module(module_name)
        loggers = [v for v in vars(module).values() if isinstance(v, Logger)]
        for value in vars(module).values():
            inner = getattr(value, "__dict__", None)
            if isinstance(inner, dict) and not isinstance(value, type):
                loggers += [v for v in inner.values() if isinstance(v, Logger)]
        found[name] = sorted({type(lg.registered_formatter).__name__ for lg in loggers})
    print(json.dumps(found))
    """
)


def test_every_function_logs_through_the_masking_formatter() -> None:
    modules = {fn.name: fn.handler.rsplit(".", 1)[0] for fn in TOPOLOGY.functions}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(modules)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={"AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "true", "PATH": ""},
    )
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(found) == set(modules)
    for name, formatters in found.items():
        assert formatters == ["MaskingFormatter"], (name, formatters)
