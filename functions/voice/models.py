"""The form parameters of Twilio's Voice webhooks that we use (validated at the edge).

Field names are Twilio's (the aliases); parameters we do not use are ignored, while
the signature covers all of them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

CALL_SID = r"^CA[0-9a-fA-F]{32}$"
ACCOUNT_SID = r"^AC[0-9a-fA-F]{32}$"
TRANSCRIPTION_SID = r"^TR[0-9a-fA-F]{32}$"
RECORDING_SID = r"^RE[0-9a-fA-F]{32}$"

_Address = Annotated[str, Field(max_length=100)]
_Status = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z-]+$")]


class CallRequest(BaseModel):
    """The parameters Twilio sends with every voice request about a call."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    call_sid: Annotated[str, Field(alias="CallSid", pattern=CALL_SID)]
    account_sid: Annotated[str, Field(alias="AccountSid", pattern=ACCOUNT_SID)]
    #: The caller; a withheld number arrives as something that is not a phone number.
    from_: Annotated[_Address, Field(alias="From")] = ""
    to: Annotated[_Address, Field(alias="To")] = ""
    call_status: Annotated[_Status | None, Field(alias="CallStatus")] = None
    direction: Annotated[str | None, Field(alias="Direction", max_length=40)] = None


class IncomingCall(CallRequest):
    """Twilio's request for TwiML when someone calls our number."""

    #: Caller ID name (CNAM), when the number has CNAM look-up enabled.
    caller_name: Annotated[str | None, Field(alias="CallerName", max_length=200)] = None


class CallStatusCallback(CallRequest):
    """Twilio's status callback; by default sent once, when the call has ended."""

    call_status: Annotated[_Status, Field(alias="CallStatus")]
    call_duration: Annotated[int | None, Field(alias="CallDuration", ge=0)] = None
    #: When the event happened, RFC 2822 (``Tue, 25 Nov 2026 08:00:00 +0000``).
    timestamp: Annotated[str | None, Field(alias="Timestamp", max_length=100)] = None


class TranscriptionCallback(CallRequest):
    """Twilio's request to a ``<Record transcribe="true">`` verb's ``transcribeCallback``."""

    transcription_sid: Annotated[str, Field(alias="TranscriptionSid", pattern=TRANSCRIPTION_SID)]
    transcription_text: Annotated[str, Field(alias="TranscriptionText", max_length=20_000)] = ""
    transcription_status: Annotated[_Status, Field(alias="TranscriptionStatus")]
    recording_sid: Annotated[str | None, Field(alias="RecordingSid", pattern=RECORDING_SID)] = None
    recording_url: Annotated[
        str | None, Field(alias="RecordingUrl", max_length=2048, pattern=r"^https?://")
    ] = None
