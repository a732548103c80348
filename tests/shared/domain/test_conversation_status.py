"""The conversation status rules (pure)."""

from __future__ import annotations

import pytest

from shared.domain.conversation_status import (
    MESSAGE_STATUS_RANK,
    TRANSITIONS,
    UNFINISHED,
    SurveyReply,
    allowed,
    earlier_delivery_statuses,
    ends_reply_wait,
    is_unfinished,
    reopens,
    starts_reply_wait,
    survey_reply,
)

NOW = "2024-05-10T12:00:00.000Z"


def test_the_status_machine() -> None:
    assert allowed("new", "open")
    assert allowed("open", "bot")
    assert allowed("open", "queued")
    assert allowed("queued", "assigned")
    assert allowed("assigned", "active")
    assert all(allowed(status, "resolved") for status in UNFINISHED)
    assert allowed("resolved", "open")
    assert not allowed("resolved", "active")
    assert not allowed("bot", "open")
    assert not allowed("merged", "open")
    assert set(UNFINISHED) <= set(TRANSITIONS)


@pytest.mark.parametrize("status", ["open", "bot", "queued", "assigned", "active"])
def test_a_message_joins_an_unfinished_conversation(status: str) -> None:
    assert is_unfinished(status)


@pytest.mark.parametrize("status", ["resolved", "merged", None])
def test_a_message_does_not_join_a_finished_conversation(status: str | None) -> None:
    assert not is_unfinished(status)


def test_a_resolved_conversation_reopens_within_the_window_only() -> None:
    assert reopens("resolved", "2024-05-08T12:00:00.000Z", NOW, 72)
    assert reopens("resolved", "2024-05-07T12:00:00.000Z", NOW, 72)  # exactly 72 h
    assert not reopens("resolved", "2024-05-07T11:59:59.000Z", NOW, 72)
    assert not reopens("resolved", "", NOW, 72)
    assert not reopens("active", "2024-05-10T11:00:00.000Z", NOW, 72)


def test_reply_wait_starts_on_an_accepted_conversation_and_ends_with_the_agents_answer() -> None:
    assert starts_reply_wait("active", None, "billing")
    assert not starts_reply_wait("active", "2024-05-10T11:00:00.000Z", "billing")
    assert not starts_reply_wait("active", None, None)
    assert not starts_reply_wait("queued", None, "billing")
    assert ends_reply_wait("agent:ana", "reply")
    assert not ends_reply_wait("agent:ana", "agent")
    assert not ends_reply_wait("bot", "reply")


def test_delivery_statuses_only_move_forward() -> None:
    assert earlier_delivery_statuses("queued") == []
    assert earlier_delivery_statuses("delivered") == ["queued", "sent"]
    assert earlier_delivery_statuses("failed") == list(MESSAGE_STATUS_RANK)[:-1]
    with pytest.raises(ValueError, match="unknown delivery status"):
        earlier_delivery_statuses("bounced")


def _reply(**overrides: object) -> SurveyReply:
    arguments: dict[str, object] = {
        "status": "resolved",
        "resolved_at": "2024-05-10T10:00:00.000Z",
        "pending": {"survey": "csat", "resolved_at": "2024-05-10T10:00:00.000Z"},
        "answered": None,
        "survey": "csat",
        "message_id": "m-1",
    }
    arguments.update(overrides)
    return survey_reply(**arguments)  # type: ignore[arg-type]


def test_a_reply_answers_the_survey_pending_for_the_latest_resolution() -> None:
    assert _reply() is SurveyReply.ANSWER


def test_the_same_reply_again_is_a_redelivery() -> None:
    assert _reply(answered={"score": 5, "message_id": "m-1"}) is SurveyReply.REDELIVERED


@pytest.mark.parametrize(
    "overrides",
    [
        {"status": "open"},  # reopened meanwhile
        {"pending": None},  # never asked
        {"pending": {"survey": "ces", "resolved_at": "2024-05-10T10:00:00.000Z"}},  # another survey
        {"resolved_at": "2024-05-10T11:00:00.000Z"},  # asked for an earlier resolution
        {"answered": {"score": 4, "message_id": "m-0"}},  # answered before: the first answer wins
    ],
)
def test_a_reply_is_an_ordinary_message_unless_the_survey_is_pending(overrides: dict[str, object]) -> None:
    assert _reply(**overrides) is SurveyReply.NOT_PENDING
