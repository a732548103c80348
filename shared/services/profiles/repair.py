"""Repair of duplicate customers left by unauthenticated e-mail (``omni repair duplicates``).

Before claimed senders resolved to one profile per address (the ``CLAIM`` item, see
:mod:`shared.services.profiles.resolution`), every unauthenticated mail became a customer of
its own. This one-off repair finds them and proposes merges:

* candidates are the *claimed-only* active profiles - profiles without any verified
  identity, which is what such a mail created. A profile with a verified identity (the
  address's verified owner, a web chat or phone customer who typed the address in) is never
  merged by the repair: that stays an agent's decision (the possible match);
* candidates sharing a claimed identity are one group (transitively); its survivor is the
  profile holding the address's claim if one of them does, else the oldest;
* two profiles an agent unmerged are not proposed again.

Applying a proposal is an ordinary merge (:func:`~shared.services.profiles.merge.merge_customers`,
cause ``repair:duplicates``): audited and reversible with unmerge like every merge. The
survivor then holds the claim of the shared addresses (when nobody does), so later mail
goes to it. Running it again proposes nothing new: merged profiles are no candidates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from shared.contracts.events import Identity
from shared.platform.ids import new_id
from shared.repositories.conversation_merge import ConversationMerger
from shared.repositories.customers import (
    ACTIVE,
    CustomerRepository,
    ProfileChanged,
    ProfileState,
    link_identity,
)
from shared.services.profiles.merge import MERGE_ATTEMPTS, MergeRefused, _pause, merge_customers

CAUSE = "repair:duplicates"


@dataclass(frozen=True)
class ProposedMerge:
    #: The profile that stays (the claim holder, else the oldest).
    survivor_id: str
    #: The profiles merged into it, oldest first.
    merged_ids: tuple[str, ...]
    #: The claimed identities (``type:value``) the group shares.
    identities: tuple[str, ...]


@dataclass
class RepairResult:
    proposals: list[ProposedMerge] = field(default_factory=list)
    #: ``(survivor, merged, merge id)`` of each merge applied.
    merged: list[tuple[str, str, str]] = field(default_factory=list)
    #: ``(survivor, other, reason)`` of each merge refused (changed or merged meanwhile).
    skipped: list[tuple[str, str, str]] = field(default_factory=list)


def _claimed_only(state: ProfileState) -> bool:
    verified = any(link.get("verified") for link in state.links)
    return state.status == ACTIVE and bool(state.links) and not verified


def _unmerged_pairs(profiles: Iterable[ProfileState]) -> set[frozenset[str]]:
    return {
        frozenset((state.customer_id, str(item["other_customer_id"])))
        for state in profiles
        for item in state.history
        if item.get("status") == "unmerged"
    }


class _Groups:
    """Union-find over customer ids."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        self.parent.setdefault(item, item)
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def join(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def plan_repair(profiles: Iterable[ProfileState], claims: dict[str, str]) -> list[ProposedMerge]:
    """The merges that make one profile of the claimed-only profiles sharing a claimed identity.

    ``claims``: ``{identity key: claim holder}`` of the shared identities. Pure.
    """
    every = list(profiles)
    candidates = {state.customer_id: state for state in every if _claimed_only(state)}
    holders: dict[str, list[str]] = {}
    for state in candidates.values():
        for link in state.links:
            holders.setdefault(link_identity(link).key, []).append(state.customer_id)
    groups = _Groups()
    shared: dict[str, list[str]] = {}
    for key, ids in sorted(holders.items()):
        if len(ids) < 2:
            continue
        for other in ids[1:]:
            groups.join(ids[0], other)
        shared.setdefault(groups.find(ids[0]), []).append(key)
    members: dict[str, list[str]] = {}
    for customer_id in candidates:
        if customer_id in groups.parent:
            members.setdefault(groups.find(customer_id), []).append(customer_id)
    unmerged = _unmerged_pairs(every)
    proposals = []
    for root, ids in members.items():
        keys = sorted({k for r, ks in shared.items() if groups.find(r) == root for k in ks})
        ordered = sorted(ids, key=lambda c: (str(candidates[c].profile.get("created_at")), c))
        held = [claims[k] for k in keys if claims.get(k) in ids]
        survivor = held[0] if held else ordered[0]
        merged = tuple(c for c in ordered if c != survivor and frozenset((c, survivor)) not in unmerged)
        if merged:
            proposals.append(ProposedMerge(survivor, merged, tuple(keys)))
    return sorted(proposals, key=lambda p: p.identities)


def _identity(key: str) -> Identity:
    identity_type, _, value = key.partition(":")
    return Identity(type=identity_type, value=value)  # type: ignore[arg-type]


def find_duplicates(customers: CustomerRepository) -> list[ProposedMerge]:
    """Read every customer partition (a scan: for this one-off repair only) and plan the merges."""
    profiles = customers.scan_partitions()
    first = plan_repair(profiles, {})
    keys = sorted({key for proposal in first for key in proposal.identities})
    _, claims = customers.owners_and_claims([], [_identity(key) for key in keys])
    return plan_repair(profiles, claims)


def _merge_one(
    customers: CustomerRepository,
    merger: ConversationMerger,
    proposal: ProposedMerge,
    other: str,
    now: str,
    make_id: Callable[[str], str],
) -> str:
    for attempt in range(MERGE_ATTEMPTS):
        try:
            return merge_customers(
                customers,
                merger,
                proposal.survivor_id,
                other,
                cause=CAUSE,
                now=now,
                linking=list(proposal.identities),
                make_id=make_id,
            )
        except ProfileChanged:
            _pause(attempt)
    raise MergeRefused(409, "the profiles kept changing")


def apply_repair(
    customers: CustomerRepository,
    merger: ConversationMerger,
    proposals: list[ProposedMerge],
    now: str,
    make_id: Callable[[str], str] = new_id,
) -> RepairResult:
    """Apply the proposals (each an audited, reversible merge); a refused one is skipped."""
    result = RepairResult(proposals=list(proposals))
    for proposal in proposals:
        for other in proposal.merged_ids:
            try:
                merge_id = _merge_one(customers, merger, proposal, other, now, make_id)
            except MergeRefused as exc:
                result.skipped.append((proposal.survivor_id, other, exc.reason))
                continue
            result.merged.append((proposal.survivor_id, other, merge_id))
        for key in proposal.identities:
            customers.hold_claim(proposal.survivor_id, _identity(key), now)
    return result
