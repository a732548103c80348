"""Provider adapters: the one interface every provider's adapter implements, and the local mode.

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

The providers: :mod:`shared.outbound.twilio` (SMS, voice callback), :mod:`shared.outbound.meta`
(WhatsApp, Messenger), :mod:`shared.outbound.ses` (e-mail), :mod:`shared.outbound.webchat`
(our own web chat); :mod:`shared.outbound.registry` builds one of each.

HTTP goes through urllib3 (it ships with botocore, so the Lambda runtime has it); SES
through boto3's ``sesv2`` client. Credentials come from Secrets Manager, read lazily.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from shared.contracts.events import Identity
from shared.outbound.templates import WhatsAppTemplate
from shared.platform import settings


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
    #: E-mail notifications: the signed link to the customer's contact preferences page.
    preferences_url: str | None = None
    #: Our timestamp of the message (ISO 8601 UTC) and its epoch seconds.
    timestamp: str = ""
    epoch: int = 0
    #: Who wrote it (``bot``, ``agent:<id>``) and the first name a customer may see (web chat).
    author: str = "bot"
    author_name: str | None = None
    #: Knowledge-base articles a bot answer came from: ``{"article_id", "title"}`` each (web chat).
    sources: tuple[Mapping[str, str], ...] = ()
    #: The survey the message asks (``ces`` or ``csat``), so web chat can offer the scores.
    survey: str | None = None

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


class Configured:
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


class HttpAdapter(Configured):
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


# --------------------------------------------------------------------------- #
# Local mode
# --------------------------------------------------------------------------- #
#: Set by the local runtime (``omni local``): outbound goes to the outbox, not to providers.
OUTBOUND_MODE_ENV = settings.OMNI_OUTBOUND_MODE


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
