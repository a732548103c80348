"""The schema of the topology: the building blocks a deployment is declared in.

Each resource names the environment variable through which a function granted it
learns its physical name (``env_var``); those names are derived from the declared
names, and ``shared/platform/settings.py`` declares each of them as a constant for
Lambda code (``tests/unit/test_settings.py`` checks the two agree).

Standard library only (and the stdlib-only ``shared.contracts.names``/``shared.platform.settings``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from shared.contracts.names import EVENT_SOURCE_PREFIX
from shared.platform import settings

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
        return settings.EVENT_BUS_NAME


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
