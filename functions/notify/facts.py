"""What notify needs to know of the customer and the conversation, read defensively."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from shared.contracts.events import Identity, InboundFacts
from shared.domain.contact_choices import parse_window, quiet_zone
from shared.outbound.policy import ConversationFacts, CustomerFacts, QuietHours
from shared.platform import settings
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository


def customer_facts(customer_id: str, customers: CustomerRepository) -> CustomerFacts | None:
    """What notify needs of a customer: their identities and contact choices
    (:class:`shared.contracts.contact.ContactChoices`, read through the repository).

    Quiet hours: the customer's window, else the company's (``OMNI_QUIET_HOURS``), in the
    customer's zone, else their phone number's, else the company's (``OMNI_DEFAULT_TIMEZONE``).
    """
    customer = customers.get(customer_id)  # the profile and the identities, in one query
    if customer is None:
        return None
    if customer.status == "erased":
        return CustomerFacts(customer_id)  # erased: no identities, nobody can be reached
    choices = customer.contact
    identities = _identities(customer.identities)
    numbers = [i.value for i in identities if i.type in ("phone", "whatsapp")]
    window = choices.quiet_hours or parse_window(settings.env_str(settings.OMNI_QUIET_HOURS))
    return CustomerFacts(
        customer_id=customer_id,
        identities=tuple(identities),
        consent={channel: consent.status for channel, consent in customer.consent.items()},
        preferred=tuple(choices.channel_preferences),
        all_channels=choices.channel_mode == "all",
        language=choices.language,
        timezone=quiet_zone(choices.timezone, numbers, settings.env_str(settings.OMNI_DEFAULT_TIMEZONE)),
        quiet_hours=QuietHours.parse(window.model_dump()) if window else QuietHours(),
        undeliverable=frozenset(f"{i.type}:{i.value}" for i in customer.identities if i.undeliverable),
        last_seen={c: at for c, raw in customer.last_seen.items() if (at := parse_time(raw)) is not None},
    )


def with_last_seen(
    conversation: ConversationFacts | None, customer: CustomerFacts
) -> ConversationFacts | None:
    """The conversation's latest inbound message per channel, or the customer's when that is later
    (a window opened by a message outside the conversation, or outside any)."""
    if not customer.last_seen:
        return conversation
    base = conversation or ConversationFacts(conversation_id="", customer_opened=False)
    latest = dict(base.last_inbound_at)
    for channel, at in customer.last_seen.items():
        if channel not in latest or at > latest[channel]:
            latest[channel] = at
    return replace(base, last_inbound_at=latest)


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
    """What notify needs of the conversation: its state (META) and its latest ``recent`` messages.

    Bounded whatever the conversation's length. The customer's latest inbound message (its
    channel and time) is on META, so it is known even when it is older than those messages.
    """
    state = conversations.state(conversation_id)
    if state is None:
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
    latest_channel, latest_at = state.last_inbound_channel, parse_time(state.last_inbound_at)
    if (
        latest_channel is not None
        and latest_at is not None
        and (latest_channel not in last_inbound or latest_at > last_inbound[latest_channel])
    ):
        last_inbound[latest_channel] = latest_at
    reply_to = None
    if state.reply_to is not None:
        try:
            reply_to = Identity(**state.reply_to)
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


def parse_time(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
