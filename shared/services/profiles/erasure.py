"""Erasure, the retention sweep and the export of everything stored about a person (GDPR)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.domain.retention import (
    RETAIN_ATTRIBUTE,
    day_of,
    due_buckets,
    is_due,
    profile_retain_until,
    retention_days,
)
from shared.repositories.conversation_merge import ConversationMerger
from shared.repositories.customers import (
    ERASED,
    MERGED,
    CustomerRepository,
    ProfileState,
    to_customer,
    tombstone_retention_days,
)
from shared.services.profiles.merge import MERGE_ATTEMPTS, MergeRefused, _pause, find_root, merged_tree

#: Keys of stored items that say where they are stored, not what they hold.
_KEYS = ("pk", "sk")


@dataclass
class Erasure:
    customer_id: str
    erased_at: str
    already: bool = False
    profiles: list[str] = field(default_factory=list)
    identities: int = 0
    conversations: int = 0
    #: Not erased: a retention erasure found a contact that extends the customer's retention.
    retained: bool = False


def _half_erased(state: ProfileState) -> bool:
    """Marked erased, but the erasure stopped before the profile became the bare marker."""
    return state.status == ERASED and ("version" in state.profile or bool(state.links) or bool(state.history))


def _refuse_merged(state: ProfileState, customer_id: str) -> None:
    if state.status == MERGED:
        raise MergeRefused(
            409,
            f"customer {customer_id} was merged into {state.profile['merged_into']}; "
            "erase that customer (or unmerge first)",
        )


def _begin(
    customers: CustomerRepository, customer_id: str, now: str, due_before: str | None
) -> Erasure | tuple[str, list[ProfileState]]:
    """Mark the customer erased: the erasure's time and the profiles it erases, or the answer
    when there is nothing to do (erased already, or still retained)."""
    for attempt in range(MERGE_ATTEMPTS):
        state = customers.load(customer_id)
        if state is None:
            raise MergeRefused(404, f"no customer {customer_id}")
        if state.status == ERASED:
            erased_at = str(state.profile.get("erased_at"))
            if not _half_erased(state):
                return Erasure(customer_id, erased_at, already=True)
            # Finish it, with the tombstones dated as it began.
            return erased_at, merged_tree(customers, state)
        _refuse_merged(state, customer_id)
        if due_before and not is_due(str(state.profile.get(RETAIN_ATTRIBUTE) or due_before), due_before):
            return Erasure(customer_id, "", retained=True)
        tree = merged_tree(customers, state)
        if customers.begin_erasure(state, now, due_before):
            return now, tree
        _pause(attempt)
    raise MergeRefused(409, f"customer {customer_id} kept changing; try again")


def _merge_ids(tree: Iterable[ProfileState]) -> list[str]:
    """The merges of the profiles in ``tree``, each once, in the order their histories list them."""
    return list(dict.fromkeys(item["merge_id"] for member in tree for item in member.history))


def _erase_conversations(
    customers: CustomerRepository, merger: ConversationMerger, tree: list[ProfileState], merge_ids: set[str]
) -> int:
    """Erase the conversations of the tree and of its merges; how many."""
    conversation_ids: set[str] = set()
    for member in tree:
        conversation_ids.update(merger.list_ids(member.customer_id))
    for merge_id in merge_ids:
        record = customers.get_merge(merge_id) or {}
        conversation_ids.update(record.get("conversations", []))
    for conversation_id in conversation_ids:
        merger.erase(conversation_id)
    return len(conversation_ids)


def erase_customer(
    customers: CustomerRepository,
    merger: ConversationMerger,
    customer_id: str,
    now: str,
    now_epoch: int,
    *,
    due_before: str | None = None,
) -> Erasure:
    """Erase the person: profile, identities, merge records, conversations and their messages.

    Profiles merged into this one go too (they are the same person). Each identity
    leaves a tombstone (a hash, no value) so a replay of an event sent before the
    erasure is dropped instead of re-creating the person; a message sent after it is a
    new contact. Tombstones expire after ``OMNI_TOMBSTONE_RETENTION_DAYS``.

    Safe to repeat: an erasure that stopped half-way (a timeout) is finished by the next
    call, and one that is complete answers ``already``. With ``due_before`` (the
    retention sweep) the customer is only erased while ``retain_until_day`` is before
    that day; otherwise the answer is ``retained`` and nothing changed.
    """
    begun = _begin(customers, customer_id, now, due_before)
    if isinstance(begun, Erasure):
        return begun
    now, tree = begun
    expires = now_epoch + tombstone_retention_days() * 86400
    result = Erasure(customer_id, now, profiles=[s.customer_id for s in tree])
    merge_ids = set(_merge_ids(tree))
    result.conversations = _erase_conversations(customers, merger, tree, merge_ids)
    for merge_id in merge_ids:
        customers.delete_merge_record(merge_id)
    # Merged-away profiles before the ones they were merged into, this customer last: until
    # its profile is the bare marker, a repeat finds the whole tree again through the history.
    for member in reversed(tree):
        result.identities += len(
            customers.erase_partition(member.customer_id, now, expires, claim_holders=result.profiles)
        )
    return result


@dataclass
class RetentionSweep:
    erased: list[str] = field(default_factory=list)
    #: Customers whose index day was stale (an earlier contact): moved to the right day.
    moved: list[str] = field(default_factory=list)
    #: Index entries looked at.
    checked: int = 0
    #: False when the run stopped early (out of time); the next run carries on.
    complete: bool = True


def _retention_ended(
    customers: CustomerRepository,
    customer_id: str,
    profile: dict[str, Any],
    today: str,
    days: int,
    result: RetentionSweep,
) -> bool:
    """Whether the profile's retention really ended; a stale index day is moved to the right one."""
    if profile.get("status") == ERASED:
        return True  # a half-done erasure: finish it
    stored = profile.get(RETAIN_ATTRIBUTE)
    if not stored or not is_due(str(stored), today):
        return False  # a message moved it since the index was written
    wanted = profile_retain_until(profile, days)
    if wanted and not is_due(wanted, today):
        if customers.move_retention(customer_id, str(stored), wanted):
            result.moved.append(customer_id)
        return False
    return True


def _sweep_one(
    customers: CustomerRepository,
    merger: ConversationMerger,
    customer_id: str,
    now: str,
    now_epoch: int,
    today: str,
    days: int,
    result: RetentionSweep,
) -> None:
    """Erase one customer of a due index day, if their retention ended."""
    profile = customers.get_profile(customer_id)
    if profile is None:
        return
    if profile.get("status") == MERGED:
        customers.leave_retention(customer_id)
        return
    if not _retention_ended(customers, customer_id, profile, today, days, result):
        return
    try:
        erasure = erase_customer(customers, merger, customer_id, now, now_epoch, due_before=today)
    except MergeRefused:
        return  # merged or changing right now: the next run looks again
    if not erasure.retained and not erasure.already:
        result.erased.append(customer_id)


def sweep_retention(
    customers: CustomerRepository,
    merger: ConversationMerger,
    now: str,
    now_epoch: int,
    lookback: int | None = None,
    keep_going: Callable[[], bool] = lambda: True,
) -> RetentionSweep:
    """Erase every customer whose retention ended before today (see :mod:`shared.domain.retention`).

    Reads the retention index one past day at a time (no scan). Each customer found is
    checked against the profile itself: a contact the index does not show yet moves the
    customer to the right day instead of erasing them, and the erasure is conditional
    on ``retain_until_day`` still being past, so a message arriving meanwhile wins.
    """
    days = retention_days()
    today = day_of(now)
    result = RetentionSweep()
    for bucket in due_buckets(today, lookback) if lookback else due_buckets(today):
        for customer_id in customers.retention_bucket(bucket):
            if not keep_going():
                result.complete = False
                return result
            result.checked += 1
            _sweep_one(customers, merger, customer_id, now, now_epoch, today, days, result)
    return result


def _without_keys(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in _KEYS}


def _export_conversations(merger: ConversationMerger, tree: list[ProfileState]) -> list[dict[str, Any]]:
    """The conversations of the profiles in ``tree``, each once, with their messages."""
    conversation_ids = list(dict.fromkeys(c for member in tree for c in merger.list_ids(member.customer_id)))
    return [c for c in (merger.export(i) for i in conversation_ids) if c is not None]


def export_customer(
    customers: CustomerRepository, merger: ConversationMerger, customer_id: str, now: str
) -> dict[str, Any]:
    """Everything stored about the person, as JSON-ready data (GDPR Art. 15/20)."""
    root = find_root(customers, merger, customer_id, now)
    if root.state is None:
        raise MergeRefused(404, f"no customer {customer_id}" + (" (erased)" if root.erased_at else ""))
    tree = merged_tree(customers, root.state)
    records = [r for r in (customers.get_merge(m) for m in _merge_ids(tree)) if r]
    return {
        "exported_at": now,
        "customer": to_customer(root.state, now).model_dump(),
        "redirected_from": customer_id if root.via else None,
        "profiles": [_without_keys(m.profile) for m in tree],
        "identities": [_without_keys(link) for m in tree for link in m.links],
        "merges": [_without_keys(r) for r in records],
        "conversations": _export_conversations(merger, tree),
    }
