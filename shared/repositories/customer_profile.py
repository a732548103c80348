"""The customer profile as a typed aggregate: the ``PROFILE`` item of the ``customers`` table
(layout in :mod:`shared.repositories.customers`), read once and handed to the services on the
inbound path, so they never handle the raw item.

The aggregate also says when recording a message has to write the profile at all
(:meth:`CustomerProfile.contact_due`): the contact counters, the last contact per channel and
the retention day move per conversation and per day, not per message - a known customer
writing again on the same day in the same conversation costs no write on this table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Any

from shared.contracts.events import ProfileFacts
from shared.domain.retention import RETAIN_ATTRIBUTE, contact_day, day_of, later, retain_until
from shared.repositories.customer_items import ACTIVE, CONSENT_PREFIX, ERASED, MERGED

#: Days of per-day contact counters kept on the profile.
CONTACT_WINDOW_DAYS = 30
#: ``last_seen`` of a channel moves when a message is this much later than the one recorded:
#: it is never more than this behind the customer's latest message on the channel (notify
#: measures the 24-hour service windows from it, so they are judged closed at most this early).
LAST_SEEN_REFRESH = timedelta(hours=1)

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class ContactUpdate:
    """What recording one message changes of the profile's contact bookkeeping."""

    channel: str
    sent_at: str
    day: str
    #: Per-day counters older than the window, dropped in the same write.
    forget_days: tuple[str, ...]
    #: The message is the latest seen on its channel (``last_seen`` moves).
    newer: bool
    retain_until_day: str | None
    #: The message is a contact (the day's counter moves); False: only ``last_seen`` moves.
    count: bool = True


@dataclass(frozen=True)
class CustomerProfile:
    """A customer's profile item, typed. ``version`` is the optimistic lock of every write a
    merge must not overwrite."""

    customer_id: str
    status: str = ACTIVE
    version: int = 0
    created_at: str | None = None
    display_name: str | None = None
    tags: tuple[str, ...] = ()
    #: name -> ``{value, at, source}`` (``name``, ``language``, ``timezone``, custom ones).
    attributes: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: _EMPTY)
    #: channel -> ``{status, at, source}``.
    consent: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: _EMPTY)
    #: channel -> provider timestamp of the latest recorded contact on it.
    last_seen: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    #: ``YYYY-MM-DD`` -> contacts that day (the last 30 days).
    contacts: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    retain_until_day: str | None = None
    open_conversation_id: str | None = None
    merged_into: str | None = None
    erased_at: str | None = None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> CustomerProfile:
        return cls(
            customer_id=str(item["customer_id"]),
            status=str(item.get("status") or ACTIVE),
            version=int(item.get("version", 0)),
            created_at=item.get("created_at"),
            display_name=item.get("display_name"),
            tags=tuple(str(t) for t in item.get("tags") or ()),
            attributes=MappingProxyType(dict(item.get("attributes") or {})),
            consent=MappingProxyType(
                {k.removeprefix(CONSENT_PREFIX): v for k, v in item.items() if k.startswith(CONSENT_PREFIX)}
            ),
            last_seen=MappingProxyType(dict(item.get("last_seen") or {})),
            contacts=MappingProxyType({str(d): int(n) for d, n in (item.get("contacts") or {}).items()}),
            retain_until_day=item.get(RETAIN_ATTRIBUTE),
            open_conversation_id=item.get("open_conversation_id"),
            merged_into=item.get("merged_into"),
            erased_at=item.get("erased_at"),
        )

    # -- state ---------------------------------------------------------------- #
    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    @property
    def merged(self) -> bool:
        return self.status == MERGED

    @property
    def erased(self) -> bool:
        return self.status == ERASED

    def attribute(self, name: str) -> Any:
        """The value of a profile attribute (None when unset)."""
        value = self.attributes.get(name)
        return value.get("value") if value else None

    @property
    def name(self) -> str | None:
        return self.display_name or self.attribute("name")

    # -- what the next step needs --------------------------------------------- #
    def facts(self) -> ProfileFacts:
        """What routing decides on, carried by ``message.recorded`` so it does not read the profile."""
        language = self.attribute("language")
        return ProfileFacts(
            version=self.version,
            display_name=self.name,
            language=str(language) if isinstance(language, str) else None,
            tags=list(self.tags),
            consent={channel: str(c.get("status")) for channel, c in self.consent.items()},
        )

    # -- contacts --------------------------------------------------------------- #
    def contact_due(
        self, channel: str, sent_at: str, now: str, retention_days: int, new_contact: bool
    ) -> ContactUpdate | None:
        """The contact bookkeeping ``sent_at`` changes, or None when it changes nothing.

        A contact is a conversation opened (or reopened: ``new_contact``), or the first message
        of a day on a channel. Later messages of the same day on the same channel in the same
        conversation change neither the per-day counter nor the retention day; ``last_seen``
        moves for one of them only when it is :data:`LAST_SEEN_REFRESH` after the recorded one.
        Nothing is written for the others.
        """
        day = sent_at[:10]
        if self.last_seen.get(channel) == sent_at:
            return None  # this very message was counted (the profile was created with it)
        keep = later(self.retain_until_day, retain_until(contact_day(sent_at, now), retention_days))
        seen = self.last_seen.get(channel)
        first_of_day = seen is None or day_of(sent_at) > day_of(seen)
        count = new_contact or first_of_day
        if not (count or keep != self.retain_until_day or _later_by(sent_at, seen, LAST_SEEN_REFRESH)):
            return None
        cutoff = (date.fromisoformat(day) - timedelta(days=CONTACT_WINDOW_DAYS)).isoformat()
        return ContactUpdate(
            channel=channel,
            sent_at=sent_at,
            day=day,
            forget_days=tuple(d for d in self.contacts if d < cutoff),
            newer=sent_at > (seen or ""),
            retain_until_day=keep,
            count=count,
        )

    def keyword_contact(self, channel: str, sent_at: str) -> ContactUpdate:
        """A reply keyword choosing the customer's channels: a contact on ``channel`` (its
        service window opens), outside any conversation."""
        return ContactUpdate(
            channel=channel,
            sent_at=sent_at,
            day=sent_at[:10],
            forget_days=(),
            newer=sent_at > (self.last_seen.get(channel) or ""),
            retain_until_day=None,
        )


def _later_by(at: str, than: str | None, delta: timedelta) -> bool:
    """``at`` is at least ``delta`` after ``than`` (both ISO-8601; unparsable: False)."""
    if than is None:
        return True
    try:
        return (
            datetime.fromisoformat(at.replace("Z", "+00:00"))
            - datetime.fromisoformat(than.replace("Z", "+00:00"))
            >= delta
        )
    except ValueError:
        return False
