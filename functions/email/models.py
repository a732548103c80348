"""The event SES hands the function: the receipt rule's Lambda action (or S3 action) record.

Shape as documented in the SES developer guide ("Sample incoming email event" and
"Contents of notifications for Amazon SES email receiving"). Only what the function
uses is validated; unknown fields are ignored, so a field SES adds later breaks nothing.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

#: SES message ids are short alphanumeric strings; they are also S3 object keys.
_SES_MESSAGE_ID = r"^[A-Za-z0-9][A-Za-z0-9._=+\-]{0,199}$"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True, defer_build=True)


class SesVerdict(_Lenient):
    status: Annotated[str, Field(max_length=40)]


class SesAction(_Lenient):
    #: ``Lambda`` for the Lambda action (``S3``, ``SNS``, ... for the others).
    type: Annotated[str, Field(max_length=40)]
    function_arn: str | None = Field(default=None, alias="functionArn")
    invocation_type: str | None = Field(default=None, alias="invocationType")
    #: Present for the S3 action only.
    bucket_name: str | None = Field(default=None, alias="bucketName")
    object_key: str | None = Field(default=None, alias="objectKey")


class SesReceipt(_Lenient):
    timestamp: AwareDatetime | None = None
    recipients: list[Annotated[str, Field(max_length=320)]] = Field(default_factory=list, max_length=100)
    spf_verdict: SesVerdict | None = Field(default=None, alias="spfVerdict")
    dkim_verdict: SesVerdict | None = Field(default=None, alias="dkimVerdict")
    dmarc_verdict: SesVerdict | None = Field(default=None, alias="dmarcVerdict")
    spam_verdict: SesVerdict | None = Field(default=None, alias="spamVerdict")
    virus_verdict: SesVerdict | None = Field(default=None, alias="virusVerdict")
    #: ``none``, ``quarantine`` or ``reject``; present only when DMARC failed.
    dmarc_policy: str | None = Field(default=None, alias="dmarcPolicy")
    action: SesAction


class SesMail(_Lenient):
    #: When SES received the mail: the message's provider timestamp.
    timestamp: AwareDatetime
    #: The envelope MAIL FROM.
    source: Annotated[str, Field(max_length=1000)] = ""
    #: SES's id of the mail; with the S3 action, the object key after the prefix.
    message_id: Annotated[str, Field(pattern=_SES_MESSAGE_ID)] = Field(alias="messageId")
    destination: list[str] = Field(default_factory=list)


class SesPayload(_Lenient):
    mail: SesMail
    receipt: SesReceipt


class SesRecord(_Lenient):
    event_source: Literal["aws:ses"] = Field(alias="eventSource")
    event_version: str = Field(default="1.0", alias="eventVersion")
    ses: SesPayload


class SesEvent(_Lenient):
    records: list[SesRecord] = Field(alias="Records", min_length=1, max_length=10)
