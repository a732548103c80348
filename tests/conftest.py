"""Fixtures shared by the suite: an emulated AWS account built from the one topology."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from omni.local.atomic import make_moto_dynamodb_atomic
from shared.platform import aws
from shared.platform.config import clear_secret_cache
from topology import TOPOLOGY, function_environment

# No test may reach real AWS, whatever the developer's shell says.
for _var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(_var, None)
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_DEV": "false",
    }
)
# moto checks conditions and writes without a lock; DynamoDB applies each request atomically.
make_moto_dynamodb_atomic()


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[tuple[str, str], str]]:
    """Every table, queue, rule, bus and secret of TOPOLOGY in moto, and the functions' environment set."""
    from omni.local.provision import provision  # noqa: PLC0415

    with mock_aws():
        aws.reset_clients()
        clear_secret_cache()
        provisioned = provision(TOPOLOGY, boto3.Session(region_name="us-east-1"), stage="test")
        for fn in TOPOLOGY.functions:
            for key, value in function_environment(TOPOLOGY, fn, provisioned.physical, "test").items():
                monkeypatch.setenv(key, value)
        yield provisioned.physical
        aws.reset_clients()
        clear_secret_cache()


@pytest.fixture(scope="module", autouse=True)
def fresh_containers() -> None:
    """Each test module starts with new Lambda containers.

    The handler modules keep what they build on first use in module-level ``_name: X | None``
    attributes (a notifier with its adapters, a router), and ``shared.bootstrap`` caches its
    repositories: one container's state, built from the environment it first saw. In Lambda a
    container never sees another environment; here one process runs the test modules one after
    another (in any order, several per worker with pytest-xdist), so a module that built a
    notifier with the providers' real adapters must not hand it to a local stack started by the
    next module. Only modules already imported are touched.
    """
    for name, module in list(sys.modules.items()):
        if not (name.startswith("functions.") and name.endswith(".handler")):
            continue
        for attribute, annotation in getattr(module, "__annotations__", {}).items():
            if attribute.startswith("_") and not attribute.startswith("__") and "| None" in str(annotation):
                setattr(module, attribute, None)
    bootstrap = sys.modules.get("shared.bootstrap")
    if bootstrap is not None:
        bootstrap.reset()
