"""Notify: deliver a requested notification once, on the right channel, and log it.

The outbox item keyed by ``notification_id`` is written first (conditionally), so a
request delivered twice by SQS or published twice by its sender is sent once. The
channel adapters write with keys derived from the notification id as well, so a
crash between sending and marking the item as sent cannot duplicate the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from shared.events import Identity, NotificationRequested
from shared.repositories.conversations import ConversationRepository
from shared.repositories.outbox import OutboxRepository
from shared.repositories.webchat import WebchatRepository

#: The channel on which an identity is reached.
CHANNEL_OF_IDENTITY = {
    "webchat": "webchat",
    "phone": "sms",
    "whatsapp": "whatsapp",
    "email": "email",
    "messenger": "messenger",
    "instagram": "instagram",
}


class DeliveryFailed(Exception):
    """The provider refused the message for good (a transient failure raises anything else)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


class ChannelAdapter(Protocol):
    channel: str

    def send(self, to: Identity, text: str, notification_id: str, timestamp: str, epoch: int) -> str:
        """Deliver ``text``; return the provider's message id. Idempotent per ``notification_id``."""
        ...


class WebchatAdapter:
    """Delivers into the web chat session, where the widget's polling picks it up."""

    channel = "webchat"

    def __init__(self, sessions: WebchatRepository | None = None) -> None:
        self.sessions = sessions or WebchatRepository()

    def send(self, to: Identity, text: str, notification_id: str, timestamp: str, epoch: int) -> str:
        if to.type != "webchat":
            raise DeliveryFailed("wrong_recipient", f"web chat cannot reach a {to.type} identity")
        self.sessions.add_message(to.value, "outbound", notification_id, text, timestamp, epoch, author="bot")
        return notification_id


@dataclass(frozen=True)
class Outcome:
    notification_id: str
    status: Literal["sent", "failed", "already_done"]
    channel: str | None = None
    error: str | None = None


def deliver(
    request: NotificationRequested,
    conversations: ConversationRepository,
    outbox: OutboxRepository,
    adapters: dict[str, ChannelAdapter],
    now: str,
    now_epoch: int,
) -> Outcome:
    to = request.to
    channel = request.channel
    if to is None and request.conversation_id:
        meta = conversations.get_meta(request.conversation_id)
        if meta and meta.get("reply_to"):
            to = Identity(**meta["reply_to"])
    if to is not None and channel is None:
        channel = CHANNEL_OF_IDENTITY.get(to.type)

    item, new = outbox.start(
        {
            "notification_id": request.notification_id,
            "customer_id": request.customer_id,
            "conversation_id": request.conversation_id,
            "kind": request.kind,
            "urgency": request.urgency,
            "channel": channel,
            "recipient": to.key if to else None,
            "text": request.text,
            "author": request.author,
            "created_at": now,
        }
    )
    if not new and item["status"] != "queued":
        return Outcome(request.notification_id, "already_done", item.get("channel"))
    # Reuse the first attempt's time: every write below is keyed by it and stays idempotent.
    sent_at = item["created_at"]

    if to is None or channel is None:
        return _fail(outbox, request, channel, "no_channel", "the customer has no reachable channel", now)
    adapter = adapters.get(channel)
    if adapter is None:
        return _fail(outbox, request, channel, "channel_unavailable", f"no adapter for {channel} yet", now)
    try:
        provider_id = adapter.send(to, request.text, request.notification_id, sent_at, now_epoch)
    except DeliveryFailed as failure:
        return _fail(outbox, request, channel, failure.code, failure.reason, now)
    if request.conversation_id:
        conversations.record_outbound(
            request.conversation_id,
            message_id=request.notification_id,
            channel=channel,
            text=request.text,
            timestamp=sent_at,
            author=request.author,
            status="sent",
        )
    outbox.mark(request.notification_id, "sent", now, provider_message_id=provider_id)
    return Outcome(request.notification_id, "sent", channel)


def _fail(
    outbox: OutboxRepository,
    request: NotificationRequested,
    channel: str | None,
    code: str,
    reason: str,
    now: str,
) -> Outcome:
    outbox.mark(request.notification_id, "failed", now, error=f"{code}: {reason}")
    return Outcome(request.notification_id, "failed", channel, f"{code}: {reason}")
