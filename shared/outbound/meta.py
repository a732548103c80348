"""Meta Graph API: WhatsApp Cloud API and the Messenger Send API."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from shared.outbound.adapters import (
    Accepted,
    DeliveryFailed,
    HttpAdapter,
    HttpResponse,
    OutboundMessage,
    OutcomeUnknown,
    ProviderBusy,
    ProviderRequest,
    local_id,
)
from shared.platform import settings

GRAPH_API_BASE = "https://graph.facebook.com"
GRAPH_API_VERSION = "v21.0"

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


class _GraphAdapter(HttpAdapter):
    secret_env_var = settings.META_OUTBOUND_SECRET_ID
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
