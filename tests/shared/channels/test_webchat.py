from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from shared.channels.webchat import (
    InvalidToken,
    InvalidUserHash,
    SessionClaims,
    bearer_token,
    compute_user_hash,
    inbound_message,
    issue_token,
    verify_token,
    verify_user_hash,
)

SECRET = "a-token-secret-of-at-least-32-bytes!!"
NOW = int(time.time())


def test_user_hash_is_hex_hmac_sha256_of_the_account_id() -> None:
    # Known answer: printf acct-42 | openssl dgst -sha256 -hmac secret
    assert (
        compute_user_hash("secret", "acct-42")
        == "743b8e6b39ecedabbf594c72bf3d9a0ce4bb8c443fc8c610eccc7aa05cde5dc2"
    )
    verify_user_hash("secret", "acct-42", "ana@example.com", compute_user_hash("secret", "acct-42"))


def test_user_hash_signs_the_email_when_there_is_no_account() -> None:
    verify_user_hash("secret", None, "ana@example.com", compute_user_hash("secret", "ana@example.com"))
    with pytest.raises(InvalidUserHash):
        verify_user_hash(
            "secret", "acct-42", "ana@example.com", compute_user_hash("secret", "ana@example.com")
        )
    with pytest.raises(InvalidUserHash):
        verify_user_hash("other", None, "ana@example.com", compute_user_hash("secret", "ana@example.com"))


def test_token_round_trip_and_session_binding() -> None:
    claims = SessionClaims(
        session_id="wcs_1", verified=True, account_id="acct-42", email="a@b.co", name="Ana"
    )
    token = issue_token(SECRET, claims, NOW, ttl_s=10**9)
    assert verify_token(SECRET, token, "wcs_1") == claims
    with pytest.raises(InvalidToken):
        verify_token(SECRET, token, "wcs_2")
    with pytest.raises(InvalidToken):
        verify_token("another-secret-of-at-least-32-bytes!!", token, "wcs_1")


def test_expired_token_is_refused() -> None:
    token = issue_token(SECRET, SessionClaims(session_id="wcs_1", verified=False), NOW - 100, ttl_s=10)
    with pytest.raises(InvalidToken):
        verify_token(SECRET, token, "wcs_1")


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer   "])
def test_bearer_token_needs_the_bearer_scheme(header: str | None) -> None:
    with pytest.raises(InvalidToken):
        bearer_token(header)


def test_inbound_message_from_a_claimed_identity_is_not_verified() -> None:
    now = datetime(2026, 11, 25, 8, tzinfo=UTC)
    message = inbound_message(
        SessionClaims(session_id="wcs_1", verified=False, email="a@b.co"), "m1", "hi", now, now
    )
    assert message.sender.verified is True
    assert [(i.type, i.verified) for i in message.identities] == [("email", False)]
    assert message.provider_message_id == "wcs_1:m1"


def test_a_browser_clock_in_the_future_does_not_reorder_the_conversation() -> None:
    now = datetime(2026, 11, 25, 8, tzinfo=UTC)
    message = inbound_message(
        SessionClaims(session_id="s", verified=False), "m1", "hi", now + timedelta(hours=3), now
    )
    assert message.sent_at == now
