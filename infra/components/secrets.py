"""Secrets Manager secrets whose values come from (secret) Pulumi config."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.common import TYPE_PREFIX, physical_name
from topology import Secret


@dataclass(frozen=True)
class SecretsArgs:
    secrets: Sequence[Secret]
    stage: str
    #: The value of each secret by declared name (``pulumi.Config().require_secret(...)``).
    values: Mapping[str, pulumi.Input[str]]
    #: Days a deleted secret can be restored; 0 deletes at once (the name is free again).
    recovery_window_in_days: int = 30


class Secrets(pulumi.ComponentResource):
    """One secret, with its current value, per declared :class:`~topology.Secret`."""

    secrets: dict[str, aws.secretsmanager.Secret]
    versions: dict[str, aws.secretsmanager.SecretVersion]
    arns: dict[str, pulumi.Output[str]]
    names: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: SecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:Secrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.secrets, self.versions = {}, {}
        for secret in args.secrets:
            created = aws.secretsmanager.Secret(
                f"{name}-{secret.name}",
                name=physical_name(args.stage, secret.name),
                description=secret.description or None,
                recovery_window_in_days=args.recovery_window_in_days,
                opts=child,
            )
            self.secrets[secret.name] = created
            self.versions[secret.name] = aws.secretsmanager.SecretVersion(
                f"{name}-{secret.name}-value",
                secret_id=created.id,
                secret_string=pulumi.Output.secret(args.values[secret.name]),
                opts=child,
            )
        self.arns = {key: s.arn for key, s in self.secrets.items()}
        self.names = {key: s.name for key, s in self.secrets.items()}
        self.register_outputs({"arns": self.arns})
