"""The composition root: every repository, shared service and publisher a function uses, built here.

Each builder runs once per container (``functools.cache``): repositories and publishers read
their table, bus and queue names from the environment when used, not when built, so building
them at import is cheap; :func:`desk` reads and validates the routing rules the first time it
is called. Handlers take what they need from here (``customers = bootstrap.customers()``), and
a service that only one function uses is built by that function from these parts.

Tests that change what a builder reads (the routing rules file) call :func:`reset`.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

# Each builder imports what it builds: a function's cold start pays only for the parts it uses.
if TYPE_CHECKING:
    from shared.platform.bus import EventPublisher
    from shared.repositories.agents import AgentRepository
    from shared.repositories.behaviour import BehaviourRepository
    from shared.repositories.conversation_merge import ConversationMerger
    from shared.repositories.conversations import ConversationRepository
    from shared.repositories.customers import CustomerRepository
    from shared.repositories.kpis import KpiRepository
    from shared.repositories.outbox import OutboxRepository
    from shared.services.desk import Desk


@cache
def customers() -> CustomerRepository:
    from shared.repositories.customers import CustomerRepository  # noqa: PLC0415

    return CustomerRepository()


@cache
def conversations() -> ConversationRepository:
    from shared.repositories.conversations import ConversationRepository  # noqa: PLC0415

    return ConversationRepository(customers=customers())


@cache
def agents() -> AgentRepository:
    from shared.repositories.agents import AgentRepository  # noqa: PLC0415

    return AgentRepository()


@cache
def behaviour() -> BehaviourRepository:
    from shared.repositories.behaviour import BehaviourRepository  # noqa: PLC0415

    return BehaviourRepository()


@cache
def outbox() -> OutboxRepository:
    from shared.repositories.outbox import OutboxRepository  # noqa: PLC0415

    return OutboxRepository()


@cache
def kpis() -> KpiRepository:
    from shared.repositories.kpis import KpiRepository  # noqa: PLC0415

    return KpiRepository()


@cache
def merger() -> ConversationMerger:
    from shared.repositories.conversation_merge import ConversationMerger  # noqa: PLC0415

    return ConversationMerger()


@cache
def desk() -> Desk:
    """Queues, agents and assignment; the routing rules are read and validated on the first call."""
    from shared.services.desk import Desk  # noqa: PLC0415

    return Desk(conversations(), agents(), customers())


@cache
def publisher(source: str) -> EventPublisher:
    """The bus publisher of one function (``source`` such as ``omni.routing``)."""
    from shared.platform.bus import EventPublisher  # noqa: PLC0415

    return EventPublisher(source=source)


_BUILDERS = (customers, conversations, agents, behaviour, outbox, kpis, merger, desk, publisher)


def reset() -> None:
    """Forget everything built (a test's new container); the next call builds afresh."""
    for builder in _BUILDERS:
        builder.cache_clear()
