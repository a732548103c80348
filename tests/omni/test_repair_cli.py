"""``omni repair duplicates`` against the tables in moto (``--aws --stage test``), as an operator runs it.

The duplicates are written the way unauthenticated mail created them before claimed senders
resolved to one profile per address: one profile per mail, each holding the claimed address.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from omni.cli import main
from shared.contracts.events import format_timestamp, utc_now
from shared.repositories.customers import CustomerRepository
from shared.services.profiles.merge import unmerge_customers
from tests.shared.services.profiles.support import START, Repos, claimed, inbound, verified

AWS = ["--aws", "--stage", "test", "--region", "us-east-1"]
KIM = "kim@smallco.example"


def omni(capsys: pytest.CaptureFixture[str], *words: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(words))
    return code, capsys.readouterr().out


def old_duplicates(customers: CustomerRepository) -> list[str]:
    """Three profiles of kim's unauthenticated mails, a verified customer with a claimed copy of
    her own address, and a web chat visitor who typed kim's address in."""
    ids = []
    for n in range(3):
        at = format_timestamp(START + timedelta(minutes=n))
        customers.create(f"cus_kim{n}", [claimed("email", KIM)], at, source="email")
        ids.append(f"cus_kim{n}")
    at = format_timestamp(START + timedelta(minutes=5))
    customers.create("cus_ana", [verified("email", "ana@example.com")], at, source="email")
    customers.create("cus_ana_claimed", [claimed("email", "ana@example.com")], at, source="email")
    customers.create("cus_web", [verified("webchat", "wcs_1"), claimed("email", KIM)], at, source="webchat")
    return ids


def active(customers: CustomerRepository, customer_id: str) -> bool:
    state = customers.load(customer_id)
    return state is not None and state.status == "active"


def test_dry_run_proposes_confirmation_applies_and_a_second_run_finds_nothing(
    stack: dict[Any, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repos = Repos()
    customers = repos.customers
    first, second, third = old_duplicates(customers)

    code, out = omni(capsys, "repair", "duplicates", "--dry-run", *AWS)
    assert code == 0
    assert f"merge {second}, {third} into {first}  (sharing email:{KIM})" in out
    assert "cus_web" not in out  # it has a verified identity: an agent's decision
    assert "cus_ana" not in out  # one claimed profile next to the verified owner: nothing to merge
    assert "dry run: nothing changed" in out
    assert all(active(customers, c) for c in (first, second, third))

    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    code, out = omni(capsys, "repair", "duplicates", *AWS)
    assert code == 1
    assert "confirm with --yes" in out
    assert active(customers, second)

    code, out = omni(capsys, "repair", "duplicates", "--yes", *AWS)
    assert code == 0, out
    assert out.count("merged ") == 2
    assert not active(customers, second)
    assert not active(customers, third)
    state = customers.load(first)
    assert state is not None
    records = [customers.get_merge(item["merge_id"]) for item in state.history]
    assert {(r["cause"], r["merged_id"]) for r in records if r} == {
        ("repair:duplicates", second),
        ("repair:duplicates", third),
    }
    # Later unauthenticated mail from the address goes to the survivor.
    assert customers.claim_holder(claimed("email", KIM)) == first
    later = repos.record(inbound("late", claimed("email", KIM), channel="email", seconds=600))
    assert later.customer_id == first

    code, out = omni(capsys, "repair", "duplicates", "--yes", *AWS)
    assert (code, out.strip()) == (0, "no duplicate customers in AWS (us-east-1): nothing to repair")

    # A merge the repair made is undone like any other, and not proposed again.
    merge_id = next(r["merge_id"] for r in records if r and r["merged_id"] == second)
    unmerge_customers(customers, repos.merger, first, merge_id, "agent:x", format_timestamp(utc_now()))
    assert active(customers, second)
    code, out = omni(capsys, "repair", "duplicates", "--dry-run", *AWS)
    assert "nothing to repair" in out
