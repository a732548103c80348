"""WhatsApp channel (Meta Cloud API): subscription handshake, messages, delivery statuses.

The Meta webhook (``shared.channels.meta_webhook``) with WhatsApp's payload. A status
whose id we do not know but which echoes our idempotency key (``biz_opaque_callback_data``)
confirms a send that notify could not record.
"""

from __future__ import annotations

from shared.channels import meta
from shared.channels.meta_webhook import MetaWebhook
from shared.platform.observability import new_tracer

PATH = "/webhooks/whatsapp"

webhook = MetaWebhook(
    name="whatsapp",
    path=PATH,
    parse=meta.parse_whatsapp,
    channel_of=lambda notification: "whatsapp",
    confirms_unconfirmed_sends=True,
)
app = webhook.app
logger = webhook.logger
tracer = new_tracer()
publisher = webhook.publisher
outbox = webhook.outbox
handler = tracer.capture_lambda_handler(webhook.handler)
