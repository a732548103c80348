"""The one declaration of the system's topology.

Both the Pulumi program (``infra/``) and the local runtime (``omni local``) build
everything from :data:`TOPOLOGY`: functions, HTTP routes, the event bus, the rules
that feed queues, the queues and their dead-letter queues, the tables, the secrets,
and what each function may do to each of them. Neither keeps a copy of its own, so
the cloud and the local stack cannot drift apart.

The package, by concern:

- :mod:`topology.model`: the schema (``Table``, ``Queue``, ``Function``, ``Topology``, ...)
  and how each resource names its environment variable;
- :mod:`topology.iam`: grants turned into IAM actions;
- :mod:`topology.environment`: a function's environment variables;
- :mod:`topology.validate`: the consistency checks;
- :mod:`topology.declaration`: the system itself (:data:`TOPOLOGY`).

This package depends on the standard library only (and the stdlib-only modules
``shared.contracts.names`` and ``shared.platform.settings``): it is imported by the
Pulumi program, the local runtime, the benchmarks and the tests, and must not pull in
Pulumi or moto. Lambda code never imports it (functions learn physical names from their
environment variables, named in ``shared/platform/settings.py``), and no function zip
contains it (``infra/bundling.py``).
"""

from __future__ import annotations

# The project's name and the bus's detail types are declared in shared/contracts/names.py (a module the
# functions import without loading this declaration at cold start); they are re-exported here.
from shared.contracts.names import (
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
from topology.declaration import (
    BUCKETS,
    BUS,
    EMAIL_IDENTITIES,
    FUNCTIONS,
    QUEUES,
    RETENTION_ENVIRONMENT,
    RULES,
    SECRETS,
    TABLES,
    TOPOLOGY,
    WEBHOOK_THROTTLE,
    WEBSOCKET_APIS,
)
from topology.environment import (
    LINKS_SIGNING_SECRET,
    PUBLIC_API_URL_ENV,
    PhysicalNames,
    function_environment,
    mints_links,
    resource_env_var,
)
from topology.iam import QUEUE_CONSUMER_ACTIONS, iam_actions
from topology.model import (
    WEBSOCKET_SPECIAL_ROUTES,
    Access,
    Bucket,
    DetailFilter,
    EmailIdentity,
    EmailReceiving,
    EventBus,
    EventRule,
    Function,
    Grant,
    Gsi,
    HttpMethod,
    HttpRoute,
    Queue,
    ResourceKind,
    RouteAuth,
    Schedule,
    Secret,
    Table,
    Throttle,
    Topology,
    WebSocketApi,
    WebSocketRoute,
)
from topology.validate import validate

__all__ = [
    "AGENT_ASSIGNED",
    "BEHAVIOUR_EVENTS",
    "BUCKETS",
    "BUS",
    "CONVERSATION_REOPENED",
    "CONVERSATION_RESOLVED",
    "CONVERSATION_STALLED",
    "DELIVERY_STATUS_CHANGED",
    "EMAIL_IDENTITIES",
    "EVENT_SOURCE_PREFIX",
    "FEEDBACK_SUBMITTED",
    "FUNCTIONS",
    "KPI_EVENTS",
    "LINKS_SIGNING_SECRET",
    "MESSAGE_RECEIVED",
    "MESSAGE_RECORDED",
    "NOTIFICATION_REQUESTED",
    "ORDER_STATUS_CHECKED",
    "PAGE_VIEWED",
    "PROJECT",
    "PUBLIC_API_URL_ENV",
    "QUEUES",
    "QUEUE_CONSUMER_ACTIONS",
    "RETENTION_ENVIRONMENT",
    "RULES",
    "SECRETS",
    "TABLES",
    "TOPOLOGY",
    "WEBHOOK_THROTTLE",
    "WEBSOCKET_APIS",
    "WEBSOCKET_SPECIAL_ROUTES",
    "Access",
    "Bucket",
    "DetailFilter",
    "EmailIdentity",
    "EmailReceiving",
    "EventBus",
    "EventRule",
    "Function",
    "Grant",
    "Gsi",
    "HttpMethod",
    "HttpRoute",
    "PhysicalNames",
    "Queue",
    "ResourceKind",
    "RouteAuth",
    "Schedule",
    "Secret",
    "Table",
    "Throttle",
    "Topology",
    "WebSocketApi",
    "WebSocketRoute",
    "function_environment",
    "iam_actions",
    "mints_links",
    "resource_env_var",
    "validate",
]
