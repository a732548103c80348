"""Twilio REST API 2010-04-01: Messages (SMS) and Calls (voice callback)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

from shared.outbound.adapters import (
    Accepted,
    DeliveryFailed,
    HttpAdapter,
    HttpResponse,
    OutboundMessage,
    ProviderBusy,
    ProviderRequest,
    local_id,
)
from shared.platform import settings

TWILIO_API_BASE = "https://api.twilio.com"


class _TwilioAdapter(HttpAdapter):
    """What the Twilio adapters share: the ``twilio-api`` secret, Basic auth, form POSTs
    to ``/2010-04-01/Accounts/{AccountSid}/<resource>.json`` and Twilio's error format."""

    provider = "twilio"
    idempotent = False
    secret_env_var = settings.TWILIO_API_SECRET_ID
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
