"""Proactive rules as pure functions: loading and validation, matching, counting, variables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from functions.proactive.events import BehaviourDetail, InvalidBehaviourEvent, check_event
from functions.proactive.rules import (
    ProactiveConfigError,
    ProactiveRule,
    load_proactive_rules,
    parse_proactive_rules,
)
from functions.proactive.service import count_event, fill_variables

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RULES = load_proactive_rules()
SHIPPING = next(r for r in RULES.rules if r.name == "shipping_update")
CANCEL = next(r for r in RULES.rules if r.name == "cancellation_page")


def detail(**fields: Any) -> BehaviourDetail:
    return BehaviourDetail.model_validate({"customer_id": "cus_1", "at": T0.isoformat(), **fields})


def run(rule: ProactiveRule, times: list[timedelta], per: str = "A-1") -> list[str | None]:
    """Count events at T0 + each offset in turn; the action that fired for each (or None)."""
    item: dict[str, Any] | None = None
    fired: list[str | None] = []
    for i, offset in enumerate(times):
        counted = count_event(rule, item, "cus_1", per, f"ev-{i}", T0 + offset)
        item = counted.item if counted.item is not None else item
        fired.append(counted.fired)
    return fired


def test_the_packaged_rules_load() -> None:
    assert (SHIPPING.event, SHIPPING.count, SHIPPING.within_hours, SHIPPING.action) == (
        "order.status_checked",
        3,
        24,
        "notify",
    )
    assert (CANCEL.action, CANCEL.queue, CANCEL.once_per) == ("agent_task", "retention", "day")


H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("offsets", "expected"),
    [
        # The third check within 24 h fires; the fourth does not fire again.
        (
            [0 * H, 1 * H, 2 * H, 3 * H],
            [None, None, "proactive:shipping_update:cus_1:A-1:20260302T090000Z", None],
        ),
        # Spread over more than 24 h: never three in one window.
        ([0 * H, 13 * H, 26 * H], [None, None, None]),
        # Out of order: the window is what falls in the 24 h up to each check.
        ([5 * H, 0 * H, 1 * H], [None, None, "proactive:shipping_update:cus_1:A-1:20260302T090000Z"]),
        # After the window has passed since it fired, a new burst fires again (new window, new id).
        (
            [0 * H, 1 * H, 2 * H, 30 * H, 31 * H, 32 * H],
            [
                None,
                None,
                "proactive:shipping_update:cus_1:A-1:20260302T090000Z",
                None,
                None,
                "proactive:shipping_update:cus_1:A-1:20260303T150000Z",
            ],
        ),
    ],
)
def test_third_check_within_24h_fires_once(offsets: list[timedelta], expected: list[str | None]) -> None:
    assert run(SHIPPING, offsets) == expected


def test_a_redelivered_event_is_counted_once_and_repeats_its_own_firing() -> None:
    item: dict[str, Any] | None = None
    for i in range(3):
        counted = count_event(SHIPPING, item, "cus_1", "A-1", f"ev-{i}", T0 + i * H)
        item = counted.item
    assert item is not None
    assert len(item["checks"]) == 3
    again = count_event(SHIPPING, item, "cus_1", "A-1", "ev-2", T0 + 2 * H)
    assert again.item is None
    assert again.fired == item["fired_id"]
    earlier = count_event(SHIPPING, item, "cus_1", "A-1", "ev-0", T0)
    assert (earlier.item, earlier.fired) == (None, None)
    # Redelivering the first event twice never makes a third check.
    fresh = count_event(SHIPPING, None, "cus_1", "A-1", "ev-0", T0)
    assert fresh.item is not None
    assert count_event(SHIPPING, fresh.item, "cus_1", "A-1", "ev-0", T0).item is None


def test_once_per_day_for_the_cancellation_task() -> None:
    fired = run(CANCEL, [0 * H, 2 * H, 16 * H, 40 * H], per="")
    assert fired == [
        "proactive:cancellation_page:cus_1:20260302",
        None,  # same day
        "proactive:cancellation_page:cus_1:20260303",  # next UTC day
        "proactive:cancellation_page:cus_1:20260304",
    ]


def test_old_checks_are_dropped_and_the_item_expires() -> None:
    item: dict[str, Any] | None = None
    for i in range(60):
        item = count_event(SHIPPING, item, "cus_1", "A-1", f"ev-{i}", T0 + i * 10 * H).item
    assert item is not None
    assert len(item["checks"]) <= 3
    assert item["expires_at"] > (T0 + 590 * H).timestamp()


@pytest.mark.parametrize(
    ("fields", "applies"),
    [
        ({"url": "https://shop.example.com/account/cancel"}, True),
        ({"url": "https://shop.example.com/account/cancellation?step=1"}, True),
        ({"url": "https://shop.example.de/vertrag/kuendigen"}, True),
        ({"page": "Cancellation"}, True),
        ({"url": "https://shop.example.com/products/cancelled-flights-insurance"}, False),
        ({"url": "https://shop.example.com/help"}, False),
    ],
)
def test_cancellation_page_matching(fields: dict[str, str], applies: bool) -> None:
    assert (RULES.for_event("page.viewed", detail(**fields)) == [CANCEL]) is applies


def test_rules_apply_to_their_event_only() -> None:
    assert RULES.for_event("order.status_checked", detail(order_id="A-1")) == [SHIPPING]
    assert RULES.for_event("page.viewed", detail(order_id="A-1", url="/cancel")) == [CANCEL]


def test_event_schema() -> None:
    check_event("order.status_checked", detail(order_id="A-1"))
    with pytest.raises(InvalidBehaviourEvent, match="needs order_id"):
        check_event("order.status_checked", detail())
    with pytest.raises(InvalidBehaviourEvent, match="needs url or page"):
        check_event("page.viewed", detail())
    with pytest.raises(ValidationError, match="customer_id or identity"):
        BehaviourDetail.model_validate({"at": T0.isoformat(), "order_id": "A-1"})
    with pytest.raises(ValidationError):
        BehaviourDetail.model_validate({"customer_id": "c", "at": "2026-03-02T09:00:00"})  # no time zone
    ok = BehaviourDetail.model_validate(
        {"identity": {"type": "phone", "value": "+49 151 1234"}, "at": T0.isoformat(), "extra": 1}
    )
    assert ok.identity is not None
    assert ok.customer_id is None


def test_variables_use_the_event_then_the_fallbacks() -> None:
    full = fill_variables(
        SHIPPING,
        {"first_name": "Ana", "order_id": "A-1", "tracking_url": "https://t.example/1", "customer_id": "c"},
    )
    assert full == {"first_name": "Ana", "order_id": "A-1", "tracking_url": "https://t.example/1"}
    gaps = fill_variables(SHIPPING, {"first_name": "", "order_id": "A-1", "customer_id": "c"})
    assert gaps == {
        "first_name": "there",
        "order_id": "A-1",
        "tracking_url": "https://www.example.com/orders/A-1",
    }


def _problems(rule: dict[str, Any], **top: Any) -> list[str]:
    with pytest.raises(ProactiveConfigError) as caught:
        parse_proactive_rules({"version": 1, "rules": [rule], **top}, "test.toml")
    return caught.value.problems


GOOD_TASK = {
    "name": "t",
    "event": "page.viewed",
    "action": "agent_task",
    "queue": "retention",
    "note": "n",
}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"event": "page.clicked"}, "rules[0].event: unknown event 'page.clicked'"),
        ({"action": "email"}, "rules[0].action: must be 'notify' or 'agent_task'"),
        ({"queue": "retension"}, "rules[0].queue: unknown queue 'retension'"),
        ({"note": ""}, "rules[0].note: is required"),
        ({"count": 0}, "rules[0].count: must be a whole number from 1 to 100"),
        ({"once_per": "week"}, "rules[0].once_per: must be 'window' or 'day'"),
        ({"per": "colour"}, "rules[0].per: must be one of"),
        ({"match": ["(unclosed"]}, "rules[0].match[0]: not a valid regular expression"),
        ({"name": "Bad Name"}, "rules[0].name: must be lower_snake_case"),
        ({"quue": "x"}, "rules[0]: unknown keys ['quue']"),
    ],
)
def test_bad_task_rules_are_refused_with_their_path(change: dict[str, Any], problem: str) -> None:
    problems = _problems({**GOOD_TASK, **change})
    assert any(p.startswith(problem) for p in problems), problems


GOOD_NOTIFY = {
    "name": "n",
    "event": "order.status_checked",
    "action": "notify",
    "template": "order_shipped",
    "variables": {"first_name": "{first_name}", "order_id": "{order_id}", "tracking_url": "{tracking_url}"},
    "fallback": {"first_name": "there", "tracking_url": "https://x.example/{order_id}"},
}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"template": "order_shiped"}, "rules[0].template: no template 'order_shiped'"),
        ({"template": None}, "rules[0].template: is required"),
        ({"variables": {"first_name": "x", "order_id": "{order_id}"}}, "rules[0].variables: template"),
        (
            {"fallback": {"first_name": "there"}},
            "rules[0].variables.tracking_url: ['tracking_url'] may be missing",
        ),
        (
            {"fallback": {"first_name": "{page}", "tracking_url": "u"}},
            "rules[0].fallback.first_name: may only use",
        ),
        (
            {"variables": {**GOOD_NOTIFY["variables"], "order_id": "{colour}"}},  # type: ignore[dict-item]
            "rules[0].variables.order_id: unknown placeholder",
        ),
    ],
)
def test_bad_notify_rules_are_refused_with_their_path(change: dict[str, Any], problem: str) -> None:
    rule = {k: v for k, v in {**GOOD_NOTIFY, **change}.items() if v is not None}
    problems = _problems(rule)
    assert any(p.startswith(problem) for p in problems), problems


def test_duplicate_names_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ProactiveConfigError, match="duplicate rule name 't'"):
        parse_proactive_rules({"version": 1, "rules": [GOOD_TASK, GOOD_TASK]})
    assert parse_proactive_rules({"version": 1, "rules": [GOOD_TASK, GOOD_NOTIFY]}).rules[1].name == "n"
    broken = tmp_path / "rules.toml"
    broken.write_text("version = [")
    with pytest.raises(ProactiveConfigError, match="not valid TOML"):
        load_proactive_rules(broken)
    with pytest.raises(ProactiveConfigError, match="does not exist"):
        load_proactive_rules(tmp_path / "missing.toml")
