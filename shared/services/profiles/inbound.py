"""Recording an inbound message: its customer, their conversation, consent keywords, survey answers.

The sender is resolved (:mod:`shared.services.profiles.resolution`), then the message
is appended to the customer's open conversation (one is opened, or a recently resolved
one reopened, when there is none), idempotently. An opt-out or opt-in keyword changes
the customer's consent instead; a score answering the survey pending on a resolved
conversation is stored as the answer without reopening it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from shared.contracts.events import (
    ConversationFacts,
    Identity,
    MessageReceived,
    MessageRecorded,
    format_timestamp,
)
from shared.contracts.models import Consent
from shared.domain.contact_choices import ChannelKeyword, parse_keyword
from shared.domain.identity import normalise
from shared.domain.retention import retention_days
from shared.domain.routing_rules import load_rules
from shared.domain.surveys import Survey, could_be_score, parse_score
from shared.platform.ids import new_id
from shared.repositories.conversation_aggregates import InboundRecorded
from shared.repositories.conversation_merge import ConversationMerger
from shared.repositories.conversations import ConcurrentUpdate, ConversationRepository
from shared.repositories.customer_profile import CustomerProfile
from shared.repositories.customers import CustomerRepository
from shared.services.profiles.merge import ResolutionConflict, _pause
from shared.services.profiles.resolution import MAX_ATTEMPTS, PossibleMatch, Resolution, resolve_customer

#: The surveys a message can answer.
SURVEYS: tuple[Survey, ...] = ("ces", "csat")


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
    survey: Survey | None = None
    survey_score: int | None = None
    #: The message's number among the conversation's inbound messages (for routing's marker).
    sequence: int | None = None
    #: The customer's profile as recorded with the message (its facts ride on the event).
    profile: CustomerProfile | None = None
    #: The message was a reply keyword choosing the customer's channels (not routed; confirmed).
    keyword: ChannelKeyword | None = None
    #: The conversation as recording the message left it (its facts ride on the event).
    conversation: ConversationFacts | None = None

    def event(self, message: MessageReceived) -> MessageRecorded | None:
        """The ``message.recorded`` event for routing, or None when there is nothing to route
        (a consent keyword, or a replay of an erased person's message)."""
        if self.customer_id is None or self.conversation_id is None:
            return None
        return MessageRecorded(
            kind=message.kind,
            correlation_id=message.message_key,
            customer_id=self.customer_id,
            conversation_id=self.conversation_id,
            message_id=self.message_id,
            channel=message.channel,
            text=message.text,
            sent_at=message.sent_at,
            reply_to=normalise(message.sender),
            new_conversation=self.new_conversation,
            channel_switch=self.channel_switch,
            reopened=self.reopened,
            survey=self.survey,
            survey_score=self.survey_score,
            automated=message.automated,
            sequence=self.sequence,
            customer=self.profile.facts() if self.profile is not None else None,
            conversation=self.conversation,
        )

    def log_fields(self) -> dict[str, Any]:
        """What the log line of a recorded message says."""
        return {
            "message_id": self.message_id,
            "customer_id": self.customer_id,
            "conversation_id": self.conversation_id,
            "new_customer": self.new_customer,
            "new_conversation": self.new_conversation,
            "duplicate": not self.new_message,
            "possible_matches": [m.identity.key for m in self.possible_matches],
            "merges": self.merges,
            "dropped": self.dropped,
            "survey_answer": self.survey,
        }


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


#: Channels on which a reply keyword chooses the customer's channels (shared/domain/contact_choices.py).
KEYWORD_CHANNELS = ("sms", "whatsapp")


def channel_keyword(message: MessageReceived) -> ChannelKeyword | None:
    """The channel choice the message is: a reply keyword on SMS or WhatsApp, else None."""
    if message.kind != "message" or message.channel not in KEYWORD_CHANNELS or message.automated:
        return None
    return parse_keyword(message.text)


def apply_channel_keyword(
    customers: CustomerRepository,
    conversations: ConversationRepository,
    customer_id: str,
    message: MessageReceived,
    keyword: ChannelKeyword,
) -> bool:
    """Record the customer's channel choice (made when the message was sent; a later choice
    stays) and the contact on that channel (its 24-hour window opens). Once per message.
    Returns whether the stored choice changed."""
    if conversations.was_seen(message.message_key):
        return False
    at = format_timestamp(message.sent_at)
    changed = customers.set_choices(customer_id, keyword.patch(), at, f"{message.channel}:keyword")
    profile = customers.profile(customer_id)
    if profile is not None:
        customers.record_contact(customer_id, profile.keyword_contact(message.channel, at))
    conversations.mark_seen(message.message_key, what="channel_keyword")
    return changed


def react(conversations: ConversationRepository, customer_id: str, message: MessageReceived) -> str | None:
    """A reaction is stored on the message it reacts to (ours or the customer's), not as a new
    message; the conversation it changed, or None when that message is unknown here."""
    target = (message.metadata or {}).get("reaction_to")
    if not target:
        return None
    emoji = (message.metadata or {}).get("reaction", "")
    return conversations.set_reaction(
        f"{message.channel}#{target}",
        emoji,
        format_timestamp(message.sent_at),
        normalise(message.sender).key,
        customer_id,
    )


def record_identity_change(customers: CustomerRepository, customer_id: str, message: MessageReceived) -> bool:
    """A provider's system message (WhatsApp ``user_changed_number``, ``customer_identity_changed``)
    is an event on the profile, not a customer message: the new number was linked to the same
    customer when the customer was resolved (its identities ride on the message); this records
    the audit entry - when, which message, from which identity to which. True when recorded."""
    facts = message.metadata or {}
    kind = str(facts.get("system_type") or "unknown")
    entry = {"at": format_timestamp(message.sent_at), "message_id": message.message_key}
    entry["from"] = normalise(message.sender).key
    if facts.get("new_wa_id"):
        entry["to"] = f"whatsapp:{facts['new_wa_id']}"
    if facts.get("identity_hash"):
        entry["identity_hash"] = str(facts["identity_hash"])
    return customers.record_identity_change(customer_id, kind, entry)


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


def _reopen_window_hours() -> int:
    """How long after its resolution a customer's message reopens a conversation (routing rules, cached)."""
    return load_rules().reopen_window_hours


def _append_inbound(
    conversations: ConversationRepository,
    conversation_id: str,
    message: MessageReceived,
    sent_at: str,
    reply_to: Identity,
) -> InboundRecorded:
    """Append the message; a busy conversation (many messages at once) is tried again after a pause."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            return conversations.append_inbound(
                conversation_id,
                message_id=message.message_key,
                channel=message.channel,
                text=message.text,
                sent_at=sent_at,
                reply_to=reply_to,
                attachments=[a.model_dump(exclude_none=True) for a in message.attachments],
                received_at=format_timestamp(message.received_at),
            )
        except ConcurrentUpdate:
            _pause(attempt)
    raise ResolutionConflict(f"conversation {conversation_id} kept changing")


# --------------------------------------------------------------------------- #
# Survey answers
# --------------------------------------------------------------------------- #


def stored_answer(meta: dict[str, Any], message_id: str) -> tuple[Survey, int] | None:
    """The survey and score ``message_id`` answered, from the answers stored on a conversation."""
    for survey in SURVEYS:
        answer = meta.get(survey) or {}
        if answer.get("message_id") == message_id:
            return survey, int(answer["score"])
    return None


def pending_survey(meta: dict[str, Any] | None, customer_id: str) -> Survey | None:
    """The survey a message of ``customer_id`` answers on this conversation: it is theirs,
    resolved, and the survey was asked for this resolution (not an earlier one)."""
    if meta is None or meta.get("status") != "resolved" or meta.get("customer_id") != customer_id:
        return None
    pending = meta.get("survey_pending") or {}
    survey = pending.get("survey")
    if survey not in SURVEYS or pending.get("resolved_at") != meta.get("resolved_at"):
        return None
    return cast(Survey, survey)


def _repeated_answer(
    conversations: ConversationRepository, seen: dict[str, Any], message_id: str
) -> tuple[str, bool, Survey, int] | None:
    """A redelivery: say again what it was, from the answer stored on the conversation."""
    meta = conversations.get_meta(seen["conversation_id"]) or {}
    answer = stored_answer(meta, message_id)
    if answer is None:
        return None
    return seen["conversation_id"], False, answer[0], answer[1]


def _survey_answer(
    conversations: ConversationRepository,
    customer_id: str,
    conversation_id: str | None,
    message: MessageReceived,
    sent_at: str,
) -> tuple[str, bool, Survey, int] | None:
    """Record ``message`` as the answer to the survey pending on the customer's resolved
    conversation (``conversation_id``, else their latest), without reopening it.

    Returns ``(conversation id, new message, survey, score)``, or None when the message is
    no answer (nothing pending, not a score on the survey's scale, already answered): then
    it is an ordinary message, which reopens the conversation as before.
    """
    seen = conversations.seen(message.message_key)
    if seen is not None:
        return _repeated_answer(conversations, seen, message.message_key)
    meta = (
        conversations.get_meta(conversation_id)
        if conversation_id
        else conversations.latest_for_customer(customer_id)
    )
    survey = pending_survey(meta, customer_id)
    if meta is None or survey is None:
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


# --------------------------------------------------------------------------- #
# Recording a message
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class _Inbound:
    """One message on its way into a conversation, with what every attempt needs."""

    customers: CustomerRepository
    conversations: ConversationRepository
    merger: ConversationMerger
    message: MessageReceived
    resolution: Resolution
    now: str
    make_id: Callable[[str], str]
    base: dict[str, Any]
    sent_at: str
    reply_to: Identity
    #: Only a message that reads as a score can answer a survey: the others cost no lookup.
    score_like: bool


def _active_profile(
    customers: CustomerRepository, customer_id: str, known: CustomerProfile | None = None
) -> tuple[str, CustomerProfile | None]:
    """The customer's profile; ``(the survivor's id, None)`` when they were merged a moment ago.

    ``known``: the profile as resolution just read it (and wrote nothing to), used instead of
    reading it again.
    """
    profile = known if known is not None and known.customer_id == customer_id else None
    if profile is None:
        profile = customers.profile(customer_id)
    if profile is None or profile.erased:
        raise ResolutionConflict(f"customer {customer_id} vanished")
    if profile.merged:
        return str(profile.merged_into), None
    return customer_id, profile


def _answered(inbound: _Inbound, customer_id: str, answer: tuple[str, bool, Survey, int]) -> RecordedMessage:
    answered_in, written, survey, score = answer
    return RecordedMessage(
        customer_id=customer_id,
        conversation_id=answered_in,
        new_customer=inbound.resolution.new_customer,
        new_conversation=False,
        new_message=written,
        survey=survey,
        survey_score=score,
        **inbound.base,
    )


def _count_contact(inbound: _Inbound, customer_id: str, profile: CustomerProfile, new_contact: bool) -> None:
    """The customer's contact counters, last contact per channel and retention move per
    conversation and per day (only ever forward: a replayed old message does not shorten
    retention); the other messages write nothing to the profile."""
    update = profile.contact_due(
        inbound.message.channel, inbound.sent_at, inbound.now, retention_days(), new_contact
    )
    if update is not None:
        inbound.customers.record_contact(customer_id, update)


def _append_to(
    inbound: _Inbound,
    customer_id: str,
    profile: CustomerProfile,
    conversation_id: str,
    new_conversation: bool,
    attached: bool,
) -> RecordedMessage:
    """Append the message to ``conversation_id`` and count the contact."""
    message = inbound.message
    recorded = _append_inbound(
        inbound.conversations, conversation_id, message, inbound.sent_at, inbound.reply_to
    )
    conversation_id = recorded.conversation_id
    # Merged into another thread while the message was being written: it belongs there too.
    forwarded_to = inbound.merger.forward_message_if_merged(
        conversation_id, inbound.sent_at, message.message_key
    )
    reopened = recorded.reopened or (attached and not new_conversation)
    if recorded.written:
        _count_contact(inbound, customer_id, profile, new_conversation or reopened)
    return RecordedMessage(
        customer_id=customer_id,
        conversation_id=forwarded_to,
        new_customer=inbound.resolution.new_customer,
        new_conversation=new_conversation,
        new_message=recorded.written,
        channel_switch=recorded.channel_switch,
        reopened=reopened,
        # Numbered in the conversation it was recorded in: another thread numbers its own.
        sequence=recorded.sequence if forwarded_to == conversation_id else None,
        # Likewise its facts: a thread it was forwarded to is read by routing.
        conversation=recorded.conversation if forwarded_to == conversation_id else None,
        profile=profile,
        **inbound.base,
    )


def _into_conversation(inbound: _Inbound, customer_id: str) -> RecordedMessage:
    """The message in the customer's conversation (or as the answer to their pending survey)."""
    conversations, message = inbound.conversations, inbound.message
    #: The message joined a conversation that was not the customer's open one (it may have reopened it).
    attached = False
    known = inbound.resolution.profile
    for _ in range(MAX_ATTEMPTS):
        customer_id, profile = _active_profile(inbound.customers, customer_id, known)
        known = None  # a second attempt reads the profile again
        if profile is None:
            continue  # merged a moment ago: follow
        hinted = _hinted_conversation(conversations, customer_id, message.conversation_hint)
        open_id = profile.open_conversation_id
        if inbound.score_like and (hinted or not open_id):
            answer = _survey_answer(conversations, customer_id, hinted, message, inbound.sent_at)
            if answer is not None:
                return _answered(inbound, customer_id, answer)
        conversation_id = hinted or open_id
        new_conversation = False
        if not conversation_id:
            conversation_id = inbound.make_id("conv")
            if not conversations.open_for(
                customer_id, conversation_id, inbound.now, message.channel, _reopen_window_hours()
            ):
                attached = True
                continue  # another message opened one first (or the customer was merged): look again
            new_conversation = True
        attached = attached or bool(hinted and hinted != open_id)
        return _append_to(inbound, customer_id, profile, conversation_id, new_conversation, attached)
    raise ResolutionConflict(f"could not open a conversation for {customer_id}")


def record_message(
    customers: CustomerRepository,
    conversations: ConversationRepository,
    message: MessageReceived,
    now: str,
    make_id: Callable[[str], str] = new_id,
    merger: ConversationMerger | None = None,
) -> RecordedMessage:
    """Resolve the customer and append the message to their open conversation, idempotently."""
    merger = merger or conversations.merger()
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
    if message.kind == "consent":
        apply_consent(customers, resolution.customer_id, message, conversations)
        return RecordedMessage(
            customer_id=resolution.customer_id,
            conversation_id=None,
            new_customer=resolution.new_customer,
            new_conversation=False,
            new_message=False,
            **base,
        )
    keyword = channel_keyword(message)
    if keyword is not None:
        apply_channel_keyword(customers, conversations, resolution.customer_id, message, keyword)
        return RecordedMessage(
            customer_id=resolution.customer_id,
            conversation_id=None,
            new_customer=resolution.new_customer,
            new_conversation=False,
            new_message=False,
            keyword=keyword,
            **base,
        )
    if message.kind == "reaction":
        react(conversations, resolution.customer_id, message)
    if message.kind in ("system", "reaction"):
        if message.kind == "system":
            record_identity_change(customers, resolution.customer_id, message)
        return RecordedMessage(
            customer_id=resolution.customer_id,
            conversation_id=None,
            new_customer=resolution.new_customer,
            new_conversation=False,
            new_message=False,
            **base,
        )
    inbound = _Inbound(
        customers,
        conversations,
        merger,
        message,
        resolution,
        now,
        make_id,
        base,
        sent_at=format_timestamp(message.sent_at),
        reply_to=normalise(message.sender),
        score_like=message.kind == "message" and could_be_score(message.text),
    )
    return _into_conversation(inbound, resolution.customer_id)
