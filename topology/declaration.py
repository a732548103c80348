"""The system: every table, queue, rule, secret, bucket, API and function of the deployment."""

from __future__ import annotations

from dataclasses import replace

from shared.contracts.names import (
    BEHAVIOUR_EVENTS,
    DELIVERY_STATUS_CHANGED,
    KPI_EVENTS,
    MESSAGE_RECEIVED,
    MESSAGE_RECORDED,
    NOTIFICATION_REQUESTED,
)
from shared.platform import settings
from topology.environment import LINKS_SIGNING_SECRET
from topology.model import (
    BedrockUse,
    Bucket,
    DetailFilter,
    EmailIdentity,
    EmailReceiving,
    EventBus,
    EventRule,
    Function,
    Grant,
    Gsi,
    HttpRoute,
    Queue,
    Schedule,
    Secret,
    StackSetting,
    Table,
    Throttle,
    Topology,
    WebSocketApi,
    WebSocketRoute,
)

BUS = EventBus(name="events", archive_retention_days=30)

#: Customers are erased this many days after their last contact (shared/domain/retention.py). Every
#: function that writes or sweeps ``retain_until_day`` gets the same value.
RETENTION_ENVIRONMENT = {settings.OMNI_RETENTION_DAYS: "365"}

TABLES = (
    Table(
        name="customers",
        description=(
            "Customer profiles, their identities, one ownership item per normalised identity, merge "
            "records, and erasure tombstones (which expire through the TTL attribute)."
        ),
        ttl_attribute="expires_at",
        gsis=(
            # Sparse: active profiles by the last day their data is kept; the retention sweep's index.
            Gsi(
                name="retention",
                partition_key="retain_until_day",
                sort_key="customer_id",
                projection="KEYS_ONLY",
            ),
        ),
    ),
    Table(
        name="conversations",
        description="Conversations (META item) and their messages, sorted by provider timestamp.",
        gsis=(
            # The index items project only attributes that never change (the META item is
            # rewritten on every message; its index copies are not): readers that need more
            # get the META items by key (see shared/repositories/conversations.py).
            Gsi(
                name="by-customer",
                partition_key="customer_id",
                sort_key="opened_at",
                projection="INCLUDE",
                non_key_attributes=("conversation_id",),
            ),
            # Sparse: only conversations waiting in a queue for an agent (priority, then age).
            Gsi(
                name="queued",
                partition_key="queued_in",
                sort_key="queue_rank",
                projection="INCLUDE",
                non_key_attributes=("conversation_id",),
            ),
            # Sparse: only conversations whose customer waits for us; the SLA sweep's index
            # (it projects what the sweep reads).
            Gsi(
                name="waiting",
                partition_key="wait_queue",
                sort_key="waiting_since",
                projection="INCLUDE",
                non_key_attributes=(
                    "conversation_id",
                    "customer_id",
                    "status",
                    "queue",
                    "priority",
                    "wait_kind",
                    "stalled_for",
                    "assigned_agent",
                ),
            ),
            # Sparse: conversations the bot answered, by when (shards ``bot#0``..); the SLA sweep
            # resolves them as ``bot`` when the customer stays silent (docs/kpis.md).
            Gsi(
                name="bot-answered",
                partition_key="bot_answered_in",
                sort_key="bot_answered_at",
                projection="KEYS_ONLY",
            ),
        ),
    ),
    Table(
        name="agents",
        description="Agents (skills, capacity, status, active conversations), skills, sticky agents.",
    ),
    Table(
        name="webchat",
        description="Web chat sessions and the messages shown in each session, both directions.",
        ttl_attribute="expires_at",
    ),
    Table(
        name="outbox",
        description="Every outbound delivery with its status: the delivery log.",
        partition_key="notification_id",
        sort_key=None,
        gsis=(Gsi(name="by-provider-id", partition_key="provider_message_id", projection="KEYS_ONLY"),),
    ),
    Table(
        name="behaviour",
        description=(
            "Proactive service: per customer and rule, the recent behaviour events counted and when "
            "the rule last fired (expire via TTL)."
        ),
        ttl_attribute="expires_at",
    ),
    Table(
        name="kpis",
        description=(
            "Customer-experience KPI counters per day, intent and channel (docs/kpis.md), the KPI "
            "function's per-conversation state and its per-event seen markers (expire via TTL)."
        ),
        ttl_attribute="expires_at",
    ),
)

QUEUES: tuple[Queue, ...] = (
    Queue(name="profile-merge", batch_size=10, visibility_timeout_s=180),
    Queue(name="routing", batch_size=10, visibility_timeout_s=180),
    Queue(name="notify", batch_size=10, visibility_timeout_s=180),
    Queue(name="delivery-status", batch_size=10, visibility_timeout_s=60),
    Queue(name="kpi", batch_size=10, visibility_timeout_s=180),
    Queue(name="proactive", batch_size=10, visibility_timeout_s=180),
)

RULES = (
    EventRule(
        name="message-received",
        detail_types=(MESSAGE_RECEIVED,),
        target_queue="profile-merge",
        description="Every inbound message on every channel goes to profile merge.",
    ),
    EventRule(
        name="message-recorded",
        detail_types=(MESSAGE_RECORDED,),
        target_queue="routing",
        description="A message recorded in its conversation is routed.",
    ),
    EventRule(
        name="notification-requested",
        detail_types=(NOTIFICATION_REQUESTED,),
        target_queue="notify",
        description="Replies, acknowledgements and notifications go out through notify.",
    ),
    EventRule(
        name="delivery-status-changed",
        detail_types=(DELIVERY_STATUS_CHANGED,),
        target_queue="delivery-status",
        description="Delivery receipts update the outbound message in the conversation timeline.",
    ),
    EventRule(
        name="kpi-events",
        detail_types=tuple(t for t in KPI_EVENTS if t not in (MESSAGE_RECORDED, NOTIFICATION_REQUESTED)),
        target_queue="kpi",
        description=(
            "Conversation lifecycle events are counted into the KPI table; of messages and "
            "notifications only those that can move a counter."
        ),
        # docs/kpis.md: a message counts when it switches channel, reopens or answers a
        # survey; a notification when it is the first hand-over or may be the first response.
        filtered=(
            DetailFilter(MESSAGE_RECORDED, "channel_switch", (True,)),
            DetailFilter(MESSAGE_RECORDED, "reopened", (True,)),
            DetailFilter(MESSAGE_RECORDED, "survey", ("ces", "csat")),
            DetailFilter(NOTIFICATION_REQUESTED, "first_handover", (True,)),
            DetailFilter(NOTIFICATION_REQUESTED, "first_response", (True,)),
            # The assistant's answers and hand-overs (its KPIs: answers, citations, tokens, cost).
            DetailFilter(NOTIFICATION_REQUESTED, "assisted", (True,)),
        ),
    ),
    EventRule(
        name="behaviour-events",
        detail_types=BEHAVIOUR_EVENTS,
        target_queue="proactive",
        description="Behaviour events of the company's systems (source omni.*) feed the proactive rules.",
    ),
)

SECRETS: tuple[Secret, ...] = (
    Secret(
        name="webchat-identity",
        config_key="webchatIdentitySecret",
        local_env_var="OMNI_WEBCHAT_IDENTITY_SECRET",
        local_default="local-dev-webchat-identity-secret-not-for-production",
        description=(
            "Shared with the company's site, which signs user_hash = HMAC-SHA256(secret, account id/email)."
        ),
    ),
    Secret(
        name="webchat-token",
        config_key="webchatTokenSecret",
        local_env_var="OMNI_WEBCHAT_TOKEN_SECRET",
        local_default="local-dev-webchat-token-secret-not-for-production",
        description="Signs the web chat session tokens we hand to browsers. Never leaves AWS.",
    ),
    Secret(
        name="twilio-auth-token",
        config_key="twilioAuthToken",
        local_env_var="OMNI_TWILIO_AUTH_TOKEN",
        local_default="local-dev-twilio-auth-token-not-for-production",
        description="Twilio account auth token: verifies X-Twilio-Signature on SMS and voice webhooks.",
    ),
    Secret(
        name="meta-app-secret",
        config_key="metaAppSecret",
        local_env_var="OMNI_META_APP_SECRET",
        local_default="local-dev-meta-app-secret-not-for-production",
        description="Meta app secret: verifies X-Hub-Signature-256 on the WhatsApp and Messenger hooks.",
    ),
    Secret(
        name="meta-verify-token",
        config_key="metaVerifyToken",
        local_env_var="OMNI_META_VERIFY_TOKEN",
        local_default="local-dev-meta-verify-token",
        description="The verify token Meta echoes in the webhook subscription handshake.",
    ),
)

# Outbound provider settings (notify). JSON objects; the local defaults are never sent
# anywhere: locally every delivery goes to the outbox (OMNI_OUTBOUND_MODE=local).
SECRETS += (
    Secret(
        name="twilio-api",
        config_key="twilioApi",
        local_env_var="OMNI_TWILIO_API",
        local_default=(
            '{"account_sid": "AC00000000000000000000000000000000", '
            '"auth_token": "local-dev-twilio-api-token-not-for-production", "from": "+15005550006"}'
        ),
        description="Twilio REST API for outbound SMS: account_sid, auth_token, from/messaging_service_sid.",
    ),
    Secret(
        name="meta-outbound",
        config_key="metaOutbound",
        local_env_var="OMNI_META_OUTBOUND",
        local_default=(
            '{"access_token": "local-dev-meta-access-token", "whatsapp_phone_number_id": "100000000000000", '
            '"messenger_page_access_token": "local-dev-page-access-token", "graph_version": "v21.0"}'
        ),
        description="Meta Graph API for outbound WhatsApp and Messenger: tokens and the phone number id.",
    ),
    Secret(
        name="email-sender",
        config_key="emailSender",
        local_env_var="OMNI_EMAIL_SENDER",
        local_default=(
            '{"from": "Support <support@example.com>", "reply_mailbox": "support@reply.example.com"}'
        ),
        description="Outbound e-mail (SES v2): from (verified identity), reply_mailbox, configuration_set.",
    ),
)

# Signed links in messages to customers (one-click unsubscribe, survey answers): shared/domain/links.py.
SECRETS += (
    Secret(
        name="links-signing",
        config_key="linksSigningSecret",
        local_env_var="OMNI_LINKS_SIGNING_SECRET",
        local_default="local-dev-links-signing-secret-not-for-production",
        description="Signs the links we put in messages (unsubscribe, survey answers). Never leaves AWS.",
    ),
)

BUCKETS: tuple[Bucket, ...] = (Bucket(name="inbound-email", expire_after_days=30),)

EMAIL_IDENTITIES = (
    EmailIdentity(
        name="sender",
        config_key="emailSenderIdentity",
        configuration_set_config_key="emailConfigurationSet",
        local_default="example.com",
        description="The verified SES identity (domain or address) of the email-sender secret's from.",
    ),
)

#: Providers retry and burst; their webhooks get more room than the default route throttle.
WEBHOOK_THROTTLE = Throttle(rate_per_s=500, burst=1000)

_SESSION_MESSAGES = "/webchat/sessions/{session_id}/messages"
# The agent API's routes, one tuple per router in functions/agent_api/.
_CUSTOMER_ROUTES = (
    HttpRoute("GET", "/customers", auth="agent"),
    HttpRoute("GET", "/customers/{customer_id}", auth="agent"),
    HttpRoute("PATCH", "/customers/{customer_id}", auth="agent"),
    HttpRoute("DELETE", "/customers/{customer_id}", auth="agent"),
    HttpRoute("GET", "/customers/{customer_id}/conversations", auth="agent"),
    HttpRoute("GET", "/customers/{customer_id}/merges", auth="agent"),
    HttpRoute("GET", "/customers/{customer_id}/export", auth="agent"),
    HttpRoute("POST", "/customers/{customer_id}/merge", auth="agent"),
    HttpRoute("POST", "/customers/{customer_id}/unmerge", auth="agent"),
    HttpRoute("POST", "/customers/{customer_id}/identities/confirm", auth="agent"),
)
_CONVERSATION_ROUTES = (
    HttpRoute("GET", "/conversations/{conversation_id}", auth="agent"),
    HttpRoute("POST", "/conversations/{conversation_id}/accept", auth="agent"),
    HttpRoute("POST", "/conversations/{conversation_id}/messages", auth="agent"),
    HttpRoute("POST", "/conversations/{conversation_id}/notes", auth="agent"),
    HttpRoute("POST", "/conversations/{conversation_id}/transfer", auth="agent"),
    HttpRoute("POST", "/conversations/{conversation_id}/resolve", auth="agent"),
)
_NOTIFICATION_ROUTES = (HttpRoute("POST", "/notifications", auth="agent"),)
_KPI_ROUTES = (HttpRoute("GET", "/kpis", auth="agent"), HttpRoute("GET", "/kpis/daily", auth="agent"))
_AGENT_ROUTES = (
    HttpRoute("GET", "/agents/me", auth="agent"),
    HttpRoute("PUT", "/agents/me/status", auth="agent"),
    HttpRoute("GET", "/agents/me/conversations", auth="agent"),
    HttpRoute("PUT", "/agents/{agent_id}", auth="agent"),
    HttpRoute("GET", "/queues/{queue}", auth="agent"),
)
#: Pushes to the web chat widget (the widget still polls; the push just makes it instant).
WEBSOCKET_APIS = (
    WebSocketApi(name="webchat", description="Web chat push: a session's messages as they are delivered."),
)

_META_GRANTS = (
    Grant("bus", BUS.name, "publish"),
    # What a big batch could not publish within its time budget goes straight to profile merge.
    Grant("queue", "profile-merge", "send"),
    Grant("secret", "meta-app-secret", "get"),
    Grant("secret", "meta-verify-token", "get"),
    Grant("table", "outbox", "readwrite"),
)

#: The company's defaults for customers who chose no time zone / quiet hours (README, "Notifications").
QUIET_HOURS_SETTINGS = (
    StackSetting(
        settings.OMNI_DEFAULT_TIMEZONE,
        "defaultTimezone",
        "",
        description="IANA time zone of quiet hours for a customer who chose none and whose phone "
        "number implies none (empty: UTC)",
    ),
    StackSetting(
        settings.OMNI_QUIET_HOURS,
        "quietHours",
        "21:00-08:00",
        description="default quiet hours, local HH:MM-HH:MM (off: none)",
    ),
)

FUNCTIONS: tuple[Function, ...] = (
    Function(
        name="webchat",
        handler="functions.webchat.handler.handler",
        source_dir="functions/webchat",
        description="Web chat channel: sessions, inbound messages, the session's message list.",
        memory_mb=256,
        timeout_s=10,
        routes=(
            HttpRoute("POST", "/webchat/sessions", throttle=Throttle(rate_per_s=20, burst=40)),
            HttpRoute("POST", _SESSION_MESSAGES, throttle=Throttle(rate_per_s=100, burst=200)),
            HttpRoute("GET", _SESSION_MESSAGES, throttle=Throttle(rate_per_s=200, burst=400)),
        ),
        grants=(
            Grant("table", "webchat", "readwrite"),
            Grant("bus", BUS.name, "publish"),
            Grant("secret", "webchat-identity", "get"),
            Grant("secret", "webchat-token", "get"),
        ),
    ),
    Function(
        name="webchat-socket",
        handler="functions.webchat_socket.handler.handler",
        source_dir="functions/webchat_socket",
        description="Web chat push: WebSocket $connect (session token checked) and $disconnect.",
        memory_mb=256,
        timeout_s=10,
        websocket_routes=(WebSocketRoute("webchat", "$connect"), WebSocketRoute("webchat", "$disconnect")),
        grants=(Grant("table", "webchat", "readwrite"), Grant("secret", "webchat-token", "get")),
    ),
    Function(
        name="sms",
        handler="functions.sms.handler.handler",
        source_dir="functions/sms",
        description="SMS channel (Twilio Messaging): inbound messages, STOP/START, delivery status.",
        routes=(
            HttpRoute("POST", "/webhooks/sms", throttle=WEBHOOK_THROTTLE),
            HttpRoute("POST", "/webhooks/sms/status", throttle=WEBHOOK_THROTTLE),
        ),
        grants=(
            Grant("bus", BUS.name, "publish"),
            Grant("secret", "twilio-auth-token", "get"),
            Grant("table", "outbox", "readwrite"),
        ),
    ),
    Function(
        name="voice",
        handler="functions.voice.handler.handler",
        source_dir="functions/voice",
        description="Voice channel (Twilio Voice): calls join the conversation; TwiML enqueues the caller.",
        routes=(
            HttpRoute("POST", "/webhooks/voice", throttle=WEBHOOK_THROTTLE),
            HttpRoute("POST", "/webhooks/voice/status", throttle=WEBHOOK_THROTTLE),
            HttpRoute("POST", "/webhooks/voice/transcription", throttle=WEBHOOK_THROTTLE),
        ),
        grants=(
            Grant("bus", BUS.name, "publish"),
            Grant("secret", "twilio-auth-token", "get"),
            Grant("table", "customers", "read"),
            Grant("table", "conversations", "read"),
        ),
    ),
    Function(
        name="whatsapp",
        handler="functions.whatsapp.handler.handler",
        source_dir="functions/whatsapp",
        description="WhatsApp channel (Meta Cloud API): handshake, messages, delivery statuses.",
        routes=(
            HttpRoute("GET", "/webhooks/whatsapp", throttle=WEBHOOK_THROTTLE),
            HttpRoute("POST", "/webhooks/whatsapp", throttle=WEBHOOK_THROTTLE),
        ),
        grants=_META_GRANTS,
    ),
    Function(
        name="messenger",
        handler="functions.messenger.handler.handler",
        source_dir="functions/messenger",
        description="Messenger and Instagram channels (Meta): handshake, messages, postbacks.",
        routes=(
            HttpRoute("GET", "/webhooks/messenger", throttle=WEBHOOK_THROTTLE),
            HttpRoute("POST", "/webhooks/messenger", throttle=WEBHOOK_THROTTLE),
        ),
        grants=_META_GRANTS,
    ),
    Function(
        name="email",
        handler="functions.email.handler.handler",
        source_dir="functions/email",
        description="E-mail channel (Amazon SES receiving): raw MIME from S3, threading, sender verdicts.",
        memory_mb=512,
        timeout_s=30,
        email=EmailReceiving(bucket="inbound-email", prefix="inbound/"),
        # The Lambda action's event does not say where the S3 action stored the mail.
        environment={settings.INBOUND_EMAIL_PREFIX: "inbound/"},
        grants=(
            Grant("bucket", "inbound-email", "read"),
            Grant("bus", BUS.name, "publish"),
            # readwrite: a bounce marks the delivery it returns failed.
            Grant("table", "outbox", "readwrite"),
        ),
    ),
    Function(
        name="profile-merge",
        handler="functions.profile_merge.handler.handler",
        source_dir="functions/profile_merge",
        description="Resolves each inbound message to one customer and records it in the open conversation.",
        memory_mb=256,
        timeout_s=30,
        queue="profile-merge",
        environment=RETENTION_ENVIRONMENT,
        grants=(
            Grant("table", "customers", "readwrite"),
            Grant("table", "conversations", "readwrite"),
            Grant("bus", BUS.name, "publish"),
        ),
    ),
    Function(
        name="routing",
        handler="functions.routing.handler.handler",
        source_dir="functions/routing",
        description="Decides who answers (an automated reply or a human queue) and records it.",
        memory_mb=256,
        timeout_s=30,
        queue="routing",
        grants=(
            Grant("table", "conversations", "readwrite"),
            # readwrite: a bot resolution clears the customer's open conversation.
            Grant("table", "customers", "readwrite"),
            Grant("table", "agents", "readwrite"),
            Grant("bus", BUS.name, "publish"),
        ),
    ),
    Function(
        name="sla-sweep",
        handler="functions.sla_sweep.handler.handler",
        source_dir="functions/sla_sweep",
        description="Every minute: stalled conversations (event + metric), overflow, assignment.",
        memory_mb=256,
        timeout_s=50,
        schedules=(Schedule(name="sweep", rate_minutes=1),),
        grants=(
            Grant("table", "conversations", "readwrite"),
            # readwrite: a bot resolution clears the customer's open conversation.
            Grant("table", "customers", "readwrite"),
            Grant("table", "agents", "readwrite"),
            Grant("bus", BUS.name, "publish"),
        ),
    ),
    Function(
        name="retention-sweep",
        handler="functions.retention_sweep.handler.handler",
        source_dir="functions/retention_sweep",
        description="Hourly: erases customers whose last contact is older than OMNI_RETENTION_DAYS.",
        memory_mb=256,
        timeout_s=300,
        schedules=(Schedule(name="sweep", rate_minutes=60),),
        environment=RETENTION_ENVIRONMENT,
        grants=(
            Grant("table", "customers", "readwrite"),
            Grant("table", "conversations", "readwrite"),
        ),
    ),
    Function(
        name="notify",
        handler="functions.notify.handler.handler",
        source_dir="functions/notify",
        description="Delivers replies and notifications on the customer's channel and logs each delivery.",
        memory_mb=256,
        timeout_s=30,
        queue="notify",
        grants=(
            Grant("table", "conversations", "readwrite"),
            Grant("table", "webchat", "readwrite"),
            Grant("table", "outbox", "readwrite"),
            Grant("table", "customers", "read"),
            # Quiet hours: the request goes back on its own queue with DelaySeconds.
            Grant("queue", "notify", "send"),
            Grant("secret", "twilio-api", "get"),
            Grant("secret", "meta-outbound", "get"),
            Grant("secret", "email-sender", "get"),
            Grant("websocket", "webchat", "manage"),
            # SES v2 SendEmail from the configured sender identity only.
            Grant("email-identity", "sender", "send"),
            # The one-click unsubscribe link of e-mail notifications (shared/domain/links.py).
            Grant("secret", LINKS_SIGNING_SECRET, "get"),
        ),
        settings=QUIET_HOURS_SETTINGS,
    ),
    Function(
        name="delivery-status",
        handler="functions.delivery_status.handler.handler",
        source_dir="functions/delivery_status",
        description="Applies delivery receipts (delivered/read/failed) to the conversation timeline.",
        memory_mb=256,
        timeout_s=10,
        queue="delivery-status",
        grants=(
            Grant("table", "conversations", "readwrite"),
            # A bounce records the address as undeliverable on the customer's identity.
            Grant("table", "customers", "readwrite"),
        ),
    ),
    Function(
        name="agent-api",
        handler="functions.agent_api.handler.handler",
        source_dir="functions/agent_api",
        description="The agent API: customers, conversations (JWT bearer).",
        memory_mb=512,
        timeout_s=10,
        routes=(
            *_CUSTOMER_ROUTES,
            *_CONVERSATION_ROUTES,
            *_AGENT_ROUTES,
            *_NOTIFICATION_ROUTES,
            *_KPI_ROUTES,
            HttpRoute("GET", "/openapi.json"),
        ),
        environment=RETENTION_ENVIRONMENT,
        grants=(
            Grant("table", "customers", "readwrite"),
            Grant("table", "conversations", "readwrite"),
            Grant("table", "agents", "readwrite"),
            Grant("bus", BUS.name, "publish"),
            Grant("table", "kpis", "read"),
        ),
    ),
    Function(
        name="kpi",
        handler="functions.kpi.handler.handler",
        source_dir="functions/kpi",
        description="Counts conversation events into the KPI table; asks for and records CES answers.",
        memory_mb=256,
        timeout_s=30,
        queue="kpi",
        grants=(
            Grant("table", "kpis", "readwrite"),
            # Intent and opening facts from META; the CES answer is stored on the conversation.
            Grant("table", "conversations", "readwrite"),
            # The CES question (notification.requested).
            Grant("bus", BUS.name, "publish"),
            # The CES question waits a while on the KPI queue (DelaySeconds) before it is asked.
            Grant("queue", "kpi", "send"),
            # CES/CSAT score links in e-mail and web chat survey questions (shared/domain/links.py).
            Grant("secret", LINKS_SIGNING_SECRET, "get"),
        ),
    ),
    Function(
        name="proactive",
        handler="functions.proactive.handler.handler",
        source_dir="functions/proactive",
        description="Turns behaviour events into proactive notifications and retention tasks.",
        memory_mb=256,
        timeout_s=30,
        queue="proactive",
        grants=(
            Grant("table", "behaviour", "readwrite"),
            # The customer's open conversation is set when a task opens one.
            Grant("table", "customers", "readwrite"),
            Grant("table", "conversations", "readwrite"),
            Grant("table", "agents", "readwrite"),
            Grant("bus", BUS.name, "publish"),
        ),
    ),
)

# Public signed links (shared/domain/links.py): mail scanners fetch GET, so only POST acts.
FUNCTIONS += (
    Function(
        name="links",
        handler="functions.links.handler.handler",
        source_dir="functions/links",
        description="Public signed links: one-click unsubscribe (RFC 8058) and survey answers.",
        memory_mb=256,
        timeout_s=10,
        routes=(
            HttpRoute("GET", "/links/{purpose}", throttle=WEBHOOK_THROTTLE),
            HttpRoute("POST", "/links/{purpose}", throttle=WEBHOOK_THROTTLE),
        ),
        grants=(
            # The unsubscribe link sets the customer's e-mail consent.
            Grant("table", "customers", "readwrite"),
            # A survey answer is published as feedback.submitted.
            Grant("bus", BUS.name, "publish"),
            Grant("secret", LINKS_SIGNING_SECRET, "get"),
        ),
    ),
)

# --------------------------------------------------------------------------- #
# The assistant's knowledge base (docs/assistant.md): a versioned bucket of Markdown
# articles, S3 notifications to the indexing function's queue, the index object it writes.
# --------------------------------------------------------------------------- #
KNOWLEDGE_BUCKET = "knowledge"
#: The assistant's settings every function using it gets (the same everywhere: one local process).
ASSISTANT_ENVIRONMENT = {settings.OMNI_KNOWLEDGE_REFRESH_S: "30"}
#: The assistant's stack config (README, "Assistant"): Pulumi reads the keys, locally the defaults.
ASSISTANT_MODE = StackSetting(
    settings.OMNI_ASSISTANT,
    "assistant",
    "extractive",
    description="extractive (no model), bedrock (Converse) or off",
)
ASSISTANT_MODEL = StackSetting(
    settings.OMNI_ASSISTANT_MODEL_ID,
    "assistantModelId",
    "anthropic.claude-3-haiku-20240307-v1:0",
    kind="bedrock-model",
    description="the Converse model id or inference profile id",
)
ASSISTANT_GUARDRAIL = StackSetting(
    settings.OMNI_ASSISTANT_GUARDRAIL_ID,
    "assistantGuardrailId",
    kind="bedrock-guardrail",
    description="an optional Bedrock Guardrail applied to every answer",
)
ASSISTANT_GUARDRAIL_VERSION = StackSetting(
    settings.OMNI_ASSISTANT_GUARDRAIL_VERSION, "assistantGuardrailVersion", description="its version"
)
EMBEDDING_MODEL = StackSetting(
    settings.OMNI_EMBEDDING_MODEL_ID,
    "embeddingModelId",
    kind="bedrock-model",
    description="the embedding model (e.g. amazon.titan-embed-text-v2:0); empty: lexical retrieval",
)
ASSISTANT_MIN_CONFIDENCE = StackSetting(
    settings.OMNI_ASSISTANT_MIN_CONFIDENCE,
    "assistantMinConfidence",
    description="hand over below this retrieval confidence (0..1; default: assistant.toml)",
)
ASSISTANT_SETTINGS = (
    ASSISTANT_MODE,
    ASSISTANT_MODEL,
    ASSISTANT_GUARDRAIL,
    ASSISTANT_GUARDRAIL_VERSION,
    EMBEDDING_MODEL,
    ASSISTANT_MIN_CONFIDENCE,
)
USES_BEDROCK = BedrockUse(settings.OMNI_ASSISTANT, "bedrock")
BUCKETS += (
    Bucket(
        name=KNOWLEDGE_BUCKET,
        expire_after_days=None,
        versioned=True,
        notify_queue="knowledge-index",
        notify_prefix="articles/",
    ),
)
# Rebuilding the index of a few thousand chunks (and embedding the changed ones) takes a while.
QUEUES += (Queue(name="knowledge-index", batch_size=10, visibility_timeout_s=900, max_batching_window_s=2),)
_KNOWLEDGE_ROUTES = (
    HttpRoute("GET", "/knowledge/articles", auth="agent"),
    HttpRoute("GET", "/knowledge/articles/{article_id}", auth="agent"),
    HttpRoute("PUT", "/knowledge/articles/{article_id}", auth="agent"),
    HttpRoute("DELETE", "/knowledge/articles/{article_id}", auth="agent"),
)
FUNCTIONS += (
    Function(
        name="knowledge-index",
        handler="functions.knowledge_index.handler.handler",
        source_dir="functions/knowledge_index",
        description="Rebuilds the knowledge index (chunks, BM25, embeddings) when an article changes.",
        memory_mb=512,
        timeout_s=120,
        queue="knowledge-index",
        environment=ASSISTANT_ENVIRONMENT,
        settings=(ASSISTANT_MODE, EMBEDDING_MODEL),
        bedrock=USES_BEDROCK,
        grants=(
            Grant("bucket", KNOWLEDGE_BUCKET, "readwrite"),
            Grant("bucket", KNOWLEDGE_BUCKET, "list"),
        ),
    ),
)
FUNCTIONS = tuple(
    replace(
        fn,
        environment={**fn.environment, **ASSISTANT_ENVIRONMENT},
        grants=(*fn.grants, Grant("bucket", KNOWLEDGE_BUCKET, "read")),
        settings=ASSISTANT_SETTINGS,
        bedrock=USES_BEDROCK,
    )
    if fn.name == "routing"
    else replace(
        fn,
        routes=(*fn.routes, *_KNOWLEDGE_ROUTES),
        grants=(
            *fn.grants,
            Grant("bucket", KNOWLEDGE_BUCKET, "readwrite"),
            Grant("bucket", KNOWLEDGE_BUCKET, "list"),
        ),
    )
    if fn.name == "agent-api"
    else fn
    for fn in FUNCTIONS
)

#: Every function's logging (README, configuration; docs/operations.md): the level of the
#: Powertools logger and the share of invocations that log at DEBUG whatever the level.
#: Each function writes one INFO line per message (with its correlation id); in production
#: ``logLevel`` WARNING with ``logSampleRate`` 0.01 keeps warnings and errors (with their
#: correlation ids) and the routine lines of one invocation in a hundred.
LOG_LEVEL_SETTING = StackSetting(
    settings.LOG_LEVEL,
    "logLevel",
    "INFO",
    description="the functions' log level: DEBUG, INFO, WARNING or ERROR",
)
LOG_SAMPLE_RATE_SETTING = StackSetting(
    settings.POWERTOOLS_LOGGER_SAMPLE_RATE,
    "logSampleRate",
    description="share of invocations (0..1) that log at DEBUG whatever the level",
)
LOG_SETTINGS = (LOG_LEVEL_SETTING, LOG_SAMPLE_RATE_SETTING)
FUNCTIONS = tuple(replace(fn, settings=(*fn.settings, *LOG_SETTINGS)) for fn in FUNCTIONS)

TOPOLOGY = Topology(
    bus=BUS,
    tables=TABLES,
    queues=QUEUES,
    rules=RULES,
    secrets=SECRETS,
    functions=FUNCTIONS,
    buckets=BUCKETS,
    email_identities=EMAIL_IDENTITIES,
    websocket_apis=WEBSOCKET_APIS,
)
