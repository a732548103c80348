"""The API's read model of a customer, made from the items of the customer's partition."""

from __future__ import annotations

from shared.contracts.models import AttributeValue, Consent, Customer, CustomerIdentity, MergeSummary
from shared.repositories.customer_choices import read_choices
from shared.repositories.customer_items import CONSENT_PREFIX, IDENTITY_CHANGE_PREFIX, ProfileState


def contact_counts(contacts: dict[str, int], today: str) -> tuple[int, int]:
    """Inbound messages in the last 7 and 30 days (``today`` included), from per-day counters."""
    from datetime import date, timedelta  # noqa: PLC0415

    day = date.fromisoformat(today[:10])
    week = (day - timedelta(days=6)).isoformat()
    month = (day - timedelta(days=29)).isoformat()
    return (
        sum(n for d, n in contacts.items() if week <= d <= today[:10]),
        sum(n for d, n in contacts.items() if month <= d <= today[:10]),
    )


def to_customer(state: ProfileState, today: str | None = None) -> Customer:
    from shared.contracts.events import format_timestamp, utc_now  # noqa: PLC0415

    profile = state.profile
    attributes = {k: AttributeValue(**v) for k, v in (profile.get("attributes") or {}).items()}
    week, month = contact_counts(profile.get("contacts") or {}, today or format_timestamp(utc_now()))

    contact = read_choices(profile)
    return Customer(
        customer_id=state.customer_id,
        display_name=profile.get("display_name"),
        created_at=str(profile.get("created_at") or profile.get("erased_at") or ""),
        identities=[
            CustomerIdentity(
                type=i["type"],
                value=i["value"],
                verified=bool(i.get("verified")),
                added_at=i["added_at"],
                source=i.get("source"),
                undeliverable=i.get("undeliverable"),
            )
            for i in state.links
        ],
        open_conversation_id=profile.get("open_conversation_id"),
        consent={
            key.removeprefix(CONSENT_PREFIX): Consent(**value)
            for key, value in profile.items()
            if key.startswith(CONSENT_PREFIX)
        },
        status=state.status,  # type: ignore[arg-type]
        updated_at=profile.get("updated_at"),
        language=contact.language,
        timezone=contact.timezone,
        tags=list(profile.get("tags") or []),
        channel_preferences=list(contact.channel_preferences),
        contact=contact,
        attributes=attributes,
        last_seen=dict(profile.get("last_seen") or {}),
        contacts_7d=week,
        contacts_30d=month,
        merges=[
            MergeSummary(
                merge_id=h["merge_id"],
                role=h["role"],
                other_customer_id=h["other_customer_id"],
                at=h["at"],
                cause=h["cause"],
                status=h.get("status", "merged"),
                unmerged_at=h.get("unmerged_at"),
            )
            for h in state.history
        ],
        merged_into=profile.get("merged_into"),
        identity_changes={
            key.removeprefix(IDENTITY_CHANGE_PREFIX): {str(k): str(v) for k, v in value.items()}
            for key, value in profile.items()
            if key.startswith(IDENTITY_CHANGE_PREFIX) and isinstance(value, dict)
        },
    )
