"""Every environment variable a function reads, declared once, and typed accessors for them.

Why a module of its own and not ``shared/platform/config.py``: ``config.py`` holds the
*mechanics* (``require_env``, ``get_secret``, :class:`ConfigurationError`) and pulls in
Powertools on use; this module is the *catalogue* of names. It imports the standard
library only, so the deploy declaration (``topology/``), the local runtime and the tests
can import it without loading any Lambda plumbing, and a function's cold start pays
nothing for it. Lambda code names a variable through a constant here, never through a
string literal; ``topology/`` sets the variables from the same constants (or derives
them from resource names, and ``tests/unit/test_settings.py`` checks that every derived
name the topology sets is declared here, and that every variable a function reads is set
for it by the topology or is listed in :data:`OPTIONAL`/:data:`RUNTIME`).

The accessors (:func:`env_str`, :func:`env_int`) read the environment when called: the
callers read them once per container (at cold start or into a module-level cache) where
that was already the case; nothing here caches on its own, so a test's ``monkeypatch``
of the environment keeps working.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# --------------------------------------------------------------------------- #
# Set by the topology for every function (topology/environment.py)
# --------------------------------------------------------------------------- #

#: The deployment's stage (``local``, ``dev``, ``prod``): a metrics dimension.
OMNI_STAGE = "OMNI_STAGE"
POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
LOG_LEVEL = "LOG_LEVEL"
#: Powertools: the share of invocations that log at DEBUG whatever ``LOG_LEVEL`` says (stack
#: setting ``logSampleRate``; with ``logLevel`` WARNING the routine per-message lines of
#: only that share of invocations are written).
POWERTOOLS_LOGGER_SAMPLE_RATE = "POWERTOOLS_LOGGER_SAMPLE_RATE"

# --------------------------------------------------------------------------- #
# Physical names of granted resources (derived by topology/model.py from the declared names)
# --------------------------------------------------------------------------- #

#: The event bus's name (``EventBus.env_var``).
EVENT_BUS_NAME = "EVENT_BUS_NAME"

# Tables (``Table.env_var``: ``<NAME>_TABLE``).
CUSTOMERS_TABLE = "CUSTOMERS_TABLE"
CONVERSATIONS_TABLE = "CONVERSATIONS_TABLE"
AGENTS_TABLE = "AGENTS_TABLE"
WEBCHAT_TABLE = "WEBCHAT_TABLE"
OUTBOX_TABLE = "OUTBOX_TABLE"
BEHAVIOUR_TABLE = "BEHAVIOUR_TABLE"
KPIS_TABLE = "KPIS_TABLE"

# Queues a function sends to (``Queue.env_var``: ``<NAME>_QUEUE_URL``).
NOTIFY_QUEUE_URL = "NOTIFY_QUEUE_URL"
KPI_QUEUE_URL = "KPI_QUEUE_URL"
PROFILE_MERGE_QUEUE_URL = "PROFILE_MERGE_QUEUE_URL"

# Buckets (``Bucket.env_var``: ``<NAME>_BUCKET``).
INBOUND_EMAIL_BUCKET = "INBOUND_EMAIL_BUCKET"
#: The assistant's knowledge base (articles and the index; shared/repositories/knowledge.py).
KNOWLEDGE_BUCKET = "KNOWLEDGE_BUCKET"

# SES identities (``EmailIdentity.env_var``: ``<NAME>_EMAIL_IDENTITY``). Set for notify, which
# names its sender through the email-sender secret instead (informational).
SENDER_EMAIL_IDENTITY = "SENDER_EMAIL_IDENTITY"

# Secrets: the variable holds the secret's id (``Secret.env_var``: ``<NAME>_SECRET_ID``).
WEBCHAT_IDENTITY_SECRET_ID = "WEBCHAT_IDENTITY_SECRET_ID"
WEBCHAT_TOKEN_SECRET_ID = "WEBCHAT_TOKEN_SECRET_ID"
TWILIO_AUTH_TOKEN_SECRET_ID = "TWILIO_AUTH_TOKEN_SECRET_ID"
META_APP_SECRET_SECRET_ID = "META_APP_SECRET_SECRET_ID"
META_VERIFY_TOKEN_SECRET_ID = "META_VERIFY_TOKEN_SECRET_ID"
TWILIO_API_SECRET_ID = "TWILIO_API_SECRET_ID"
META_OUTBOUND_SECRET_ID = "META_OUTBOUND_SECRET_ID"
EMAIL_SENDER_SECRET_ID = "EMAIL_SENDER_SECRET_ID"
LINKS_SIGNING_SECRET_ID = "LINKS_SIGNING_SECRET_ID"

#: The web chat WebSocket API's management endpoint (``WebSocketApi.env_var`` of ``webchat``).
WEBCHAT_WEBSOCKET_ENDPOINT = "WEBCHAT_WEBSOCKET_ENDPOINT"

# --------------------------------------------------------------------------- #
# Static settings the topology sets for the functions that need them
# --------------------------------------------------------------------------- #

#: The public base URL of the HTTP API, for the signed links in messages (shared/domain/links.py).
OMNI_PUBLIC_API_URL = "OMNI_PUBLIC_API_URL"
#: Days a customer's data is kept after the last contact (shared/domain/retention.py).
OMNI_RETENTION_DAYS = "OMNI_RETENTION_DAYS"
#: The company's default time zone for quiet hours (IANA), for a customer who chose none and
#: whose phone number implies none (shared/domain/contact_choices.py); empty: UTC.
OMNI_DEFAULT_TIMEZONE = "OMNI_DEFAULT_TIMEZONE"
#: The company's default quiet hours, ``21:00-08:00`` (``off``: none), for a customer who chose none.
OMNI_QUIET_HOURS = "OMNI_QUIET_HOURS"
#: Key prefix under which SES receiving stores raw e-mail in the inbound bucket.
INBOUND_EMAIL_PREFIX = "INBOUND_EMAIL_PREFIX"

# The assistant (docs/assistant.md). Pulumi sets them from stack config (infra/settings.py,
# the README's configuration table); the local runtime from the topology's defaults.
#: ``extractive`` (deterministic, no model), ``bedrock`` (Converse) or ``off``.
OMNI_ASSISTANT = "OMNI_ASSISTANT"
#: The Converse model id (or inference profile id) the assistant answers with.
OMNI_ASSISTANT_MODEL_ID = "OMNI_ASSISTANT_MODEL_ID"
#: Optional Bedrock Guardrail applied to every Converse call, and its version.
OMNI_ASSISTANT_GUARDRAIL_ID = "OMNI_ASSISTANT_GUARDRAIL_ID"
OMNI_ASSISTANT_GUARDRAIL_VERSION = "OMNI_ASSISTANT_GUARDRAIL_VERSION"
#: The embedding model of the index and the questions (empty: lexical retrieval only).
OMNI_EMBEDDING_MODEL_ID = "OMNI_EMBEDDING_MODEL_ID"
#: Below this retrieval confidence (0..1) the assistant hands over (overrides assistant.toml).
OMNI_ASSISTANT_MIN_CONFIDENCE = "OMNI_ASSISTANT_MIN_CONFIDENCE"
#: Seconds between the routing function's checks for a new version of the index.
OMNI_KNOWLEDGE_REFRESH_S = "OMNI_KNOWLEDGE_REFRESH_S"

# --------------------------------------------------------------------------- #
# Optional: unset in the cloud by default, each with a documented fallback
# --------------------------------------------------------------------------- #

#: Base URL of the API behind a proxy (shared/platform/http.py); default: from the request.
OMNI_PUBLIC_BASE_URL = "OMNI_PUBLIC_BASE_URL"
#: Days an erasure tombstone is kept (shared/repositories/customers.py).
OMNI_TOMBSTONE_RETENTION_DAYS = "OMNI_TOMBSTONE_RETENTION_DAYS"
#: ``local`` sends every delivery to the outbox table instead of a provider (notify).
OMNI_OUTBOUND_MODE = "OMNI_OUTBOUND_MODE"
#: Region of phone numbers written without a country code (shared/domain/identity.py); default US.
OMNI_DEFAULT_PHONE_REGION = "OMNI_DEFAULT_PHONE_REGION"
#: Path of a routing rules file replacing shared/domain/routing_rules.toml.
OMNI_ROUTING_RULES = "OMNI_ROUTING_RULES"
#: Path of a proactive rules file replacing functions/proactive/proactive_rules.toml.
OMNI_PROACTIVE_RULES = "OMNI_PROACTIVE_RULES"
#: Seconds the CES question waits after a resolution (functions/kpi/processor.py).
OMNI_CES_DELAY_S = "OMNI_CES_DELAY_S"
#: The company's order-status API (functions/routing/orders.py): URL, bearer token, or ``sample``.
ORDER_LOOKUP_URL = "ORDER_LOOKUP_URL"
ORDER_LOOKUP_TOKEN = "ORDER_LOOKUP_TOKEN"
ORDER_LOOKUP = "ORDER_LOOKUP"

OPTIONAL = frozenset(
    {
        OMNI_PUBLIC_BASE_URL,
        OMNI_TOMBSTONE_RETENTION_DAYS,
        OMNI_OUTBOUND_MODE,
        OMNI_DEFAULT_PHONE_REGION,
        OMNI_ROUTING_RULES,
        OMNI_PROACTIVE_RULES,
        OMNI_CES_DELAY_S,
        ORDER_LOOKUP_URL,
        ORDER_LOOKUP_TOKEN,
        ORDER_LOOKUP,
        # The assistant's settings: each has a default (extractive answers, the default model,
        # no guardrail, lexical retrieval, the threshold of assistant.toml, 30 s).
        OMNI_ASSISTANT,
        OMNI_ASSISTANT_MODEL_ID,
        OMNI_ASSISTANT_GUARDRAIL_ID,
        OMNI_ASSISTANT_GUARDRAIL_VERSION,
        OMNI_EMBEDDING_MODEL_ID,
        OMNI_ASSISTANT_MIN_CONFIDENCE,
        OMNI_KNOWLEDGE_REFRESH_S,
        # Read with a fallback (365 days); the topology sets the same value for every function
        # that writes or sweeps ``retain_until_day``.
        OMNI_RETENTION_DAYS,
        # Read with a fallback: links carry no URL when it is unset (notify logs a warning).
        OMNI_PUBLIC_API_URL,
        # Read with a fallback: the phone number's zone, then UTC (a stack setting, empty by default).
        OMNI_DEFAULT_TIMEZONE,
        # Read with a fallback: no push when the web chat has no WebSocket API.
        WEBCHAT_WEBSOCKET_ENDPOINT,
    }
)

# --------------------------------------------------------------------------- #
# Set by the Lambda runtime (or the tracing tools), never by the topology
# --------------------------------------------------------------------------- #

AWS_REGION = "AWS_REGION"
AWS_DEFAULT_REGION = "AWS_DEFAULT_REGION"
LAMBDA_TASK_ROOT = "LAMBDA_TASK_ROOT"
POWERTOOLS_TRACE_DISABLED = "POWERTOOLS_TRACE_DISABLED"
AWS_SAM_LOCAL = "AWS_SAM_LOCAL"
AWS_CHALICE_CLI_MODE = "AWS_CHALICE_CLI_MODE"

RUNTIME = frozenset(
    {
        AWS_REGION,
        AWS_DEFAULT_REGION,
        LAMBDA_TASK_ROOT,
        POWERTOOLS_TRACE_DISABLED,
        AWS_SAM_LOCAL,
        AWS_CHALICE_CLI_MODE,
    }
)

#: Every declared name (the constants above).
DECLARED = frozenset(
    value for key, value in dict(globals()).items() if key.isupper() and isinstance(value, str)
)


# --------------------------------------------------------------------------- #
# Typed accessors
# --------------------------------------------------------------------------- #


def env_str(name: str, default: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """The variable's value; ``default`` when it is unset or empty."""
    value = (environ if environ is not None else os.environ).get(name)
    return value if value else default


def env_int(name: str, default: int, environ: Mapping[str, str] | None = None) -> int:
    """The variable as an integer; ``default`` when unset or empty (a non-integer raises ``ValueError``)."""
    raw = env_str(name, environ=environ)
    return default if raw is None else int(raw.strip())


def aws_region() -> str:
    """The function's region (``AWS_REGION`` on Lambda, ``AWS_DEFAULT_REGION`` for the CLI), or ``""``."""
    return os.environ.get(AWS_REGION, os.environ.get(AWS_DEFAULT_REGION, ""))


def stage(default: str = "local") -> str:
    """The deployment's stage (a metrics dimension)."""
    return os.environ.get(OMNI_STAGE, default)
