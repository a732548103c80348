"""The stack's settings, read from Pulumi config (``pulumi config set ...``)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

import pulumi

from infra.bundling import python_version_of
from infra.components.common import RUNTIME, check_log_retention
from topology import TOPOLOGY, Topology

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Stage names end up in every physical name; the tightest limit is the bus archive's 48 characters.
_STAGE = re.compile(r"[A-Za-z0-9_-]{1,23}")
#: A receipt rule recipient: an address, a domain, or ``.domain`` for its subdomains.
_RECIPIENT = re.compile(r"(?:[^@\s]+@)?\.?[a-z0-9-]+(?:\.[a-z0-9-]+)+")
#: An SES identity: a domain or an address (no wildcards: the grant is scoped to it).
_SES_IDENTITY = re.compile(r"(?:[^@\s*]+@)?[a-z0-9-]+(?:\.[a-z0-9-]+)+")
#: A site that embeds the web chat widget: an HTTPS origin (scheme, host, optional port; no
#: path), or http://localhost for development.
_ORIGIN = re.compile(
    r"(?:https://[a-z0-9-]+(?:\.[a-z0-9-]+)+|http://(?:localhost|127\.0\.0\.1))(?::\d{1,5})?"
)
#: An SES configuration set name.
_CONFIGURATION_SET = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class StackSettings:
    #: The Pulumi stack name: ``omni-<stage>-<name>`` is the physical name of everything.
    stage: str
    #: Value of each declared secret, by declared name.
    secret_values: Mapping[str, pulumi.Input[str]]
    #: Protect tables and the user pool from deletion, keep deleted secrets 30 days.
    deletion_protection: bool = True
    #: Overrides the log retention of every function and of the API's access log.
    log_retention_days: int | None = None
    #: An external identity provider for the agent routes; a Cognito pool is created otherwise.
    agent_jwt_issuer: str | None = None
    agent_jwt_audience: str | None = None
    #: Addresses or domains SES receives mail for (``emailRecipients``); none: no receipt rule.
    email_recipients: tuple[str, ...] = ()
    #: Make the stack's receipt rule set the account's active one (``activateReceiptRuleSet``).
    activate_receipt_rule_set: bool = False
    #: The SES identity (domain or address) of each declared e-mail identity, by declared
    #: name (``emailSenderIdentity``): sending is granted on that identity only.
    email_identities: Mapping[str, str] = field(default_factory=dict)
    #: The SES configuration set of an e-mail identity's sends, by declared name (optional,
    #: ``emailConfigurationSet``); when set, the send grant also names the configuration set.
    email_configuration_sets: Mapping[str, str] = field(default_factory=dict)
    #: The functions' deployment settings by config key (``topology.StackSetting``: the assistant's
    #: mode, model, guardrail, embedding model, threshold); unset keys take the declared defaults.
    stack_config: Mapping[str, str] = field(default_factory=dict)
    #: The sites that embed the web chat widget (``widgetOrigins``): the API's CORS origins.
    widget_origins: tuple[str, ...] = ()
    #: The Lambda runtime of every function (``runtime``): the layer's wheels and the
    #: artifacts' bytecode are built for its Python version.
    runtime: str = RUNTIME
    #: Fail the build when no interpreter of the runtime's Python can compile the bytecode
    #: (``requireBytecode``); otherwise the artifacts are built without it, with a warning.
    require_bytecode: bool = False
    repo_root: Path = REPO_ROOT
    build_dir: Path = field(default=REPO_ROOT / "build")

    def __post_init__(self) -> None:
        if not _STAGE.fullmatch(self.stage):
            raise ValueError(f"stack name {self.stage!r}: use 1-23 letters, digits, '-' or '_'")
        python_version_of(self.runtime)  # raises on anything but python3.X
        if (self.agent_jwt_issuer is None) != (self.agent_jwt_audience is None):
            raise ValueError("set both agentJwtIssuer and agentJwtAudience, or neither")
        if self.log_retention_days is not None:
            check_log_retention(self.log_retention_days)
        for origin in self.widget_origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"widgetOrigins: {origin!r} is not a site's origin (https://host[:port], no path)"
                )
        for recipient in self.email_recipients:
            if not _RECIPIENT.fullmatch(recipient):
                raise ValueError(f"emailRecipients: {recipient!r} is not an e-mail address or domain")
        for name, identity in self.email_identities.items():
            if not _SES_IDENTITY.fullmatch(identity):
                raise ValueError(f"e-mail identity {name!r}: {identity!r} is not an e-mail address or domain")
        for name, configuration_set in self.email_configuration_sets.items():
            if not _CONFIGURATION_SET.fullmatch(configuration_set):
                raise ValueError(
                    f"e-mail identity {name!r}: {configuration_set!r} is not a configuration set"
                )

    @classmethod
    def from_config(
        cls, topology: Topology = TOPOLOGY, config: pulumi.Config | None = None, stage: str | None = None
    ) -> StackSettings:
        config = config or pulumi.Config()
        return cls(
            stage=stage or pulumi.get_stack(),
            secret_values={
                secret.name: config.require_secret(secret.config_key) for secret in topology.secrets
            },
            deletion_protection=config.get_bool("deletionProtection", True),
            log_retention_days=config.get_int("logRetentionDays"),
            agent_jwt_issuer=config.get("agentJwtIssuer") or None,
            agent_jwt_audience=config.get("agentJwtAudience") or None,
            email_recipients=parse_recipients(config.get("emailRecipients")),
            widget_origins=parse_origins(config.get("widgetOrigins")),
            activate_receipt_rule_set=config.get_bool("activateReceiptRuleSet", False) or False,
            stack_config=stack_config(topology, config),
            runtime=config.get("runtime") or RUNTIME,
            require_bytecode=config.get_bool("requireBytecode", False) or False,
            **email_identity_settings(topology, config),
        )


def stack_config(topology: Topology, config: pulumi.Config) -> dict[str, str]:
    """The value of every declared stack setting that is set in the stack's config."""
    keys = {s.config_key for fn in topology.functions for s in fn.settings}
    return {key: value for key in sorted(keys) if (value := config.get(key))}


class EmailIdentitySettings(TypedDict):
    """The :class:`StackSettings` fields :func:`email_identity_settings` reads from config."""

    email_identities: dict[str, str]
    email_configuration_sets: dict[str, str]


def email_identity_settings(topology: Topology, config: pulumi.Config) -> EmailIdentitySettings:
    """The SES identity (and configuration set) of each declared e-mail identity.

    An identity some function is granted must be configured: secrets are not readable
    when the policy is planned, so the sender's domain cannot come from ``emailSender``.
    """
    granted = {g.resource for fn in topology.functions for g in fn.grants if g.kind == "email-identity"}
    identities: dict[str, str] = {}
    configuration_sets: dict[str, str] = {}
    for identity in topology.email_identities:
        if identity.name in granted:
            value: str | None = config.require(identity.config_key)
        else:
            value = config.get(identity.config_key)
        if value and value.strip():
            identities[identity.name] = value.strip().lower()
        if identity.configuration_set_config_key:
            configuration_set = config.get(identity.configuration_set_config_key)
            if configuration_set and configuration_set.strip():
                configuration_sets[identity.name] = configuration_set.strip()
    return EmailIdentitySettings(email_identities=identities, email_configuration_sets=configuration_sets)


def _config_list(name: str, value: str | None) -> list[str]:
    """A list setting: a JSON list (``pulumi config set --path 'name[0]' ...``) or a comma-separated
    string; its items stripped, empty ones left out."""
    if not value or not value.strip():
        return []
    items: Sequence[object]
    if value.strip().startswith("["):
        try:
            items = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"{name} is not a JSON list: {exc}") from None
    else:
        items = value.split(",")
    return [text for text in (str(item).strip() for item in items) if text]


def parse_recipients(value: str | None) -> tuple[str, ...]:
    """``emailRecipients``: the addresses in lower case."""
    return tuple(item.lower() for item in _config_list("emailRecipients", value))


def parse_origins(value: str | None) -> tuple[str, ...]:
    """``widgetOrigins``: each origin in lower case, without a trailing slash, once."""
    origins = (item.lower().rstrip("/") for item in _config_list("widgetOrigins", value))
    return tuple(dict.fromkeys(origin for origin in origins if origin))
