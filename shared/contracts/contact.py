"""The customer's contact choices: one model for whoever sets them and whoever reads them.

The agent API (``PATCH /customers/{id}``), the console's customer card, the customer's reply
keyword on SMS/WhatsApp and the signed preferences link all write a
:class:`ContactChoicesPatch`; the profile (``Customer.contact``) shows and notify reads a
:class:`ContactChoices`. Only :mod:`shared.repositories.customer_choices` knows how they are
stored. The field names below are the only definition of them.

* ``channel_preferences`` - channels in the customer's order of preference;
* ``channel_mode`` - ``first``: the first of them that works; ``all``: every one of them;
* ``language`` - BCP 47 (``de``, ``pt-BR``);
* ``timezone`` - IANA (``Europe/Berlin``); quiet hours are in this zone;
* ``quiet_hours`` - ``{"start": "22:00", "end": "07:00"}`` local wall-clock time; no
  non-urgent notification inside it (``start == end``: none);
* ``consent`` - per channel ``opted_in`` / ``opted_out`` (an opted-out channel is never used
  for anything but a reply in a conversation the customer opened).
"""

import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.contracts.channels import Channel

ChannelMode = Literal["first", "all"]
ConsentStatus = Literal["opted_in", "opted_out"]
_DEFERRED = ConfigDict(defer_build=True)
_HHMM = re.compile(r"^(?P<h>\d{2}):(?P<m>\d{2})$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
#: The choices stored one by one (each with the time it was made and who made it); consent is
#: stored per channel.
CHOICE_FIELDS = ("channel_preferences", "channel_mode", "language", "timezone", "quiet_hours")


def check_time(value: str) -> str:
    """``HH:MM`` between 00:00 and 23:59; raises ValueError naming the value."""
    match = _HHMM.match(value)
    if not match or int(match["h"]) > 23 or int(match["m"]) > 59:
        raise ValueError(f"a time of day is HH:MM between 00:00 and 23:59, not {value!r}")
    return value


def check_timezone(value: str) -> str:
    """An IANA time zone name this runtime knows; raises ValueError naming the value."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r} (e.g. Europe/Berlin)") from None
    return value


def check_language(value: str) -> str:
    if not _LANGUAGE.match(value):
        raise ValueError("language must be a BCP 47 tag such as 'de' or 'pt-BR'")
    return value


def check_channels(value: list[str]) -> list[str]:
    repeated = sorted({c for c in value if value.count(c) > 1})
    if repeated:
        raise ValueError(f"each channel is listed once; {', '.join(repeated)} is listed twice")
    return value


class QuietWindow(BaseModel):
    """Local wall-clock window without non-urgent notifications; it may wrap past midnight."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    start: Annotated[str, Field(max_length=5, examples=["22:00"])]
    end: Annotated[str, Field(max_length=5, examples=["07:00"])]

    @field_validator("start", "end")
    @classmethod
    def _time(cls, value: str) -> str:
        return check_time(value)


class ContactChoicesPatch(BaseModel):
    """Choices to change; a field left out stays as it is, ``null`` clears it."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    channel_preferences: Annotated[list[Channel], Field(max_length=10)] | None = None
    channel_mode: ChannelMode | None = None
    language: Annotated[str, Field(max_length=35)] | None = None
    timezone: Annotated[str, Field(max_length=64)] | None = None
    quiet_hours: QuietWindow | None = None
    consent: dict[Channel, ConsentStatus] | None = None

    @field_validator("channel_preferences")
    @classmethod
    def _channels(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_channels(value)

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        return None if value is None else check_language(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)

    def choices(self) -> dict[str, object]:
        """The stored-one-by-one choices this patch gives (``None``: clear), by field name."""
        given = self.model_fields_set
        return {
            name: (v.model_dump() if isinstance(v := getattr(self, name), BaseModel) else v)
            for name in CHOICE_FIELDS
            if name in given
        }


class ContactChoices(BaseModel):
    """What the customer chose (nothing chosen: the defaults notify applies)."""

    model_config = _DEFERRED
    channel_preferences: list[str] = Field(default_factory=list)
    channel_mode: ChannelMode = "first"
    language: str | None = None
    timezone: str | None = None
    quiet_hours: QuietWindow | None = None
    #: Per channel; a channel missing here has no recorded choice.
    consent: dict[str, ConsentStatus] = Field(default_factory=dict)
    #: When the most recent of these choices was made (ISO 8601, UTC); None: never.
    set_at: str | None = None
