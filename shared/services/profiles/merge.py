"""Merging and unmerging customer profiles, and following merges to the surviving profile.

A merge is two phases. Phase one is one DynamoDB transaction guarded by both profiles'
versions: the survivor's merged attributes (per attribute the newer value wins, with
its source; consent keeps the most restrictive choice per channel; tags are united),
the merged-away profile pointing to the survivor (``merged_into``), the audit record
with everything unmerge needs, and the identity moves. Phase two moves the merged-away
customer's conversations to the survivor and makes two open conversations one thread
(:mod:`shared.repositories.conversation_merge`); it is idempotent and resumed by
whoever meets the merged-away profile while it is still marked ``merge_pending``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.domain.retention import RETAIN_ATTRIBUTE, day_of, later, profile_retain_until, retention_days
from shared.platform.ids import new_id
from shared.repositories.conversation_merge import ConversationMerger
from shared.repositories.customers import (
    CONSENT_PREFIX,
    ERASED,
    MERGED,
    CustomerRepository,
    ProfileChanged,
    ProfileState,
    link_identity,
)

#: Attempts of a merge racing other merges of overlapping profiles.
MERGE_ATTEMPTS = 12
MAX_CHAIN = 50
#: Survivor fields whose change is not listed in the merge record's ``changes`` (the
#: attributes are listed one by one; the others are bookkeeping).
_UNLISTED = ("attributes", "display_name", "last_seen", "contacts", RETAIN_ATTRIBUTE)


class ResolutionConflict(RuntimeError):
    """Concurrent writers kept changing the same identities or conversation; retry later."""


class MergeRefused(Exception):
    """An agent's merge, unmerge, erasure or confirmation cannot be done; ``status`` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _pause(attempt: int) -> None:
    """A short random pause before retrying, so racing writers fall out of step."""
    time.sleep(random.uniform(0, 0.01 * (attempt + 1)))  # noqa: S311 - jitter, not security


# --------------------------------------------------------------------------- #
# Pure merge arithmetic
# --------------------------------------------------------------------------- #


def more_restrictive(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    """Consent after a merge: an opt-out beats an opt-in; between equals the later one."""
    if a is None or b is None:
        return a or b
    if a["status"] != b["status"]:
        return a if a["status"] == "opted_out" else b
    return b if b["at"] > a["at"] else a


def newer_attributes(survivor: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Per attribute the newer value wins (the survivor's on a tie); each keeps its source."""
    merged = dict(survivor)
    for name, value in other.items():
        if name not in merged or value["at"] > merged[name]["at"]:
            merged[name] = value
    return merged


def _kept_link(mine: dict[str, Any] | None, theirs: dict[str, Any]) -> dict[str, Any]:
    """Of two links of one identity, the survivor's unless only the other one is verified."""
    if mine is not None and (mine.get("verified") or not theirs.get("verified")):
        return mine
    return theirs


def _merged_consents(s: dict[str, Any], o: dict[str, Any]) -> dict[str, Any]:
    """Per channel the more restrictive consent of the two profiles."""
    wanted: dict[str, Any] = {}
    for key in sorted({k for k in (*s, *o) if k.startswith(CONSENT_PREFIX)}):
        chosen = more_restrictive(s.get(key), o.get(key))
        if chosen is not None:
            wanted[key] = chosen
    return wanted


def _latest_seen(s: dict[str, Any], o: dict[str, Any]) -> dict[str, Any]:
    """Per channel the later last contact of the two profiles."""
    seen = dict(s.get("last_seen") or {})
    for channel, at in (o.get("last_seen") or {}).items():
        if at > seen.get(channel, ""):
            seen[channel] = at
    return seen


def _summed_contacts(s: dict[str, Any], o: dict[str, Any]) -> dict[str, Any]:
    """Per day the contacts of both profiles."""
    contacts = dict(s.get("contacts") or {})
    for day, count in (o.get("contacts") or {}).items():
        contacts[day] = contacts.get(day, 0) + count
    return contacts


def _merged_profile(s: dict[str, Any], o: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str] | None]:
    """The survivor's fields as the merge wants them, and the thread to join (two open conversations)."""
    attributes = newer_attributes(s.get("attributes") or {}, o.get("attributes") or {})
    wanted: dict[str, Any] = {"attributes": attributes}
    name = attributes.get("name", {}).get("value") or s.get("display_name") or o.get("display_name")
    if name:
        wanted["display_name"] = name
    wanted["tags"] = list(dict.fromkeys([*(s.get("tags") or []), *(o.get("tags") or [])]))
    wanted.update(_merged_consents(s, o))
    wanted["last_seen"] = _latest_seen(s, o)
    wanted["contacts"] = _summed_contacts(s, o)
    keep = later(s.get(RETAIN_ATTRIBUTE), o.get(RETAIN_ATTRIBUTE))
    if keep:
        wanted[RETAIN_ATTRIBUTE] = keep  # the person's latest contact, on either side
    thread = None
    if o.get("open_conversation_id"):
        if s.get("open_conversation_id"):
            thread = {"source": o["open_conversation_id"], "target": s["open_conversation_id"]}
        else:
            wanted["open_conversation_id"] = o["open_conversation_id"]
    return wanted, thread


def _merge_changes(
    s: dict[str, Any], attributes: dict[str, Any], survivor_set: dict[str, Any]
) -> list[dict[str, Any]]:
    """The audit record's list of what the merge changed on the survivor (``attributes``: merged)."""
    changes: list[dict[str, Any]] = []
    before_attrs = s.get("attributes") or {}
    for attr, value in attributes.items():
        if before_attrs.get(attr) != value:
            changes.append({"field": f"attributes.{attr}", "before": before_attrs.get(attr), "after": value})
    for key, value in survivor_set.items():
        if key in _UNLISTED:
            continue
        label = f"consent.{key.removeprefix(CONSENT_PREFIX)}" if key.startswith(CONSENT_PREFIX) else key
        changes.append({"field": label, "before": s.get(key), "after": value})
    return changes


def _identity_moves(
    survivor: ProfileState, other: ProfileState, merge_id: str, now: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The survivor's links after the merge (one per identity of ``other``) and the log for unmerge."""
    moves, move_log = [], []
    for link in other.links:
        mine = survivor.link(link["sk"])
        moves.append({**survivor.adopted(_kept_link(mine, link)), "merge_id": merge_id, "moved_at": now})
        move_log.append({"original": link, "restored": mine} if mine else {"original": link})
    return moves, move_log


@dataclass
class MergePlan:
    #: Attributes to set on the survivor's profile item.
    survivor_set: dict[str, Any]
    #: What the survivor had before for each of them (absent: nothing).
    survivor_before: dict[str, Any]
    #: The survivor's identity links after the merge, one per identity of the other profile.
    moves: list[dict[str, Any]]
    #: ``{"original": other's link, "restored": survivor's link before}`` for unmerge.
    move_log: list[dict[str, Any]]
    changes: list[dict[str, Any]]
    thread: dict[str, str] | None


def plan_merge(survivor: ProfileState, other: ProfileState, merge_id: str, now: str) -> MergePlan:
    s = survivor.profile
    wanted, thread = _merged_profile(s, other.profile)
    survivor_set = {k: v for k, v in wanted.items() if s.get(k) != v}
    survivor_before = {k: s[k] for k in survivor_set if k in s}
    changes = _merge_changes(s, wanted["attributes"], survivor_set)
    moves, move_log = _identity_moves(survivor, other, merge_id, now)
    return MergePlan(survivor_set, survivor_before, moves, move_log, changes, thread)


@dataclass
class UnmergePlan:
    survivor_set: dict[str, Any]
    survivor_remove: list[str]
    other_set: dict[str, Any]
    other_remove: list[str]


def _restored_attributes(
    current: dict[str, Any] | None, merged: dict[str, Any] | None, old: dict[str, Any]
) -> dict[str, Any]:
    """Each attribute still at its merged value goes back to the survivor's value from before."""
    restored = dict(current or {})
    for attr, value in (merged or {}).items():
        if restored.get(attr) == value:
            if attr in old:
                restored[attr] = old[attr]
            else:
                restored.pop(attr, None)
    return restored


def _contacts_without(current: dict[str, Any] | None, theirs: dict[str, Any]) -> dict[str, Any]:
    """The survivor's contact counters less the merged-away profile's."""
    contacts = dict(current or {})
    for day, count in theirs.items():
        left = contacts.get(day, 0) - count
        if left > 0:
            contacts[day] = left
        else:
            contacts.pop(day, None)
    return contacts


def _give_back(
    plan: UnmergePlan, key: str, merged_value: Any, current: Any, before: dict[str, Any], other: ProfileState
) -> None:
    """What unmerge does with one survivor field the merge set."""
    if key == "attributes":
        plan.survivor_set["attributes"] = _restored_attributes(
            current, merged_value, before.get("attributes") or {}
        )
    elif key == "contacts":
        plan.survivor_set["contacts"] = _contacts_without(current, other.profile.get("contacts") or {})
    elif key == "open_conversation_id":
        if current == merged_value:
            plan.survivor_remove.append(key)
    elif current == merged_value:
        if key in before:
            plan.survivor_set[key] = before[key]
        elif key != "display_name":
            plan.survivor_remove.append(key)
    elif key.startswith(CONSENT_PREFIX) and current and current.get("status") == "opted_out":
        plan.other_set[key] = current


def _give_back_name(plan: UnmergePlan, s: dict[str, Any], before: dict[str, Any]) -> None:
    """The display name follows the restored name attribute."""
    name = (plan.survivor_set.get("attributes") or s.get("attributes") or {}).get("name")
    if "attributes" not in plan.survivor_set:
        return
    if name:
        plan.survivor_set["display_name"] = name["value"]
    elif "display_name" in before:
        plan.survivor_set["display_name"] = before["display_name"]
    else:
        plan.survivor_remove.append("display_name")


def plan_unmerge(record: dict[str, Any], survivor: ProfileState, other: ProfileState) -> UnmergePlan:
    """Give back what the merge changed, where nobody changed it since; keep later changes.

    Per attribute: still the merged value -> the survivor's value from before the merge.
    A consent changed after the merge to opted_out applies to both (we cannot tell whose
    it was, so the restrictive choice wins). Contact counters lose the merged profile's.
    """
    s = survivor.profile
    merged_result: dict[str, Any] = record.get("merged_result") or {}
    before: dict[str, Any] = record.get("survivor_before") or {}
    plan = UnmergePlan({}, [], {}, [])
    for key, merged_value in merged_result.items():
        _give_back(plan, key, merged_value, s.get(key), before, other)
    _give_back_name(plan, s, before)
    if record.get("merged_open_conversation"):
        plan.other_set["open_conversation_id"] = record["merged_open_conversation"]
    for key in list(plan.survivor_set):
        if key in plan.survivor_remove:
            plan.survivor_remove.remove(key)
    return plan


# --------------------------------------------------------------------------- #
# Following merges
# --------------------------------------------------------------------------- #


@dataclass
class Root:
    state: ProfileState | None
    #: Set when the chain ends at an erased profile.
    erased_at: str | None = None
    #: Ids passed on the way (merged-away profiles).
    via: list[str] = field(default_factory=list)


def find_root(customers: CustomerRepository, merger: ConversationMerger, customer_id: str, now: str) -> Root:
    """The active profile ``customer_id`` is (or was merged into), finishing pending merges on the way."""
    via: list[str] = []
    for _ in range(MAX_CHAIN):
        state = customers.load(customer_id)
        if state is None:
            return Root(None, via=via)
        if state.status == ERASED:
            return Root(None, erased_at=state.profile.get("erased_at"), via=via)
        if state.status != MERGED:
            return Root(state, via=via)
        if state.profile.get("merge_pending"):
            complete_merge(customers, merger, state.profile["merge_id"], now)
        via.append(customer_id)
        customer_id = state.profile["merged_into"]
    raise ResolutionConflict(f"merge chain of {customer_id} is too long")


def merged_tree(customers: CustomerRepository, root: ProfileState) -> list[ProfileState]:
    """``root`` and every profile merged into it, directly or through others."""
    tree = [root]
    seen = {root.customer_id}
    index = 0
    while index < len(tree):
        for item in tree[index].history:
            other = item["other_customer_id"]
            if item["role"] == "survivor" and item.get("status") == "merged" and other not in seen:
                state = customers.load(other)
                seen.add(other)
                if state is not None:
                    tree.append(state)
        index += 1
    return tree


# --------------------------------------------------------------------------- #
# Merge, unmerge
# --------------------------------------------------------------------------- #


def _mergeable(wanted: str, state: ProfileState | None) -> ProfileState:
    """``state`` if it is an active profile; else why it cannot be merged."""
    if state is None:
        raise MergeRefused(404, f"no customer {wanted}")
    if state.status == ERASED:
        raise MergeRefused(404, f"customer {wanted} was erased")
    if state.status == MERGED:
        raise MergeRefused(
            409,
            f"customer {wanted} was merged into {state.profile['merged_into']} "
            f"(merge {state.profile['merge_id']}); use that customer",
        )
    return state


def merge_customers(
    customers: CustomerRepository,
    merger: ConversationMerger,
    survivor_id: str,
    other_id: str,
    cause: str,
    now: str,
    linking: list[str] | None = None,
    make_id: Callable[[str], str] = new_id,
) -> str:
    """Merge ``other_id`` into ``survivor_id``; the merge id.

    Raises :class:`MergeRefused` when the merge is not possible as asked and
    :class:`ProfileChanged` when a profile changed while merging (read again, retry).
    """
    if survivor_id == other_id:
        raise MergeRefused(400, "a customer cannot be merged with itself")
    loaded_survivor = customers.load(survivor_id)
    loaded_other = customers.load(other_id)
    survivor = _mergeable(survivor_id, loaded_survivor)
    other = _mergeable(other_id, loaded_other)
    merge_id = make_id("mrg")
    plan = plan_merge(survivor, other, merge_id, now)
    record = {
        "merge_id": merge_id,
        "survivor_id": survivor_id,
        "merged_id": other_id,
        "at": now,
        "cause": cause,
        "linking_identities": linking or [],
        "identities": [link_identity(m["original"]).key for m in plan.move_log],
        "changes": plan.changes,
        "conversations": [],
        "thread": plan.thread,
        "status": "merged",
        "phase": "identities",
        "survivor_before": plan.survivor_before,
        "merged_result": plan.survivor_set,
        "moves": plan.move_log,
        "merged_open_conversation": other.profile.get("open_conversation_id"),
    }
    if not customers.commit_merge(survivor, other, plan.survivor_set, record, plan.moves, now):
        raise ProfileChanged(f"{survivor_id} or {other_id} changed while merging")
    complete_merge(customers, merger, merge_id, now)
    return merge_id


def _move_remaining_identities(
    customers: CustomerRepository,
    merger: ConversationMerger,
    record: dict[str, Any],
    other: ProfileState,
    now: str,
) -> list[str]:
    """More identities than one transaction moves: they go to wherever the survivor is now."""
    moved = list(record.get("identities", []))
    root = find_root(customers, merger, record["survivor_id"], now).state
    if root is None:
        return moved
    for link in other.links:
        target = root.adopted(_kept_link(root.link(link["sk"]), link))
        customers.move_identity(link, other.customer_id, root.customer_id, target, now)
        key = link_identity(link).key
        if key not in moved:
            moved.append(key)
    return moved


def complete_merge(
    customers: CustomerRepository, merger: ConversationMerger, merge_id: str, now: str
) -> None:
    """Phase two of a merge (idempotent): remaining identities, conversations, the joint thread."""
    record = customers.get_merge(merge_id)
    if record is None or record.get("phase") == "done" or record.get("status") != "merged":
        return
    survivor_id, other_id = record["survivor_id"], record["merged_id"]
    moved = list(record.get("identities", []))
    other = customers.load(other_id)
    if other is not None and other.links:
        moved = _move_remaining_identities(customers, merger, record, other, now)
    found = merger.list_ids(other_id)
    customers.note_merge_conversations(merge_id, found)
    for conversation_id in dict.fromkeys([*record.get("conversations", []), *found]):
        merger.repoint(conversation_id, other_id, survivor_id)
    thread = record.get("thread")
    if thread:
        merger.merge_thread(thread["source"], thread["target"], merge_id)
    customers.finish_merge(merge_id, other_id, moved)


def _merge_to_undo(customers: CustomerRepository, customer_id: str, merge_id: str) -> dict[str, Any]:
    """The audit record of ``merge_id`` if ``customer_id`` is a side of it and it is not undone yet."""
    record = customers.get_merge(merge_id)
    if record is None or customer_id not in (record["survivor_id"], record["merged_id"]):
        raise MergeRefused(404, f"customer {customer_id} has no merge {merge_id}")
    if record.get("status") == "unmerged":
        raise MergeRefused(409, f"merge {merge_id} was undone already at {record.get('unmerged_at')}")
    return record


def _unmerge_sides(
    customers: CustomerRepository, record: dict[str, Any], merge_id: str
) -> tuple[ProfileState, ProfileState]:
    """Survivor and merged-away profile of the merge, as they are now; refused when one moved on."""
    survivor = customers.load(record["survivor_id"])
    other = customers.load(record["merged_id"])
    if survivor is None or survivor.status == ERASED or other is None or other.status == ERASED:
        raise MergeRefused(409, "a customer of this merge was erased; there is nothing to give back")
    if survivor.status == MERGED:
        raise MergeRefused(
            409,
            f"customer {survivor.customer_id} was merged into {survivor.profile['merged_into']} "
            f"afterwards (merge {survivor.profile['merge_id']}); unmerge that merge first",
        )
    if other.profile.get("merge_id") != merge_id:
        raise MergeRefused(409, f"customer {other.customer_id} is not merged by {merge_id}")
    return survivor, other


def _moves_back(
    customers: CustomerRepository, record: dict[str, Any], survivor: ProfileState
) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """The identity links to give back: ``(original link, survivor's link before the merge)``."""
    owners = customers.owners_of(
        [link_identity(m["original"]) for m in record.get("moves", []) if m["original"].get("verified")]
    )
    moves_back = []
    for move in record.get("moves", []):
        original = move["original"]
        identity = link_identity(original)
        current = survivor.link(original["sk"])
        if current is None:
            continue  # gone from the survivor since (erased, or given back)
        if current.get("verified") and not original.get("verified"):
            continue  # a claim an agent confirmed on the survivor after the merge: it stays
        if identity.verified and owners.get(identity.key) != survivor.customer_id:
            continue
        moves_back.append((original, move.get("restored")))
    return moves_back


def unmerge_customers(
    customers: CustomerRepository,
    merger: ConversationMerger,
    customer_id: str,
    merge_id: str,
    by: str,
    now: str,
) -> dict[str, Any]:
    """Reverse merge ``merge_id``: identities, conversations and attribute values go back.

    ``customer_id`` is either side of the merge. Identities and conversations that came
    to the survivor after the merge stay with it. A survivor that was merged again since
    must be unmerged from that later merge first (last in, first out).
    """
    record = _merge_to_undo(customers, customer_id, merge_id)
    complete_merge(customers, merger, merge_id, now)
    for attempt in range(MERGE_ATTEMPTS):
        survivor, other = _unmerge_sides(customers, record, merge_id)
        thread = record.get("thread")
        if thread:
            merger.unmerge_thread(thread["source"], thread["target"])
        for conversation_id in record.get("conversations", []):
            merger.repoint(conversation_id, survivor.customer_id, other.customer_id)
        moves_back = _moves_back(customers, record, survivor)
        plan = plan_unmerge(record, survivor, other)
        # Back in the retention index, from its own last contact (due at once if that ran out).
        own = profile_retain_until(other.profile, retention_days())
        plan.other_set[RETAIN_ATTRIBUTE] = later(own, day_of(now))
        if customers.commit_unmerge(
            survivor,
            other,
            plan.survivor_set,
            plan.survivor_remove,
            plan.other_set,
            plan.other_remove,
            moves_back,
            record,
            by,
            now,
        ):
            return customers.get_merge(merge_id) or record
        _pause(attempt)
    raise MergeRefused(409, f"customers of merge {merge_id} kept changing; try again")
