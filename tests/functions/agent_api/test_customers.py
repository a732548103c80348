"""Agent API for the unified profile: look-up through merges, merge/unmerge, claims, PATCH, erasure."""

from __future__ import annotations

import json
from typing import Any

from functions.agent_api.handler import handler as agent_api
from tests.helpers import context, http_event
from tests.shared.services.profiles.support import Repos, claimed, inbound, verified

AGENT = {"sub": "agent-7", "exp": "4102444800"}


def call(method: str, route: str, body: Any = None, **path: str) -> tuple[int, Any]:
    event = http_event(method, route, path_parameters=path or None, body=body, claims=AGENT)
    response = agent_api(event, context("agent-api"))
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


def people(repos: Repos) -> tuple[str, str, str]:
    ana = repos.record(
        inbound(
            "api-a1",
            verified("webchat", "wcs_api_ana"),
            verified("email", "ana@example.com"),
            claimed("email", "ana.private@example.com"),
            display_name="Ana Lima",
        )
    )
    bob = repos.record(inbound("api-b1", verified("phone", "+4915122223333"), channel="sms", seconds=1))
    mallory = repos.record(
        inbound("api-m1", verified("webchat", "wcs_api_mal"), claimed("email", "ana@example.com"), seconds=2)
    )
    assert ana.customer_id
    assert bob.customer_id
    assert mallory.customer_id
    return ana.customer_id, bob.customer_id, mallory.customer_id


def test_claims_are_shown_as_possible_matches_and_confirmed_only_when_free(stack: dict[Any, str]) -> None:
    ana, _, mallory = people(Repos())
    status, body = call("GET", "/customers/{customer_id}", customer_id=mallory)
    assert status == 200
    [claim] = [i for i in body["identities"] if not i["verified"]]
    assert (claim["value"], claim["possible_match"]) == ("ana@example.com", ana)

    route = "/customers/{customer_id}/identities/confirm"
    status, body = call("POST", route, {"type": "email", "value": "ANA@example.com"}, customer_id=mallory)
    assert status == 409
    assert body["owner_customer_id"] == ana
    assert "merge" in body["message"]

    status, body = call("POST", route, {"type": "email", "value": "ana.private@example.com"}, customer_id=ana)
    assert status == 200
    assert {(i["value"], i["verified"]) for i in body["identities"]} >= {("ana.private@example.com", True)}
    status, body = call("POST", route, {"type": "email", "value": "nobody@example.com"}, customer_id=ana)
    assert status == 404
    status, body = call("POST", route, {"type": "email", "value": "not-an-address"}, customer_id=ana)
    assert status == 400


def test_agent_merges_into_the_chosen_survivor_and_unmerges_with_the_audit_visible(
    stack: dict[Any, str],
) -> None:
    repos = Repos()
    ana, bob, _ = people(repos)
    status, body = call("POST", "/customers/{customer_id}/merge", {"other_customer_id": ana}, customer_id=bob)
    assert status == 200, body
    merge_id = body["merge"]["merge_id"]
    assert body["merge"]["cause"] == "agent:agent-7"
    assert body["customer"]["customer_id"] == bob  # the agent chose the newer profile
    assert body["customer"]["display_name"] == "Ana Lima"
    assert {i["value"] for i in body["customer"]["identities"]} >= {"wcs_api_ana", "+4915122223333"}

    # The merged-away id answers with the survivor, never 404.
    status, body = call("GET", "/customers/{customer_id}", customer_id=ana)
    assert status == 200
    assert (body["customer_id"], body["redirected_from"]) == (bob, ana)
    assert [(m["merge_id"], m["role"]) for m in body["merges"]] == [(merge_id, "survivor")]
    status, body = call("GET", "/customers/{customer_id}/conversations", customer_id=ana)
    assert status == 200
    assert body["customer_id"] == bob
    assert len(body["conversations"]) == 2
    status, body = call("GET", "/customers/{customer_id}/merges", customer_id=bob)
    assert [m["merge_id"] for m in body["merges"]] == [merge_id]
    assert body["merges"][0]["identities"]

    # Illegal merges: 400/404/409 with reasons.
    merge = "/customers/{customer_id}/merge"
    assert call("POST", merge, {"other_customer_id": bob}, customer_id=bob)[0] == 400
    assert call("POST", merge, {"other_customer_id": "cus_nope"}, customer_id=bob)[0] == 404
    status, body = call("POST", merge, {"other_customer_id": ana}, customer_id=bob)
    assert status == 409
    assert bob in body["message"]
    assert call("POST", merge, {"other": ana}, customer_id=bob)[0] == 400

    unmerge = "/customers/{customer_id}/unmerge"
    status, body = call("POST", unmerge, {"merge_id": merge_id}, customer_id=bob)
    assert status == 200, body
    assert body["merge"]["status"] == "unmerged"
    assert body["merge"]["unmerged_by"] == "agent:agent-7"
    assert {i["value"] for i in body["restored"]["identities"]} >= {"wcs_api_ana", "ana@example.com"}
    assert {i["value"] for i in body["survivor"]["identities"]} == {"+4915122223333"}
    status, body = call("GET", "/customers/{customer_id}", customer_id=ana)
    assert (status, body["customer_id"], body["redirected_from"]) == (200, ana, None)
    assert call("POST", unmerge, {"merge_id": merge_id}, customer_id=bob)[0] == 409
    assert call("POST", unmerge, {"merge_id": "mrg_nope"}, customer_id=bob)[0] == 404


def test_patch_validates_and_keeps_the_source_of_each_attribute(stack: dict[Any, str]) -> None:
    ana, _, _ = people(Repos())
    route = "/customers/{customer_id}"
    patch = {
        "language": "pt-BR",
        "timezone": "America/Sao_Paulo",
        "tags": ["vip"],
        "channel_preferences": ["whatsapp", "email"],
        "consent": {"sms": "opted_out"},
        "attributes": {"loyalty_level": "gold", "orders": 12},
    }
    status, body = call("PATCH", route, patch, customer_id=ana)
    assert status == 200, body
    assert (body["language"], body["timezone"], body["tags"]) == ("pt-BR", "America/Sao_Paulo", ["vip"])
    assert body["channel_preferences"] == ["whatsapp", "email"]
    assert body["attributes"]["loyalty_level"] == {
        "value": "gold",
        "at": body["attributes"]["loyalty_level"]["at"],
        "source": "agent:agent-7",
    }
    assert body["consent"]["sms"]["status"] == "opted_out"
    assert body["attributes"]["name"]["value"] == "Ana Lima"  # untouched
    status, body = call("PATCH", route, {"attributes": {"orders": None}}, customer_id=ana)
    assert "orders" not in body["attributes"]
    for bad in (
        {"timezone": "Mars/Olympus"},
        {"language": "not a language"},
        {"channel_preferences": ["sms", "sms"]},
        {"channel_preferences": ["pigeon"]},
        {"attributes": {"Bad-Name": 1}},
        {"attributes": {"language": "de"}},
        {"tags": ["Not OK"]},
        {"favourite_colour": "blue"},
    ):
        status, body = call("PATCH", route, bad, customer_id=ana)
        assert status == 400, (bad, body)
    assert call("PATCH", route, {"language": "de"}, customer_id="cus_nope")[0] == 404


def test_erasure_and_export(stack: dict[Any, str]) -> None:
    repos = Repos()
    ana, bob, _ = people(repos)
    status, data = call("GET", "/customers/{customer_id}/export", customer_id=ana)
    assert status == 200
    assert data["customer"]["customer_id"] == ana
    assert {i["value"] for i in data["identities"]} == {
        "wcs_api_ana",
        "ana@example.com",
        "ana.private@example.com",
    }
    assert [m["text"] for c in data["conversations"] for m in c["messages"]] == ["text of api-a1"]

    call("POST", "/customers/{customer_id}/merge", {"other_customer_id": bob}, customer_id=ana)
    status, body = call("DELETE", "/customers/{customer_id}", customer_id=bob)
    assert status == 409  # merged away: erase the survivor
    status, body = call("DELETE", "/customers/{customer_id}", customer_id=ana)
    assert status == 200, body
    assert sorted(body["profiles"]) == sorted([ana, bob])
    assert (body["identities"], body["conversations"]) == (4, 2)
    for who in (ana, bob):
        status, body = call("GET", "/customers/{customer_id}", customer_id=who)
        assert status == 404
        assert "erased" in body["message"]
    assert call("GET", "/customers/{customer_id}/export", customer_id=ana)[0] == 404
    status, body = call("DELETE", "/customers/{customer_id}", customer_id=ana)
    assert (status, body["already_erased"]) == (200, True)
    assert call("DELETE", "/customers/{customer_id}", customer_id="cus_nope")[0] == 404
    # The replayed first message of the person is dropped.
    assert repos.record(
        inbound("api-b1", verified("phone", "+4915122223333"), channel="sms", seconds=1)
    ).dropped
