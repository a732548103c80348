"""Provider adapters: one interface, one class per provider.

Every adapter turns an :class:`OutboundMessage` into the provider's documented request
(:meth:`build`, pure), sends it (:meth:`send`) and reads the provider's message id from
the response. The request is stored on the outbox attempt before it is sent, so what
went out is on record; locally (:class:`LocalOutboxAdapter`) nothing is sent and the
stored request *is* the delivery (``omni outbox`` shows it).

Outcomes:

* the provider accepted -> :class:`Accepted` with its message id;
* the provider refused for good (a 4xx: bad number, opted out, outside the WhatsApp
  window) -> :class:`DeliveryFailed` with the provider's code and reason; notify marks the
  channel failed and falls back to the next one;
* the provider asked us to come back (429, 5xx, connection refused) -> :class:`ProviderBusy`:
  nothing was sent; retried here with backoff, then raised so SQS redelivers later;
* the outcome is unknown (the connection dropped after the request went out) ->
  :class:`OutcomeUnknown`: notify keeps the attempt open and reconciles on the retry.

HTTP goes through urllib3 (it ships with botocore, so the Lambda runtime has it); SES
through boto3's ``sesv2`` client. Credentials come from Secrets Manager, read lazily.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, make_msgid, parsedate_to_datetime
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

from shared.contracts.events import Identity
from shared.outbound.templates import WhatsAppTemplate

TWILIO_API_BASE = "https://api.twilio.com"
GRAPH_API_BASE = "https://graph.facebook.com"
GRAPH_API_VERSION = "v21.0"


# --------------------------------------------------------------------------- #
# The message and the outcomes
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class OutboundMessage:
    notification_id: str
    channel: str
    to: Identity
    text: str
    customer_id: str
    kind: str = "notification"
    conversation_id: str | None = None
    subject: str | None = None
    #: Send this approved WhatsApp template instead of free text.
    whatsapp_template: WhatsAppTemplate | None = None
    #: E-mail: the Message-ID of the customer's e-mail this answers.
    in_reply_to: str | None = None
    #: E-mail: add List-Unsubscribe (notifications; not replies).
    unsubscribe: bool = False
    #: E-mail notifications: the signed one-click unsubscribe link (``shared.domain.links``), when
    #: this deployment has a public API URL; List-Unsubscribe then names it before the mailto.
    unsubscribe_url: str | None = None
    #: Our timestamp of the message (ISO 8601 UTC) and its epoch seconds.
    timestamp: str = ""
    epoch: int = 0

    @property
    def idempotency_key(self) -> str:
        """One delivery of one notification on one channel."""
        return f"{self.notification_id}#{self.channel}"


@dataclass(frozen=True)
class ProviderRequest:
    """What goes to the provider, without credentials: stored on the outbox attempt."""

    provider: str
    method: str
    url: str
    encoding: Literal["form", "json", "api"]
    body: Mapping[str, Any]

    def record(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "method": self.method,
            "url": self.url,
            "encoding": self.encoding,
            "body": dict(self.body),
        }


@dataclass(frozen=True)
class Accepted:
    provider_message_id: str
    #: Provider facts worth keeping (the e-mail's Message-ID header, the WhatsApp wa_id).
    details: Mapping[str, str] = field(default_factory=dict)


class DeliveryFailed(Exception):
    """The provider refused the message for good (or it cannot be sent at all)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class ProviderBusy(Exception):
    """Nothing was sent; the provider (or the network) asks us to try again later."""


class OutcomeUnknown(Exception):
    """The request may or may not have reached the provider (e.g. the response never came)."""


class Adapter(Protocol):
    channel: str
    provider: str
    #: Sending the same idempotency key twice has one effect (our own stores).
    idempotent: bool

    def build(self, message: OutboundMessage) -> ProviderRequest: ...

    def send(self, request: ProviderRequest, message: OutboundMessage) -> Accepted: ...

    def find_sent(self, request: ProviderRequest, message: OutboundMessage, since: datetime) -> str | None:
        """The provider id of a message sent for this attempt, None if none was; raises
        ``NotImplementedError`` when the provider cannot be asked."""
        ...

    def simulate(self, request: ProviderRequest, message: OutboundMessage) -> Accepted:
        """The provider's documented success response for ``request``, parsed (local mode)."""
        ...


def local_id(prefix: str, key: str) -> str:
    return prefix + hashlib.sha256(key.encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- #
# HTTP
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


class HttpClient:
    """urllib3 with short timeouts and a small in-process retry of 429/503 with backoff.

    A read timeout is *not* retried here: the request may have been accepted, and a
    second POST could send the message twice. It surfaces as :class:`OutcomeUnknown`.
    """

    def __init__(self, retries: int = 2, backoff_s: float = 0.5, timeout_s: tuple[float, float] = (3, 8)):
        import urllib3  # noqa: PLC0415 - only the functions that send import it

        self._urllib3 = urllib3
        self.pool = urllib3.PoolManager(
            retries=urllib3.Retry(
                total=retries,
                connect=retries,
                read=0,
                status=retries,
                other=0,
                backoff_factor=backoff_s,
                backoff_max=2,
                status_forcelist=(429, 503),
                allowed_methods=None,  # POST too: a 429/503 means it was not accepted
                respect_retry_after_header=False,  # never sleep long in a Lambda; SQS waits instead
                raise_on_status=False,
            ),
            timeout=urllib3.Timeout(connect=timeout_s[0], read=timeout_s[1]),
        )

    def request(
        self, method: str, url: str, *, headers: Mapping[str, str], body: bytes | None = None
    ) -> HttpResponse:
        errors = self._urllib3.exceptions
        try:
            response = self.pool.request(method, url, body=body, headers=dict(headers), redirect=False)
        except errors.MaxRetryError as exc:
            if isinstance(exc.reason, errors.ReadTimeoutError | errors.ProtocolError):
                raise OutcomeUnknown(f"{method} {url}: {exc.reason}") from exc
            raise ProviderBusy(f"{method} {url}: {exc.reason}") from exc
        except (errors.ReadTimeoutError, errors.ProtocolError) as exc:
            raise OutcomeUnknown(f"{method} {url}: {exc}") from exc
        except errors.HTTPError as exc:
            raise ProviderBusy(f"{method} {url}: {exc}") from exc
        return HttpResponse(response.status, response.data, dict(response.headers))


_http: HttpClient | None = None


def default_http() -> HttpClient:
    global _http  # noqa: PLW0603 - one connection pool per container
    if _http is None:
        _http = HttpClient()
    return _http


def _secret_json(env_var: str) -> dict[str, Any]:
    from shared.platform.config import get_secret  # noqa: PLC0415

    raw = get_secret(env_var)
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise DeliveryFailed("misconfigured", f"the secret in {env_var} is not JSON") from exc
    if not isinstance(value, dict):
        raise DeliveryFailed("misconfigured", f"the secret in {env_var} is not a JSON object")
    return value


ConfigSource = Callable[[], Mapping[str, Any]]


class _Configured:
    """Reads its provider settings (a JSON secret) on first use, not at import."""

    secret_env_var = ""

    def __init__(self, config: Mapping[str, Any] | ConfigSource | None = None) -> None:
        self._config_source = config

    @property
    def config(self) -> Mapping[str, Any]:
        source = self._config_source
        if source is None:
            return _secret_json(self.secret_env_var)
        return source() if callable(source) else source

    def setting(self, name: str) -> str:
        value = self.config.get(name)
        if not value:
            raise DeliveryFailed("misconfigured", f"{self.provider} setting {name!r} is missing")  # type: ignore[attr-defined]
        return str(value)


# --------------------------------------------------------------------------- #
# Twilio REST API 2010-04-01: Messages (SMS) and Calls (voice callback)
# --------------------------------------------------------------------------- #
class _HttpAdapter(_Configured):
    """An adapter that calls its provider's HTTP API (``api_base`` replaceable in tests)."""

    default_api_base = ""

    def __init__(
        self,
        config: Mapping[str, Any] | ConfigSource | None = None,
        http: HttpClient | None = None,
        api_base: str | None = None,
    ) -> None:
        super().__init__(config)
        self._http = http
        self.api_base = (api_base or self.default_api_base).rstrip("/")

    @property
    def http(self) -> HttpClient:
        return self._http or default_http()


class _TwilioAdapter(_HttpAdapter):
    """What the Twilio adapters share: the ``twilio-api`` secret, Basic auth, form POSTs
    to ``/2010-04-01/Accounts/{AccountSid}/<resource>.json`` and Twilio's error format."""

    provider = "twilio"
    idempotent = False
    secret_env_var = "TWILIO_API_SECRET_ID"
    default_api_base = TWILIO_API_BASE

    def _account_url(self, resource: str) -> str:
        return f"{self.api_base}/2010-04-01/Accounts/{self.setting('account_sid')}/{resource}.json"

    def _headers(self) -> dict[str, str]:
        import urllib3  # noqa: PLC0415

        auth = f"{self.setting('account_sid')}:{self.setting('auth_token')}"
        return {**urllib3.make_headers(basic_auth=auth), "Accept": "application/json"}

    def send(self, request: ProviderRequest, message: OutboundMessage) -> Accepted:
        response = self.http.request(
            "POST",
            request.url,
            headers={**self._headers(), "Content-Type": "application/x-www-form-urlencoded"},
            body=urlencode(dict(request.body)).encode(),
        )
        return self.parse(response)

    def parse(self, response: HttpResponse) -> Accepted:
        data = response.json() or {}
        if response.status in (200, 201) and isinstance(data, dict) and data.get("sid"):
            return Accepted(str(data["sid"]))
        code = data.get("code") if isinstance(data, dict) else None
        reason = (data.get("message") if isinstance(data, dict) else None) or f"HTTP {response.status}"
        if response.status == 429 or response.status >= 500:
            raise ProviderBusy(f"twilio HTTP {response.status}: {reason}")
        raise DeliveryFailed(f"twilio_{code or response.status}", str(reason))


class TwilioSmsAdapter(_TwilioAdapter):
    """``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (form body, HTTP Basic auth).

    Settings (secret ``twilio-api``): ``account_sid``, ``auth_token``, ``from`` (a number)
    or ``messaging_service_sid``, optional ``status_callback_url``. Twilio has no
    idempotency key for creating messages; :meth:`find_sent` lists the recent messages
    to the same number to tell whether an interrupted attempt went out.
    """

    channel = "sms"

    def _messages_url(self) -> str:
        return self._account_url("Messages")

    def build(self, message: OutboundMessage) -> ProviderRequest:
        if message.to.type != "phone":
            raise DeliveryFailed("wrong_recipient", f"SMS cannot reach a {message.to.type} identity")
        config = self.config
        body: dict[str, str] = {"To": message.to.value, "Body": message.text}
        if config.get("messaging_service_sid"):
            body["MessagingServiceSid"] = str(config["messaging_service_sid"])
        else:
            body["From"] = self.setting("from")
        if config.get("status_callback_url"):
            body["StatusCallback"] = str(config["status_callback_url"])
        return ProviderRequest(self.provider, "POST", self._messages_url(), "form", body)

    def find_sent(self, request: ProviderRequest, message: OutboundMessage, since: datetime) -> str | None:
        query = {"To": request.body["To"], "PageSize": "50"}
        if "From" in request.body:
            query["From"] = request.body["From"]
        response = self.http.request(
            "GET", f"{self._messages_url()}?{urlencode(query)}", headers=self._headers()
        )
        if response.status != 200:
            raise ProviderBusy(f"twilio HTTP {response.status} listing messages")
        for item in (response.json() or {}).get("messages", []):
            created = _rfc2822(item.get("date_created"))
            if (
                item.get("body") == request.body["Body"]
                and str(item.get("direction", "")).startswith("outbound")
                and created is not None
                and created >= since - timedelta(minutes=2)
            ):
                return str(item["sid"])
        return None

    def simulate(self, request: ProviderRequest, message: OutboundMessage) -> Accepted:
        sid = "SM" + local_id("", message.idempotency_key)
        body = {
            "sid": sid,
            "status": "queued",
            "to": request.body["To"],
            "body": request.body["Body"],
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
        }
        return self.parse(HttpResponse(201, json.dumps(body).encode()))


#: Twilio's limit on the inline ``Twiml`` parameter of a call.
TWIML_MAX_CHARS = 4000


def say_twiml(text: str) -> str:
    """``<Response><Say>text</Say></Response>``, the text XML-escaped."""
    from xml.sax.saxutils import escape  # noqa: PLC0415

    return f"<Response><Say>{escape(text)}</Say></Response>"


class TwilioVoiceAdapter(_TwilioAdapter):
    """A callback request: ``POST /2010-04-01/Accounts/{AccountSid}/Calls.json`` (form body,
    HTTP Basic auth) with ``To``, ``From`` and inline ``Twiml`` that reads the text out.

    Settings (secret ``twilio-api``, the SMS adapter's): ``account_sid``, ``auth_token``,
    ``voice_from`` (the caller id) or else ``from``. Twilio has no idempotency key for
    creating calls; :meth:`find_sent` lists the recent calls to the same number.
    """

    channel = "voice"

    def _calls_url(self) -> str:
        return self._account_url("Calls")

    def build(self, message: OutboundMessage) -> ProviderRequest:
        if message.to.type != "phone":
            raise DeliveryFailed("wrong_recipient", f"a call cannot reach a {message.to.type} identity")
        twiml = say_twiml(message.text)
        if len(twiml) > TWIML_MAX_CHARS:
            raise DeliveryFailed("message_too_long", f"the call's TwiML exceeds {TWIML_MAX_CHARS} characters")
        caller = str(self.config.get("voice_from") or self.setting("from"))
        body = {"To": message.to.value, "From": caller, "Twiml": twiml}
        return ProviderRequest(self.provider, "POST", self._calls_url(), "form", body)

    def find_sent(self, request: ProviderRequest, message: OutboundMessage, since: datetime) -> str | None:
        query = {"To": request.body["To"], "From": request.body["From"], "PageSize": "50"}
        response = self.http.request(
            "GET", f"{self._calls_url()}?{urlencode(query)}", headers=self._headers()
        )
        if response.status != 200:
            raise ProviderBusy(f"twilio HTTP {response.status} listing calls")
        for item in (response.json() or {}).get("calls", []):
            created = _rfc2822(item.get("date_created"))
            if (
                str(item.get("direction", "")).startswith("outbound")
                and created is not None
                and created >= since - timedelta(minutes=2)
            ):
                return str(item["sid"])
        return None

    def simulate(self, request: ProviderRequest, message: OutboundMessage) -> Accepted:
        body = {
            "sid": "CA" + local_id("", message.idempotency_key),
            "status": "queued",
            "to": request.body["To"],
            "from": request.body["From"],
            "direction": "outbound-api",
        }
        return self.parse(HttpResponse(201, json.dumps(body).encode()))


def _rfc2822(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- #
# Meta Graph API: WhatsApp Cloud API and the Messenger Send API
# --------------------------------------------------------------------------- #
#: Graph API error codes that mean "later", whatever the HTTP status says.
META_TRANSIENT_CODES = frozenset({1, 2, 4, 17, 341, 80007, 130429, 131000, 131016, 131056, 133004})
#: Codes with a reason of our own (the rest keep Meta's message).
META_REASONS = {
    131047: ("outside_whatsapp_window", "more than 24 hours since the customer last wrote on WhatsApp"),
    131026: ("undeliverable", "the number cannot receive this WhatsApp message"),
    132000: ("template_parameters", "the template's parameters do not match the approved template"),
    132001: ("template_missing", "the template does not exist in that language at Meta"),
    190: ("unauthorised", "the Meta access token is invalid or expired"),
}


def _meta_outcome(response: HttpResponse, provider: str) -> dict[str, Any]:
    data = response.json()
    if 200 <= response.status < 300 and isinstance(data, dict):
        return data
    error = data.get("error", {}) if isinstance(data, dict) else {}
    code = error.get("code")
    details = (error.get("error_data") or {}).get("details") if isinstance(error, dict) else None
    message = error.get("message") or f"HTTP {response.status}"
    if response.status == 429 or response.status >= 500 or code in META_TRANSIENT_CODES:
        raise ProviderBusy(f"{provider} HTTP {response.status} code {code}: {message}")
    if code in META_REASONS:
        ours, reason = META_REASONS[code]
        raise DeliveryFailed(ours, f"{reason} ({provider} {code}: {details or message})")
    raise DeliveryFailed(f"{provider}_{code or response.status}", str(details or message))


class _GraphAdapter(_HttpAdapter):
    secret_env_var = "META_OUTBOUND_SECRET_ID"
    default_api_base = GRAPH_API_BASE
    idempotent = False
    provider = "meta"
    token_setting = ""

    def _url(self, node: str) -> str:
        version = self.config.get("graph_version") or GRAPH_API_VERSION
        return f"{self.api_base}/{version}/{node}/messages"

    def _post(self, request: ProviderRequest) -> HttpResponse:
        return self.http.request(
            "POST",
            request.url,
            headers={
                "Authorization": f"Bearer {self.setting(self.token_setting)}",
                "Content-Type": "application/json",
            },
            body=json.dumps(request.body).encode(),
        )

    def find_sent(self, request: ProviderRequest, message: OutboundMessage, since: datetime) -> str | None:
        raise NotImplementedError("the Graph API cannot list the messages a business sent")


class WhatsAppAdapter(_GraphAdapter):
    """``POST /{version}/{phone-number-id}/messages`` (JSON, bearer token): text or template.

    Settings (secret ``meta-outbound``): ``whatsapp_phone_number_id``, ``access_token``,
    optional ``graph_version``. The idempotency key travels as ``biz_opaque_callback_data``,
    which Meta echoes in the status webhooks of the message.
    """

    channel = "whatsapp"
    provider = "whatsapp"
    token_setting = "access_token"

    def build(self, message: OutboundMessage) -> ProviderRequest:
        if message.to.type not in ("whatsapp", "phone", "whatsapp_user"):
            raise DeliveryFailed("wrong_recipient", f"WhatsApp cannot reach a {message.to.type} identity")
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "biz_opaque_callback_data": message.idempotency_key[:512],
        }
        if message.to.type == "whatsapp_user":  # a business-scoped user id: Meta's "recipient"
            body["recipient"] = message.to.value
        else:
            body["to"] = message.to.value.lstrip("+")
        template = message.whatsapp_template
        if template is not None:
            components = []
            if template.parameters:
                components.append(
                    {"type": "body", "parameters": [{"type": "text", "text": p} for p in template.parameters]}
                )
            body["type"] = "template"
            body["template"] = {
                "name": template.name,
                "language": {"code": template.language},
                "components": components,
            }
        else:
            body["type"] = "text"
            body["text"] = {"preview_url": False, "body": message.text}
        return ProviderRequest(
            self.provider, "POST", self._url(self.setting("whatsapp_phone_number_id")), "json", body
        )

    def send(self, request: ProviderRequest, message: OutboundMessage) -> Accepted:
        return self.parse(self._post(request))

    def parse(self, response: HttpResponse) -> Accepted:
        data = _meta_outcome(response, self.provider)
        messages = data.get("messages") or []
        if not messages or not messages[0].get("id"):
            raise OutcomeUnknown("WhatsApp answered without a message id")
        contacts = data.get("contacts") or [{}]
        return Accepted(str(messages[0]["id"]), {"wa_id": str(contacts[0].get("wa_id", ""))})

    def simulate(self, request: ProviderRequest, message: OutboundMessage) -> Accepted:
        body = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": (to := request.body.get("to") or request.body["recipient"]), "wa_id": to}],
            "messages": [{"id": local_id("wamid.local-", message.idempotency_key)}],
        }
        return self.parse(HttpResponse(200, json.dumps(body).encode()))


class MessengerAdapter(_GraphAdapter):
    """Messenger Send API: ``POST /{version}/me/messages`` with the Page access token.

    Settings (secret ``meta-outbound``): ``messenger_page_access_token``. Replies go as
    ``messaging_type=RESPONSE``, anything else as ``UPDATE`` (inside the 24-hour window).
    """

    channel = "messenger"
    provider = "messenger"
    token_setting = "messenger_page_access_token"

    def build(self, message: OutboundMessage) -> ProviderRequest:
        if message.to.type != "messenger":
            raise DeliveryFailed("wrong_recipient", f"Messenger cannot reach a {message.to.type} identity")
        body = {
            "recipient": {"id": message.to.value},
            "messaging_type": "RESPONSE" if message.kind in ("reply", "acknowledgement") else "UPDATE",
            "message": {"text": message.text},
        }
        return ProviderRequest(self.provider, "POST", self._url("me"), "json", body)

    def send(self, request: ProviderRequest, message: OutboundMessage) -> Accepted:
        return self.parse(self._post(request))

    def parse(self, response: HttpResponse) -> Accepted:
        data = _meta_outcome(response, self.provider)
        if not data.get("message_id"):
            raise OutcomeUnknown("Messenger answered without a message id")
        return Accepted(str(data["message_id"]))

    def simulate(self, request: ProviderRequest, message: OutboundMessage) -> Accepted:
        body = {
            "recipient_id": request.body["recipient"]["id"],
            "message_id": local_id("m_local-", message.idempotency_key),
        }
        return self.parse(HttpResponse(200, json.dumps(body).encode()))


# --------------------------------------------------------------------------- #
# Amazon SES v2 (e-mail)
# --------------------------------------------------------------------------- #
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


def unsubscribe_footer(text: str, url: str) -> str:
    """The text with an unsubscribe line below the signature separator."""
    return f"{text.rstrip()}\n\n-- \nTo stop receiving these e-mails, unsubscribe: {url}\n"


class SesEmailAdapter(_Configured):
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
    secret_env_var = "EMAIL_SENDER_SECRET_ID"

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


# --------------------------------------------------------------------------- #
# Local mode
# --------------------------------------------------------------------------- #
#: Set by the local runtime (``omni local``): outbound goes to the outbox, not to providers.
OUTBOUND_MODE_ENV = "OMNI_OUTBOUND_MODE"


class LocalOutboxAdapter:
    """Wraps a provider adapter: builds the same request, records it, sends nothing.

    The request lands on the outbox attempt (``omni outbox --json`` shows it) and the
    provider's documented success response is simulated, so the rest of the pipeline
    (provider ids, timeline, delivery log) runs exactly as in the cloud.
    """

    idempotent = True

    def __init__(self, inner: Adapter) -> None:
        self.inner = inner
        self.channel = inner.channel
        self.provider = inner.provider

    def build(self, message: OutboundMessage) -> ProviderRequest:
        return self.inner.build(message)

    def send(self, request: ProviderRequest, message: OutboundMessage) -> Accepted:
        return self.inner.simulate(request, message)

    def find_sent(self, request: ProviderRequest, message: OutboundMessage, since: datetime) -> str | None:
        return None

    def simulate(self, request: ProviderRequest, message: OutboundMessage) -> Accepted:
        return self.inner.simulate(request, message)
