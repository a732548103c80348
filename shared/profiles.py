"""Profile merge: which customer sent a message, and which conversation it belongs to.

The service layer between the profile-merge handler and the repositories. Identity
resolution in this first version: a message is attributed to the owner of its first
verified identity (the channel-proven sender first); verified identities nobody owns
yet are attached to that customer; claimed identities are recorded on the profile but
never used to find or merge a customer. When a verified identity is owned by another
customer the two are reported as a possible match and not merged automatically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shared.events import Identity, MessageReceived, format_timestamp
from shared.identity import normalise
from shared.ids import new_id
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository, IdentityTaken

MAX_ATTEMPTS = 5


class ResolutionConflict(RuntimeError):
    """Concurrent writers kept changing the same identities or conversation; retry later."""


@dataclass(frozen=True)
class PossibleMatch:
    identity: Identity
    other_customer_id: str | None


@dataclass
class RecordedMessage:
    customer_id: str
    conversation_id: str
    message_id: str
    new_customer: bool
    new_conversation: bool
    #: False when the message had been recorded before (a redelivery).
    new_message: bool
    possible_matches: list[PossibleMatch] = field(default_factory=list)


def identities_of(message: MessageReceived) -> list[Identity]:
    """Normalised identities of a message, sender first, each once (verified wins)."""
    by_key: dict[str, Identity] = {}
    for raw in (message.sender, *message.identities):
        identity = normalise(raw)
        known = by_key.get(identity.key)
        if known is None or (identity.verified and not known.verified):
            by_key[identity.key] = identity
    return list(by_key.values())


def resolve_customer(
    customers: CustomerRepository,
    message: MessageReceived,
    now: str,
    make_id: Callable[[str], str] = new_id,
) -> tuple[str, bool, list[PossibleMatch]]:
    """The customer who sent ``message``: ``(customer_id, created, possible matches)``."""
    identities = identities_of(message)
    verified = [i for i in identities if i.verified]
    for _ in range(MAX_ATTEMPTS):
        owner = next((o for o in (customers.owner_of(i) for i in verified) if o), None)
        if owner is None:
            customer_id = make_id("cus")
            try:
                customers.create(customer_id, identities, now, message.display_name, source=message.channel)
            except IdentityTaken:
                continue  # someone created this person a moment ago: find them again
            return customer_id, True, []
        customer = customers.get(owner)
        known = {(i.type, i.value): i.verified for i in customer.identities} if customer else {}
        matches: list[PossibleMatch] = []
        for identity in identities:
            had = known.get((identity.type, identity.value))
            if had is not None and (had or not identity.verified):
                continue  # on the profile already, at least as strongly as now
            try:
                customers.attach(owner, identity, now, source=message.channel)
            except IdentityTaken as taken:
                matches.append(PossibleMatch(identity, taken.owner))
        return owner, False, matches
    raise ResolutionConflict(f"could not resolve the sender of {message.message_key}")


def record_message(
    customers: CustomerRepository,
    conversations: ConversationRepository,
    message: MessageReceived,
    now: str,
    make_id: Callable[[str], str] = new_id,
) -> RecordedMessage:
    """Resolve the customer and append the message to their open conversation, idempotently."""
    customer_id, new_customer, matches = resolve_customer(customers, message, now, make_id)
    reply_to = normalise(message.sender)
    for _ in range(MAX_ATTEMPTS):
        profile = customers.get_profile(customer_id)
        if profile is None:
            raise ResolutionConflict(f"customer {customer_id} vanished")
        conversation_id = profile.get("open_conversation_id")
        new_conversation = False
        if not conversation_id:
            conversation_id = make_id("conv")
            if not conversations.open_for(customer_id, conversation_id, now, message.channel):
                continue  # another message opened one first: use that
            new_conversation = True
        new_message = conversations.record_inbound(
            conversation_id,
            message_id=message.message_key,
            channel=message.channel,
            text=message.text,
            sent_at=format_timestamp(message.sent_at),
            reply_to=reply_to,
            attachments=[a.model_dump(exclude_none=True) for a in message.attachments],
            received_at=format_timestamp(message.received_at),
        )
        return RecordedMessage(
            customer_id=customer_id,
            conversation_id=conversation_id,
            message_id=message.message_key,
            new_customer=new_customer,
            new_conversation=new_conversation,
            new_message=new_message,
            possible_matches=matches,
        )
    raise ResolutionConflict(f"could not open a conversation for {customer_id}")
