"""Concurrent merges of overlapping profiles, in threads against a moto server, converge:
the same partition as sequential processing, no identity lost or owned twice."""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from omni.local.provision import provision
from shared.contracts.events import MessageReceived
from shared.platform import aws
from shared.repositories.conversations import ConcurrentUpdate
from shared.services.profiles.inbound import RecordedMessage
from shared.services.profiles.merge import ResolutionConflict, find_root, merged_tree
from tests.shared.services.profiles.support import Repos, claimed, inbound, verified
from topology import TOPOLOGY, function_environment

LINKS = [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (1, 3), (6, 4)]
EXPECTED = [{0, 1, 2, 3}, {4, 5, 6}, {7}]


@pytest.fixture(scope="module")
def server() -> Iterator[dict[Any, str]]:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    requests.post(f"{endpoint}/moto-api/reset", timeout=10)
    patch = pytest.MonkeyPatch()
    patch.setenv("AWS_ENDPOINT_URL", endpoint)
    aws.reset_clients()
    provisioned = provision(TOPOLOGY, boto3.Session(region_name="us-east-1"), stage="profiles")
    for fn in TOPOLOGY.functions:
        for key, value in function_environment(TOPOLOGY, fn, provisioned.physical, "profiles").items():
            patch.setenv(key, value)
    yield provisioned.physical
    patch.undo()
    aws.reset_clients()
    moto.stop()


def deliver(repos: Repos, message: MessageReceived) -> RecordedMessage:
    """Like SQS: a message whose processing failed is delivered again."""
    for _ in range(10):
        try:
            return repos.record(message)
        except (ResolutionConflict, ConcurrentUpdate):
            continue
    raise AssertionError(f"{message.message_key} never went through")


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_overlapping_merges_converge_without_losing_or_doubling_identities(
    server: dict[Any, str], round_: int
) -> None:
    repos = Repos()
    ident = [verified("account", f"conc{round_}-{i}") for i in range(8)]
    # Every identity starts as a customer of its own.
    firsts = [deliver(repos, inbound(f"c{round_}-first-{i}", ident[i], seconds=i)) for i in range(8)]
    assert len({r.customer_id for r in firsts}) == 8
    links = [
        inbound(f"c{round_}-link-{n}", ident[a], ident[b], seconds=100 + n) for n, (a, b) in enumerate(LINKS)
    ]
    deliveries = links + links[:4]  # with redeliveries racing the originals
    random.Random(round_).shuffle(deliveries)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda m: deliver(Repos(), m), deliveries))
    assert all(r.customer_id for r in results)

    roots: dict[int, str] = {}
    for i, identity in enumerate(ident):
        owner = repos.customers.owner_of(identity)
        assert owner is not None, f"identity {i} lost"
        root = find_root(repos.customers, repos.merger, owner, "2026-11-25T09:00:00.000000Z").state
        assert root is not None
        assert owner == root.customer_id  # ownership moved with the merges
        roots[i] = root.customer_id
    partition = {}
    for i, customer_id in roots.items():
        partition.setdefault(customer_id, set()).add(i)
    assert sorted(partition.values(), key=min) == EXPECTED

    # Owned exactly once: across all profiles, each identity is linked on one profile, an active one.
    client = boto3.client("dynamodb")
    links_found: dict[str, list[str]] = {}
    for page in client.get_paginator("scan").paginate(TableName=server[("table", "customers")]):
        for item in page["Items"]:
            if (
                item["pk"]["S"].startswith("CUST#")
                and item["sk"]["S"] == f"IDENT#account#{item.get('value', {}).get('S')}"
            ) and item["value"]["S"].startswith(f"conc{round_}-"):
                links_found.setdefault(item["value"]["S"], []).append(item["pk"]["S"].removeprefix("CUST#"))
    assert {k: len(v) for k, v in links_found.items()} == {i.value: 1 for i in ident}
    for identity in ident:
        assert links_found[identity.value] == [roots[ident.index(identity)]]

    # Every message recorded once, and listed under its survivor.
    for group in EXPECTED:
        root_id = roots[min(group)]
        state = repos.customers.load(root_id)
        assert state is not None
        recorded: list[str] = []
        for member in merged_tree(repos.customers, state):
            for summary in repos.conversations.list_for_customer(member.customer_id):
                conversation = repos.conversations.get(summary.conversation_id)
                assert conversation is not None
                recorded += [m.message_id for m in conversation.messages if conversation.status != "merged"]
        expected = {f"webchat#c{round_}-first-{i}" for i in group} | {
            f"webchat#c{round_}-link-{n}" for n, (a, _) in enumerate(LINKS) if a in group
        }
        assert sorted(recorded) == sorted(expected)


def test_concurrent_first_mails_from_one_unauthenticated_address_make_one_customer(
    server: dict[Any, str],
) -> None:
    address = claimed("email", "kim@race.example")
    mails = [inbound(f"race-{n}", address, channel="email", seconds=n) for n in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda m: deliver(Repos(), m), mails))
    assert len({r.customer_id for r in results}) == 1
    assert sum(r.new_customer for r in results) == 1
    assert Repos().customers.claim_holder(address) == results[0].customer_id
