"""Messenger and Instagram channels (Meta): subscription handshake, messages, postbacks.

One webhook serves both: ``object`` ``page`` is Messenger (the sender is a page-scoped
id), ``instagram`` is Instagram (an Instagram-scoped id). It is the Meta webhook
(``shared.channels.meta_webhook``) with Messenger's payload: echoes of our own messages
are not customer messages; deliveries (and Instagram reads, which name the message)
update the delivery log.
"""

from __future__ import annotations

from shared.channels import meta
from shared.channels.meta_webhook import MetaWebhook
from shared.platform.observability import new_tracer

PATH = "/webhooks/messenger"

webhook = MetaWebhook(
    name="messenger",
    path=PATH,
    parse=meta.parse_messenger,
    channel_of=lambda notification: "instagram" if notification.object == "instagram" else "messenger",
)
app = webhook.app
logger = webhook.logger
tracer = new_tracer()
publisher = webhook.publisher
outbox = webhook.outbox
handler = tracer.capture_lambda_handler(webhook.handler)
