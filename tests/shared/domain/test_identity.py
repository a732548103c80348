from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.contracts.events import Identity
from shared.domain.identity import (
    InvalidIdentity,
    derived_identities,
    normalise,
    normalise_value,
    parse_identity,
)


@pytest.mark.parametrize(
    "raw",
    ["+49 151 12345678", "0049 151 12345678", "+49 (151) 123-456-78", "015112345678", "  +4915112345678 "],
)
def test_spellings_of_one_german_phone_number_normalise_alike(
    raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNI_DEFAULT_PHONE_REGION", "DE")
    assert normalise_value("phone", raw) == "+4915112345678"


def test_whatsapp_id_is_a_phone_number_in_e164() -> None:
    assert normalise_value("whatsapp", "4915112345678") == "+4915112345678"


def test_email_is_case_insensitive_and_not_rewritten() -> None:
    assert normalise_value("email", " Ana.Lima+shop@Example.COM ") == "ana.lima+shop@example.com"


@pytest.mark.parametrize(
    ("identity_type", "raw"),
    [
        ("phone", "hello"),
        ("phone", "+1 2"),
        ("email", "no-at-sign"),
        ("email", "a@b"),
        ("shoe", "x"),
        ("account", "a b"),
    ],
)
def test_invalid_values_are_refused_with_a_reason(identity_type: str, raw: str) -> None:
    with pytest.raises(InvalidIdentity):
        normalise_value(identity_type, raw)


def test_parse_identity() -> None:
    assert parse_identity("email:ANA@example.com") == Identity(type="email", value="ana@example.com")
    with pytest.raises(InvalidIdentity):
        parse_identity("ana@example.com")


@given(st.emails())
def test_email_normalisation_is_idempotent(email: str) -> None:
    once = normalise(Identity(type="email", value=email))
    assert normalise(once) == once


@pytest.mark.parametrize(
    "raw",
    ["+55 11 98765-4321", "+55 11 8765-4321", "+551187654321", "0055 11 98765 4321", "+00 55 (11) 8765-4321"],
)
def test_a_brazilian_mobile_with_or_without_the_ninth_digit_is_one_key(raw: str) -> None:
    assert normalise_value("phone", raw) == "+5511987654321"


def test_a_brazilian_landline_keeps_its_eight_digits() -> None:
    assert normalise_value("phone", "+55 11 3456-7890") == "+551134567890"


def test_an_old_brazilian_wa_id_is_the_same_phone_as_the_sms_sender() -> None:
    assert normalise_value("whatsapp", "551187654321") == normalise_value("phone", "+55 11 98765-4321")


def test_a_wa_id_implies_the_phone_identity_as_strongly() -> None:
    wa = normalise(Identity(type="whatsapp", value="4915112345678", verified=True))
    assert derived_identities(wa) == [Identity(type="phone", value="+4915112345678", verified=True)]
    assert derived_identities(Identity(type="email", value="a@b.co")) == []


def test_the_default_region_applies_to_national_numbers_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNI_DEFAULT_PHONE_REGION", "BR")
    assert normalise_value("phone", "(11) 8765-4321") == "+5511987654321"
    assert normalise_value("phone", "+49 151 12345678") == "+4915112345678"
