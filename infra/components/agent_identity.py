"""A Cognito user pool for agents, used when no external JWT issuer is configured."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.common import TYPE_PREFIX


@dataclass(frozen=True)
class AgentIdentityArgs:
    stage: str
    deletion_protection: bool = True


class AgentIdentity(pulumi.ComponentResource):
    """User pool (agents are created by an admin) and the client the agent tools sign in with.

    ``issuer`` and ``audience`` are what the HTTP API's JWT authorizer checks.
    """

    user_pool: aws.cognito.UserPool
    client: aws.cognito.UserPoolClient
    issuer: pulumi.Output[str]
    audience: pulumi.Output[str]

    def __init__(
        self, name: str, args: AgentIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(f"{TYPE_PREFIX}:AgentIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.user_pool = aws.cognito.UserPool(
            f"{name}-pool",
            name=f"omni-{args.stage}-agents",
            username_attributes=["email"],
            auto_verified_attributes=["email"],
            admin_create_user_config=aws.cognito.UserPoolAdminCreateUserConfigArgs(
                allow_admin_create_user_only=True
            ),
            password_policy=aws.cognito.UserPoolPasswordPolicyArgs(
                minimum_length=12,
                require_lowercase=True,
                require_uppercase=True,
                require_numbers=True,
                require_symbols=False,
                temporary_password_validity_days=3,
            ),
            mfa_configuration="OPTIONAL",
            software_token_mfa_configuration=aws.cognito.UserPoolSoftwareTokenMfaConfigurationArgs(
                enabled=True
            ),
            deletion_protection="ACTIVE" if args.deletion_protection else "INACTIVE",
            opts=child,
        )
        self.client = aws.cognito.UserPoolClient(
            f"{name}-client",
            name=f"omni-{args.stage}-agent-tools",
            user_pool_id=self.user_pool.id,
            generate_secret=False,
            explicit_auth_flows=[
                "ALLOW_USER_SRP_AUTH",
                "ALLOW_USER_PASSWORD_AUTH",
                "ALLOW_REFRESH_TOKEN_AUTH",
            ],
            prevent_user_existence_errors="ENABLED",
            enable_token_revocation=True,
            opts=child,
        )
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        self.issuer = pulumi.Output.concat(
            "https://cognito-idp.", region, ".amazonaws.com/", self.user_pool.id
        )
        self.audience = self.client.id
        self.register_outputs(
            {
                "user_pool_id": self.user_pool.id,
                "client_id": self.client.id,
                "issuer": self.issuer,
            }
        )
