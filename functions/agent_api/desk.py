"""What the agent API's write side shares: the agents repository, the desk and the publisher."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from shared import bootstrap
from shared.contracts.events import format_timestamp, utc_now
from shared.platform.observability import current_correlation, with_correlation

agents = bootstrap.agents()
publisher = bootstrap.publisher("omni.agent-api")
#: Built on first use: the routing rules are read and validated once per container.
desk = bootstrap.desk


def now() -> str:
    return format_timestamp(utc_now())


def publish(events: Sequence[tuple[str, BaseModel]]) -> None:
    if events:
        publisher.publish(with_correlation(events, current_correlation()))
