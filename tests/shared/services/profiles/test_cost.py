"""Cost: the DynamoDB requests for one message do not grow with the number of stored profiles."""

from __future__ import annotations

import copy
import types
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from shared.platform import aws
from shared.repositories.customers import OWNER, PROFILE, customer_pk, owner_pk
from shared.repositories.dynamo import serialise
from tests.shared.services.profiles.support import Repos, inbound, verified


@contextmanager
def counting() -> Iterator[Counter[str]]:
    """Count every DynamoDB request the code under test makes, by operation."""
    calls: Counter[str] = Counter()
    client = aws.client("dynamodb")

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    client.meta.events.register("before-call.dynamodb", count)
    try:
        yield calls
    finally:
        client.meta.events.unregister("before-call.dynamodb", count)


def profile_items(start: int, count: int) -> Iterator[dict[str, Any]]:
    """``count`` customers with a verified phone each: profile, identity link, ownership item."""
    for n in range(start, start + count):
        customer_id = f"cus_bulk{n:06d}"
        phone = verified("phone", f"+4930{n:08d}")
        yield {
            "pk": customer_pk(customer_id),
            "sk": PROFILE,
            "customer_id": customer_id,
            "created_at": "2026-01-01T00:00:00.000000Z",
            "status": "active",
            "version": 0,
            "attributes": {},
            "tags": [],
            "last_seen": {},
            "contacts": {},
        }
        yield {
            "pk": customer_pk(customer_id),
            "sk": f"IDENT#phone#{phone.value}",
            "type": "phone",
            "value": phone.value,
            "verified": True,
            "added_at": "2026-01-01T00:00:00.000000Z",
        }
        yield {"pk": owner_pk(phone), "sk": OWNER, "customer_id": customer_id}


def batch_write(table: str, items: Iterator[dict[str, Any]]) -> None:
    client = aws.client("dynamodb")
    requests = [{"PutRequest": {"Item": serialise(item)}} for item in items]
    for i in range(0, len(requests), 25):
        pending = requests[i : i + 25]
        while pending:
            response = client.batch_write_item(RequestItems={table: pending})
            pending = response.get("UnprocessedItems", {}).get(table, [])


def bulk_load(table: str, items: Iterator[dict[str, Any]]) -> None:
    """Store items straight into moto's in-memory table: what BatchWriteItem would store, without
    paying for 1,200 HTTP-shaped requests (which would make this test take half a minute)."""
    from moto.core import DEFAULT_ACCOUNT_ID  # noqa: PLC0415
    from moto.dynamodb.models import dynamodb_backends  # noqa: PLC0415
    from moto.dynamodb.models.dynamo_type import DynamoType, Item  # noqa: PLC0415

    moto_table = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_table(table)
    for item in items:
        attrs = serialise(item)
        pk, sk = DynamoType(attrs["pk"]), DynamoType(attrs["sk"])
        moto_table.items[pk][sk] = Item(pk, sk, attrs)


def journey_costs(repos: Repos, tag: str) -> dict[str, Counter[str]]:
    """Requests per message for a new customer, a returning one, and one message linking two."""
    costs: dict[str, Counter[str]] = {}
    phone = verified("phone", f"+4915177{len(tag):02d}{abs(hash(tag)) % 10000:04d}")
    session = verified("webchat", f"wcs_{tag}")
    with counting() as costs["new customer"]:
        repos.record(inbound(f"{tag}-1", phone, channel="sms"))
    with counting() as costs["returning customer"]:
        repos.record(inbound(f"{tag}-2", phone, channel="sms", seconds=1))
    with counting() as costs["redelivery"]:
        repos.record(inbound(f"{tag}-2", phone, channel="sms", seconds=1))
    repos.record(inbound(f"{tag}-3", session, seconds=2))
    with counting() as costs["merge"]:
        repos.record(inbound(f"{tag}-4", session, phone, seconds=3))
    return costs


@pytest.fixture
def item_level_moto_rollback(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto backs a transaction up by deep-copying the whole table once per action, which takes
    seconds at 30,000 items. Back up only the items the transaction names, and put exactly
    those back when it is cancelled: the same all-or-nothing effect, at a cost independent of
    the table size."""
    import moto.dynamodb.models as moto_models  # noqa: PLC0415
    from moto.dynamodb.models import DynamoDBBackend  # noqa: PLC0415
    from moto.dynamodb.models.dynamo_type import DynamoType  # noqa: PLC0415
    from moto.dynamodb.models.table import Table  # noqa: PLC0415

    def deepcopy(value: Any, memo: Any = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    monkeypatch.setattr(moto_models, "copy", types.SimpleNamespace(deepcopy=deepcopy))
    original = DynamoDBBackend.transact_write_items

    def transact(self: Any, transact_items: list[dict[str, Any]]) -> None:
        backups = []
        for action in transact_items:
            op = next(iter(action.values()))
            table = self.get_table(op["TableName"])
            source = op.get("Key") or op["Item"]
            pk, sk = DynamoType(source["pk"]), DynamoType(source["sk"])
            backups.append((table, pk, sk, copy.deepcopy(table.items.get(pk, {}).get(sk))))
        try:
            original(self, transact_items)
        except Exception:
            for table, pk, sk, item in backups:
                if item is None:
                    table.items.get(pk, {}).pop(sk, None)
                else:
                    table.items[pk][sk] = item
            raise

    monkeypatch.setattr(DynamoDBBackend, "transact_write_items", transact)


@pytest.mark.usefixtures("item_level_moto_rollback")
def test_requests_per_message_are_the_same_with_10_and_10000_profiles(stack: dict[Any, str]) -> None:
    table = stack[("table", "customers")]
    repos = Repos()
    batch_write(table, profile_items(0, 10))
    small = journey_costs(repos, "small")
    bulk_load(table, profile_items(10, 9_990))
    for n in (10, 5_000, 9_999):  # the stored customers are real to the API
        assert repos.customers.owner_of(verified("phone", f"+4930{n:08d}")) == f"cus_bulk{n:06d}"
        assert repos.customers.get(f"cus_bulk{n:06d}") is not None
    large = journey_costs(repos, "large")
    assert large == small
    assert all(sum(c.values()) > 0 for c in small.values())
    assert "Scan" not in {op for c in large.values() for op in c}
