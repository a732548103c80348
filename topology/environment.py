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


def setting_values(fn: Function, config: Mapping[str, str] | None = None) -> dict[str, str]:
    """The value of each of ``fn``'s deployment settings by variable (``config``: stack config
    by key, or None locally: the defaults); empty values are left out."""
    values = {s.env_var: ((config or {}).get(s.config_key) or s.default).strip() for s in fn.settings}
    return {name: value for name, value in values.items() if value}


def bedrock_resources(fn: Function, config: Mapping[str, str] | None = None) -> dict[str, list[str]]:
    """The Bedrock models and guardrails ``fn`` may use (``bedrock-model``/``bedrock-guardrail``
    ids), none unless its mode setting turns Bedrock on."""
    values = setting_values(fn, config)
    out: dict[str, list[str]] = {"bedrock-model": [], "bedrock-guardrail": []}
    if fn.bedrock is None or values.get(fn.bedrock.mode_env_var) != fn.bedrock.mode_value:
        return out
    for s in fn.settings:
        if s.kind != "text" and values.get(s.env_var) and values[s.env_var] not in out[s.kind]:
            out[s.kind].append(values[s.env_var])
    return out


def function_environment(
    topology: Topology,
    fn: Function,
    physical: PhysicalNames,
    stage: str,
    public_api_url: str | None = None,
    config: Mapping[str, str] | None = None,
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
    env.update(setting_values(fn, config))
    for grant in fn.grants:
        env[resource_env_var(topology, grant.kind, grant.resource)] = physical[(grant.kind, grant.resource)]
    if public_api_url and mints_links(fn):
        env[PUBLIC_API_URL_ENV] = public_api_url.rstrip("/")
    return env
