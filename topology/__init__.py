"""The one declaration of the system's topology.

Both the Pulumi program (``infra/``) and the local runtime (``omni local``) build
everything from :data:`TOPOLOGY`: functions, HTTP routes, the event bus, the rules
that feed queues, the queues and their dead-letter queues, the tables, the secrets,
and what each function may do to each of them. Neither keeps a copy of its own, so
the cloud and the local stack cannot drift apart.

This module depends on the standard library only: it is imported by the Pulumi
program, the local runtime and the tests, and must not pull in Pulumi or moto.
Lambda code does not need it at all (functions learn physical names from their
environment variables).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# The project's name and the bus's detail types are declared in shared/contracts/names.py (a module the
# functions import without loading this declaration at cold start); they are re-exported here.
from shared.contracts.names import (  # noqa: F401 - re-exported
    AGENT_ASSIGNED,
    BEHAVIOUR_EVENTS,
    CONVERSATION_REOPENED,
    CONVERSATION_RESOLVED,
    CONVERSATION_STALLED,
    DELIVERY_STATUS_CHANGED,
    EVENT_SOURCE_PREFIX,
    FEEDBACK_SUBMITTED,
    KPI_EVENTS,
    MESSAGE_RECEIVED,
    MESSAGE_RECORDED,
    NOTIFICATION_REQUESTED,
    ORDER_STATUS_CHECKED,
    PAGE_VIEWED,
    PROJECT,
)

# --------------------------------------------------------------------------- #
# Building blocks
# --------------------------------------------------------------------------- #

ResourceKind = Literal["table", "queue", "bus", "secret", "bucket", "email-identity", "websocket"]
Access = Literal["read", "write", "readwrite", "publish", "send", "get", "manage"]
RouteAuth = Literal["public", "agent"]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


def _env_name(name: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


@dataclass(frozen=True)
class Gsi:
    name: str
    partition_key: str
    sort_key: str | None = None
    #: Projection type. An update of an attribute the index does not project writes
    #: nothing to the index: project only what the index's readers use.
    projection: Literal["ALL", "KEYS_ONLY", "INCLUDE"] = "ALL"
    #: The attributes an ``INCLUDE`` index projects besides the table's and its own keys.
    non_key_attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    """A DynamoDB table (on demand, PITR and SSE always on)."""

    name: str
    partition_key: str = "pk"
    sort_key: str | None = "sk"
    gsis: tuple[Gsi, ...] = ()
    ttl_attribute: str | None = None
    description: str = ""

    @property
    def env_var(self) -> str:
        return f"{_env_name(self.name)}_TABLE"

    @property
    def key_attributes(self) -> tuple[str, ...]:
        """Every attribute used in a key of the table or of one of its indexes (all strings)."""
        names: list[str] = []
        for attr in (self.partition_key, self.sort_key):
            if attr and attr not in names:
                names.append(attr)
        for gsi in self.gsis:
            for attr in (gsi.partition_key, gsi.sort_key):
                if attr and attr not in names:
                    names.append(attr)
        return tuple(names)


@dataclass(frozen=True)
class Queue:
    """An SQS standard queue with its dead-letter queue, consumed by one function."""

    name: str
    #: Messages handed to the consumer in one invocation.
    batch_size: int
    #: Seconds a received message stays invisible; must be >= 6x the consumer's timeout.
    visibility_timeout_s: int
    #: Receives before a message is moved to the dead-letter queue.
    max_receive_count: int = 5
    #: Seconds the event source mapping may wait to fill a batch (0 = hand over at once).
    max_batching_window_s: int = 0
    retention_s: int = 4 * 24 * 3600
    dlq_retention_s: int = 14 * 24 * 3600

    @property
    def dlq_name(self) -> str:
        return f"{self.name}-dlq"

    @property
    def env_var(self) -> str:
        return f"{_env_name(self.name)}_QUEUE_URL"


@dataclass(frozen=True)
class Bucket:
    """An S3 bucket (private, encrypted, objects expire): raw e-mail, nothing per message else."""

    name: str
    #: Days until objects are deleted (raw e-mail is personal data).
    expire_after_days: int = 30

    @property
    def env_var(self) -> str:
        return f"{_env_name(self.name)}_BUCKET"


@dataclass(frozen=True)
class EmailIdentity:
    """An Amazon SES identity (a verified domain or address) functions may send e-mail from.

    Which identity is deployment configuration, not topology: Pulumi reads it from
    ``config_key`` (required when a function is granted the identity), the local runtime
    uses ``local_default``. The grant is scoped to that identity (and to the optional
    configuration set named by ``configuration_set_config_key``), never to ``*``.
    """

    name: str
    #: Pulumi config key: the identity, a domain (``example.com``) or an address.
    config_key: str
    #: Optional Pulumi config key: the SES configuration set the sends name.
    configuration_set_config_key: str | None = None
    local_default: str = "example.com"
    description: str = ""

    @property
    def env_var(self) -> str:
        return f"{_env_name(self.name)}_EMAIL_IDENTITY"


@dataclass(frozen=True)
class EmailReceiving:
    """Amazon SES receiving: a receipt rule stores the raw MIME in ``bucket`` under ``prefix``,
    then invokes the function with the SES event (the S3 action, then the Lambda action)."""

    bucket: str
    prefix: str = "inbound/"


@dataclass(frozen=True)
class EventBus:
    name: str
    #: Days an archive of every event on the bus is kept for replay (0 = no archive).
    archive_retention_days: int = 30

    @property
    def env_var(self) -> str:
        return "EVENT_BUS_NAME"


@dataclass(frozen=True)
class DetailFilter:
    """Events of ``detail_type`` whose detail field ``field`` has one of ``values`` (EventBridge
    content filtering: the rest never reach the queue, and cost nothing there)."""

    detail_type: str
    field: str
    values: tuple[str | bool, ...]


@dataclass(frozen=True)
class EventRule:
    """Routes events from the bus to a queue: every event of ``detail_types``, plus the events
    ``filtered`` lets through."""

    name: str
    detail_types: tuple[str, ...]
    target_queue: str
    description: str = ""
    filtered: tuple[DetailFilter, ...] = ()

    @property
    def event_pattern(self) -> dict[str, Any]:
        if not self.filtered:
            return {
                "source": [{"prefix": EVENT_SOURCE_PREFIX}],
                "detail-type": list(self.detail_types),
            }
        alternatives: list[dict[str, Any]] = []
        if self.detail_types:
            alternatives.append({"detail-type": list(self.detail_types)})
        alternatives += [
            {"detail-type": [f.detail_type], "detail": {f.field: list(f.values)}} for f in self.filtered
        ]
        return {"source": [{"prefix": EVENT_SOURCE_PREFIX}], "$or": alternatives}


@dataclass(frozen=True)
class Secret:
    """A secret string: Secrets Manager in the cloud, an ``OMNI_*`` variable locally."""

    name: str
    #: Pulumi config key (set with ``pulumi config set --secret <key> ...``).
    config_key: str
    #: Environment variable the local runtime reads the value from.
    local_env_var: str
    #: Value used locally when that variable is unset (documented in the README).
    local_default: str
    description: str = ""

    @property
    def env_var(self) -> str:
        return f"{_env_name(self.name)}_SECRET_ID"


@dataclass(frozen=True)
class Throttle:
    """API Gateway route throttling: steady requests per second and burst."""

    rate_per_s: float
    burst: int


@dataclass(frozen=True)
class HttpRoute:
    method: HttpMethod
    #: API Gateway path template, e.g. ``/webchat/sessions/{session_id}/messages``.
    path: str
    auth: RouteAuth = "public"
    throttle: Throttle | None = None

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class WebSocketApi:
    """An API Gateway WebSocket API (one stage). A function granted ``manage`` on it may
    push to its connections (``execute-api:ManageConnections``) and learns its management
    endpoint (``https://<api>.execute-api.<region>.amazonaws.com/<stage>``) from ``env_var``."""

    name: str
    description: str = ""

    @property
    def env_var(self) -> str:
        return f"{_env_name(self.name)}_WEBSOCKET_ENDPOINT"


#: Route keys API Gateway gives a meaning of its own; others match the ``action`` of a message.
WEBSOCKET_SPECIAL_ROUTES = ("$connect", "$disconnect", "$default")


@dataclass(frozen=True)
class WebSocketRoute:
    """A route of a WebSocket API handled by the function declaring it."""

    api: str
    route_key: str


@dataclass(frozen=True)
class Schedule:
    """Invoke a function on a schedule (EventBridge Scheduler ``rate(...)`` expression)."""

    name: str
    rate_minutes: int

    @property
    def expression(self) -> str:
        unit = "minute" if self.rate_minutes == 1 else "minutes"
        return f"rate({self.rate_minutes} {unit})"


@dataclass(frozen=True)
class Grant:
    """What a function may do to one resource; turned into IAM actions by :func:`iam_actions`."""

    kind: ResourceKind
    resource: str
    access: Access


@dataclass(frozen=True)
class Function:
    name: str
    #: Lambda handler string; the same dotted path the local runtime imports.
    handler: str
    #: Folder packaged with the project's ``shared`` package into the function's zip.
    source_dir: str
    description: str
    memory_mb: int = 256
    timeout_s: int = 10
    architecture: Literal["arm64"] = "arm64"
    routes: tuple[HttpRoute, ...] = ()
    websocket_routes: tuple[WebSocketRoute, ...] = ()
    #: Name of the queue whose batches this function consumes.
    queue: str | None = None
    schedules: tuple[Schedule, ...] = ()
    #: Invoked by SES receiving for inbound e-mail.
    email: EmailReceiving | None = None
    grants: tuple[Grant, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)
    log_retention_days: int = 30

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def attribute(self) -> str:
        return self.handler.rsplit(".", 1)[1]


@dataclass(frozen=True)
class Topology:
    bus: EventBus
    tables: tuple[Table, ...]
    queues: tuple[Queue, ...]
    rules: tuple[EventRule, ...]
    secrets: tuple[Secret, ...]
    functions: tuple[Function, ...]
    #: Throttle of the routes that declare none (the API stage's default route settings).
    default_throttle: Throttle = field(default_factory=lambda: Throttle(rate_per_s=50, burst=100))
    buckets: tuple[Bucket, ...] = ()
    email_identities: tuple[EmailIdentity, ...] = ()
    websocket_apis: tuple[WebSocketApi, ...] = ()

    # -- look-ups ---------------------------------------------------------- #
    def table(self, name: str) -> Table:
        return _one(self.tables, name, "table")

    def queue(self, name: str) -> Queue:
        return _one(self.queues, name, "queue")

    def secret(self, name: str) -> Secret:
        return _one(self.secrets, name, "secret")

    def bucket(self, name: str) -> Bucket:
        return _one(self.buckets, name, "bucket")

    def function(self, name: str) -> Function:
        return _one(self.functions, name, "function")

    def email_identity(self, name: str) -> EmailIdentity:
        return _one(self.email_identities, name, "email identity")

    def websocket_api(self, name: str) -> WebSocketApi:
        return _one(self.websocket_apis, name, "websocket api")

    def websocket_routes(self, api: str) -> list[tuple[WebSocketRoute, Function]]:
        return [(route, fn) for fn in self.functions for route in fn.websocket_routes if route.api == api]

    def consumer_of(self, queue_name: str) -> Function:
        for fn in self.functions:
            if fn.queue == queue_name:
                return fn
        raise KeyError(f"no function consumes queue {queue_name!r}")

    def routes(self) -> list[tuple[HttpRoute, Function]]:
        return [(route, fn) for fn in self.functions for route in fn.routes]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for fn in data["functions"]:
            fn["environment"] = dict(fn["environment"])
        for rule, raw in zip(self.rules, data["rules"], strict=True):
            raw["event_pattern"] = rule.event_pattern
        return data


def _one(items: tuple[Any, ...], name: str, what: str) -> Any:
    for item in items:
        if item.name == name:
            return item
    raise KeyError(f"unknown {what} {name!r}")


# --------------------------------------------------------------------------- #
# Permissions: the only place where grants become IAM actions
# --------------------------------------------------------------------------- #

_TABLE_READ = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:ConditionCheckItem")
_TABLE_WRITE = (
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
)
#: What an SQS event source mapping needs from the consuming function's role.
QUEUE_CONSUMER_ACTIONS = (
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
)

_ACTIONS: dict[tuple[ResourceKind, Access], tuple[str, ...]] = {
    ("table", "read"): _TABLE_READ,
    ("table", "write"): _TABLE_WRITE,
    ("table", "readwrite"): tuple(dict.fromkeys(_TABLE_READ + _TABLE_WRITE)),
    ("bus", "publish"): ("events:PutEvents",),
    ("queue", "send"): ("sqs:SendMessage",),
    ("secret", "get"): ("secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"),
    ("bucket", "read"): ("s3:GetObject",),
    ("bucket", "write"): ("s3:PutObject",),
    # SES v2 SendEmail (simple, raw or template content) is authorised as ses:SendEmail;
    # ses:SendRawEmail covers the v1 raw API on the same identity.
    ("email-identity", "send"): ("ses:SendEmail", "ses:SendRawEmail"),
    # Post to, look up and close the connections of a WebSocket API's stage.
    ("websocket", "manage"): ("execute-api:ManageConnections",),
}


def iam_actions(grant: Grant) -> tuple[str, ...]:
    try:
        return _ACTIONS[(grant.kind, grant.access)]
    except KeyError:
        raise ValueError(f"access {grant.access!r} is not defined for a {grant.kind}") from None


# --------------------------------------------------------------------------- #
# Environment: how a function learns the physical names of what it may use
# --------------------------------------------------------------------------- #

PhysicalNames = Mapping[tuple[ResourceKind, str], str]


def resource_env_var(topology: Topology, kind: ResourceKind, name: str) -> str:
    if kind == "table":
        return topology.table(name).env_var
    if kind == "queue":
        return topology.queue(name).env_var
    if kind == "secret":
        return topology.secret(name).env_var
    if kind == "bucket":
        return topology.bucket(name).env_var
    if kind == "email-identity":
        return topology.email_identity(name).env_var
    if kind == "websocket":
        return topology.websocket_api(name).env_var
    return topology.bus.env_var


#: The secret signing the links we put in messages (``shared/domain/links.py``).
LINKS_SIGNING_SECRET = "links-signing"
#: Where those links point: the public base URL of the HTTP API (``shared.domain.links.BASE_URL_ENV_VAR``).
PUBLIC_API_URL_ENV = "OMNI_PUBLIC_API_URL"


def mints_links(fn: Function) -> bool:
    """Whether ``fn`` signs (or checks) customer links: it holds the links-signing secret,
    so it also learns the API's public URL (:data:`PUBLIC_API_URL_ENV`)."""
    return any(g.kind == "secret" and g.resource == LINKS_SIGNING_SECRET for g in fn.grants)


def function_environment(
    topology: Topology,
    fn: Function,
    physical: PhysicalNames,
    stage: str,
    public_api_url: str | None = None,
) -> dict[str, str]:
    """The environment variables of ``fn``: its static ones plus one per granted resource.

    ``physical`` maps ``(kind, declared name)`` to the deployed name (a table name, a
    queue URL, the bus name, a secret's id). Pulumi passes Outputs resolved to strings;
    the local runtime passes its emulator's names. ``public_api_url`` (the HTTP API's
    endpoint) goes to the functions that :func:`mints_links`.
    """
    env = {
        "OMNI_STAGE": stage,
        "POWERTOOLS_SERVICE_NAME": fn.name,
        "POWERTOOLS_METRICS_NAMESPACE": PROJECT,
        "LOG_LEVEL": "INFO",
    }
    env.update(fn.environment)
    for grant in fn.grants:
        env[resource_env_var(topology, grant.kind, grant.resource)] = physical[(grant.kind, grant.resource)]
    if public_api_url and mints_links(fn):
        env[PUBLIC_API_URL_ENV] = public_api_url.rstrip("/")
    return env


def validate(topology: Topology) -> list[str]:
    """Consistency problems of a topology; empty when it can be deployed."""
    problems: list[str] = []
    names = {
        "table": {t.name for t in topology.tables},
        "queue": {q.name for q in topology.queues},
        "secret": {s.name for s in topology.secrets},
        "bucket": {b.name for b in topology.buckets},
        "email-identity": {i.name for i in topology.email_identities},
        "websocket": {a.name for a in topology.websocket_apis},
        "bus": {topology.bus.name},
    }
    for kind, items in (
        ("table", topology.tables),
        ("queue", topology.queues),
        ("secret", topology.secrets),
        ("function", topology.functions),
        ("rule", topology.rules),
        ("bucket", topology.buckets),
        ("email identity", topology.email_identities),
        ("websocket api", topology.websocket_apis),
    ):
        seen: set[str] = set()
        for item in items:
            if item.name in seen:
                problems.append(f"duplicate {kind} name {item.name!r}")
            seen.add(item.name)
    route_keys: set[str] = set()
    consumers: dict[str, str] = {}
    for fn in topology.functions:
        triggers = (
            bool(fn.routes) + bool(fn.websocket_routes) + bool(fn.queue) + bool(fn.schedules) + bool(fn.email)
        )
        if fn.email and fn.email.bucket not in names["bucket"]:
            problems.append(f"function {fn.name!r} receives e-mail into unknown bucket {fn.email.bucket!r}")
        if triggers == 0:
            problems.append(f"function {fn.name!r} has no trigger")
        for route in fn.routes:
            if route.route_key in route_keys:
                problems.append(f"route {route.route_key!r} is declared twice")
            route_keys.add(route.route_key)
        for ws in fn.websocket_routes:
            if ws.api not in names["websocket"]:
                problems.append(f"function {fn.name!r} has a route of unknown websocket api {ws.api!r}")
            if ws.route_key.startswith("$") and ws.route_key not in WEBSOCKET_SPECIAL_ROUTES:
                problems.append(f"websocket route {ws.route_key!r} is not one of {WEBSOCKET_SPECIAL_ROUTES}")
            if f"{ws.api} {ws.route_key}" in route_keys:
                problems.append(f"websocket route {ws.route_key!r} of {ws.api!r} is declared twice")
            route_keys.add(f"{ws.api} {ws.route_key}")
        if fn.queue:
            if fn.queue not in names["queue"]:
                problems.append(f"function {fn.name!r} consumes unknown queue {fn.queue!r}")
            elif fn.queue in consumers:
                problems.append(f"queue {fn.queue!r} has two consumers")
            else:
                consumers[fn.queue] = fn.name
                queue = topology.queue(fn.queue)
                if queue.visibility_timeout_s < 6 * fn.timeout_s:
                    problems.append(
                        f"queue {queue.name!r}: visibility timeout {queue.visibility_timeout_s}s is below "
                        f"6x the timeout of {fn.name!r} ({fn.timeout_s}s)"
                    )
        for grant in fn.grants:
            if grant.resource not in names[grant.kind]:
                problems.append(f"function {fn.name!r} is granted unknown {grant.kind} {grant.resource!r}")
            elif (grant.kind, grant.access) not in _ACTIONS:
                problems.append(f"function {fn.name!r}: {grant.access!r} is not defined for a {grant.kind}")
    for queue in topology.queues:
        if queue.name not in consumers:
            problems.append(f"queue {queue.name!r} has no consumer")
        if queue.max_receive_count < 1:
            problems.append(f"queue {queue.name!r}: maxReceiveCount must be at least 1")
    for rule in topology.rules:
        if rule.target_queue not in names["queue"]:
            problems.append(f"rule {rule.name!r} targets unknown queue {rule.target_queue!r}")
    # The local runtime runs every function in one process with one environment, so a
    # variable must mean the same thing for every function that has it.
    merged: dict[str, str] = {}
    for fn in topology.functions:
        for key, value in fn.environment.items():
            if merged.setdefault(key, value) != value:
                problems.append(f"environment variable {key!r} differs between functions")
    return problems


# --------------------------------------------------------------------------- #
# The system
# --------------------------------------------------------------------------- #

BUS = EventBus(name="events", archive_retention_days=30)

#: Customers are erased this many days after their last contact (shared/domain/retention.py). Every
#: function that writes or sweeps ``retain_until_day`` gets the same value.
RETENTION_ENVIRONMENT = {"OMNI_RETENTION_DAYS": "365"}

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

QUEUES = (
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
        ),
    ),
    EventRule(
        name="behaviour-events",
        detail_types=BEHAVIOUR_EVENTS,
        target_queue="proactive",
        description="Behaviour events of the company's systems (source omni.*) feed the proactive rules.",
    ),
)

SECRETS = (
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

BUCKETS = (Bucket(name="inbound-email", expire_after_days=30),)

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
_KPI_ROUTES = (HttpRoute("GET", "/kpis", auth="agent"),)
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
    Grant("secret", "meta-app-secret", "get"),
    Grant("secret", "meta-verify-token", "get"),
    Grant("table", "outbox", "readwrite"),
)

FUNCTIONS = (
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
        environment={"INBOUND_EMAIL_PREFIX": "inbound/"},
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
