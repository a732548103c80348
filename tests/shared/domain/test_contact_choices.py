"""Reply keywords that choose channels, and the zone and window of quiet hours."""

from __future__ import annotations

import pytest

from shared.domain.contact_choices import KEYWORDS, parse_keyword, parse_window, phone_zone, quiet_zone


@pytest.mark.parametrize(
    ("text", "channels", "mode", "language"),
    [
        ("SMS only", ("sms",), "first", "en"),
        ("  sms   ONLY! ", ("sms",), "first", "en"),
        ("Text only.", ("sms",), "first", "en"),
        ("nur SMS", ("sms",), "first", "de"),
        ("SMS bitte", ("sms",), "first", "de"),
        ("WhatsApp bitte", ("whatsapp",), "first", "de"),
        ("whatsapp please", ("whatsapp",), "first", "en"),
        ("nur per WhatsApp", ("whatsapp",), "first", "de"),
        ("E-Mail bitte", ("email",), "first", "de"),
        ("email only", ("email",), "first", "en"),
        ("all channels", ("sms", "whatsapp"), "all", "en"),
        ("Alle Kanäle", ("sms", "whatsapp"), "all", "de"),
        ("SMS und WhatsApp", ("sms", "whatsapp"), "all", "de"),
    ],
)
def test_keywords_in_english_and_german(
    text: str, channels: tuple[str, ...], mode: str, language: str
) -> None:
    keyword = parse_keyword(text)
    assert keyword is not None
    assert (keyword.channels, keyword.mode, keyword.language) == (channels, mode, language)
    patch = keyword.patch()
    assert patch.choices() == {"channel_preferences": list(channels), "channel_mode": mode}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Hi, can you send me an SMS only when my order ships?",
        "sms",
        "STOP",
        "only sms only",
        "my whatsapp please is broken",
    ],
)
def test_ordinary_messages_are_no_keyword(text: str) -> None:
    assert parse_keyword(text) is None


def test_the_confirmation_speaks_the_keywords_language() -> None:
    german = parse_keyword("nur SMS")
    english = parse_keyword("WhatsApp only")
    both = parse_keyword("all channels")
    assert german is not None
    assert english is not None
    assert both is not None
    assert german.confirmation().startswith("Erledigt: Wir kontaktieren Sie nur per SMS.")
    assert english.confirmation().startswith("Done: we will contact you by WhatsApp only.")
    assert "by SMS and WhatsApp" in both.confirmation()


def test_every_keyword_is_short_and_lower_case() -> None:
    assert all(k == k.lower().strip() and len(k) <= 40 for k in KEYWORDS)


def test_quiet_hours_zone_the_customers_then_the_phones_then_the_companys_then_utc() -> None:
    assert quiet_zone("Asia/Tokyo", ["+4915112345678"], "Europe/Lisbon") == "Asia/Tokyo"
    assert quiet_zone(None, ["+4915112345678"], "Europe/Lisbon") == "Europe/Berlin"
    assert quiet_zone(None, ["+12125551234"], None) == "America/New_York"
    assert quiet_zone(None, [], "Europe/Lisbon") == "Europe/Lisbon"
    assert quiet_zone(None, [], "Not/AZone") == "UTC"
    assert quiet_zone(None, [], None) == "UTC"


def test_a_number_of_a_country_with_several_zones_implies_none() -> None:
    assert phone_zone(["+61212345678"]) in (None, "Australia/Sydney")  # an area code may pin it
    assert phone_zone(["not a number"]) is None


def test_the_company_window_setting() -> None:
    window = parse_window("22:00-07:30")
    assert window is not None
    assert (window.start, window.end) == ("22:00", "07:30")
    off = parse_window("off")
    assert off is not None
    assert off.start == off.end
    assert parse_window("") is None
    assert parse_window("25:00-07:00") is None
