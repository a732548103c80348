"""Our own web chat as an outbound channel: the message lands in the session, pushed to open sockets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.outbound.adapters import Accepted, DeliveryFailed, OutboundMessage, ProviderRequest
from shared.outbound.webchat_push import WebchatPusher
from shared.repositories.webchat import WebchatRepository


def shown_extra(message: OutboundMessage) -> dict[str, Any]:
    """What the widget shows besides the text: the agent's first name, the bot's sources, the survey."""
    extra: dict[str, Any] = {}
    if message.author_name:
        extra["author_name"] = message.author_name
    if message.sources:
        extra["sources"] = [
            {"article_id": str(s.get("article_id", "")), "title": str(s.get("title", ""))}
            for s in message.sources
        ]
    if message.survey:
        extra["survey"] = message.survey
    return extra


class WebchatAdapter:
    """Delivers into the web chat session, where the widget's polling picks it up, and
    pushes it to the session's open WebSockets (:mod:`shared.outbound.webchat_push`).

    Our own table, keyed by the notification id: sending twice stores (and pushes) one message.
    """

    channel = "webchat"
    provider = "webchat"
    idempotent = True

    def __init__(
        self, sessions: WebchatRepository | None = None, pusher: WebchatPusher | None = None
    ) -> None:
        self.sessions = sessions or WebchatRepository()
        self.pusher = pusher or WebchatPusher()

    def build(self, message: OutboundMessage) -> ProviderRequest:
        if message.to.type != "webchat":
            raise DeliveryFailed("wrong_recipient", f"web chat cannot reach a {message.to.type} identity")
        body = {"session_id": message.to.value, "message_id": message.notification_id, "text": message.text}
        return ProviderRequest(self.provider, "PUT", f"webchat:{message.to.value}", "api", body)

    def send(self, request: ProviderRequest, message: OutboundMessage) -> Accepted:
        extra = shown_extra(message)
        stored = self.sessions.add_message(
            message.to.value,
            "outbound",
            message.notification_id,
            message.text,
            message.timestamp,
            message.epoch,
            author=message.author,
            extra=extra,
        )
        if stored:
            self.pusher.push(
                message.to.value,
                {
                    "message_id": message.notification_id,
                    "direction": "outbound",
                    "text": message.text,
                    "timestamp": message.timestamp,
                    "author": message.author,
                    **extra,
                },
            )
        return Accepted(message.notification_id)

    def find_sent(self, request: ProviderRequest, message: OutboundMessage, since: datetime) -> str | None:
        return None

    def simulate(self, request: ProviderRequest, message: OutboundMessage) -> Accepted:
        return self.send(request, message)
