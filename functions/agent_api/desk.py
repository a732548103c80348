"""What the agent API's write side shares: the agents repository, the desk and the publisher."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from functions.agent_api.deps import conversations, customers
from shared.contracts.events import format_timestamp, utc_now
from shared.platform.bus import EventPublisher
from shared.platform.observability import current_correlation, with_correlation
from shared.repositories.agents import AgentRepository
from shared.services.desk import Desk

agents = AgentRepository()
publisher = EventPublisher(source="omni.agent-api")
_desk: Desk | None = None


def desk() -> Desk:
    """Built on first use: the routing rules are read and validated once per container."""
    global _desk  # noqa: PLW0603 - one per container
    if _desk is None:
        _desk = Desk(conversations, agents, customers)
    return _desk


def now() -> str:
    return format_timestamp(utc_now())


def publish(events: Sequence[tuple[str, BaseModel]]) -> None:
    if events:
        publisher.publish(with_correlation(events, current_correlation()))
