"""The channels we talk to customers on (a module of its own: events and models both use it)."""

from __future__ import annotations

from typing import Literal

Channel = Literal["webchat", "sms", "whatsapp", "messenger", "instagram", "email", "voice"]
