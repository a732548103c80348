"""Notify reads what it needs of the customer in one request: the partition holds the profile
and the identities, the profile is not read a second time."""

from __future__ import annotations

from collections import Counter
from typing import Any

from functions.notify.facts import customer_facts
from shared.contracts.events import Identity
from shared.platform import aws
from shared.repositories.customers import CustomerRepository
from tests.helpers.notify import make_customer


def test_customer_facts_come_from_one_read_of_the_partition(stack: dict[Any, str]) -> None:
    phone = Identity(type="phone", value="+4915122220001", verified=True)
    make_customer(
        "cus_facts",
        [phone],
        preferences={"channels": ["sms"]},
        consent={"sms": "opted_in"},
        timezone="Europe/Berlin",
    )
    calls: Counter[str] = Counter()
    client = aws.client("dynamodb")

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    client.meta.events.register("before-call.dynamodb", count)
    try:
        facts = customer_facts("cus_facts", CustomerRepository())
    finally:
        client.meta.events.unregister("before-call.dynamodb", count)
    assert dict(calls) == {"Query": 1}
    assert facts is not None
    assert facts.identities == (phone,)
    assert facts.consent == {"sms": "opted_in"}
    assert facts.preferred == ("sms",)
    assert facts.timezone == "Europe/Berlin"
    assert customer_facts("cus_nobody", CustomerRepository()) is None
