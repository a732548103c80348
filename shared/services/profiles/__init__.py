"""The unified customer profile: who sent a message, merges, unmerges, erasure and export.

The service layer between the profile-merge handler / the agent API and the repositories.

Identity resolution: the verified identities of a message (the channel-proven sender,
identities from a signed session) are looked up in one request. Nobody owns any of
them: a new customer owning all of them is created. One customer owns them: that
customer, and the verified identities nobody owns yet are attached. Several customers
own them: the message proves they are one person, so they are merged - the oldest
profile survives - and the message goes to the survivor. Claimed identities (typed in
by the customer) are recorded on the profile but never used to find or merge anyone;
one owned by another customer is reported as a possible match, and an agent confirms
it or merges by hand.

Because a merge only ever joins the profiles that verified identities link, the final
partition of identities into profiles is the connected components of the verified
links, whatever order (or how many times) messages arrive in.

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
from datetime import date, timedelta
from typing import Any

from shared.contracts.events import Identity, MessageReceived, format_timestamp
from shared.contracts.models import Consent
from shared.domain.identity import derived_identities, normalise
from shared.domain.retention import (
    RETAIN_ATTRIBUTE,
    contact_day,
    day_of,
    due_buckets,
    is_due,
    later,
    profile_retain_until,
    retain_until,
    retention_days,
)
from shared.domain.surveys import could_be_score, parse_score
from shared.platform.ids import new_id
from shared.repositories.conversation_merge import ConversationMerger
from shared.repositories.conversations import (
    ConcurrentUpdate,
    ConversationRepository,
    message_sk,
    seen_pk,
)
from shared.repositories.customers import (
    CONSENT_PREFIX,
    ERASED,
    MERGED,
    CustomerRepository,
    IdentityErased,
    IdentityTaken,
    ProfileChanged,
    ProfileState,
    customer_pk,
    identity_sk,
    link_identity,
    tombstone_retention_days,
)

MAX_ATTEMPTS = 5
#: Attempts of a merge racing other merges of overlapping profiles.
MERGE_ATTEMPTS = 12
MAX_CHAIN = 50
CONTACT_WINDOW_DAYS = 30


class ResolutionConflict(RuntimeError):
    """Concurrent writers kept changing the same identities or conversation; retry later."""


class MergeRefused(Exception):
    """An agent's merge, unmerge, erasure or confirmation cannot be done; ``status`` is the HTTP answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class PossibleMatch:
    identity: Identity
    other_customer_id: str | None


@dataclass
class Resolution:
    customer_id: str | None
    new_customer: bool
    possible_matches: list[PossibleMatch] = field(default_factory=list)
    merges: list[str] = field(default_factory=list)
    #: Why the message was not attributed to anyone (``erased``: a replay of erased data).
    dropped: str | None = None


@dataclass
class RecordedMessage:
    #: None when the message was dropped (see ``dropped``).
    customer_id: str | None
    #: None for a consent keyword, which is not part of a conversation, and a dropped message.
    conversation_id: str | None
    message_id: str
    new_customer: bool
    new_conversation: bool
    #: False when the message had been recorded before (a redelivery).
    new_message: bool
    possible_matches: list[PossibleMatch] = field(default_factory=list)
    #: Merges this message caused.
    merges: list[str] = field(default_factory=list)
    dropped: str | None = None
    #: For the KPIs (see :class:`shared.contracts.events.MessageRecorded`).
    channel_switch: bool = False
    reopened: bool = False
    #: The message answered the survey pending on the resolved conversation (not reopened).
    survey: str | None = None
    survey_score: int | None = None


def identities_of(message: MessageReceived) -> list[Identity]:
    """Normalised identities of a message, sender first, each once (verified wins).

    Identities implied by another are added (a wa_id is also that phone number).
    """
    by_key: dict[str, Identity] = {}
    for raw in (message.sender, *message.identities):
        identity = normalise(raw)
        for each in (identity, *derived_identities(identity)):
            known = by_key.get(each.key)
            if known is None or (each.verified and not known.verified):
                by_key[each.key] = each
    return list(by_key.values())


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
    s, o = survivor.profile, other.profile
    wanted: dict[str, Any] = {}
    attributes = newer_attributes(s.get("attributes") or {}, o.get("attributes") or {})
    wanted["attributes"] = attributes
    name = attributes.get("name", {}).get("value") or s.get("display_name") or o.get("display_name")
    if name:
        wanted["display_name"] = name
    wanted["tags"] = list(dict.fromkeys([*(s.get("tags") or []), *(o.get("tags") or [])]))
    for key in sorted({k for k in (*s, *o) if k.startswith(CONSENT_PREFIX)}):
        chosen = more_restrictive(s.get(key), o.get(key))
        if chosen is not None:
            wanted[key] = chosen
    seen = dict(s.get("last_seen") or {})
    for channel, at in (o.get("last_seen") or {}).items():
        if at > seen.get(channel, ""):
            seen[channel] = at
    wanted["last_seen"] = seen
    contacts = dict(s.get("contacts") or {})
    for day, count in (o.get("contacts") or {}).items():
        contacts[day] = contacts.get(day, 0) + count
    wanted["contacts"] = contacts
    keep = later(s.get(RETAIN_ATTRIBUTE), o.get(RETAIN_ATTRIBUTE))
    if keep:
        wanted[RETAIN_ATTRIBUTE] = keep  # the person's latest contact, on either side
    thread = None
    if o.get("open_conversation_id"):
        if s.get("open_conversation_id"):
            thread = {"source": o["open_conversation_id"], "target": s["open_conversation_id"]}
        else:
            wanted["open_conversation_id"] = o["open_conversation_id"]
    survivor_set = {k: v for k, v in wanted.items() if s.get(k) != v}
    survivor_before = {k: s[k] for k in survivor_set if k in s}
    changes: list[dict[str, Any]] = []
    before_attrs = s.get("attributes") or {}
    for attr, value in attributes.items():
        if before_attrs.get(attr) != value:
            changes.append({"field": f"attributes.{attr}", "before": before_attrs.get(attr), "after": value})
    for key, value in survivor_set.items():
        if key in ("attributes", "display_name", "last_seen", "contacts", RETAIN_ATTRIBUTE):
            continue
        label = f"consent.{key.removeprefix(CONSENT_PREFIX)}" if key.startswith(CONSENT_PREFIX) else key
        changes.append({"field": label, "before": s.get(key), "after": value})
    moves, move_log = [], []
    for link in other.links:
        mine = survivor.link(link["sk"])
        keep_mine = mine is not None and (mine.get("verified") or not link.get("verified"))
        chosen = mine if keep_mine and mine is not None else link
        moves.append(
            {**chosen, "pk": customer_pk(survivor.customer_id), "merge_id": merge_id, "moved_at": now}
        )
        move_log.append({"original": link, "restored": mine} if mine else {"original": link})
    return MergePlan(survivor_set, survivor_before, moves, move_log, changes, thread)


@dataclass
class UnmergePlan:
    survivor_set: dict[str, Any]
    survivor_remove: list[str]
    other_set: dict[str, Any]
    other_remove: list[str]


def plan_unmerge(record: dict[str, Any], survivor: ProfileState, other: ProfileState) -> UnmergePlan:
    """Give back what the merge changed, where nobody changed it since; keep later changes.

    Per attribute: still the merged value -> the survivor's value from before the merge.
    A consent changed after the merge to opted_out applies to both (we cannot tell whose
    it was, so the restrictive choice wins). Contact counters lose the merged profile's.
    """
    s = survivor.profile
    merged_result: dict[str, Any] = record.get("merged_result") or {}
    before: dict[str, Any] = record.get("survivor_before") or {}
    set_values: dict[str, Any] = {}
    remove: list[str] = []
    other_set: dict[str, Any] = {}
    for key, merged_value in merged_result.items():
        current = s.get(key)
        if key == "attributes":
            restored = dict(current or {})
            old = before.get("attributes") or {}
            for attr, value in (merged_value or {}).items():
                if restored.get(attr) == value:
                    if attr in old:
                        restored[attr] = old[attr]
                    else:
                        restored.pop(attr, None)
            set_values["attributes"] = restored
        elif key == "contacts":
            contacts = dict(current or {})
            for day, count in (other.profile.get("contacts") or {}).items():
                left = contacts.get(day, 0) - count
                if left > 0:
                    contacts[day] = left
                else:
                    contacts.pop(day, None)
            set_values["contacts"] = contacts
        elif key == "open_conversation_id":
            if current == merged_value:
                remove.append(key)
        elif current == merged_value:
            if key in before:
                set_values[key] = before[key]
            elif key != "display_name":
                remove.append(key)
        elif key.startswith(CONSENT_PREFIX) and current and current.get("status") == "opted_out":
            other_set[key] = current
    name = (set_values.get("attributes") or s.get("attributes") or {}).get("name")
    if "attributes" in set_values:
        if name:
            set_values["display_name"] = name["value"]
        elif "display_name" in before:
            set_values["display_name"] = before["display_name"]
        else:
            remove.append("display_name")
    if record.get("merged_open_conversation"):
        other_set["open_conversation_id"] = record["merged_open_conversation"]
    for key in list(set_values):
        if key in remove:
            remove.remove(key)
    return UnmergePlan(set_values, remove, other_set, [])


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
    survivor = customers.load(survivor_id)
    other = customers.load(other_id)
    for wanted, state in ((survivor_id, survivor), (other_id, other)):
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
    if survivor is None or other is None:  # for the type checker: handled above
        raise MergeRefused(404, "customer not found")
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
        # More identities than one transaction moves: they go to wherever the survivor is now.
        root = find_root(customers, merger, survivor_id, now).state
        if root is not None:
            for link in other.links:
                mine = root.link(link["sk"])
                keep_mine = mine is not None and (mine.get("verified") or not link.get("verified"))
                target = {**(mine if keep_mine and mine else link), "pk": customer_pk(root.customer_id)}
                customers.move_identity(link, other_id, root.customer_id, target, now)
                key = link_identity(link).key
                if key not in moved:
                    moved.append(key)
    found = merger.list_ids(other_id)
    customers.note_merge_conversations(merge_id, found)
    for conversation_id in dict.fromkeys([*record.get("conversations", []), *found]):
        merger.repoint(conversation_id, other_id, survivor_id)
    thread = record.get("thread")
    if thread:
        merger.merge_thread(thread["source"], thread["target"], merge_id)
    customers.finish_merge(merge_id, other_id, moved)


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
    record = customers.get_merge(merge_id)
    if record is None or customer_id not in (record["survivor_id"], record["merged_id"]):
        raise MergeRefused(404, f"customer {customer_id} has no merge {merge_id}")
    if record.get("status") == "unmerged":
        raise MergeRefused(409, f"merge {merge_id} was undone already at {record.get('unmerged_at')}")
    complete_merge(customers, merger, merge_id, now)
    for attempt in range(MERGE_ATTEMPTS):
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
        thread = record.get("thread")
        if thread:
            merger.unmerge_thread(thread["source"], thread["target"])
        for conversation_id in record.get("conversations", []):
            merger.repoint(conversation_id, survivor.customer_id, other.customer_id)
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


# --------------------------------------------------------------------------- #
# Resolution of inbound messages
# --------------------------------------------------------------------------- #


def _attach_missing(
    customers: CustomerRepository,
    survivor: ProfileState,
    identities: list[Identity],
    owners: dict[str, str],
    message: MessageReceived,
    now: str,
    sent_at: str,
    stale: dict[str, str],
) -> list[PossibleMatch]:
    matches: list[PossibleMatch] = []
    for identity in identities:
        had = survivor.link(identity_sk(identity))
        owner = owners.get(identity.key)
        if not identity.verified and owner and owner != survivor.customer_id:
            matches.append(PossibleMatch(identity, owner))
        if had is not None and (had.get("verified") or not identity.verified):
            continue  # on the profile already, at least as strongly as now
        customers.attach(
            survivor.customer_id,
            identity,
            now,
            source=message.channel,
            sent_at=sent_at,
            stale_owner=stale.get(identity.key),
        )
    if message.display_name and "name" not in (survivor.profile.get("attributes") or {}):
        # The first name we learn for a customer who had none (e.g. SMS first, then web chat).
        latest = customers.load(survivor.customer_id)
        attributes = dict((latest.profile.get("attributes") or {}) if latest else {})
        if latest is not None and "name" not in attributes:
            attributes["name"] = {"value": message.display_name, "at": now, "source": message.channel}
            customers.update_profile(
                latest.customer_id,
                latest.version,
                {"attributes": attributes, "display_name": message.display_name},
            )
    return matches


def resolve_customer(
    customers: CustomerRepository,
    message: MessageReceived,
    now: str,
    make_id: Callable[[str], str] = new_id,
    merger: ConversationMerger | None = None,
) -> Resolution:
    """The customer who sent ``message``, merging the profiles its verified identities link."""
    merger = merger or ConversationMerger()
    identities = identities_of(message)
    verified = [i for i in identities if i.verified]
    sent_at = format_timestamp(message.sent_at)
    for attempt in range(MERGE_ATTEMPTS):
        try:
            owners = customers.owners_of(identities)
            roots: dict[str, ProfileState] = {}
            stale: dict[str, str] = {}
            for identity in verified:
                owner = owners.get(identity.key)
                if owner is None:
                    continue
                root = find_root(customers, merger, owner, now)
                if root.state is None:
                    if root.erased_at and sent_at < root.erased_at:
                        return Resolution(None, False, dropped="erased")
                    stale[identity.key] = owner  # its profile is gone: the identity is free
                else:
                    roots[root.state.customer_id] = root.state
            if not roots:
                customer_id = make_id("cus")
                customers.create(
                    customer_id,
                    identities,
                    now,
                    message.display_name,
                    source=message.channel,
                    sent_at=sent_at,
                    stale_owners=stale,
                )
                matches = [
                    PossibleMatch(i, owners[i.key]) for i in identities if not i.verified and i.key in owners
                ]
                return Resolution(customer_id, True, matches)
            ordered = sorted(roots.values(), key=lambda s: (str(s.profile.get("created_at")), s.customer_id))
            survivor = ordered[0]
            merges = [
                merge_customers(
                    customers,
                    merger,
                    survivor.customer_id,
                    other.customer_id,
                    cause=message.message_key,
                    now=now,
                    linking=[i.key for i in verified],
                    make_id=make_id,
                )
                for other in ordered[1:]
            ]
            if merges:
                reloaded = customers.load(survivor.customer_id)
                if reloaded is None:
                    raise ProfileChanged(survivor.customer_id)
                survivor = reloaded
            matches = _attach_missing(customers, survivor, identities, owners, message, now, sent_at, stale)
            return Resolution(survivor.customer_id, False, matches, merges)
        except IdentityErased:
            return Resolution(None, False, dropped="erased")
        except (IdentityTaken, ProfileChanged, MergeRefused):
            # Someone created, merged or changed one of these customers a moment ago.
            _pause(attempt)
    raise ResolutionConflict(f"could not resolve the sender of {message.message_key}")


def apply_consent(
    customers: CustomerRepository,
    customer_id: str,
    message: MessageReceived,
    conversations: ConversationRepository | None = None,
) -> bool:
    """An opt-out or opt-in keyword changes the customer's consent for that channel.

    HELP changes nothing. Returns whether the stored consent changed. A keyword seen
    before is not applied again: an SMS carries no send time, so a provider's retry of
    an old STOP gets a new timestamp and would otherwise undo a later START.
    """
    if message.keyword not in ("opt_out", "opt_in"):
        return False
    if conversations is not None and conversations.was_seen(message.message_key):
        return False
    consent = Consent(
        status="opted_out" if message.keyword == "opt_out" else "opted_in",
        at=format_timestamp(message.sent_at),
        source=f"{message.channel}:{message.text.strip().upper()[:20] or message.keyword}",
    )
    changed = customers.set_consent(customer_id, message.channel, consent)
    if conversations is not None:
        conversations.mark_seen(message.message_key, what="consent")
    return changed


def _hinted_conversation(
    conversations: ConversationRepository, customer_id: str, hint: str | None
) -> str | None:
    """The conversation a channel threaded the message into, if it is this customer's.

    A hint is only a pointer (an In-Reply-To header can be forged): it never moves a
    message into another customer's conversation. A conversation merged into another
    thread leads to that thread.
    """
    if not hint:
        return None
    meta = conversations.get_meta(hint)
    if meta is not None and meta.get("status") == "merged" and meta.get("merged_into"):
        return _hinted_conversation(conversations, customer_id, meta["merged_into"])
    return hint if meta is not None and meta.get("customer_id") == customer_id else None


def _old_contact_days(profile: dict[str, Any], day: str) -> list[str]:
    cutoff = (date.fromisoformat(day) - timedelta(days=CONTACT_WINDOW_DAYS)).isoformat()
    return [d for d in (profile.get("contacts") or {}) if d < cutoff]


def _append_inbound(
    conversations: ConversationRepository,
    conversation_id: str,
    message: MessageReceived,
    sent_at: str,
    reply_to: Identity,
    facts: dict[str, bool] | None = None,
) -> bool:
    """Append the message; a busy conversation (many messages at once) is tried again after a pause."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            return conversations.record_inbound(
                conversation_id,
                message_id=message.message_key,
                channel=message.channel,
                text=message.text,
                sent_at=sent_at,
                reply_to=reply_to,
                attachments=[a.model_dump(exclude_none=True) for a in message.attachments],
                received_at=format_timestamp(message.received_at),
                facts=facts,
            )
        except ConcurrentUpdate:
            _pause(attempt)
    raise ResolutionConflict(f"conversation {conversation_id} kept changing")


def _survey_answer(
    conversations: ConversationRepository,
    customer_id: str,
    conversation_id: str | None,
    message: MessageReceived,
    sent_at: str,
) -> tuple[str, bool, str, int] | None:
    """Record ``message`` as the answer to the survey pending on the customer's resolved
    conversation (``conversation_id``, else their latest), without reopening it.

    Returns ``(conversation id, new message, survey, score)``, or None when the message is
    no answer (nothing pending, not a score on the survey's scale, already answered): then
    it is an ordinary message, which reopens the conversation as before.
    """
    seen = conversations.table.get({"pk": seen_pk(message.message_key), "sk": "SEEN"})
    if seen is not None:
        # A redelivery: say again what it was, from the answer stored on the conversation.
        meta = conversations.get_meta(seen["conversation_id"]) or {}
        for survey in ("ces", "csat"):
            answer = meta.get(survey) or {}
            if answer.get("message_id") == message.message_key:
                return seen["conversation_id"], False, survey, int(answer["score"])
        return None
    meta = (
        conversations.get_meta(conversation_id)
        if conversation_id
        else conversations.latest_for_customer(customer_id)
    )
    if meta is None or meta.get("status") != "resolved" or meta.get("customer_id") != customer_id:
        return None
    pending = meta.get("survey_pending") or {}
    survey = pending.get("survey")
    if survey not in ("ces", "csat") or pending.get("resolved_at") != meta.get("resolved_at"):
        return None
    score = parse_score(survey, message.text)
    if score is None:
        return None
    cid = meta["conversation_id"]
    written = conversations.record_survey_answer(
        cid,
        message_id=message.message_key,
        channel=message.channel,
        text=message.text,
        sent_at=sent_at,
        received_at=format_timestamp(message.received_at),
        survey=survey,
        score=score,
    )
    if written is None:
        return None
    return cid, written, survey, score


def record_message(
    customers: CustomerRepository,
    conversations: ConversationRepository,
    message: MessageReceived,
    now: str,
    make_id: Callable[[str], str] = new_id,
    merger: ConversationMerger | None = None,
) -> RecordedMessage:
    """Resolve the customer and append the message to their open conversation, idempotently."""
    merger = merger or ConversationMerger(conversations.table)
    if merger.recorded_in_erased(message.message_key):
        resolution = Resolution(None, False, dropped="erased")
    else:
        resolution = resolve_customer(customers, message, now, make_id, merger)
    base: dict[str, Any] = {
        "message_id": message.message_key,
        "possible_matches": resolution.possible_matches,
        "merges": resolution.merges,
    }
    if resolution.customer_id is None:
        return RecordedMessage(
            customer_id=None,
            conversation_id=None,
            new_customer=False,
            new_conversation=False,
            new_message=False,
            dropped=resolution.dropped,
            **base,
        )
    customer_id = resolution.customer_id
    if message.kind == "consent":
        apply_consent(customers, customer_id, message, conversations)
        return RecordedMessage(
            customer_id=customer_id,
            conversation_id=None,
            new_customer=resolution.new_customer,
            new_conversation=False,
            new_message=False,
            **base,
        )
    reply_to = normalise(message.sender)
    sent_at = format_timestamp(message.sent_at)
    # Only a message that reads as a score can answer a survey: the others cost no lookup.
    score_like = message.kind == "message" and could_be_score(message.text)
    #: The message joined a conversation that was not the customer's open one (it may have reopened it).
    attached = False
    for _ in range(MAX_ATTEMPTS):
        profile = customers.get_profile(customer_id)
        if profile is None or profile.get("status") == ERASED:
            raise ResolutionConflict(f"customer {customer_id} vanished")
        if profile.get("status") == MERGED:
            customer_id = profile["merged_into"]  # merged a moment ago: follow
            continue
        hinted = _hinted_conversation(conversations, customer_id, message.conversation_hint)
        open_id = profile.get("open_conversation_id")
        if score_like and (hinted or not open_id):
            answer = _survey_answer(conversations, customer_id, hinted, message, sent_at)
            if answer is not None:
                answered_in, written, survey, score = answer
                return RecordedMessage(
                    customer_id=customer_id,
                    conversation_id=answered_in,
                    new_customer=resolution.new_customer,
                    new_conversation=False,
                    new_message=written,
                    survey=survey,
                    survey_score=score,
                    **base,
                )
        conversation_id = hinted or open_id
        new_conversation = False
        if not conversation_id:
            conversation_id = make_id("conv")
            if not conversations.open_for(customer_id, conversation_id, now, message.channel):
                attached = True
                continue  # another message opened one first (or the customer was merged): look again
            new_conversation = True
        attached = attached or bool(hinted and hinted != open_id)
        facts: dict[str, bool] = {}
        new_message = _append_inbound(conversations, conversation_id, message, sent_at, reply_to, facts)
        # Merged into another thread while the message was being written: it belongs there too.
        conversation_id = merger.forward_if_merged(conversation_id, message_sk(sent_at, message.message_key))
        if new_message:
            day = sent_at[:10]
            customers.record_contact(
                customer_id,
                message.channel,
                sent_at,
                day,
                _old_contact_days(profile, day),
                newer=sent_at > (profile.get("last_seen") or {}).get(message.channel, ""),
                # Only ever forward: a replayed old message does not shorten retention.
                retain_until_day=later(
                    profile.get(RETAIN_ATTRIBUTE), retain_until(contact_day(sent_at, now), retention_days())
                ),
            )
        return RecordedMessage(
            customer_id=customer_id,
            conversation_id=conversation_id,
            new_customer=resolution.new_customer,
            new_conversation=new_conversation,
            new_message=new_message,
            channel_switch=facts.get("channel_switch", False),
            reopened=facts.get("reopened", False) or (attached and not new_conversation),
            **base,
        )
    raise ResolutionConflict(f"could not open a conversation for {customer_id}")


# --------------------------------------------------------------------------- #
# Erasure and export
# --------------------------------------------------------------------------- #


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
    for attempt in range(MERGE_ATTEMPTS):
        state = customers.load(customer_id)
        if state is None:
            raise MergeRefused(404, f"no customer {customer_id}")
        if state.status == ERASED:
            erased_at = str(state.profile.get("erased_at"))
            if not _half_erased(state):
                return Erasure(customer_id, erased_at, already=True)
            now = erased_at  # finish it, with the tombstones dated as it began
            tree = merged_tree(customers, state)
            break
        if state.status == MERGED:
            raise MergeRefused(
                409,
                f"customer {customer_id} was merged into {state.profile['merged_into']}; "
                "erase that customer (or unmerge first)",
            )
        if due_before and not is_due(str(state.profile.get(RETAIN_ATTRIBUTE) or due_before), due_before):
            return Erasure(customer_id, "", retained=True)
        tree = merged_tree(customers, state)
        if customers.begin_erasure(state, now, due_before):
            break
        _pause(attempt)
    else:
        raise MergeRefused(409, f"customer {customer_id} kept changing; try again")
    expires = now_epoch + tombstone_retention_days() * 86400
    result = Erasure(customer_id, now, profiles=[s.customer_id for s in tree])
    merge_ids: set[str] = set()
    conversation_ids: set[str] = set()
    for member in tree:
        for item in member.history:
            merge_ids.add(item["merge_id"])
        conversation_ids.update(merger.list_ids(member.customer_id))
    for merge_id in merge_ids:
        record = customers.get_merge(merge_id) or {}
        conversation_ids.update(record.get("conversations", []))
    for conversation_id in conversation_ids:
        merger.erase(conversation_id)
    result.conversations = len(conversation_ids)
    for merge_id in merge_ids:
        customers.delete_merge_record(merge_id)
    # Merged-away profiles before the ones they were merged into, this customer last: until
    # its profile is the bare marker, a repeat finds the whole tree again through the history.
    for member in reversed(tree):
        result.identities += len(customers.erase_partition(member.customer_id, now, expires))
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
            profile = customers.get_profile(customer_id)
            if profile is None:
                continue
            if profile.get("status") == MERGED:
                customers.leave_retention(customer_id)
                continue
            if profile.get("status") != ERASED:
                stored = profile.get(RETAIN_ATTRIBUTE)
                if not stored or not is_due(str(stored), today):
                    continue  # a message moved it since the index was written
                wanted = profile_retain_until(profile, days)
                if wanted and not is_due(wanted, today):
                    if customers.move_retention(customer_id, str(stored), wanted):
                        result.moved.append(customer_id)
                    continue
            try:
                erasure = erase_customer(customers, merger, customer_id, now, now_epoch, due_before=today)
            except MergeRefused:
                continue  # merged or changing right now: the next run looks again
            if not erasure.retained and not erasure.already:
                result.erased.append(customer_id)
    return result


def export_customer(
    customers: CustomerRepository, merger: ConversationMerger, customer_id: str, now: str
) -> dict[str, Any]:
    """Everything stored about the person, as JSON-ready data (GDPR Art. 15/20)."""
    root = find_root(customers, merger, customer_id, now)
    if root.state is None:
        raise MergeRefused(404, f"no customer {customer_id}" + (" (erased)" if root.erased_at else ""))
    from shared.repositories.customers import to_customer  # noqa: PLC0415

    tree = merged_tree(customers, root.state)
    merge_ids = list(dict.fromkeys(item["merge_id"] for member in tree for item in member.history))
    records = [r for r in (customers.get_merge(m) for m in merge_ids) if r]
    conversation_ids = list(dict.fromkeys(c for member in tree for c in merger.list_ids(member.customer_id)))
    strip = ("pk", "sk")
    return {
        "exported_at": now,
        "customer": to_customer(root.state, now).model_dump(),
        "redirected_from": customer_id if root.via else None,
        "profiles": [{k: v for k, v in m.profile.items() if k not in strip} for m in tree],
        "identities": [{k: v for k, v in link.items() if k not in strip} for m in tree for link in m.links],
        "merges": [{k: v for k, v in r.items() if k not in strip} for r in records],
        "conversations": [c for c in (merger.export(i) for i in conversation_ids) if c is not None],
    }
