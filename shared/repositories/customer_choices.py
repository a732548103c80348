"""How the customer's contact choices (:mod:`shared.contracts.contact`) are stored on the profile.

Each choice of :data:`CHOICE_FIELDS` is a profile attribute like any other:
``attributes.<field>`` = ``{value, at, source}`` - ``at`` is when the choice was made
(its ``set_at``), ``source`` who made it (``agent:<id>``, ``sms:keyword``, ``email:link``).
So a profile merge keeps, per choice, the more recent explicit one (``newer_attributes``),
an unmerge gives it back, and an erasure removes it with the profile. Consent is one
attribute per channel, ``consent_<channel>`` = ``{status, at, source}``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from shared.contracts.contact import CHOICE_FIELDS, ContactChoices, ContactChoicesPatch, QuietWindow
from shared.repositories.customer_items import CONSENT_PREFIX, Item


def _valid(name: str, value: Any) -> Any:
    """The stored value if it is still a valid choice (one broken value does not hide the rest)."""
    try:
        checked = ContactChoicesPatch.model_validate({name: value})
    except ValidationError:
        return None
    return checked.choices().get(name)


def read_choices(profile: Item) -> ContactChoices:
    """The customer's contact choices from their profile item."""
    attributes = profile.get("attributes") or {}
    values: dict[str, Any] = {}
    times: list[str] = []
    for name in CHOICE_FIELDS:
        stored = attributes.get(name)
        value = stored.get("value") if isinstance(stored, dict) else None
        value = _valid(name, value) if value is not None else None
        if value is None:
            continue
        values[name] = QuietWindow(**value) if name == "quiet_hours" else value
        if isinstance(stored, dict) and stored.get("at"):
            times.append(str(stored["at"]))
    consent: dict[str, Any] = {}
    for key, value in profile.items():
        if key.startswith(CONSENT_PREFIX) and isinstance(value, dict) and value.get("status"):
            consent[key.removeprefix(CONSENT_PREFIX)] = value["status"]
            times.append(str(value.get("at") or ""))
    return ContactChoices(**values, consent=consent, set_at=max(times) if times else None)


def with_choices(attributes: Item, patch: ContactChoicesPatch, at: str, source: str) -> Item:
    """The profile's ``attributes`` map with the patch's choices applied (``None`` clears)."""
    updated = dict(attributes)
    for name, value in patch.choices().items():
        if value is None:
            updated.pop(name, None)
        else:
            updated[name] = {"value": value, "at": at, "source": source}
    return updated


def consent_items(patch: ContactChoicesPatch, at: str, source: str) -> Item:
    """The ``consent_<channel>`` attributes the patch sets."""
    return {
        f"{CONSENT_PREFIX}{channel}": {"status": status, "at": at, "source": source}
        for channel, status in (patch.consent or {}).items()
    }
