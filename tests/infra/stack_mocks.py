"""One set of recording Pulumi mocks for the in-process stack tests (set when first imported,
before any test module builds the program), and a wait for every resource to be registered."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pulumi

from tests.infra.infra_mocks import (
    PROJECT,
    STACK,
    RecordingMocks,
    Registry,
)

# The mocks and the config must be in place before the program is imported.
MOCKS = RecordingMocks()
pulumi.runtime.set_mocks(MOCKS, project=PROJECT, stack=STACK, preview=False)


def _custom_resources(roots: list[pulumi.Resource]) -> Iterator[pulumi.CustomResource]:
    # Pulumi keeps each resource's children in ``_childResources`` (it has no public accessor).
    pending = list(roots)
    while pending:
        resource = pending.pop()
        for child in resource._childResources:
            if isinstance(child, pulumi.CustomResource):
                yield child
            pending.append(child)


def settled(*roots: pulumi.Resource, check: Callable[[Registry], None]) -> pulumi.Output[None]:
    """Runs ``check`` on what the mocks registered once every resource under ``roots`` is registered."""
    urns = [resource.urn for resource in _custom_resources(list(roots))]
    assert urns, "no resources were created"
    return pulumi.Output.all(*urns).apply(lambda _: check(MOCKS.registry()))
