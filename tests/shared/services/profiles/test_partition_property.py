"""Order independence: whatever order (and however often) identity-linking events arrive in,
the final partition of identities into profiles is the connected components of the verified links."""

from __future__ import annotations

import itertools
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.contracts.events import Identity
from shared.repositories.customers import customer_pk
from shared.services.profiles.merge import find_root
from tests.shared.services.profiles.support import Repos, claimed, inbound, verified

POOL = 7
TYPES = ("account", "email", "webchat", "phone")
_examples = itertools.count()


def identity_of(prefix: str, index: int, is_verified: bool = True) -> Identity:
    kind = TYPES[index % len(TYPES)]
    if kind == "email":
        value = f"p{prefix}-{index}@example.com"
    elif kind == "phone":
        value = f"+49151{int(prefix):04d}{index:03d}"
    else:
        value = f"p{prefix}-{index}"
    return verified(kind, value) if is_verified else claimed(kind, value)


def components(events: list[tuple[list[int], list[int]]]) -> set[frozenset[int]]:
    """Union-find over the verified identities of each event."""
    parent: dict[int, int] = {}

    def find(i: int) -> int:
        parent.setdefault(i, i)
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for linked, _ in events:
        for i in linked:
            parent[find(i)] = find(linked[0])
    groups: dict[int, set[int]] = {}
    for i in parent:
        groups.setdefault(find(i), set()).add(i)
    return {frozenset(g) for g in groups.values()}


event_strategy = st.tuples(
    st.lists(st.integers(0, POOL - 1), min_size=1, max_size=3, unique=True),
    st.lists(st.integers(0, POOL - 1), max_size=1),
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=st.lists(event_strategy, min_size=1, max_size=7),
    duplicates=st.lists(st.integers(0, 6), max_size=4),
    seed=st.integers(0, 2**32),
)
def test_final_partition_is_the_connected_components_of_verified_links(
    stack: dict[Any, str], events: list[tuple[list[int], list[int]]], duplicates: list[int], seed: int
) -> None:
    repos = Repos()
    prefix = f"{next(_examples):04d}"
    messages = [
        inbound(
            f"{prefix}-m{n}",
            identity_of(prefix, linked[0]),
            *(identity_of(prefix, i) for i in linked[1:]),
            *(identity_of(prefix, i, is_verified=False) for i in claims if i not in linked),
            seconds=n,
        )
        for n, (linked, claims) in enumerate(events)
    ]
    deliveries = messages + [messages[d % len(messages)] for d in duplicates]
    random.Random(seed).shuffle(deliveries)
    for message in deliveries:
        repos.record(message)

    expected = components(events)
    roots: dict[int, str] = {}
    for index in set().union(*expected):
        owner = repos.customers.owner_of(identity_of(prefix, index))
        assert owner is not None, f"identity {index} lost"
        root = find_root(repos.customers, repos.merger, owner, "2026-11-25T09:00:00.000000Z").state
        assert root is not None
        roots[index] = root.customer_id
        # The ownership item names the profile that lists the identity, and that one is active.
        assert owner == root.customer_id
        assert root.link(f"IDENT#{identity_of(prefix, index).type}#{identity_of(prefix, index).value}")
    actual: dict[str, set[int]] = {}
    for index, customer_id in roots.items():
        actual.setdefault(customer_id, set()).add(index)
    assert {frozenset(g) for g in actual.values()} == expected

    # Every message recorded once, in the one thread of its person.
    for group in expected:
        customer_id = roots[next(iter(group))]
        state = repos.customers.load(customer_id)
        assert state is not None
        assert state.profile["pk"] == customer_pk(customer_id)
        conversation = repos.conversations.get(state.profile["open_conversation_id"])
        assert conversation is not None
        wanted = {
            m.message_key for m, (linked, _) in zip(messages, events, strict=True) if linked[0] in group
        }
        assert {m.message_id for m in conversation.messages} == wanted
        assert conversation.message_count == len(wanted)
