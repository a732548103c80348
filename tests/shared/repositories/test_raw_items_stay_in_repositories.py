"""Services and handlers work on the conversation's typed state, never on its raw META item.

Reading META as a dict (``get_meta``, ``latest_for_customer``, the index reads that return
items) and writing it by attribute names (``Change``, ``update_meta``) stay inside
``shared/repositories``; the services read :class:`ConversationState` and call the repository's
named writes (``assign``, ``accept``, ``resolve``, ...). The callers not converted yet are
listed in ``PENDING``, and this test fails as soon as one of them no longer needs its entry, so
the list only shrinks.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

#: What a caller outside the repositories must not use.
RAW = {
    "Change(": re.compile(r"(?<![A-Za-z0-9_])Change\("),
    ".update_meta(": re.compile(r"\.update_meta\("),
    ".get_meta(": re.compile(r"\.get_meta\("),
    ".latest_for_customer(": re.compile(r"\.latest_for_customer\("),
    ".waiting_since_before(": re.compile(r"\.waiting_since_before\("),
    ".bot_answered_before(": re.compile(r"\.bot_answered_before\("),
    ".get_handover(": re.compile(r"\.get_handover\("),
}

#: Callers still on the raw item, and what they use (remove an entry when it is converted).
PENDING: dict[str, set[str]] = {}


def _callers() -> list[Path]:
    services = sorted((ROOT / "shared" / "services").rglob("*.py"))
    functions = sorted((ROOT / "functions").rglob("*.py"))
    return services + functions


def _uses(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    return {name for name, pattern in RAW.items() if pattern.search(text)}


def test_services_and_handlers_do_not_handle_the_raw_conversation_item() -> None:
    found = {str(p.relative_to(ROOT)): _uses(p) for p in _callers()}
    unexpected = {
        path: sorted(uses - PENDING.get(path, set()))
        for path, uses in found.items()
        if uses - PENDING.get(path, set())
    }
    assert not unexpected, f"raw META handling outside shared/repositories: {unexpected}"


def test_the_list_of_callers_not_converted_yet_only_shrinks() -> None:
    found = {str(p.relative_to(ROOT)): _uses(p) for p in _callers()}
    stale = {
        path: sorted(uses - found.get(path, set()))
        for path, uses in PENDING.items()
        if uses - found.get(path, set())
    }
    assert not stale, f"converted: remove from PENDING {stale}"


def test_the_guard_sees_a_raw_write() -> None:
    assert _uses(Path(__file__).with_name("test_conversation_state.py")) >= {"Change(", ".update_meta("}
