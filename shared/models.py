"""Read models: what the agent API and the functions see of customers and conversations."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class CustomerIdentity(BaseModel):
    type: str
    value: str
    verified: bool
    added_at: str
    #: The channel on which we first saw it.
    source: str | None = None


class Customer(BaseModel):
    customer_id: str
    display_name: str | None = None
    created_at: str
    identities: list[CustomerIdentity] = Field(default_factory=list)
    open_conversation_id: str | None = None


class Message(BaseModel):
    message_id: str
    direction: Literal["inbound", "outbound"]
    channel: str
    text: str
    #: Provider timestamp for inbound messages, our send time for outbound ones (ISO 8601, UTC).
    timestamp: str
    author: str | None = None
    status: str | None = None
    attachments: list[dict[str, Any]] = Field(default_factory=list)


class ChannelSwitch(BaseModel):
    from_channel: str
    to_channel: str
    at: str
    message_id: str


class RoutingDecision(BaseModel):
    queue: str
    intent: str
    reason: str
    automated: bool
    message_id: str
    decided_at: str


class ConversationSummary(BaseModel):
    conversation_id: str
    customer_id: str
    status: str
    opened_at: str
    last_message_at: str | None = None
    last_channel: str | None = None
    channels: list[str] = Field(default_factory=list)
    message_count: int = 0
    routing: RoutingDecision | None = None


class Conversation(ConversationSummary):
    messages: list[Message] = Field(default_factory=list)
    channel_switches: list[ChannelSwitch] = Field(default_factory=list)
    #: Where replies go: the identity of the customer's latest inbound message.
    reply_to: dict[str, Any] | None = None
