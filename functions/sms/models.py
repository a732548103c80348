"""The form parameters of Twilio's Messaging webhooks that we use (validated at the edge).

Field names are Twilio's (the aliases). Twilio adds parameters without notice, so
unknown ones are ignored here; the signature still covers all of them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Twilio SIDs: two letters naming the resource, then 32 hex digits.
MESSAGE_SID = r"^(SM|MM)[0-9a-fA-F]{32}$"
ACCOUNT_SID = r"^AC[0-9a-fA-F]{32}$"
#: Twilio accepts at most ten media items on a message.
MAX_MEDIA = 10

_Text = Annotated[str, Field(max_length=200)]


class Media(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    url: Annotated[str, Field(min_length=1, max_length=2048, pattern=r"^https?://")]
    content_type: Annotated[str, Field(min_length=1, max_length=100)]


class InboundSms(BaseModel):
    """Twilio's request to the incoming-message webhook."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    message_sid: Annotated[str, Field(alias="MessageSid", pattern=MESSAGE_SID)]
    account_sid: Annotated[str, Field(alias="AccountSid", pattern=ACCOUNT_SID)]
    from_: Annotated[str, Field(alias="From", min_length=1, max_length=100)]
    to: Annotated[str, Field(alias="To", min_length=1, max_length=100)]
    body: Annotated[str, Field(alias="Body", max_length=20_000)] = ""
    num_media: Annotated[int, Field(alias="NumMedia", ge=0, le=MAX_MEDIA)] = 0
    num_segments: Annotated[str | None, Field(alias="NumSegments", max_length=10)] = None
    messaging_service_sid: Annotated[_Text | None, Field(alias="MessagingServiceSid")] = None
    #: Set by a Messaging Service with Advanced Opt-Out: STOP, START or HELP.
    opt_out_type: Annotated[_Text | None, Field(alias="OptOutType")] = None
    #: Collected from ``MediaUrl<i>`` / ``MediaContentType<i>`` for i < NumMedia.
    media: list[Media] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _collect_media(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        try:
            count = int(data.get("NumMedia") or 0)
        except ValueError:
            return data  # the field's own validation reports it
        media = []
        for index in range(max(0, min(count, MAX_MEDIA))):
            url, content_type = data.get(f"MediaUrl{index}"), data.get(f"MediaContentType{index}")
            if not url or not content_type:
                missing = f"MediaUrl{index}/MediaContentType{index}"
                raise ValueError(f"NumMedia is {count} but {missing} is missing")
            media.append({"url": url, "content_type": content_type})
        return {**data, "media": media}


class MessageStatusCallback(BaseModel):
    """Twilio's status callback for a message we sent."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    message_sid: Annotated[str, Field(alias="MessageSid", pattern=MESSAGE_SID)]
    message_status: Annotated[str, Field(alias="MessageStatus", min_length=1, max_length=40)]
    error_code: Annotated[str | None, Field(alias="ErrorCode", max_length=20, pattern=r"^[0-9]*$")] = None
