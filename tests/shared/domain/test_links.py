"""Signed customer links (shared/domain/links.py): what a token proves and what it refuses."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import pytest

from shared.domain import links
from shared.domain.links import InvalidLink, check_score, link_url, sign, verify
from shared.platform.link_settings import public_base_url

SECRET = "test-links-secret"
NOW = 1_795_600_800.0  # 2026-11-25T08:00:00Z


def token(purpose: links.Purpose = "unsubscribe", **overrides: object) -> str:
    fields: dict[str, object] = {"customer_id": "cust-1", "channel": "email", "now": NOW}
    fields.update(overrides)
    return sign(SECRET, purpose, **fields)  # type: ignore[arg-type]


def claims_of(text: str) -> dict[str, object]:
    body = text.split(".", maxsplit=1)[0]
    return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


def reclaim(text: str, **changes: object) -> str:
    """The token with its claims changed and its signature kept (what a forger can do)."""
    claims = claims_of(text) | changes
    body = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=").decode()
    return f"{body}.{text.split('.')[1]}"


def test_round_trip_gives_back_the_claims() -> None:
    minted = token("ces", conversation_id="conv-9", channel="webchat")
    claims = verify(SECRET, minted, "ces", now=NOW + 60)
    assert claims == links.LinkClaims(
        purpose="ces",
        customer_id="cust-1",
        channel="webchat",
        expires=int(NOW) + links.LIFETIME_S["ces"],
        conversation_id="conv-9",
    )
    # URL-safe: the token travels as it is in a query string.
    assert set(minted) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def test_unsubscribe_links_last_a_year_surveys_a_month() -> None:
    assert verify(SECRET, token(), "unsubscribe", now=NOW + 364 * 86400).customer_id == "cust-1"
    assert verify(SECRET, token("csat", conversation_id="c"), "csat", now=NOW + 29 * 86400)
    with pytest.raises(InvalidLink) as expired:
        verify(SECRET, token("csat", conversation_id="c"), "csat", now=NOW + 31 * 86400)
    assert expired.value.expired
    assert expired.value.reason == "the link has expired"


@pytest.mark.parametrize(
    "changes",
    [{"customer_id": "cust-2"}, {"channel": "sms"}, {"expires": int(NOW) + 10 * 365 * 86400}],
)
def test_changed_claims_break_the_signature(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidLink) as refused:
        verify(SECRET, reclaim(token(), **changes), "unsubscribe", now=NOW)
    assert refused.value.reason == "the link's signature is not valid"
    assert not refused.value.expired


def test_changed_signature_and_other_secret_are_refused() -> None:
    minted = token()
    body, signature = minted.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    for forged, secret in ((f"{body}.{flipped}", SECRET), (minted, "another-secret")):
        with pytest.raises(InvalidLink, match="signature is not valid"):
            verify(secret, forged, "unsubscribe", now=NOW)


def test_a_token_of_one_purpose_is_refused_for_another() -> None:
    unsubscribe = token()
    with pytest.raises(InvalidLink, match="signature is not valid"):
        verify(SECRET, unsubscribe, "ces", now=NOW)
    survey = token("ces", conversation_id="conv-1")
    with pytest.raises(InvalidLink, match="signature is not valid"):
        verify(SECRET, survey, "unsubscribe", now=NOW)
    with pytest.raises(InvalidLink, match="signature is not valid"):
        verify(SECRET, survey, "csat", now=NOW)


def test_claims_naming_another_purpose_under_a_valid_mac_are_refused() -> None:
    # Only a holder of the secret could mint this; it must still not pass as a CES answer.
    body = base64.urlsafe_b64encode(
        json.dumps(
            {"purpose": "unsubscribe", "customer_id": "c", "channel": "email", "expires": 2**40}
        ).encode()
    )
    claims_b64 = body.rstrip(b"=").decode()
    mac = base64.urlsafe_b64encode(links._mac(SECRET, "ces", claims_b64)).rstrip(b"=").decode()
    with pytest.raises(InvalidLink, match="not for this purpose"):
        verify(SECRET, f"{claims_b64}.{mac}", "ces", now=NOW)


@pytest.mark.parametrize(
    "malformed",
    ["", "no-dot", "a.b.c", ".", "x" * 2000 + ".y", "@@@.###", "e30.AAAA"],
)
def test_malformed_tokens_are_refused_as_malformed_or_forged(malformed: str) -> None:
    with pytest.raises(InvalidLink) as refused:
        verify(SECRET, malformed, "unsubscribe", now=NOW)
    assert refused.value.reason in ("the link is malformed", "the link's signature is not valid")


def test_signed_garbage_claims_are_malformed_not_a_crash() -> None:
    for claims in (b"not json", b"[]", b'{"purpose":"unsubscribe"}', b'{"purpose":"unsubscribe",'):
        body = base64.urlsafe_b64encode(claims).rstrip(b"=").decode()
        mac = base64.urlsafe_b64encode(links._mac(SECRET, "unsubscribe", body)).rstrip(b"=").decode()
        with pytest.raises(InvalidLink, match="malformed"):
            verify(SECRET, f"{body}.{mac}", "unsubscribe", now=NOW)


def test_sign_refuses_an_unknown_purpose_and_an_empty_secret() -> None:
    with pytest.raises(ValueError, match="unknown link purpose"):
        sign(SECRET, "delete-account", customer_id="c", channel="email")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="secret is empty"):
        sign("", "unsubscribe", customer_id="c", channel="email")


def test_score_scales() -> None:
    for purpose, (low, high) in (("ces", (1, 7)), ("csat", (1, 5))):
        check_score(purpose, low)
        check_score(purpose, high)
        for bad in (low - 1, high + 1):
            with pytest.raises(InvalidLink, match=f"between {low} and {high}"):
                check_score(purpose, bad)
    with pytest.raises(ValueError, match="outside 1-5"):
        link_url("https://api.example.com", "csat", token("csat"), score=6)


def test_link_url_carries_token_and_score() -> None:
    minted = token("ces", conversation_id="conv-1")
    url = link_url("https://api.example.com/", "ces", minted, score=7)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "api.example.com", "/links/ces")
    assert parse_qs(parts.query) == {"t": [minted], "score": ["7"]}


def test_public_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(links.BASE_URL_ENV_VAR, raising=False)
    assert public_base_url() is None
    monkeypatch.setenv(links.BASE_URL_ENV_VAR, "  ")
    assert public_base_url() is None
    monkeypatch.setenv(links.BASE_URL_ENV_VAR, "https://abc.execute-api.eu-west-3.amazonaws.com/")
    assert public_base_url() == "https://abc.execute-api.eu-west-3.amazonaws.com"


def test_topology_and_links_agree_on_names() -> None:
    from topology import LINKS_SIGNING_SECRET, PUBLIC_API_URL_ENV, TOPOLOGY  # noqa: PLC0415

    assert PUBLIC_API_URL_ENV == links.BASE_URL_ENV_VAR
    assert TOPOLOGY.secret(LINKS_SIGNING_SECRET).env_var == links.SECRET_ENV_VAR
