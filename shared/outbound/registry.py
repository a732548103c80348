"""Every outbound channel's adapter, built once per notify container.

Locally (``OMNI_OUTBOUND_MODE=local``, set by ``omni local``) every provider adapter is
wrapped in :class:`~shared.outbound.adapters.LocalOutboxAdapter`: the provider request lands
in the outbox instead of being sent. Web chat is ours and always delivers.
"""

from __future__ import annotations

import os

from shared.outbound.adapters import OUTBOUND_MODE_ENV, Adapter, LocalOutboxAdapter
from shared.outbound.meta import MessengerAdapter, WhatsAppAdapter
from shared.outbound.ses import SesEmailAdapter
from shared.outbound.twilio import TwilioSmsAdapter, TwilioVoiceAdapter
from shared.outbound.webchat import WebchatAdapter


def build_adapters(mode: str | None = None) -> dict[str, Adapter]:
    """One adapter per channel; ``mode`` (default: the environment's) ``local`` records instead of sending."""
    providers: list[Adapter] = [
        TwilioSmsAdapter(),
        TwilioVoiceAdapter(),
        WhatsAppAdapter(),
        MessengerAdapter(),
        SesEmailAdapter(),
    ]
    if (mode if mode is not None else os.environ.get(OUTBOUND_MODE_ENV)) == "local":
        providers = [LocalOutboxAdapter(adapter) for adapter in providers]
    adapters: dict[str, Adapter] = {adapter.channel: adapter for adapter in providers}
    adapters["webchat"] = WebchatAdapter()
    return adapters
