"""Unauthenticated e-mail senders: one profile per claimed address, never joined to a verified owner."""

from __future__ import annotations

from typing import Any

from shared.contracts.events import format_timestamp, utc_now
from shared.repositories.customers import CLAIM, owner_pk
from shared.services.profiles.erasure import erase_customer
from shared.services.profiles.merge import merge_customers
from tests.shared.services.profiles.support import Repos, claimed, inbound, verified

KIM = "kim@smallco.example"


def mail(message_id: str, address: str, *, proven: bool, seconds: int = 0) -> Any:
    sender = verified("email", address) if proven else claimed("email", address)
    return inbound(message_id, sender, channel="email", seconds=seconds)


def test_mails_from_one_unproven_address_are_one_customer_and_one_conversation(stack: dict[Any, str]) -> None:
    repos = Repos()
    first = repos.record(mail("m1", KIM, proven=False))
    second = repos.record(mail("m2", KIM, proven=False, seconds=60))
    third = repos.record(mail("m3", KIM, proven=False, seconds=120))
    assert first.new_customer
    assert not second.new_customer
    assert first.customer_id == second.customer_id == third.customer_id
    assert first.conversation_id == second.conversation_id == third.conversation_id
    assert repos.customers.claim_holder(claimed("email", KIM)) == first.customer_id
    state = repos.customers.load(str(first.customer_id))
    assert state is not None
    assert [(link["value"], link["verified"]) for link in state.links] == [(KIM, False)]
    assert repos.customers.owner_of(verified("email", KIM)) is None  # claimed: nobody owns it


def test_a_later_proven_mail_upgrades_the_claimed_profile(stack: dict[Any, str]) -> None:
    repos = Repos()
    first = repos.record(mail("m1", KIM, proven=False))
    proven = repos.record(mail("m2", KIM, proven=True, seconds=60))
    assert proven.customer_id == first.customer_id
    assert not proven.new_customer
    assert proven.conversation_id == first.conversation_id
    assert repos.customers.owner_of(verified("email", KIM)) == first.customer_id
    state = repos.customers.load(str(first.customer_id))
    assert state is not None
    assert [(link["value"], link["verified"]) for link in state.links] == [(KIM, True)]


def test_an_unproven_mail_from_a_verified_customers_address_gets_its_own_profile(
    stack: dict[Any, str],
) -> None:
    repos = Repos()
    owner = repos.record(mail("m1", KIM, proven=True))
    spoof = repos.record(mail("m2", KIM, proven=False, seconds=60))
    again = repos.record(mail("m3", KIM, proven=False, seconds=120))
    assert spoof.customer_id != owner.customer_id
    assert spoof.conversation_id != owner.conversation_id
    assert [(m.identity.key, m.other_customer_id) for m in spoof.possible_matches] == [
        (f"email:{KIM}", owner.customer_id)
    ]
    # One profile for the unproven mails, still a possible match.
    assert again.customer_id == spoof.customer_id
    assert [m.other_customer_id for m in again.possible_matches] == [owner.customer_id]


def test_once_upgraded_or_merged_into_the_owner_the_next_unproven_mail_goes_elsewhere(
    stack: dict[Any, str],
) -> None:
    repos = Repos()
    first = repos.record(mail("m1", KIM, proven=False))
    repos.record(mail("m2", KIM, proven=True, seconds=60))  # the claim holder is the owner now
    spoof = repos.record(mail("m3", KIM, proven=False, seconds=120))
    assert spoof.customer_id != first.customer_id
    assert repos.customers.claim_holder(claimed("email", KIM)) == spoof.customer_id

    # An agent merges the unproven profile into the owner: later unproven mail still stays apart.
    now = format_timestamp(utc_now())
    merge_customers(
        repos.customers, repos.merger, str(first.customer_id), str(spoof.customer_id), "agent:x", now
    )
    later = repos.record(mail("m4", KIM, proven=False, seconds=180))
    assert later.customer_id not in (first.customer_id, spoof.customer_id)
    assert later.conversation_id != first.conversation_id


def test_erasing_the_claim_holder_releases_the_claim(stack: dict[Any, str]) -> None:
    repos = Repos()
    first = repos.record(mail("m1", KIM, proven=False))
    now = utc_now()
    erase_customer(
        repos.customers, repos.merger, str(first.customer_id), format_timestamp(now), int(now.timestamp())
    )
    item = repos.customers.table.get({"pk": owner_pk(claimed("email", KIM)), "sk": CLAIM})
    assert item is None  # nothing names the address any more
