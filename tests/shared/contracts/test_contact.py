"""The contact choices model: what the API, the console, the keyword and the link may set."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.contracts.contact import ContactChoicesPatch


def _problem(data: dict[str, object]) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        ContactChoicesPatch.model_validate(data)
    [error] = caught.value.errors()
    return ".".join(str(p) for p in error["loc"]), error["msg"]


def test_a_full_choice_is_accepted_and_gives_its_stored_fields() -> None:
    patch = ContactChoicesPatch.model_validate(
        {
            "channel_preferences": ["sms", "email"],
            "channel_mode": "all",
            "language": "de-AT",
            "timezone": "Asia/Tokyo",
            "quiet_hours": {"start": "22:30", "end": "06:00"},
            "consent": {"whatsapp": "opted_out"},
        }
    )
    assert patch.choices() == {
        "channel_preferences": ["sms", "email"],
        "channel_mode": "all",
        "language": "de-AT",
        "timezone": "Asia/Tokyo",
        "quiet_hours": {"start": "22:30", "end": "06:00"},
    }


def test_null_clears_and_a_field_left_out_is_not_touched() -> None:
    assert ContactChoicesPatch.model_validate({"timezone": None}).choices() == {"timezone": None}
    assert ContactChoicesPatch.model_validate({}).choices() == {}


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown IANA time zone 'Mars/Olympus'"),
        ({"channel_preferences": ["sms", "email", "sms"]}, "channel_preferences", "sms is listed twice"),
        ({"quiet_hours": {"start": "25:00", "end": "07:00"}}, "quiet_hours.start", "not '25:00'"),
        ({"quiet_hours": {"start": "22:00", "end": "7"}}, "quiet_hours.end", "HH:MM"),
        ({"quiet_hours": {"start": "22:00"}}, "quiet_hours.end", "required"),
        ({"channel_preferences": ["pigeon"]}, "channel_preferences.0", "'sms'"),
        ({"channel_mode": "some"}, "channel_mode", "'first' or 'all'"),
        ({"language": "German!"}, "language", "BCP 47"),
        ({"consent": {"sms": "maybe"}}, "consent.sms", "opted_out"),
        ({"quiet": "22-7"}, "quiet", "not permitted"),
    ],
)
def test_invalid_choices_name_the_field(data: dict[str, object], field: str, words: str) -> None:
    location, message = _problem(data)
    assert location == field
    assert words.lower() in message.lower()
