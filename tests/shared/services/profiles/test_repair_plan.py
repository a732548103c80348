"""The duplicate repair's plan (pure): which claimed-only profiles become one, and which survives."""

from __future__ import annotations

from typing import Any

from shared.repositories.customers import ProfileState
from shared.services.profiles.repair import ProposedMerge, plan_repair


def profile(
    customer_id: str, created: str, *links: tuple[str, bool], status: str = "active", unmerged: str = ""
) -> ProfileState:
    history: list[dict[str, Any]] = (
        [{"merge_id": "mrg_1", "role": "survivor", "other_customer_id": unmerged, "status": "unmerged"}]
        if unmerged
        else []
    )
    return ProfileState(
        profile={"customer_id": customer_id, "created_at": created, "status": status},
        links=[
            {"sk": f"IDENT#email#{value}", "type": "email", "value": value, "verified": proven}
            for value, proven in links
        ],
        history=history,
    )


def test_profiles_sharing_claimed_addresses_transitively_become_one_the_oldest_surviving() -> None:
    profiles = [
        profile("c3", "2026-01-03", ("kim@a.example", False), ("kim@b.example", False)),
        profile("c1", "2026-01-01", ("kim@a.example", False)),
        profile("c2", "2026-01-02", ("kim@b.example", False)),
        profile("c4", "2026-01-04", ("lone@a.example", False)),
    ]
    assert plan_repair(profiles, {}) == [
        ProposedMerge("c1", ("c2", "c3"), ("email:kim@a.example", "email:kim@b.example"))
    ]


def test_the_claim_holder_survives() -> None:
    profiles = [
        profile("c1", "2026-01-01", ("kim@a.example", False)),
        profile("c2", "2026-01-02", ("kim@a.example", False)),
    ]
    assert plan_repair(profiles, {"email:kim@a.example": "c2"}) == [
        ProposedMerge("c2", ("c1",), ("email:kim@a.example",))
    ]


def test_verified_merged_and_unmerged_profiles_are_left_alone() -> None:
    profiles = [
        profile("owner", "2026-01-01", ("kim@a.example", True)),
        profile("web", "2026-01-01", ("kim@a.example", False), ("visitor@web.example", True)),
        profile("gone", "2026-01-01", ("kim@a.example", False), status="merged"),
        profile("c1", "2026-01-02", ("kim@a.example", False)),
        profile("c2", "2026-01-03", ("kim@a.example", False), unmerged="c1"),
    ]
    assert plan_repair(profiles, {}) == []
