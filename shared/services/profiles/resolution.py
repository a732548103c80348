"""Identity resolution: the customer who sent an inbound message.

The verified identities of a message (the channel-proven sender, identities from a
signed session) are looked up in one request. Nobody owns any of them: a new customer
owning all of them is created. One customer owns them: that customer, and the verified
identities nobody owns yet are attached. Several customers own them: the message proves
they are one person, so they are merged - the oldest profile survives - and the message
goes to the survivor. Claimed identities (typed in by the customer) are recorded on the
profile but never used to find or merge anyone; one owned by another customer is
reported as a possible match, and an agent confirms it or merges by hand.

A message whose sender is only claimed and which proves no identity at all (an e-mail
without sender authentication, :mod:`shared.domain.sender_auth`) is not a stranger each
time: it goes to the one profile that holds the claim on that address (the ``CLAIM``
item), created by the first such message. That profile never is the verified owner of the
address: when the holder owns it (it was upgraded, or an agent merged it into the owner),
the next unauthenticated mail gets a profile of its own, reported as a possible match of
the owner - a forged ``From:`` never reads or writes a verified customer's conversation.
When a message later proves the address and nobody owns it yet, the holder is upgraded:
it becomes the verified owner.

Because a merge only ever joins the profiles that verified identities link, the final
partition of verified identities into profiles is the connected components of the verified
links, whatever order (or how many times) messages arrive in. (Where unauthenticated mail
goes does depend on the order: before the address is proven it is the profile that then
gets upgraded; after, a separate one. That is the point: proof decides who may join whom.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shared.contracts.events import Identity, MessageReceived, format_timestamp
from shared.domain.identity import derived_identities, normalise
from shared.platform.ids import new_id
from shared.repositories.conversation_merge import ConversationMerger
from shared.repositories.customers import (
    CustomerProfile,
    CustomerRepository,
    IdentityErased,
    IdentityTaken,
    ProfileChanged,
    ProfileState,
)
from shared.services.profiles.merge import (
    MERGE_ATTEMPTS,
    MergeRefused,
    ResolutionConflict,
    _pause,
    find_root,
    merge_customers,
)

MAX_ATTEMPTS = 5
#: Message kinds that are not a contact of the customer (recorded outside any conversation).
NOT_CONTACTS = frozenset({"consent", "system", "reaction"})


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
    #: The customer's profile as resolution read it, when resolution wrote nothing to it
    #: (recording the message then needs no second read); None: read it again.
    profile: CustomerProfile | None = None


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


def _learn_name(
    customers: CustomerRepository, survivor: ProfileState, message: MessageReceived, now: str
) -> bool:
    """The first name we learn for a customer who had none (e.g. SMS first, then web chat).
    True when the profile may have been written."""
    if not message.display_name or "name" in (survivor.profile.get("attributes") or {}):
        return False
    latest = customers.load(survivor.customer_id)
    attributes = dict((latest.profile.get("attributes") or {}) if latest else {})
    if latest is not None and "name" not in attributes:
        attributes["name"] = {"value": message.display_name, "at": now, "source": message.channel}
        customers.update_profile(
            latest.customer_id,
            latest.version,
            {"attributes": attributes, "display_name": message.display_name},
        )
    return True


def _attach_missing(
    customers: CustomerRepository,
    survivor: ProfileState,
    identities: list[Identity],
    owners: dict[str, str],
    message: MessageReceived,
    now: str,
    sent_at: str,
    stale: dict[str, str],
) -> tuple[list[PossibleMatch], bool]:
    """Attach the identities the survivor lacks; the possible matches, and whether anything
    may have been written to the profile (a known identity on a known customer writes nothing)."""
    matches: list[PossibleMatch] = []
    wrote = False
    for identity in identities:
        had = survivor.link_of(identity)
        owner = owners.get(identity.key)
        if not identity.verified and owner and owner != survivor.customer_id:
            matches.append(PossibleMatch(identity, owner))
        if had is not None and (had.get("verified") or not identity.verified):
            continue  # on the profile already, at least as strongly as now
        wrote = True
        customers.attach(
            survivor.customer_id,
            identity,
            now,
            source=message.channel,
            sent_at=sent_at,
            stale_owner=stale.get(identity.key),
        )
    wrote = _learn_name(customers, survivor, message, now) or wrote
    return matches, wrote


class _Dropped(Exception):
    """The message is a replay of an erased person's data."""


def _owning_roots(
    customers: CustomerRepository,
    merger: ConversationMerger,
    verified: list[Identity],
    owners: dict[str, str],
    now: str,
    sent_at: str,
) -> tuple[dict[str, ProfileState], dict[str, str]]:
    """The active profiles owning the verified identities, and the identities whose owner is gone."""
    roots: dict[str, ProfileState] = {}
    stale: dict[str, str] = {}
    for identity in verified:
        owner = owners.get(identity.key)
        if owner is None:
            continue
        root = find_root(customers, merger, owner, now)
        if root.state is None:
            if root.erased_at and sent_at < root.erased_at:
                raise _Dropped
            stale[identity.key] = owner  # its profile is gone: the identity is free
        else:
            roots[root.state.customer_id] = root.state
    return roots, stale


def _new_customer(
    customers: CustomerRepository,
    identities: list[Identity],
    owners: dict[str, str],
    stale: dict[str, str],
    message: MessageReceived,
    now: str,
    sent_at: str,
    make_id: Callable[[str], str],
) -> Resolution:
    """Nobody owns a verified identity of the message: a new customer owning all of them."""
    customer_id = make_id("cus")
    profile = customers.create(
        customer_id,
        identities,
        now,
        message.display_name,
        source=message.channel,
        sent_at=sent_at,
        stale_owners=stale,
        # A conversation message is the customer's first contact (not a keyword or a reaction).
        first_contact=message.kind not in NOT_CONTACTS,
    )
    matches = [PossibleMatch(i, owners[i.key]) for i in identities if not i.verified and i.key in owners]
    return Resolution(customer_id, True, matches, profile=profile)


def _merge_roots(
    customers: CustomerRepository,
    merger: ConversationMerger,
    roots: dict[str, ProfileState],
    message: MessageReceived,
    verified: list[Identity],
    now: str,
    make_id: Callable[[str], str],
) -> tuple[ProfileState, list[str]]:
    """The oldest of the owning profiles, with the others merged into it, and the merges."""
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
    return survivor, merges


def _owns(state: ProfileState, identity: Identity) -> bool:
    link = state.link_of(identity)
    return bool(link and link.get("verified"))


def _resolve_claimed(
    customers: CustomerRepository,
    merger: ConversationMerger,
    message: MessageReceived,
    identities: list[Identity],
    owners: dict[str, str],
    holder: str | None,
    now: str,
    sent_at: str,
    make_id: Callable[[str], str],
) -> Resolution:
    """No identity of the message is proven: the profile holding the claim on its sender."""
    sender = identities[0]
    stale_claim = None
    if holder is not None:
        root = find_root(customers, merger, holder, now)
        if root.state is None:
            if root.erased_at and sent_at < root.erased_at:
                return Resolution(None, False, dropped="erased")
            stale_claim = holder  # erased or gone: the claim is free
        elif _owns(root.state, sender):
            stale_claim = holder  # the holder is the verified owner now: never joined silently
        else:
            matches, wrote = _attach_missing(
                customers, root.state, identities, owners, message, now, sent_at, {}
            )
            profile = None if wrote else root.state.aggregate()
            return Resolution(root.state.customer_id, False, matches, profile=profile)
    customer_id = make_id("cus")
    created = customers.create(
        customer_id,
        identities,
        now,
        message.display_name,
        source=message.channel,
        sent_at=sent_at,
        claim=sender,
        stale_claim=stale_claim,
        first_contact=message.kind not in NOT_CONTACTS,
    )
    matches = [PossibleMatch(i, owners[i.key]) for i in identities if i.key in owners]
    return Resolution(customer_id, True, matches, profile=created)


def _claim_holder_root(
    customers: CustomerRepository, merger: ConversationMerger, holder: str | None, now: str
) -> ProfileState | None:
    """The active profile holding the claim on a sender that now proves its address."""
    return find_root(customers, merger, holder, now).state if holder else None


def _resolve_once(
    customers: CustomerRepository,
    merger: ConversationMerger,
    message: MessageReceived,
    identities: list[Identity],
    now: str,
    sent_at: str,
    make_id: Callable[[str], str],
) -> Resolution:
    verified = [i for i in identities if i.verified]
    # Claims are held on senders: looked up for an unproven sender, or one that may upgrade its holder.
    sender = identities[0]
    owners, claims = customers.owners_and_claims(identities, [sender])
    if not verified:
        holder = claims.get(sender.key)
        return _resolve_claimed(customers, merger, message, identities, owners, holder, now, sent_at, make_id)
    try:
        roots, stale = _owning_roots(customers, merger, verified, owners, now, sent_at)
    except _Dropped:
        return Resolution(None, False, dropped="erased")
    if not roots:
        holder = claims.get(sender.key) if sender.verified else None
        upgraded = _claim_holder_root(customers, merger, holder, now)
        if upgraded is not None:
            # The address proves itself for the first time: its claim profile becomes its owner.
            matches, _ = _attach_missing(
                customers, upgraded, identities, owners, message, now, sent_at, stale
            )
            return Resolution(upgraded.customer_id, False, matches)
        return _new_customer(customers, identities, owners, stale, message, now, sent_at, make_id)
    survivor, merges = _merge_roots(customers, merger, roots, message, verified, now, make_id)
    matches, wrote = _attach_missing(customers, survivor, identities, owners, message, now, sent_at, stale)
    # The profile as read is still the profile when nothing was written (merges reload it).
    profile = None if wrote else survivor.aggregate()
    return Resolution(survivor.customer_id, False, matches, merges, profile=profile)


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
    sent_at = format_timestamp(message.sent_at)
    for attempt in range(MERGE_ATTEMPTS):
        try:
            return _resolve_once(customers, merger, message, identities, now, sent_at, make_id)
        except IdentityErased:
            return Resolution(None, False, dropped="erased")
        except (IdentityTaken, ProfileChanged, MergeRefused):
            # Someone created, merged or changed one of these customers a moment ago.
            _pause(attempt)
    raise ResolutionConflict(f"could not resolve the sender of {message.message_key}")
