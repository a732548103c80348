"""What a confirmed link does: opt a customer out of a channel, or answer a survey.

The customer named in a link may have been merged into another since the message went
out: the opt-out follows ``merged_into`` to the profile that is active now (and, if a
merge commits between reading and writing, follows it again), so the choice is never
written where nobody reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.contracts.contact import ContactChoicesPatch
from shared.contracts.events import FeedbackSubmitted, format_timestamp
from shared.contracts.models import Consent
from shared.domain.links import LinkClaims
from shared.repositories.customers import ERASED, MERGED, CustomerRepository

#: How the unsubscribe link records the opt-out (``consent_<channel>.source``).
CONSENT_SOURCE = "unsubscribe-link"
#: How the preferences link records a choice (``<channel>:preferences-link``).
PREFERENCES_SOURCE = "preferences-link"
#: Merges followed at most (a chain longer than this is a loop: merge, unmerge, merge...).
MAX_MERGE_HOPS = 8

UnsubscribeResult = Literal["opted_out", "unknown", "erased"]


@dataclass(frozen=True)
class Unsubscribed:
    result: UnsubscribeResult
    #: The profile the opt-out was written to (the survivor of any merges).
    customer_id: str | None = None
    #: False when the stored choice was already this one (a second click).
    changed: bool = False


def unsubscribe(customers: CustomerRepository, claims: LinkClaims, now: datetime) -> Unsubscribed:
    """Opt the link's customer out of the link's channel; idempotent.

    ``unknown`` / ``erased``: there is no profile to write to, and so nothing will be
    sent to it either; the caller still tells the person they are unsubscribed.
    """
    consent = Consent(status="opted_out", at=format_timestamp(now), source=CONSENT_SOURCE)
    current = claims.customer_id
    changed = False
    written_to: str | None = None
    for _ in range(MAX_MERGE_HOPS):
        profile = customers.get_profile(current)
        if profile is None:
            return (
                Unsubscribed("unknown")
                if written_to is None
                else Unsubscribed("opted_out", written_to, changed)
            )
        status = profile.get("status")
        if status == ERASED:
            return (
                Unsubscribed("erased")
                if written_to is None
                else Unsubscribed("opted_out", written_to, changed)
            )
        if status == MERGED and profile.get("merged_into"):
            current = str(profile["merged_into"])
            continue
        if written_to != current:
            changed = customers.set_consent(current, claims.channel, consent) or changed
            written_to = current
            # A merge may have committed between the read and the write: look again.
            continue
        return Unsubscribed("opted_out", current, changed)
    if written_to is None:
        raise RuntimeError(f"customer {claims.customer_id}: more than {MAX_MERGE_HOPS} merges to follow")
    return Unsubscribed("opted_out", written_to, changed)


def active_customer(customers: CustomerRepository, customer_id: str) -> str | None:
    """The profile active now behind ``customer_id`` (following merges); None: unknown or erased."""
    current = customer_id
    for _ in range(MAX_MERGE_HOPS):
        profile = customers.get_profile(current)
        if profile is None or profile.get("status") == ERASED:
            return None
        if profile.get("status") == MERGED and profile.get("merged_into"):
            current = str(profile["merged_into"])
            continue
        return current
    return None


def set_preferences(
    customers: CustomerRepository, claims: LinkClaims, patch: ContactChoicesPatch, now: datetime
) -> str | None:
    """Record the choices the customer made on their preferences page; the profile written to
    (None: there is none - unknown or erased)."""
    customer_id = active_customer(customers, claims.customer_id)
    if customer_id is not None:
        customers.set_choices(
            customer_id, patch, format_timestamp(now), f"{claims.channel}:{PREFERENCES_SOURCE}"
        )
    return customer_id


class NoConversation(ValueError):
    """A survey link that names no conversation cannot be counted (HTTP 400)."""


def feedback(
    claims: LinkClaims, survey: Literal["ces", "csat"], score: int, now: datetime
) -> FeedbackSubmitted:
    """The ``feedback.submitted`` event of a survey answer given by link (score already checked)."""
    if not claims.conversation_id:
        raise NoConversation("the link does not name a conversation")
    return FeedbackSubmitted(
        customer_id=claims.customer_id,
        conversation_id=claims.conversation_id,
        survey=survey,
        score=score,
        channel=claims.channel,  # type: ignore[arg-type]  # validated by the model
        answered_at=format_timestamp(now),
        correlation_id=claims.conversation_id,
    )
