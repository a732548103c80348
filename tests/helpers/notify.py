"""A notifier wired to fake adapters, and customers with consent, at a fixed noon."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from functions.notify.notifier import Notifier
from shared.contracts.contact import CHOICE_FIELDS, ContactChoicesPatch
from shared.contracts.events import Identity
from shared.contracts.models import Consent
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository, customer_pk
from shared.repositories.dynamo import serialise
from shared.repositories.outbox import OutboxRepository

NOON = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)  # 13:00 in Lisbon (WEST)


def make_customer(
    customer_id: str,
    identities: list[Identity],
    *,
    preferences: dict[str, Any] | None = None,
    consent: dict[str, str] | None = None,
    **profile: Any,
) -> None:
    customers = CustomerRepository()
    customers.create(customer_id, identities, "2026-01-01T00:00:00.000000Z")
    # The contact choices go through the repository, as the agent API writes them.
    choices = {name: profile.pop(name) for name in CHOICE_FIELDS if name in profile}
    if preferences:
        choices["channel_preferences"] = preferences["channels"]
        choices["channel_mode"] = "all" if preferences.get("all") else "first"
    if choices:
        patch = ContactChoicesPatch.model_validate(choices)
        assert customers.set_choices(customer_id, patch, "2026-01-01T00:00:01.000000Z", "test")
    if profile:
        names = {f"#a{i}": k for i, k in enumerate(profile)}
        values = {f":v{i}": v for i, v in enumerate(profile.values())}
        customers.table.client.update_item(
            TableName=customers.table.name,
            Key=serialise({"pk": customer_pk(customer_id), "sk": "PROFILE"}),
            UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(profile))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=serialise(values),
        )
    for channel, status in (consent or {}).items():
        customers.set_consent(
            customer_id, channel, Consent(status=status, at="2026-02-01T00:00:00.000000Z", source="test")
        )


def notifier(adapters: dict[str, Any], outbox: OutboxRepository | None = None) -> Notifier:
    customers = CustomerRepository()
    return Notifier(
        outbox=outbox or OutboxRepository(),
        conversations=ConversationRepository(customers=customers),
        customers=customers,
        adapters=adapters,
    )
