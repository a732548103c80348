"""Retention: a customer's data is erased a configurable number of days after their last contact.

Pure day arithmetic; the repository (:mod:`shared.repositories.customers`) stores the
result and :func:`shared.services.profiles.erasure.sweep_retention` acts on it.

Every active profile carries ``retain_until_day`` (``YYYY-MM-DD``): the day of the
customer's last contact plus ``OMNI_RETENTION_DAYS`` (default 365), the last day their
data is kept. It is the partition key of the sparse ``retention`` index of the
``customers`` table (sort key ``customer_id``), so the hourly sweep reads one index
partition per past day of a bounded look-back instead of scanning the table. The day
is set when the profile is created and refreshed in the same write that records each
inbound message (never an extra request per message); it only ever moves forward
there, so a replayed old message does not shorten anyone's retention.

A "contact" is an inbound message (its provider send time, but never later than when
it was processed) or the creation of the profile. Outbound messages and agents'
edits are not contacts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from shared.platform import settings

RETENTION_ENV = settings.OMNI_RETENTION_DAYS
DEFAULT_RETENTION_DAYS = 365
#: Profile attribute: the last day the customer's data is kept (partition key of the index).
RETAIN_ATTRIBUTE = "retain_until_day"
#: Sparse index of the customers table: ``retain_until_day`` / ``customer_id``.
RETENTION_INDEX = "retention"
#: Past days the sweep reads. Every day is read by about 24 x 90 runs, so a sweep that
#: was down (or a backlog that did not fit into one run) is caught up later.
LOOKBACK_DAYS = 90


def retention_days(environ: Mapping[str, str] | None = None) -> int:
    """``OMNI_RETENTION_DAYS`` (default 365); a value below one day is a configuration error."""
    raw = (environ if environ is not None else os.environ).get(RETENTION_ENV, "")
    days = int(raw) if raw.strip() else DEFAULT_RETENTION_DAYS
    if days < 1:
        raise ValueError(f"{RETENTION_ENV} must be at least 1, not {days}")
    return days


def day_of(timestamp: str) -> str:
    """``YYYY-MM-DD`` of an ISO-8601 UTC timestamp (or of a day)."""
    return date.fromisoformat(timestamp[:10]).isoformat()


def contact_day(sent_at: str, now: str) -> str:
    """The day a message counts as contact: its send day, unless the provider's clock is ahead of ours."""
    return min(day_of(sent_at), day_of(now))


def retain_until(last_contact_day: str, days: int) -> str:
    """The last day data is kept when the last contact was on ``last_contact_day``."""
    return (date.fromisoformat(last_contact_day) + timedelta(days=days)).isoformat()


def later(a: str | None, b: str | None) -> str | None:
    """The later of two days (either may be missing)."""
    if a is None or b is None:
        return a or b
    return max(a, b)


def is_due(retain_until_day: str, today: str) -> bool:
    """Retention has run out: the kept period ended before ``today``."""
    return retain_until_day < day_of(today)


def last_contact_day(profile: Mapping[str, Any]) -> str | None:
    """The latest contact a profile records: a channel's last inbound message or its creation."""
    days = [day_of(str(at)) for at in (profile.get("last_seen") or {}).values() if at]
    if profile.get("created_at"):
        days.append(day_of(str(profile["created_at"])))
    return max(days) if days else None


def profile_retain_until(profile: Mapping[str, Any], days: int) -> str | None:
    """``retain_until_day`` as the profile's own contact record says it should be."""
    last = last_contact_day(profile)
    return retain_until(last, days) if last else None


def due_buckets(today: str, lookback: int = LOOKBACK_DAYS) -> list[str]:
    """Index partitions the sweep reads: the ``lookback`` days before ``today``, oldest first.

    Today's partition is not read: its customers are kept until the end of the day.
    """
    if lookback < 1:
        raise ValueError("the look-back must be at least one day")
    end = date.fromisoformat(day_of(today))
    return [(end - timedelta(days=n)).isoformat() for n in range(lookback, 0, -1)]
