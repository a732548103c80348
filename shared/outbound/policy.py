"""The rules of outbound delivery, as pure functions: no AWS, no clock, no network.

* **Channel choice.** A reply (or acknowledgement) goes out on the channel the customer
  last wrote on in that conversation, to the identity that wrote. A notification follows
  the customer's preference list (first channel that works, or every listed channel when
  the customer asked for all of them), skipping channels without an address or consent;
  the caller falls back to the next candidate when one fails permanently.
* **Consent.** An opt-out (SMS STOP, e-mail unsubscribe, ...) is honoured for everything
  except replies inside a conversation the customer opened; marketing needs an opt-in.
* **Quiet hours** in the customer's time zone (default 21:00-08:00) defer notifications
  that are not urgent to the next allowed instant; DST gaps and folds are handled.
* **Service windows.** WhatsApp free text only within 24 h of the customer's last inbound
  WhatsApp message (an approved template otherwise); Messenger likewise, without templates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.contracts.events import Identity, NotificationRequested

#: The channel on which an identity is reached.
CHANNEL_OF_IDENTITY = {
    "webchat": "webchat",
    "phone": "sms",
    "whatsapp": "whatsapp",
    "email": "email",
    "messenger": "messenger",
    "instagram": "instagram",
}
#: The identity type each channel sends to.
IDENTITY_OF_CHANNEL = {channel: identity for identity, channel in CHANNEL_OF_IDENTITY.items()}
#: A voice callback rings the customer's phone; never chosen by default (not in the order below).
IDENTITY_OF_CHANNEL["voice"] = "phone"
#: A channel without a consent record of its own follows this one's (a STOP on the number covers calls).
CONSENT_FALLBACK = {"voice": "sms"}
#: Order used for a customer who stated no preference: richest reach first.
DEFAULT_CHANNEL_ORDER = ("whatsapp", "sms", "email", "messenger", "webchat")
#: Channels whose provider allows free text only within a window after the customer wrote.
SERVICE_WINDOW = timedelta(hours=24)
WINDOWED_CHANNELS = frozenset({"whatsapp", "messenger", "instagram"})
DEFAULT_TIMEZONE = "UTC"

OPTED_IN = "opted_in"
OPTED_OUT = "opted_out"


# --------------------------------------------------------------------------- #
# Facts about the customer and the conversation (read by notify, passed in here)
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class QuietHours:
    """Local wall-clock interval with no non-urgent notifications; ``start == end`` means none."""

    start: time = time(21, 0)
    end: time = time(8, 0)

    @classmethod
    def parse(cls, raw: Any) -> QuietHours:
        """From a profile value ``{"start": "22:00", "end": "07:30"}``; the default when unusable."""
        if isinstance(raw, Mapping):
            try:
                return cls(time.fromisoformat(str(raw["start"])), time.fromisoformat(str(raw["end"])))
            except (KeyError, ValueError):
                return cls()
        return cls()

    @property
    def disabled(self) -> bool:
        return self.start == self.end

    def covers(self, local: time) -> bool:
        """Whether the local wall-clock time ``local`` is inside the quiet interval."""
        if self.disabled:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # wraps past midnight


@dataclass(frozen=True)
class CustomerFacts:
    customer_id: str
    identities: tuple[Identity, ...] = ()
    #: channel -> ``opted_in`` | ``opted_out``; a channel missing has no recorded choice.
    consent: Mapping[str, str] = field(default_factory=dict)
    #: Channels in the customer's order of preference; empty = no stated preference.
    preferred: tuple[str, ...] = ()
    #: The customer asked for updates on every preferred channel, not just the first that works.
    all_channels: bool = False
    language: str | None = None
    timezone: str | None = None
    quiet_hours: QuietHours = field(default_factory=QuietHours)
    #: Keys (``type:value``) of identities a provider reported undeliverable (an e-mail bounce).
    undeliverable: frozenset[str] = frozenset()
    #: channel -> the customer's latest inbound message on it, in any conversation or none
    #: (a reply keyword): the 24-hour windows are the customer's, not a conversation's.
    last_seen: Mapping[str, datetime] = field(default_factory=dict)

    def address(self, channel: str) -> Identity | None:
        """The identity to reach the customer on ``channel`` (verified ones first, newest last);
        an identity marked undeliverable is never chosen."""
        wanted = IDENTITY_OF_CHANNEL.get(channel)
        matches = [i for i in self.identities if i.type == wanted and not self.cannot_reach(i)]
        if not matches:
            return None
        verified = [i for i in matches if i.verified]
        return (verified or matches)[-1]

    def cannot_reach(self, identity: Identity) -> bool:
        """A provider reported ``identity`` undeliverable (a hard bounce)."""
        return identity.key in self.undeliverable

    def bounced_on(self, channel: str) -> bool:
        """The customer has an address on ``channel``, and every one of them is undeliverable."""
        wanted = IDENTITY_OF_CHANNEL.get(channel)
        matches = [i for i in self.identities if i.type == wanted]
        return bool(matches) and all(self.cannot_reach(i) for i in matches)

    def consent_for(self, channel: str) -> str | None:
        """The channel's recorded consent, else the one it follows (voice follows SMS)."""
        status = self.consent.get(channel)
        if status is None and channel in CONSENT_FALLBACK:
            status = self.consent.get(CONSENT_FALLBACK[channel])
        return status

    def zone(self) -> ZoneInfo:
        return zone_or_default(self.timezone)


@dataclass(frozen=True)
class ConversationFacts:
    conversation_id: str
    #: The conversation began with a message from the customer (not an outbound campaign).
    customer_opened: bool = True
    last_inbound_channel: str | None = None
    #: The identity of the customer's latest inbound message.
    reply_to: Identity | None = None
    #: channel -> when the customer last wrote on it in this conversation (tz-aware).
    last_inbound_at: Mapping[str, datetime] = field(default_factory=dict)
    #: Message-ID of the customer's latest e-mail (for In-Reply-To), if any.
    last_email_message_id: str | None = None


def zone_or_default(name: str | None) -> ZoneInfo:
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo(DEFAULT_TIMEZONE)


# --------------------------------------------------------------------------- #
# Consent
# --------------------------------------------------------------------------- #
def consent_refusal(status: str | None, urgency: str, exempt: bool) -> str | None:
    """Why consent forbids the message, or None when it may go out.

    ``exempt``: a reply inside a conversation the customer opened (answering is what
    they asked for). Marketing needs an explicit opt-in; anything else only needs the
    absence of an opt-out.
    """
    if exempt:
        return None
    if urgency == "marketing":
        return None if status == OPTED_IN else "no_marketing_opt_in"
    return "opted_out" if status == OPTED_OUT else None


# --------------------------------------------------------------------------- #
# Channel choice
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class Candidate:
    channel: str
    to: Identity


@dataclass(frozen=True)
class ChannelPlan:
    #: Channels to try, in order.
    candidates: tuple[Candidate, ...]
    #: ``(channel, reason)`` for every channel left out.
    skipped: tuple[tuple[str, str], ...] = ()
    #: Send on every candidate (the customer asked for all channels) instead of the first that works.
    fan_out: bool = False

    def reason(self) -> str:
        if not self.skipped:
            return "no_channel: the customer has no reachable channel"
        details = ", ".join(f"{channel}: {why}" for channel, why in self.skipped)
        return f"no_channel: every channel was ruled out ({details})"


def is_reply(request: NotificationRequested) -> bool:
    return request.kind in ("reply", "acknowledgement") and request.conversation_id is not None


def choose_channels(
    request: NotificationRequested, customer: CustomerFacts, conversation: ConversationFacts | None
) -> ChannelPlan:
    if is_reply(request):
        return _reply_channel(request, customer, conversation)
    exempt = False
    if request.channel is not None:
        wanted: Iterable[str] = (request.channel,)
    elif customer.preferred:
        wanted = customer.preferred
    else:
        wanted = DEFAULT_CHANNEL_ORDER
    candidates: list[Candidate] = []
    skipped: list[tuple[str, str]] = []
    for channel in dict.fromkeys(wanted):
        to = (
            request.to if request.to is not None and request.channel == channel else customer.address(channel)
        )
        if to is not None and customer.cannot_reach(to):
            skipped.append((channel, "undeliverable"))  # the address the request names bounced
            continue
        if to is None:
            skipped.append((channel, "undeliverable" if customer.bounced_on(channel) else "no_address"))
            continue
        refusal = consent_refusal(customer.consent_for(channel), request.urgency, exempt)
        if refusal:
            skipped.append((channel, refusal))
            continue
        candidates.append(Candidate(channel, to))
    return ChannelPlan(
        tuple(candidates),
        tuple(skipped),
        fan_out=customer.all_channels and request.channel is None and bool(customer.preferred),
    )


def _reply_channel(
    request: NotificationRequested, customer: CustomerFacts, conversation: ConversationFacts | None
) -> ChannelPlan:
    to = request.to or (conversation.reply_to if conversation else None)
    channel = request.channel or (conversation.last_inbound_channel if conversation else None)
    if channel is None and to is not None:
        channel = CHANNEL_OF_IDENTITY.get(to.type)
    if channel is None or to is None:
        return ChannelPlan((), (("conversation", "no_reply_address"),))
    if customer.cannot_reach(to):
        # The address bounced: another one of the customer's on the same channel, else nothing.
        other = customer.address(channel)
        if other is None:
            return ChannelPlan((), ((channel, "undeliverable"),))
        to = other
    exempt = conversation is not None and conversation.customer_opened
    refusal = consent_refusal(customer.consent_for(channel), request.urgency, exempt)
    if refusal:
        return ChannelPlan((), ((channel, refusal),))
    return ChannelPlan((Candidate(channel, to),))


# --------------------------------------------------------------------------- #
# Quiet hours
# --------------------------------------------------------------------------- #
def defers_for_quiet_hours(request: NotificationRequested) -> bool:
    """Replies answer a customer who is writing now; urgent requests say they cannot wait."""
    return not is_reply(request) and not request.urgent


def next_allowed_time(now: datetime, zone: ZoneInfo, quiet: QuietHours) -> datetime | None:
    """The first instant at or after ``now`` outside quiet hours (UTC); None when ``now`` is allowed."""
    local = now.astimezone(zone)
    if not quiet.covers(local.time().replace(tzinfo=None)):
        return None
    end_day = local.date()
    if quiet.start > quiet.end and local.time().replace(tzinfo=None) >= quiet.start:
        end_day += timedelta(days=1)
    return _first_instant_at_or_after(end_day, quiet.end, zone)


def _first_instant_at_or_after(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The earliest UTC instant whose local wall-clock time on ``day`` is ``wall`` or later.

    An ambiguous time (the clocks fall back) resolves to its first occurrence. A time that
    does not exist (the clocks spring forward over it) resolves to the transition itself,
    the first instant after it whose local time is later.
    """
    naive = datetime.combine(day, wall)
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == naive:
        return first
    second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    # Transitions happen on whole seconds: bisect the seconds between the two readings.
    low, high = int(min(first, second).timestamp()), int(max(first, second).timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


# --------------------------------------------------------------------------- #
# Service windows
# --------------------------------------------------------------------------- #
def window_open(channel: str, conversation: ConversationFacts | None, now: datetime) -> bool:
    """Whether free text may go out on ``channel`` now; True for channels without a window."""
    if channel not in WINDOWED_CHANNELS:
        return True
    last = conversation.last_inbound_at.get(channel) if conversation else None
    return last is not None and now - last < SERVICE_WINDOW
