"""What notify needs to know of the customer and the conversation, read defensively."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.contracts.events import Identity, InboundFacts
from shared.outbound.policy import ConversationFacts, CustomerFacts, QuietHours
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository, to_customer


def customer_facts(customer_id: str, customers: CustomerRepository) -> CustomerFacts | None:
    """What notify needs of a customer, read defensively from the profile.

    Profile attributes used: ``preferences.channels`` (ordered list), ``preferences.all``
    (bool: every listed channel), ``language``, ``timezone`` (IANA), ``quiet_hours``
    (``{"start": "HH:MM", "end": "HH:MM"}``, also accepted under ``preferences``) and
    ``consent_<channel>`` (``{status, at, source}``) via :meth:`CustomerRepository.get`.
    """
    state = customers.load(customer_id)  # the profile and the identities, in one query
    if state is None:
        return None
    customer = to_customer(state)
    profile = state.profile
    if profile.get("erased_at") or profile.get("erased"):
        return CustomerFacts(customer_id)  # erased: no identities, nobody can be reached
    raw_preferences = profile.get("preferences")
    preferences: dict[str, Any] = raw_preferences if isinstance(raw_preferences, dict) else {}
    quiet_raw = profile.get("quiet_hours") or preferences.get("quiet_hours")
    identities = _identities(customer.identities)
    return CustomerFacts(
        customer_id=customer_id,
        identities=tuple(identities),
        consent={channel: consent.status for channel, consent in customer.consent.items()},
        preferred=_preferred(preferences),
        all_channels=bool(preferences.get("all") or preferences.get("all_channels")),
        language=_str_or_none(profile.get("language") or preferences.get("language")),
        timezone=_str_or_none(profile.get("timezone") or preferences.get("timezone")),
        quiet_hours=QuietHours.parse(quiet_raw) if quiet_raw else QuietHours(),
        undeliverable=frozenset(f"{i.type}:{i.value}" for i in customer.identities if i.undeliverable),
    )


def _preferred(preferences: dict[str, Any]) -> tuple[str, ...]:
    """``preferences.channels``, in order (anything but a list of strings: none)."""
    channels = preferences.get("channels") or []
    return tuple(str(c) for c in channels if isinstance(c, str)) if isinstance(channels, list) else ()


def _identities(known: Any) -> list[Identity]:
    """The profile's identities that are still valid (one broken entry does not hide the rest)."""
    identities = []
    for identity in known:
        try:
            identities.append(Identity(type=identity.type, value=identity.value, verified=identity.verified))  # type: ignore[arg-type]
        except ValueError:
            continue
    return identities


#: How many of the conversation's latest messages notify reads (the channels' windows, e-mail threading).
RECENT_MESSAGES = 50


def conversation_facts(
    conversation_id: str, conversations: ConversationRepository, recent: int = RECENT_MESSAGES
) -> ConversationFacts | None:
    """What notify needs of the conversation: its META item and its latest ``recent`` messages.

    Bounded whatever the conversation's length. The customer's latest inbound message (its
    channel and time) is on META, so it is known even when it is older than those messages.
    """
    meta = conversations.get_meta(conversation_id)
    if meta is None:
        return None
    last_inbound: dict[str, datetime] = {}
    last_email_id = None
    for message in reversed(conversations.messages(conversation_id, limit=recent)):
        if message.direction != "inbound":
            continue
        at = parse_time(message.timestamp)
        if at is not None and (message.channel not in last_inbound or at > last_inbound[message.channel]):
            last_inbound[message.channel] = at
        if message.channel == "email" and last_email_id is None:
            last_email_id = message.message_id.removeprefix("email#")
    latest_channel, latest_at = meta.get("last_inbound_channel"), parse_time(meta.get("last_inbound_at"))
    if (
        isinstance(latest_channel, str)
        and latest_at is not None
        and (latest_channel not in last_inbound or latest_at > last_inbound[latest_channel])
    ):
        last_inbound[latest_channel] = latest_at
    reply_to = None
    if isinstance(meta.get("reply_to"), dict):
        try:
            reply_to = Identity(**meta["reply_to"])
        except ValueError:
            reply_to = None
    latest = max(last_inbound, key=lambda c: last_inbound[c]) if last_inbound else None
    return ConversationFacts(
        conversation_id=conversation_id,
        customer_opened=bool(last_inbound),
        last_inbound_channel=latest,
        reply_to=reply_to,
        last_inbound_at=last_inbound,
        last_email_message_id=last_email_id,
    )


def answered_conversation(
    conversation_id: str, answering: InboundFacts, reply_to: Identity | None
) -> ConversationFacts:
    """What a reply needs of the conversation, from the customer's message it answers (routing
    sent it along): the customer wrote, on that channel, at that time - the service window of
    the channel the reply goes out on is measured from it, an e-mail reply threads under it.
    Nothing is read."""
    return ConversationFacts(
        conversation_id=conversation_id,
        customer_opened=True,
        last_inbound_channel=answering.channel,
        reply_to=reply_to,
        last_inbound_at={answering.channel: answering.sent_at},
        last_email_message_id=(
            answering.message_id.removeprefix("email#") if answering.channel == "email" else None
        ),
    )


def _str_or_none(value: Any) -> str | None:
    return str(value) if isinstance(value, str) and value else None


def parse_time(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
