"""GET /customers?identity=...: verified owner first, then the profile of unproven mail, each marked."""

from __future__ import annotations

import json
from typing import Any

from functions.agent_api.handler import handler as agent_api
from tests.helpers import context, http_event
from tests.shared.services.profiles.support import Repos, claimed, inbound, verified

AGENT = {"sub": "agent-7", "exp": "4102444800"}
KIM = "kim@smallco.example"


def lookup(identity: str) -> list[dict[str, Any]]:
    event = http_event("GET", "/customers", query={"identity": identity}, claims=AGENT)
    response = agent_api(event, context("agent-api"))
    assert response["statusCode"] == 200, response["body"]
    return list(json.loads(response["body"])["customers"])


def mail(message_id: str, *, proven: bool, seconds: int = 0) -> Any:
    sender = verified("email", KIM) if proven else claimed("email", KIM)
    return inbound(message_id, sender, channel="email", seconds=seconds)


def test_a_claimed_address_is_found_and_marked_claimed(stack: dict[Any, str]) -> None:
    repos = Repos()
    assert lookup(f"email:{KIM}") == []
    first = repos.record(mail("l1", proven=False))
    [found] = lookup(f"email:{KIM.upper()}")
    assert (found["customer_id"], found["verification"]) == (first.customer_id, "claimed")


def test_the_verified_owner_comes_first_then_the_claimed_profile(stack: dict[Any, str]) -> None:
    repos = Repos()
    owner = repos.record(mail("l1", proven=True))
    spoof = repos.record(mail("l2", proven=False, seconds=10))
    found = lookup(f"email:{KIM}")
    assert [(c["customer_id"], c["verification"]) for c in found] == [
        (owner.customer_id, "verified"),
        (spoof.customer_id, "claimed"),
    ]
    # The claimed profile shows the owner as a possible match of its address.
    [identity] = found[1]["identities"]
    assert identity["possible_match"] == owner.customer_id


def test_an_upgraded_profile_is_listed_once_as_verified(stack: dict[Any, str]) -> None:
    repos = Repos()
    first = repos.record(mail("l1", proven=False))
    repos.record(mail("l2", proven=True, seconds=10))
    assert [(c["customer_id"], c["verification"]) for c in lookup(f"email:{KIM}")] == [
        (first.customer_id, "verified")
    ]
