"""Normalisation of customer identities, so one person is one key per identity.

Two spellings of the same phone number or e-mail address must give the same key,
otherwise one customer becomes several profiles (the most common complaint about
today's tools). Pure functions, no AWS.

Phones: E.164 via ``phonenumbers`` (national spellings use ``OMNI_DEFAULT_PHONE_REGION``,
default US); ``00`` and ``+00`` international prefixes; a Brazilian mobile written
without the ninth digit added in 2012-2016 (``+55 11 8765-4321``, which is also how
older WhatsApp accounts report their wa_id) gets it (``+5511987654321``). E-mail:
lower case, no provider-specific rewriting. A WhatsApp wa_id is a phone number: it
normalises like one, and :func:`derived_identities` adds the ``phone`` identity.
"""

from __future__ import annotations

import os
import re
from typing import Any

from shared.contracts.events import Identity, IdentityType
from shared.platform import settings

IDENTITY_TYPES: tuple[str, ...] = IdentityType.__args__  # type: ignore[attr-defined]
DEFAULT_PHONE_REGION_ENV = settings.OMNI_DEFAULT_PHONE_REGION
BRAZIL = 55

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_OPAQUE = re.compile(r"^[A-Za-z0-9_.:@+\-]{1,200}$")


class InvalidIdentity(ValueError):
    """The value cannot be an identity of that type; the message says why."""


def default_phone_region() -> str:
    return os.environ.get(DEFAULT_PHONE_REGION_ENV, "US").upper()


def normalise_phone(raw: str, region: str | None = None) -> str:
    """E.164 (``+4915112345678``) from national or international spellings."""
    import phonenumbers  # noqa: PLC0415 - large module: only paths that see phones pay for it

    text = raw.strip()
    compact = re.sub(r"[\s().\-/]", "", text)
    if compact.startswith(("00", "+00")):
        text = "+" + compact.lstrip("+")[2:]
    try:
        number = phonenumbers.parse(
            text, None if text.startswith("+") else (region or default_phone_region())
        )
    except phonenumbers.NumberParseException as exc:
        raise InvalidIdentity(f"not a phone number: {raw!r}") from exc
    if not phonenumbers.is_possible_number(number):
        raise InvalidIdentity(f"not a possible phone number: {raw!r}")
    number = _brazil_ninth_digit(number)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _brazil_ninth_digit(number: Any) -> Any:
    """``+55 AA 8765-4321`` -> ``+55 AA 98765-4321``: one key for both spellings of a mobile.

    Brazil prefixed every mobile number with a 9 (2012-2016). Eight-digit subscriber
    numbers starting with 6-9 were mobiles; landlines start with 2-5 and stay as they are.
    """
    import phonenumbers  # noqa: PLC0415

    national = str(number.national_number)
    if number.country_code != BRAZIL or len(national) != 10 or national[2] not in "6789":
        return number
    candidate = phonenumbers.PhoneNumber(
        country_code=BRAZIL, national_number=int(national[:2] + "9" + national[2:])
    )
    return candidate if phonenumbers.is_valid_number(candidate) else number


def normalise_email(raw: str) -> str:
    """Lower case, trimmed. No provider-specific rewriting (dots, plus tags) by default."""
    value = raw.strip().lower()
    if not _EMAIL.match(value) or len(value) > 320:
        raise InvalidIdentity(f"not an e-mail address: {raw!r}")
    return value


def normalise_value(identity_type: str, raw: str) -> str:
    if identity_type not in IDENTITY_TYPES:
        raise InvalidIdentity(f"unknown identity type {identity_type!r}; one of {', '.join(IDENTITY_TYPES)}")
    if identity_type == "phone":
        return normalise_phone(raw)
    if identity_type == "whatsapp":
        # A wa_id is the phone number in international format without the plus.
        return normalise_phone("+" + raw.strip().lstrip("+"))
    if identity_type == "email":
        return normalise_email(raw)
    value = raw.strip()
    if not _OPAQUE.match(value):
        raise InvalidIdentity(f"not a valid {identity_type} id: {raw!r}")
    return value


def normalise(identity: Identity) -> Identity:
    return identity.model_copy(update={"value": normalise_value(identity.type, identity.value)})


def derived_identities(identity: Identity) -> list[Identity]:
    """Identities implied by a normalised one: a wa_id is also that phone number, as strongly."""
    if identity.type == "whatsapp":
        return [Identity(type="phone", value=identity.value, verified=identity.verified)]
    return []


def parse_identity(text: str) -> Identity:
    """``type:value`` as used in the agent API (``email:ana@example.com``)."""
    identity_type, sep, value = text.partition(":")
    if not sep or not value:
        raise InvalidIdentity(f"expected <type>:<value>, got {text!r}")
    return Identity(type=identity_type, value=normalise_value(identity_type, value))  # type: ignore[arg-type]
