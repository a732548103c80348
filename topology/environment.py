"""Environment: how a function learns the physical names of what it may use."""

from __future__ import annotations

from collections.abc import Mapping

from shared.contracts.names import PROJECT
from shared.platform import settings
from topology.model import Function, ResourceKind, Topology

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
PUBLIC_API_URL_ENV = settings.OMNI_PUBLIC_API_URL


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
        settings.OMNI_STAGE: stage,
        settings.POWERTOOLS_SERVICE_NAME: fn.name,
        settings.POWERTOOLS_METRICS_NAMESPACE: PROJECT,
        settings.LOG_LEVEL: "INFO",
    }
    env.update(fn.environment)
    for grant in fn.grants:
        env[resource_env_var(topology, grant.kind, grant.resource)] = physical[(grant.kind, grant.resource)]
    if public_api_url and mints_links(fn):
        env[PUBLIC_API_URL_ENV] = public_api_url.rstrip("/")
    return env
