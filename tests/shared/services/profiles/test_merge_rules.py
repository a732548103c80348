"""The merge arithmetic as pure functions: newer attribute wins, restrictive consent, reversible plans."""

from __future__ import annotations

from shared.repositories.customers import ProfileState
from shared.services.profiles.merge import more_restrictive, newer_attributes, plan_merge, plan_unmerge

OUT_OLD = {"status": "opted_out", "at": "2026-01-01T00:00:00.000000Z", "source": "sms:STOP"}
IN_NEW = {"status": "opted_in", "at": "2026-06-01T00:00:00.000000Z", "source": "agent:x"}
IN_OLD = {"status": "opted_in", "at": "2025-06-01T00:00:00.000000Z", "source": "webchat"}


def test_consent_keeps_the_most_restrictive_choice() -> None:
    assert more_restrictive(OUT_OLD, IN_NEW) == OUT_OLD
    assert more_restrictive(IN_NEW, OUT_OLD) == OUT_OLD
    assert more_restrictive(IN_OLD, IN_NEW) == IN_NEW
    assert more_restrictive(None, IN_OLD) == IN_OLD
    assert more_restrictive(None, None) is None


def test_each_attribute_takes_the_newer_value_with_its_source() -> None:
    survivor = {
        "language": {"value": "de", "at": "2026-02", "source": "agent:a"},
        "x": {"value": 1, "at": "1", "source": "s"},
    }
    other = {
        "language": {"value": "en", "at": "2026-03", "source": "sms"},
        "x": {"value": 2, "at": "0", "source": "o"},
    }
    merged = newer_attributes(survivor, other)
    assert merged["language"] == {"value": "en", "at": "2026-03", "source": "sms"}
    assert merged["x"]["value"] == 1


def state(customer_id: str, **profile: object) -> ProfileState:
    return ProfileState(
        profile={"customer_id": customer_id, "pk": f"CUST#{customer_id}", "sk": "PROFILE", **profile}
    )


def test_a_plan_reverses_what_nobody_changed_since_and_keeps_what_changed() -> None:
    survivor = state(
        "s",
        attributes={"name": {"value": "Ana", "at": "2026-01", "source": "webchat"}},
        tags=["vip"],
        consent_sms=IN_NEW,
        open_conversation_id="conv_s",
        contacts={"2026-11-20": 2},
    )
    other = state(
        "o",
        attributes={"name": {"value": "Ana Lima", "at": "2026-05", "source": "sms"}},
        tags=["late"],
        consent_sms=OUT_OLD,
        open_conversation_id="conv_o",
        contacts={"2026-11-20": 1},
    )
    plan = plan_merge(survivor, other, "mrg_1", "2026-11-25")
    assert plan.survivor_set["display_name"] == "Ana Lima"
    assert plan.survivor_set["consent_sms"] == OUT_OLD
    assert plan.survivor_set["tags"] == ["vip", "late"]
    assert plan.survivor_set["contacts"] == {"2026-11-20": 3}
    assert plan.thread == {"source": "conv_o", "target": "conv_s"}
    assert "open_conversation_id" not in plan.survivor_set
    record = {"merged_result": plan.survivor_set, "survivor_before": plan.survivor_before}

    untouched = state("s", **plan.survivor_set)
    back = plan_unmerge(record, untouched, other)
    assert back.survivor_set["attributes"]["name"]["value"] == "Ana"
    assert back.survivor_set["display_name"] == "Ana"
    assert back.survivor_set["consent_sms"] == IN_NEW
    assert back.survivor_set["tags"] == ["vip"]
    assert back.survivor_set["contacts"] == {"2026-11-20": 2}

    # An agent renamed the survivor and a STOP arrived after the merge: both stay, and the
    # opt-out also applies to the profile given back (we cannot tell whose it was).
    stop = {"status": "opted_out", "at": "2026-11-26T00:00:00.000000Z", "source": "sms:STOP"}
    renamed = {"name": {"value": "Ana L.", "at": "2026-11-26", "source": "agent:x"}}
    changed = state("s", **{**plan.survivor_set, "consent_sms": stop, "attributes": renamed})
    back = plan_unmerge(record, changed, other)
    assert back.survivor_set["attributes"]["name"]["value"] == "Ana L."
    assert "consent_sms" not in back.survivor_set
    assert back.other_set["consent_sms"] == stop
