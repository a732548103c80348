"""Pure rules of the customer's contact choices: reply keywords and the time zone quiet hours use.

**Reply keywords.** A customer who answers an SMS or a WhatsApp message with one of these
(the whole message; any case, blanks and a final ``!``/``.`` ignored) changes their channel
preference; the message gets a short confirmation and is not routed to an agent:

=================================  ===========================================  ==============
English                            German                                       sets
=================================  ===========================================  ==============
``SMS only``, ``SMS please``,      ``nur SMS``, ``SMS bitte``, ``per SMS``      SMS only
``text only``, ``by SMS``
``WhatsApp only``,                 ``nur WhatsApp``, ``WhatsApp bitte``,        WhatsApp only
``WhatsApp please``, ``by          ``per WhatsApp``
WhatsApp``
``email only``, ``e-mail only``,   ``nur E-Mail``, ``E-Mail bitte``,            e-mail only
``email please``, ``by email``     ``per E-Mail``
``all channels``, ``SMS and        ``alle Kanäle``, ``SMS und WhatsApp``        SMS and WhatsApp,
WhatsApp``, ``WhatsApp and SMS``   ``WhatsApp und SMS``                         both used
=================================  ===========================================  ==============

**Time zone of quiet hours.** The customer's chosen zone; when they chose none, the zone of
their phone number's country (when the number implies exactly one), then the company's
default (the ``defaultTimezone`` stack setting), then UTC.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from shared.contracts.contact import ChannelMode, ContactChoicesPatch, QuietWindow, check_time, check_timezone

KeywordLanguage = Literal["en", "de"]

_SMS = ("sms", "text")
_WHATSAPP = ("whatsapp", "whats app", "wa")
_EMAIL = ("email", "e-mail", "e mail", "mail")


def _forms(words: Iterable[str], en: tuple[str, ...], de: tuple[str, ...]) -> dict[str, KeywordLanguage]:
    found: dict[str, KeywordLanguage] = {}
    for word in words:
        for pattern in en:
            found[pattern.format(word)] = "en"
        for pattern in de:
            found[pattern.format(word)] = "de"
    return found


_ONE_EN = ("{} only", "only {}", "{} please", "by {}", "via {}")
_ONE_DE = ("nur {}", "nur per {}", "{} bitte", "bitte {}", "per {}", "bitte per {}")
#: The whole keyword message (normalised) -> (channels, mode, language of the confirmation).
KEYWORDS: dict[str, tuple[tuple[str, ...], ChannelMode, KeywordLanguage]] = {}
for _channel, _words in (("sms", _SMS), ("whatsapp", _WHATSAPP), ("email", _EMAIL)):
    for _form, _language in _forms(_words, _ONE_EN, _ONE_DE).items():
        KEYWORDS[_form] = ((_channel,), "first", _language)
_BOTH: dict[str, KeywordLanguage] = {
    "all channels": "en",
    "sms and whatsapp": "en",
    "whatsapp and sms": "en",
    "alle kanäle": "de",
    "alle kanaele": "de",
    "sms und whatsapp": "de",
    "whatsapp und sms": "de",
}
for _form, _language in _BOTH.items():
    KEYWORDS[_form] = (("sms", "whatsapp"), "all", _language)

_CHANNEL_NAMES = {"sms": "SMS", "whatsapp": "WhatsApp", "email": "e-mail"}
_CONFIRMATION = {
    "en": 'Done: we will contact you {how}. Reply with another choice (e.g. "SMS only") to change it.',
    "de": 'Erledigt: Wir kontaktieren Sie {how}. Antworten Sie z. B. mit "nur SMS", um das zu ändern.',
}
_HOW = {
    ("en", "first"): "by {} only",
    ("en", "all"): "by {}",
    ("de", "first"): "nur per {}",
    ("de", "all"): "per {}",
}


@dataclass(frozen=True)
class ChannelKeyword:
    """A reply keyword: the channels the customer chose, and how to confirm it."""

    channels: tuple[str, ...]
    mode: ChannelMode
    language: KeywordLanguage

    def patch(self) -> ContactChoicesPatch:
        return ContactChoicesPatch(channel_preferences=list(self.channels), channel_mode=self.mode)  # type: ignore[arg-type]

    def confirmation(self) -> str:
        names = [_CHANNEL_NAMES.get(c, c) for c in self.channels]
        joined = (" und " if self.language == "de" else " and ").join(names)
        how = _HOW[(self.language, self.mode)].format(joined)
        return _CONFIRMATION[self.language].format(how=how)


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().rstrip("!.").strip().lower())


def parse_keyword(text: str) -> ChannelKeyword | None:
    """The channel choice a reply is, if the whole reply is one of :data:`KEYWORDS`."""
    if len(text) > 40:
        return None
    found = KEYWORDS.get(_normalise(text))
    return ChannelKeyword(*found) if found else None


# --------------------------------------------------------------------------- #
# Quiet hours: which zone, which window
# --------------------------------------------------------------------------- #
def phone_zone(numbers: Iterable[str]) -> str | None:
    """The IANA zone the first number (E.164) that implies exactly one zone lies in."""
    import phonenumbers  # noqa: PLC0415 - notify only, and only for a customer without a zone
    from phonenumbers import timezone as phone_timezones  # noqa: PLC0415

    for number in numbers:
        try:
            zones = phone_timezones.time_zones_for_number(phonenumbers.parse(number))
        except phonenumbers.NumberParseException:
            continue
        if len(zones) == 1 and zones[0] != phone_timezones.UNKNOWN_TIMEZONE:
            return str(zones[0])
    return None


def quiet_zone(chosen: str | None, numbers: Iterable[str], company_default: str | None) -> str:
    """The zone the customer's quiet hours are in (see the module's docstring)."""
    for zone in (chosen, phone_zone(numbers) if not chosen else None, company_default):
        if zone:
            try:
                return check_timezone(zone)
            except ValueError:
                continue
    return "UTC"


def parse_window(text: str | None) -> QuietWindow | None:
    """A window setting ``22:00-07:00`` (``off``: none); None when unset or not valid."""
    if not text or not text.strip():
        return None
    if text.strip().lower() in ("off", "none"):
        return QuietWindow(start="00:00", end="00:00")
    start, sep, end = text.strip().partition("-")
    try:
        return QuietWindow(start=check_time(start.strip()), end=check_time(end.strip())) if sep else None
    except ValueError:
        return None
