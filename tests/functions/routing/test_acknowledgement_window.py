"""At most one automatic acknowledgement per conversation within the window; a resolution closes it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from functions.routing.decide import epoch_seconds, not_acknowledged
from shared.contracts.events import ConversationFacts

RULES: Any = SimpleNamespace(acknowledgement_window_minutes=60)
CUSTOMER: Any = SimpleNamespace(automated=None)
ACKED = "2026-12-06T10:00:00+00:00"


def facts(**values: Any) -> ConversationFacts:
    return ConversationFacts(conversation_id="c1", customer_id="u1", version=1, **values)


def test_a_second_acknowledgement_within_the_window_is_not_sent() -> None:
    meta = facts(acknowledged_at=epoch_seconds(ACKED))
    assert not_acknowledged(RULES, meta, CUSTOMER, "2026-12-06T10:30:00+00:00")
    assert not not_acknowledged(RULES, meta, CUSTOMER, "2026-12-06T11:00:01+00:00")


def test_automatic_mail_is_never_acknowledged() -> None:
    mail: Any = SimpleNamespace(automated="auto_reply")
    assert not_acknowledged(RULES, facts(), mail, ACKED)


def test_a_resolution_closes_the_window() -> None:
    meta = facts(acknowledged_at=epoch_seconds(ACKED), resolved_at="2026-12-06T10:10:00Z")
    assert not not_acknowledged(RULES, meta, CUSTOMER, "2026-12-06T10:20:00+00:00")


def test_no_window_configured_acknowledges_every_time() -> None:
    rules: Any = SimpleNamespace(acknowledgement_window_minutes=0)
    assert not not_acknowledged(rules, facts(acknowledged_at=epoch_seconds(ACKED)), CUSTOMER, ACKED)


def test_a_reopened_conversation_is_acknowledged_again() -> None:
    meta = facts(acknowledged_at=epoch_seconds(ACKED), reopened_at="2026-12-06T10:15:00Z")
    assert not not_acknowledged(RULES, meta, CUSTOMER, "2026-12-06T10:20:00+00:00")
