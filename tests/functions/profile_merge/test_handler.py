"""Profile merge under retries, reordering and concurrency (repositories against moto)."""

from __future__ import annotations

import itertools
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.contracts.events import Identity, MessageReceived, format_timestamp, utc_now
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository
from shared.services.profiles.inbound import record_message

START = datetime(2026, 11, 25, 8, tzinfo=UTC)
# Hypothesis runs many examples in one moto account: each example gets a new sender.
_senders = itertools.count()


def message(n: int, sender: str = "wcs_a", identities: tuple[Identity, ...] = ()) -> MessageReceived:
    return MessageReceived(
        channel="webchat",
        provider="omni-webchat",
        provider_message_id=f"{sender}:m{n}",
        sender=Identity(type="webchat", value=sender, verified=True),
        identities=identities,
        text=f"message {n}",
        sent_at=START + timedelta(seconds=n),
        received_at=utc_now(),
    )


def repositories() -> tuple[CustomerRepository, ConversationRepository]:
    customers = CustomerRepository()
    return customers, ConversationRepository(customers=customers)


def record(msg: MessageReceived) -> Any:
    customers, conversations = repositories()
    return record_message(customers, conversations, msg, format_timestamp(utc_now()))


def test_concurrent_first_messages_of_one_sender_make_one_customer(stack: dict[Any, str]) -> None:
    account = (Identity(type="account", value="acct-1", verified=True),)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(
            pool.map(record, [message(n, sender=f"wcs_{n}", identities=account) for n in range(8)])
        )
    assert len({r.customer_id for r in results}) == 1
    assert len({r.conversation_id for r in results}) == 1
    assert sum(r.new_customer for r in results) == 1
    _, conversations = repositories()
    conversation = conversations.get(results[0].conversation_id)
    assert conversation is not None
    assert conversation.message_count == 8
    assert len(conversation.messages) == 8


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    order=st.permutations(list(range(6))), repeats=st.lists(st.integers(0, 5), max_size=6), seed=st.integers()
)
def test_any_delivery_order_with_duplicates_gives_one_ordered_conversation(
    stack: dict[Any, str], order: list[int], repeats: list[int], seed: int
) -> None:
    sender = f"wcs_example_{next(_senders)}"
    deliveries = [message(n, sender) for n in order] + [message(n, sender) for n in repeats]
    random.Random(seed).shuffle(deliveries)
    results = [record(d) for d in deliveries]
    assert sum(r.new_message for r in results) == 6  # each message recorded once
    assert len({r.conversation_id for r in results}) == 1
    _, conversations = repositories()
    conversation = conversations.get(results[0].conversation_id)
    assert conversation is not None
    assert [m.text for m in conversation.messages] == [f"message {n}" for n in range(6)]
    assert conversation.message_count == 6


def test_verified_identities_of_two_customers_in_one_message_merge_them(stack: dict[Any, str]) -> None:
    email = Identity(type="email", value="ana@example.com", verified=True)
    first = record(message(1, "wcs_a", (email,)))
    other = record(message(1, "wcs_b", (Identity(type="account", value="acct-9", verified=True), email)))
    assert other.customer_id == first.customer_id  # found by the e-mail: same person
    third = record(message(1, "wcs_c", (Identity(type="account", value="acct-7", verified=True),)))
    assert third.customer_id != first.customer_id
    # wcs_c's session now proves acct-9 too: Ana and the owner of wcs_c are one person.
    fourth = record(message(2, "wcs_c", (Identity(type="account", value="acct-9", verified=True),)))
    assert fourth.customer_id == first.customer_id  # the older profile survives
    assert len(fourth.merges) == 1
    customers, _ = repositories()
    survivor = customers.get(first.customer_id)
    assert survivor is not None
    assert {i.value for i in survivor.identities} >= {"wcs_a", "wcs_b", "wcs_c", "acct-7", "acct-9"}
    assert customers.owner_of(Identity(type="account", value="acct-7")) == first.customer_id
    merged = customers.get_profile(third.customer_id)
    assert merged is not None
    assert (merged["status"], merged["merged_into"]) == ("merged", first.customer_id)


def test_a_claimed_identity_is_never_merged_but_reported(stack: dict[Any, str]) -> None:
    ana = record(message(1, "wcs_ana2", (Identity(type="email", value="ana2@example.com", verified=True),)))
    claim = Identity(type="email", value="ana2@example.com", verified=False)
    mallory = record(message(1, "wcs_mallory", (claim,)))
    assert mallory.customer_id != ana.customer_id
    assert [(m.identity.key, m.other_customer_id) for m in mallory.possible_matches] == [
        ("email:ana2@example.com", ana.customer_id)
    ]
    assert mallory.merges == []


def test_a_retry_with_another_timestamp_is_still_recorded_once(stack: dict[Any, str]) -> None:
    first = message(1, "wcs_retry")
    retry = first.model_copy(update={"sent_at": first.sent_at + timedelta(seconds=30)})
    assert record(first).new_message is True
    again = record(retry)
    assert again.new_message is False
    _, conversations = repositories()
    conversation = conversations.get(again.conversation_id)
    assert conversation is not None
    assert len(conversation.messages) == 1


def test_conversation_hint_is_used_only_for_the_customers_own_conversation(stack: dict[Any, str]) -> None:
    ana = record(message(1, "wcs_ana"))
    bob = record(message(1, "wcs_bob"))
    # Bob's mail claims to answer Ana's conversation: it stays in Bob's.
    forged = message(2, "wcs_bob").model_copy(update={"conversation_hint": ana.conversation_id})
    assert record(forged).conversation_id == bob.conversation_id
    own = message(3, "wcs_ana").model_copy(update={"conversation_hint": ana.conversation_id})
    assert record(own).conversation_id == ana.conversation_id


def test_a_retried_stop_does_not_undo_a_later_start(stack: dict[Any, str]) -> None:
    phone = Identity(type="phone", value="+4915112345678", verified=True)

    def keyword(sid: str, text: str, word: str, at: datetime) -> MessageReceived:
        return MessageReceived(
            kind="consent",
            keyword=word,  # type: ignore[arg-type]
            channel="sms",
            provider="twilio",
            provider_message_id=sid,
            sender=phone,
            text=text,
            sent_at=at,
            received_at=at,
        )

    stop = keyword("SM1", "STOP", "opt_out", START)
    record(stop)
    record(keyword("SM2", "START", "opt_in", START + timedelta(minutes=1)))
    # Twilio retries the STOP; an SMS carries no send time, so the retry looks newer.
    record(stop.model_copy(update={"sent_at": START + timedelta(minutes=2)}))
    customers, _ = repositories()
    owner = customers.owner_of(phone)
    assert owner is not None
    customer = customers.get(owner)
    assert customer is not None
    assert customer.consent["sms"].status == "opted_in"
