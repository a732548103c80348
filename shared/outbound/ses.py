"""Amazon SES v2 (e-mail): raw MIME, so the threading headers are ours."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid
from typing import Any

from shared.outbound.adapters import (
    Accepted,
    ConfigSource,
    Configured,
    DeliveryFailed,
    OutboundMessage,
    OutcomeUnknown,
    ProviderBusy,
    ProviderRequest,
    local_id,
)
from shared.platform import settings

SES_TRANSIENT_CODES = frozenset(
    {
        "TooManyRequestsException",
        "LimitExceededException",
        "Throttling",
        "ThrottlingException",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def ses_message_id_header(message_id: str, region: str) -> str:
    """The ``Message-ID`` header SES gives a message it accepted (it replaces ours)."""
    domain = "email.amazonses.com" if region == "us-east-1" else f"{region}.amazonses.com"
    return f"<{message_id}@{domain}>"


def plus_address(mailbox: str, token: str) -> str:
    """``support@reply.example.com`` + ``c-123`` -> ``support+c-123@reply.example.com``."""
    local, _, domain = mailbox.partition("@")
    return f"{local}+{token}@{domain}"


def preferences_footer(text: str, url: str) -> str:
    """The text with a line naming the customer's contact preferences page (in the signature)."""
    separator = "" if "\n-- \n" in text else "\n-- \n"
    return f"{text.rstrip()}\n{separator}Choose how and when we contact you: {url}\n"


def unsubscribe_footer(text: str, url: str) -> str:
    """The text with an unsubscribe line below the signature separator."""
    return f"{text.rstrip()}\n\n-- \nTo stop receiving these e-mails, unsubscribe: {url}\n"


class SesEmailAdapter(Configured):
    """SES v2 ``SendEmail`` with raw MIME content, so the threading headers are ours.

    Settings (secret ``email-sender``): ``from`` (a verified identity, e.g.
    ``Support <support@example.com>``), ``reply_mailbox`` (the address SES receives on;
    replies go to ``<local>+<conversation id>@<domain>``, the reply token), optional
    ``configuration_set``. SES's ``MessageId`` is the provider id (delivery events carry
    it); the ``Message-ID`` header SES puts on the message is kept in the details so
    the customer's ``In-Reply-To`` can be matched.
    """

    channel = "email"
    provider = "ses"
    idempotent = False
    secret_env_var = settings.EMAIL_SENDER_SECRET_ID

    def __init__(
        self, config: Mapping[str, Any] | ConfigSource | None = None, client: Any = None, region: str = ""
    ) -> None:
        super().__init__(config)
        self._client = client
        self._region = region

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # noqa: PLC0415
            from botocore.config import Config  # noqa: PLC0415

            self._client = boto3.client(
                "sesv2",
                config=Config(
                    connect_timeout=3, read_timeout=8, retries={"mode": "standard", "max_attempts": 3}
                ),
            )
        return self._client

    @property
    def region(self) -> str:
        return self._region or self.client.meta.region_name

    def build(self, message: OutboundMessage) -> ProviderRequest:
        if message.to.type != "email":
            raise DeliveryFailed("wrong_recipient", f"e-mail cannot reach a {message.to.type} identity")
        sender = self.setting("from")
        mailbox = self.setting("reply_mailbox")
        # The MIME machinery (email.policy pulls in the header parser) only when e-mail is sent.
        from email.message import EmailMessage  # noqa: PLC0415
        from email.policy import SMTP  # noqa: PLC0415

        # CRLF line ends, as on the wire; headers (unsubscribe links, references) left unfolded.
        mime = EmailMessage(policy=SMTP.clone(max_line_length=998))
        mime["From"] = sender
        mime["To"] = message.to.value
        mime["Subject"] = message.subject or self.config.get("default_subject") or "A message from us"
        mime["Reply-To"] = (
            plus_address(mailbox, message.conversation_id) if message.conversation_id else mailbox
        )
        # SES replaces Date and Message-ID; they are set so the stored request is a complete message.
        mime["Date"] = format_datetime(_parse_iso(message.timestamp) or datetime.now(UTC))
        mime["Message-ID"] = make_msgid(domain=mailbox.partition("@")[2] or None)
        if message.in_reply_to:
            reference = (
                message.in_reply_to if message.in_reply_to.startswith("<") else f"<{message.in_reply_to}>"
            )
            mime["In-Reply-To"] = reference
            mime["References"] = reference
        text = message.text
        if message.unsubscribe:
            token = plus_address(mailbox, f"unsubscribe-{message.customer_id}")
            mailto = f"<mailto:{token}?subject=unsubscribe>"
            if message.unsubscribe_url:
                # RFC 8058 one-click: the https URI first, POSTed the List-Unsubscribe-Post
                # body by the mail client; the mailto stays for clients without one-click.
                mime["List-Unsubscribe"] = f"<{message.unsubscribe_url}>, {mailto}"
                mime["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
                text = unsubscribe_footer(text, message.unsubscribe_url)
            else:
                mime["List-Unsubscribe"] = mailto
        if message.preferences_url:
            text = preferences_footer(text, message.preferences_url)
        mime["X-Omni-Notification"] = message.idempotency_key
        mime.set_content(text)
        body: dict[str, Any] = {
            "FromEmailAddress": sender,
            "Destination": {"ToAddresses": [message.to.value]},
            "ReplyToAddresses": [str(mime["Reply-To"])],
            "Content": {"Raw": {"Data": mime.as_string()}},
            "EmailTags": [
                {"Name": "notification", "Value": _TAG_UNSAFE.sub("_", message.idempotency_key)[:255]}
            ],
        }
        if self.config.get("configuration_set"):
            body["ConfigurationSetName"] = str(self.config["configuration_set"])
        return ProviderRequest(self.provider, "SendEmail", "sesv2:SendEmail", "api", body)

    def send(self, request: ProviderRequest, message: OutboundMessage) -> Accepted:
        from botocore.exceptions import (  # noqa: PLC0415
            ClientError,
            ConnectionClosedError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        params = dict(request.body)
        params["Content"] = {"Raw": {"Data": request.body["Content"]["Raw"]["Data"].encode()}}
        try:
            response = self.client.send_email(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "Unknown"))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400)
            if code in SES_TRANSIENT_CODES or status >= 500 or status == 429:
                raise ProviderBusy(f"ses {code}: {error.get('Message', '')}") from exc
            raise DeliveryFailed(f"ses_{code}", str(error.get("Message") or code)) from exc
        except (ReadTimeoutError, ConnectionClosedError) as exc:
            raise OutcomeUnknown(f"ses: {exc}") from exc
        except EndpointConnectionError as exc:
            raise ProviderBusy(f"ses: {exc}") from exc
        return self.accepted(str(response["MessageId"]))

    def accepted(self, message_id: str) -> Accepted:
        return Accepted(message_id, {"message_id_header": ses_message_id_header(message_id, self.region)})

    def find_sent(self, request: ProviderRequest, message: OutboundMessage, since: datetime) -> str | None:
        raise NotImplementedError("SES cannot list the messages it sent")

    def simulate(self, request: ProviderRequest, message: OutboundMessage) -> Accepted:
        return self.accepted(local_id("local-", message.idempotency_key))


def _parse_iso(value: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
