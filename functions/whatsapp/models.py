"""The answer the WhatsApp webhook gives Meta (Meta only looks at the status code)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class EventReceived(BaseModel):
    status: Literal["EVENT_RECEIVED"] = "EVENT_RECEIVED"
    #: Customer messages published as ``message.received``.
    messages: int
    #: Delivery statuses applied to messages we sent (unknown ids included).
    statuses: int
    #: What the notification carried that is not a customer message or a status.
    ignored: int
