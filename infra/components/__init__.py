"""One Pulumi ComponentResource per concern, each configured by a typed Args dataclass."""

from infra.components.agent_identity import AgentIdentity, AgentIdentityArgs
from infra.components.buckets import Buckets, BucketsArgs
from infra.components.email_receiving import EmailReceiving, EmailReceivingArgs
from infra.components.event_bus import EventBusArgs, EventBusComponent, QueueRef
from infra.components.functions import Functions, FunctionsArgs, ResourceRef
from infra.components.http_api import HttpApi, HttpApiArgs
from infra.components.packages import FunctionPackage, FunctionPackages, FunctionPackagesArgs
from infra.components.queues import Queues, QueuesArgs
from infra.components.secrets import Secrets, SecretsArgs
from infra.components.tables import Tables, TablesArgs

__all__ = [
    "AgentIdentity",
    "AgentIdentityArgs",
    "Buckets",
    "BucketsArgs",
    "EmailReceiving",
    "EmailReceivingArgs",
    "EventBusArgs",
    "EventBusComponent",
    "FunctionPackage",
    "FunctionPackages",
    "FunctionPackagesArgs",
    "Functions",
    "FunctionsArgs",
    "HttpApi",
    "HttpApiArgs",
    "QueueRef",
    "Queues",
    "QueuesArgs",
    "ResourceRef",
    "Secrets",
    "SecretsArgs",
    "Tables",
    "TablesArgs",
]
