"""Retention: customers are erased OMNI_RETENTION_DAYS after their last contact, by an hourly sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from shared.contracts.events import MessageReceived, format_timestamp, utc_now
from shared.domain.retention import (
    RETAIN_ATTRIBUTE,
    RETENTION_INDEX,
    contact_day,
    due_buckets,
    is_due,
    last_contact_day,
    later,
    profile_retain_until,
    retain_until,
    retention_days,
)
from shared.repositories.customers import PROFILE, customer_pk
from shared.services.profiles.erasure import erase_customer, sweep_retention
from shared.services.profiles.inbound import RecordedMessage, record_message
from tests.helpers import context
from tests.shared.services.profiles.support import Repos, inbound, snapshot, verified
from topology import TOPOLOGY

# --------------------------------------------------------------------------- #
# Day buckets (pure)
# --------------------------------------------------------------------------- #


def test_retain_until_adds_the_retention_period_to_the_contact_day() -> None:
    assert retain_until("2026-01-10", 365) == "2027-01-10"
    assert retain_until("2024-02-29", 365) == "2025-02-28"  # leap day
    assert retain_until("2026-12-31", 1) == "2027-01-01"


def test_retention_ends_after_the_last_kept_day() -> None:
    today = "2026-11-25"
    kept_for_365 = retain_until("2025-11-25", 365)  # contact exactly 365 days ago
    assert kept_for_365 == today
    assert not is_due(kept_for_365, today)
    assert is_due(retain_until("2025-11-24", 365), today)  # 366 days ago
    assert is_due("2026-11-24", "2026-11-25T00:00:00.000000Z")
    assert not is_due("2027-01-01", today)


def test_due_buckets_are_the_past_days_of_the_look_back_oldest_first() -> None:
    assert due_buckets("2026-03-02T10:00:00Z", 3) == ["2026-02-27", "2026-02-28", "2026-03-01"]
    buckets = due_buckets("2026-11-25", 90)
    assert len(buckets) == 90
    assert buckets[-1] == "2026-11-24"
    assert "2026-11-25" not in buckets
    assert buckets[0] == "2026-08-27"
    with pytest.raises(ValueError, match="look-back"):
        due_buckets("2026-11-25", 0)


def test_contact_day_never_lies_in_the_future_of_processing() -> None:
    assert contact_day("2026-11-20T09:00:00Z", "2026-11-25T10:00:00Z") == "2026-11-20"
    assert contact_day("2030-01-01T00:00:00Z", "2026-11-25T10:00:00Z") == "2026-11-25"


def test_last_contact_is_the_latest_channel_or_the_creation() -> None:
    profile: dict[str, Any] = {
        "created_at": "2025-01-01T00:00:00.000000Z",
        "last_seen": {"sms": "2025-06-01T08:00:00Z", "email": "2025-09-30T23:59:59Z"},
    }
    assert last_contact_day(profile) == "2025-09-30"
    assert profile_retain_until(profile, 30) == "2025-10-30"
    assert last_contact_day({"created_at": "2025-01-01T00:00:00Z", "last_seen": {}}) == "2025-01-01"
    assert last_contact_day({}) is None
    assert profile_retain_until({}, 365) is None


def test_later_and_configuration() -> None:
    assert later("2026-01-02", "2026-01-01") == "2026-01-02"
    assert later(None, "2026-01-01") == "2026-01-01"
    assert later("2026-01-01", None) == "2026-01-01"
    assert later(None, None) is None
    assert retention_days({}) == 365
    assert retention_days({"OMNI_RETENTION_DAYS": "30"}) == 30
    with pytest.raises(ValueError, match="at least 1"):
        retention_days({"OMNI_RETENTION_DAYS": "0"})


def test_topology_declares_the_sweep_the_index_and_one_retention_period() -> None:
    sweep = TOPOLOGY.function("retention-sweep")
    assert [s.expression for s in sweep.schedules] == ["rate(60 minutes)"]
    assert {(g.resource, g.access) for g in sweep.grants} == {
        ("customers", "readwrite"),
        ("conversations", "readwrite"),
    }
    index = next(g for g in TOPOLOGY.table("customers").gsis if g.name == RETENTION_INDEX)
    assert (index.partition_key, index.sort_key) == (RETAIN_ATTRIBUTE, "customer_id")
    values = {
        fn.environment["OMNI_RETENTION_DAYS"]
        for fn in TOPOLOGY.functions
        if "OMNI_RETENTION_DAYS" in fn.environment
    }
    assert values == {"365"}
    assert {"profile-merge", "agent-api", "retention-sweep"} <= {
        fn.name for fn in TOPOLOGY.functions if "OMNI_RETENTION_DAYS" in fn.environment
    }


# --------------------------------------------------------------------------- #
# The sweep, under moto
# --------------------------------------------------------------------------- #


def _days_ago(days: int, now: datetime | None = None) -> datetime:
    return (now or utc_now()) - timedelta(days=days)


def _record_at(repos: Repos, message: MessageReceived, processed: datetime | None = None) -> RecordedMessage:
    """Record ``message`` as profile merge did at ``processed`` (default: when it was sent)."""
    at = processed or message.sent_at
    return record_message(
        repos.customers, repos.conversations, message, format_timestamp(at), merger=repos.merger
    )


def _message(message_id: str, phone: str, sent_at: datetime) -> MessageReceived:
    return inbound(
        message_id, verified("phone", phone), channel="sms", sent_at=sent_at, text=f"secret {phone}"
    )


def _index(stack: dict[Any, str], day: str) -> list[str]:
    response = boto3.client("dynamodb").query(
        TableName=stack[("table", "customers")],
        IndexName=RETENTION_INDEX,
        KeyConditionExpression="#d = :d",
        ExpressionAttributeNames={"#d": RETAIN_ATTRIBUTE},
        ExpressionAttributeValues={":d": {"S": day}},
    )
    return [i["customer_id"]["S"] for i in response["Items"]]


def _set_retain(stack: dict[Any, str], customer_id: str, day: str) -> None:
    boto3.client("dynamodb").update_item(
        TableName=stack[("table", "customers")],
        Key={"pk": {"S": customer_pk(customer_id)}, "sk": {"S": PROFILE}},
        UpdateExpression="SET #d = :d",
        ExpressionAttributeNames={"#d": RETAIN_ATTRIBUTE},
        ExpressionAttributeValues={":d": {"S": day}},
    )


def test_every_message_moves_the_retention_day_forward_only(stack: dict[Any, str]) -> None:
    repos = Repos()
    now = utc_now()
    first = _record_at(repos, _message("r1", "+4915100000001", _days_ago(20, now)))
    customer_id = first.customer_id
    assert customer_id
    day_20 = retain_until(format_timestamp(_days_ago(20, now))[:10], 365)
    assert repos.customers.get_profile(customer_id)[RETAIN_ATTRIBUTE] == day_20  # type: ignore[index]
    assert _index(stack, day_20) == [customer_id]
    # A newer message moves it; an older one (a late delivery) does not move it back.
    _record_at(repos, _message("r2", "+4915100000001", _days_ago(2, now)), processed=now)
    _record_at(repos, _message("r0", "+4915100000001", _days_ago(30, now)), processed=now)
    day_2 = retain_until(format_timestamp(_days_ago(2, now))[:10], 365)
    assert repos.customers.get_profile(customer_id)[RETAIN_ATTRIBUTE] == day_2  # type: ignore[index]
    assert _index(stack, day_20) == []
    assert _index(stack, day_2) == [customer_id]


def test_the_sweep_erases_exactly_the_customers_past_retention(stack: dict[Any, str]) -> None:
    from functions.retention_sweep import handler as module  # noqa: PLC0415

    repos = Repos()
    now = utc_now()
    old = _message("m400", "+4915100000400", _days_ago(400, now))
    just_over = _message("m366", "+4915100000366", _days_ago(366, now))
    recent = _message("m10", "+4915100000010", _days_ago(10, now))
    ids = {m.provider_message_id: _record_at(repos, m).customer_id for m in (old, just_over, recent)}
    assert all(ids.values())

    first = module.handler({}, context("retention-sweep"))
    assert sorted(first["erased"]) == sorted([ids["m400"], ids["m366"]])
    assert first["complete"] is True
    for message_id in ("m400", "m366"):
        customer = repos.customers.get(ids[message_id])
        assert customer is not None
        assert customer.status == "erased"
        assert repos.merger.list_ids(ids[message_id]) == []
    state = repr(snapshot(stack))
    for personal in ("+4915100000400", "+4915100000366", "secret +49151000004", "secret +4915100000366"):
        assert personal not in state
    kept = repos.customers.get(ids["m10"])
    assert kept is not None
    assert kept.status == "active"
    assert "+4915100000010" in state
    assert len(repos.merger.list_ids(ids["m10"])) == 1

    second = module.handler({}, context("retention-sweep"))
    assert second["erased"] == []
    assert second["checked"] == 0

    # A replay of an erased person's message (same id, or an old one under a new id) is dropped.
    replay = repos.record(old)
    assert (replay.customer_id, replay.dropped) == (None, "erased")
    late = repos.record(_message("m366-late", "+4915100000366", _days_ago(366, now)))
    assert (late.customer_id, late.dropped) == (None, "erased")
    assert repos.customers.owner_of(verified("phone", "+4915100000400")) is None


def test_a_stale_index_day_is_corrected_instead_of_erasing(stack: dict[Any, str]) -> None:
    repos = Repos()
    now = utc_now()
    recorded = _record_at(repos, _message("s1", "+4915100000500", _days_ago(5, now)))
    customer_id = recorded.customer_id
    assert customer_id
    stale = retain_until(format_timestamp(_days_ago(400, now))[:10], 365)
    _set_retain(stack, customer_id, stale)
    result = sweep_retention(repos.customers, repos.merger, format_timestamp(now), int(now.timestamp()))
    assert (result.erased, result.moved) == ([], [customer_id])
    expected = retain_until(format_timestamp(_days_ago(5, now))[:10], 365)
    assert repos.customers.get_profile(customer_id)[RETAIN_ATTRIBUTE] == expected  # type: ignore[index]
    assert _index(stack, stale) == []


def test_a_contact_after_the_sweep_read_the_profile_cancels_the_erasure(stack: dict[Any, str]) -> None:
    repos = Repos()
    now = utc_now()
    customer_id = _record_at(repos, _message("c1", "+4915100000600", _days_ago(400, now))).customer_id
    assert customer_id
    # The message lands between the index read and the erasure: the conditional erasure loses.
    _record_at(repos, _message("c2", "+4915100000600", _days_ago(0, now)), processed=now)
    today = format_timestamp(now)[:10]
    result = erase_customer(
        repos.customers,
        repos.merger,
        customer_id,
        format_timestamp(now),
        int(now.timestamp()),
        due_before=today,
    )
    assert result.retained
    assert repos.customers.get(customer_id).status == "active"  # type: ignore[union-attr]


def test_merged_profiles_keep_the_latest_day_and_leave_the_index(stack: dict[Any, str]) -> None:
    repos = Repos()
    now = utc_now()
    older = _record_at(repos, _message("g1", "+4915100000701", _days_ago(400, now))).customer_id
    newer = _record_at(
        repos,
        inbound("g2", verified("email", "keep@example.com"), channel="email", sent_at=_days_ago(10, now)),
    ).customer_id
    # One message proves both identities are one person: the older profile survives.
    link = inbound(
        "g3",
        verified("email", "keep@example.com"),
        verified("phone", "+4915100000701"),
        channel="email",
        sent_at=_days_ago(400, now),
    )
    merged = _record_at(repos, link, processed=now)
    assert merged.customer_id == older
    assert merged.merges
    survivor = repos.customers.get_profile(older)  # type: ignore[arg-type]
    assert survivor is not None
    assert survivor[RETAIN_ATTRIBUTE] == retain_until(format_timestamp(_days_ago(10, now))[:10], 365)
    away = repos.customers.get_profile(newer)  # type: ignore[arg-type]
    assert away is not None
    assert away["status"] == "merged"
    assert RETAIN_ATTRIBUTE not in away
    result = sweep_retention(repos.customers, repos.merger, format_timestamp(now), int(now.timestamp()))
    assert result.erased == []


def test_an_erasure_that_stopped_half_way_is_finished_by_the_next_run(stack: dict[Any, str]) -> None:
    repos = Repos()
    now = utc_now()
    customer_id = _record_at(repos, _message("h1", "+4915100000800", _days_ago(400, now))).customer_id
    assert customer_id
    state = repos.customers.load(customer_id)
    assert state is not None
    # The profile was marked erased, then the function timed out before anything was deleted.
    assert repos.customers.begin_erasure(state, format_timestamp(now), due_before=format_timestamp(now)[:10])
    result = sweep_retention(repos.customers, repos.merger, format_timestamp(now), int(now.timestamp()))
    assert result.erased == [customer_id]
    assert "+4915100000800" not in repr(snapshot(stack))
    again = erase_customer(repos.customers, repos.merger, customer_id, format_timestamp(now), 0)
    assert again.already


def test_a_run_out_of_time_stops_and_the_next_one_carries_on(stack: dict[Any, str]) -> None:
    repos = Repos()
    now = utc_now()
    ids = [
        _record_at(repos, _message(f"t{n}", f"+49151000009{n:02d}", _days_ago(380 + n, now))).customer_id
        for n in range(3)
    ]
    budget = iter([True, False])
    first = sweep_retention(
        repos.customers,
        repos.merger,
        format_timestamp(now),
        int(now.timestamp()),
        keep_going=lambda: next(budget),
    )
    assert not first.complete
    assert len(first.erased) == 1
    rest = sweep_retention(repos.customers, repos.merger, format_timestamp(now), int(now.timestamp()))
    assert rest.complete
    assert sorted(first.erased + rest.erased) == sorted(ids)


def test_a_message_after_the_erasure_is_a_new_contact(stack: dict[Any, str]) -> None:
    repos = Repos()
    now = utc_now()
    gone = _record_at(repos, _message("n1", "+4915100000999", _days_ago(370, now))).customer_id
    sweep_retention(repos.customers, repos.merger, format_timestamp(now), int(now.timestamp()))
    back = repos.record(_message("n2", "+4915100000999", datetime.now(UTC) + timedelta(seconds=1)))
    assert back.customer_id
    assert back.customer_id != gone
    assert back.new_customer
