"""The whole stack, built from :data:`topology.TOPOLOGY` and the stack's settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.bundling import Bundle, LayerInstaller, build_bundle
from infra.components import (
    AgentIdentity,
    AgentIdentityArgs,
    Buckets,
    BucketsArgs,
    EmailReceiving,
    EmailReceivingArgs,
    EventBusArgs,
    EventBusComponent,
    FunctionPackages,
    FunctionPackagesArgs,
    Functions,
    FunctionsArgs,
    HttpApi,
    HttpApiArgs,
    QueueRef,
    Queues,
    QueuesArgs,
    ResourceRef,
    Secrets,
    SecretsArgs,
    Tables,
    TablesArgs,
)
from infra.components.alarms import Alarms, AlarmsArgs, stalled_conversations_alarm
from infra.components.buckets import SesWriter
from infra.components.console import Console, ConsoleArgs, api_path_patterns
from infra.components.dashboard import Dashboard, DashboardArgs
from infra.components.email_receiving import ses_writers
from infra.components.encryption import Encryption, EncryptionArgs
from infra.components.functions import ResourceKey
from infra.components.websocket_api import (
    WebSocketApis,
    WebSocketApisArgs,
    WebSocketRoutes,
    WebSocketRoutesArgs,
)
from infra.settings import StackSettings
from topology import TOPOLOGY, Topology, validate

#: Access log retention of the API when ``logRetentionDays`` is not set.
DEFAULT_API_LOG_RETENTION_DAYS = 30


@dataclass(frozen=True)
class OmniStack:
    bundle: Bundle
    tables: Tables
    queues: Queues
    events: EventBusComponent
    secrets: Secrets
    packages: FunctionPackages
    functions: Functions
    #: The Cognito pool for agents; None when an external JWT issuer is configured.
    agent_identity: AgentIdentity | None
    http_api: HttpApi
    #: CloudWatch alarms (stalled conversations) and the topic they notify.
    alarms: Alarms | None = None
    buckets: Buckets | None = None
    #: SES receiving (its rule set is empty of resources without ``emailRecipients``).
    email: EmailReceiving | None = None
    #: The operations dashboard and the pipeline alarms (DLQs, error rates, webhook 4xx).
    dashboard: Dashboard | None = None
    #: The agent console: S3 + CloudFront, the agent API on the same origin.
    console: Console | None = None
    #: WebSocket APIs (web chat push) and their routes to the functions.
    websocket_apis: WebSocketApis | None = None
    websocket_routes: WebSocketRoutes | None = None
    #: The customer-managed KMS key that encrypts tables, queues, bus, archive, logs, mail and alerts.
    encryption: Encryption | None = None


def build_stack(
    settings: StackSettings,
    *,
    topology: Topology = TOPOLOGY,
    layer_installer: LayerInstaller | None = None,
) -> OmniStack:
    problems = validate(topology)
    if problems:
        raise ValueError("the topology cannot be deployed:\n  " + "\n  ".join(problems))
    stage = settings.stage
    bundle = build_bundle(
        settings.repo_root,
        topology,
        settings.build_dir,
        installer=layer_installer,
        runtime=settings.runtime,
        require_bytecode=settings.require_bytecode,
    )
    for note in bundle.notes:
        pulumi.log.warn(note)

    region: pulumi.Output[str] = aws.get_region_output().region
    account_id: pulumi.Output[str] = aws.get_caller_identity_output().account_id
    writers = ses_writers(topology, stage, region, account_id) if topology.buckets else {}
    encryption = _encryption(topology, settings, region, account_id, writers)
    key_arn = encryption.arn
    tables = Tables(
        "tables", TablesArgs(topology.tables, stage, settings.deletion_protection, kms_key_arn=key_arn)
    )
    queues = Queues("queues", QueuesArgs(topology.queues, stage, kms_key_arn=key_arn))
    events = EventBusComponent(
        "events",
        EventBusArgs(
            bus=topology.bus,
            rules=topology.rules,
            stage=stage,
            queues={name: QueueRef(arn=queues.arns[name], url=queues.urls[name]) for name in queues.queues},
            kms_key_arn=key_arn,
        ),
    )
    secrets = Secrets(
        "secrets",
        SecretsArgs(
            topology.secrets,
            stage,
            values=settings.secret_values,
            recovery_window_in_days=30 if settings.deletion_protection else 0,
        ),
    )
    packages = FunctionPackages(
        "packages", FunctionPackagesArgs(bundle=bundle, stage=stage, runtime=settings.runtime)
    )
    buckets = (
        _buckets(
            topology, settings, account_id=account_id, writers=writers, kms_key_arn=key_arn, queues=queues
        )
        if topology.buckets
        else None
    )
    resources = _resources(topology, events=events, tables=tables, queues=queues, secrets=secrets)
    resources.update(_bucket_resources(buckets))
    if topology.email_identities:
        resources.update(email_identity_resources(settings, region, account_id))
    websocket_apis = _websocket_apis(topology, stage, resources) if topology.websocket_apis else None
    identity, issuer, audience = _agent_identity(topology, settings)
    # The API first, its routes after the functions: the functions that put links into
    # messages learn its endpoint (API -> functions -> integrations, no cycle).
    http_api = HttpApi(
        "http-api",
        HttpApiArgs(
            topology=topology,
            stage=stage,
            jwt_issuer=issuer,
            jwt_audience=audience,
            log_retention_days=settings.log_retention_days or DEFAULT_API_LOG_RETENTION_DAYS,
            kms_key_arn=key_arn,
            cors_origins=settings.widget_origins,
        ),
    )
    functions = Functions(
        "functions",
        FunctionsArgs(
            topology=topology,
            stage=stage,
            packages=packages.packages,
            layer_arns=[packages.layer.arn],
            resources=resources,
            log_retention_days=settings.log_retention_days,
            kms_key_arn=key_arn,
            region=region,
            public_api_url=http_api.url,
            stack_config=settings.stack_config,
            account_id=account_id,
            runtime=settings.runtime,
        ),
    )
    http_api.connect(functions.arns, functions.names)

    email = (
        _email_receiving(topology, settings, region, account_id, functions, buckets)
        if buckets is not None
        else None
    )
    websocket_routes = (
        _websocket_routes(topology, stage, websocket_apis, functions) if websocket_apis is not None else None
    )
    alarms = Alarms(
        "alarms", AlarmsArgs(stage=stage, alarms=(stalled_conversations_alarm(stage),), kms_key_arn=key_arn)
    )
    dashboard = Dashboard(
        "dashboard",
        DashboardArgs(
            topology=topology,
            stage=stage,
            api_id=http_api.api.id,
            region=region,
            topic_arn=alarms.topic.arn,
        ),
    )
    console = _console(topology, settings, region, account_id, http_api, identity)
    return OmniStack(
        alarms=alarms,
        dashboard=dashboard,
        bundle=bundle,
        tables=tables,
        queues=queues,
        events=events,
        secrets=secrets,
        packages=packages,
        functions=functions,
        agent_identity=identity,
        http_api=http_api,
        buckets=buckets,
        email=email,
        console=console,
        websocket_apis=websocket_apis,
        websocket_routes=websocket_routes,
        encryption=encryption,
    )


def _encryption(
    topology: Topology,
    settings: StackSettings,
    region: pulumi.Output[str],
    account_id: pulumi.Output[str],
    writers: Mapping[str, Sequence[SesWriter]],
) -> Encryption:
    return Encryption(
        "encryption",
        EncryptionArgs(
            topology=topology,
            stage=settings.stage,
            account_id=account_id,
            region=region,
            receipt_rule_arns=[writer.rule_arn for group in writers.values() for writer in group],
            deletion_window_in_days=30 if settings.deletion_protection else 7,
        ),
    )


def _console(
    topology: Topology,
    settings: StackSettings,
    region: pulumi.Output[str],
    account_id: pulumi.Output[str],
    http_api: HttpApi,
    identity: AgentIdentity | None,
) -> Console:
    return Console(
        "console",
        ConsoleArgs(
            stage=settings.stage,
            account_id=account_id,
            api_endpoint=http_api.url,
            api_paths=api_path_patterns(topology),
            cognito_region=region if identity else None,
            cognito_client_id=identity.client.id if identity else None,
            force_destroy=not settings.deletion_protection,
        ),
    )


def _bucket_resources(buckets: Buckets | None) -> dict[ResourceKey, ResourceRef]:
    if buckets is None:
        return {}
    return {
        ("bucket", name): ResourceRef(physical=buckets.names[name], arn=buckets.arns[name])
        for name in buckets.buckets
    }


def _buckets(
    topology: Topology,
    settings: StackSettings,
    *,
    account_id: pulumi.Output[str],
    writers: Mapping[str, Sequence[SesWriter]],
    kms_key_arn: pulumi.Input[str],
    queues: Queues,
) -> Buckets:
    notified = {b.notify_queue for b in topology.buckets if b.notify_queue}
    return Buckets(
        "buckets",
        BucketsArgs(
            topology.buckets,
            settings.stage,
            account_id,
            ses_writers=writers,
            force_destroy=not settings.deletion_protection,
            kms_key_arn=kms_key_arn,
            notify_queues={name: (queues.arns[name], queues.urls[name]) for name in notified},
        ),
    )


def _resources(
    topology: Topology, *, events: EventBusComponent, tables: Tables, queues: Queues, secrets: Secrets
) -> dict[ResourceKey, ResourceRef]:
    """The physical name and ARN of the bus, every table, queue and secret (what grants name)."""
    resources: dict[ResourceKey, ResourceRef] = {
        ("bus", topology.bus.name): ResourceRef(physical=events.bus.name, arn=events.bus.arn)
    }
    for name in tables.tables:
        resources[("table", name)] = ResourceRef(physical=tables.names[name], arn=tables.arns[name])
    for name in queues.queues:
        resources[("queue", name)] = ResourceRef(physical=queues.urls[name], arn=queues.arns[name])
    for name in secrets.secrets:
        resources[("secret", name)] = ResourceRef(physical=secrets.names[name], arn=secrets.arns[name])
    return resources


def _websocket_apis(
    topology: Topology, stage: str, resources: dict[ResourceKey, ResourceRef]
) -> WebSocketApis:
    """The WebSocket APIs; each one's management endpoint and connections ARN join ``resources``."""
    websocket_apis = WebSocketApis("websocket-apis", WebSocketApisArgs(topology=topology, stage=stage))
    for name in websocket_apis.apis:
        resources[("websocket", name)] = ResourceRef(
            physical=websocket_apis.management_endpoints[name], arn=websocket_apis.connections_arns[name]
        )
    return websocket_apis


def _agent_identity(
    topology: Topology, settings: StackSettings
) -> tuple[AgentIdentity | None, pulumi.Input[str] | None, pulumi.Input[str] | None]:
    """The agents' JWT issuer and audience: the configured ones, else a Cognito pool of our own
    (only when a route needs an agent)."""
    issuer: pulumi.Input[str] | None = settings.agent_jwt_issuer
    audience: pulumi.Input[str] | None = settings.agent_jwt_audience
    if issuer is not None or not any(route.auth == "agent" for route, _ in topology.routes()):
        return None, issuer, audience
    identity = AgentIdentity(
        "agent-identity",
        AgentIdentityArgs(stage=settings.stage, deletion_protection=settings.deletion_protection),
    )
    return identity, identity.issuer, identity.audience


def _email_receiving(
    topology: Topology,
    settings: StackSettings,
    region: pulumi.Output[str],
    account_id: pulumi.Output[str],
    functions: Functions,
    buckets: Buckets,
) -> EmailReceiving:
    return EmailReceiving(
        "email",
        EmailReceivingArgs(
            topology=topology,
            stage=settings.stage,
            region=region,
            account_id=account_id,
            function_arns=functions.arns,
            function_names=functions.names,
            bucket_names=buckets.names,
            bucket_policies=buckets.policies,
            recipients=settings.email_recipients,
            activate=settings.activate_receipt_rule_set,
        ),
    )


def _websocket_routes(
    topology: Topology, stage: str, websocket_apis: WebSocketApis, functions: Functions
) -> WebSocketRoutes:
    return WebSocketRoutes(
        "websocket-routes",
        WebSocketRoutesArgs(
            topology=topology,
            stage=stage,
            apis=websocket_apis,
            function_invoke_arns={key: f.invoke_arn for key, f in functions.functions.items()},
            function_names=functions.names,
        ),
    )


def ses_arn(region: pulumi.Input[str], account_id: pulumi.Input[str], resource: str) -> pulumi.Output[str]:
    return pulumi.Output.all(region, account_id).apply(
        lambda values: f"arn:aws:ses:{values[0]}:{values[1]}:{resource}"
    )


def email_identity_resources(
    settings: StackSettings, region: pulumi.Input[str], account_id: pulumi.Input[str]
) -> dict[ResourceKey, ResourceRef]:
    """The configured SES identities: a send grant names the identity's ARN (and the
    configuration set's, when one is configured). The identities are verified outside
    the stack (DNS records of the company's domain), so they are referenced, not created."""
    resources: dict[ResourceKey, ResourceRef] = {}
    for name, identity in settings.email_identities.items():
        configuration_set = settings.email_configuration_sets.get(name)
        extra = (
            (ses_arn(region, account_id, f"configuration-set/{configuration_set}"),)
            if configuration_set
            else ()
        )
        resources[("email-identity", name)] = ResourceRef(
            physical=identity, arn=ses_arn(region, account_id, f"identity/{identity}"), extra_arns=extra
        )
    return resources


def stack_outputs(stack: OmniStack) -> dict[str, Any]:
    """What ``pulumi stack output`` shows (and what the README's curl examples use)."""
    outputs: dict[str, Any] = {
        "apiUrl": stack.http_api.url,
        "tableNames": stack.tables.names,
        "busName": stack.events.bus.name,
        "queueUrls": stack.queues.urls,
        "deadLetterQueueUrls": stack.queues.dlq_urls,
        "functionNames": stack.functions.names,
        "secretNames": stack.secrets.names,
    }
    if stack.encryption is not None:
        outputs["kmsKeyArn"] = stack.encryption.arn
    if stack.buckets is not None:
        outputs["bucketNames"] = stack.buckets.names
    if stack.email is not None and stack.email.rule_set is not None:
        outputs["receiptRuleSetName"] = stack.email.rule_set.rule_set_name
    if stack.console is not None:
        outputs["consoleUrl"] = stack.console.url
        outputs["widgetUrl"] = stack.console.widget_url
    if stack.websocket_apis is not None:
        outputs["websocketUrls"] = stack.websocket_apis.urls
    if stack.agent_identity is not None:
        outputs["cognitoUserPoolId"] = stack.agent_identity.user_pool.id
        outputs["cognitoUserPoolClientId"] = stack.agent_identity.client.id
        outputs["agentJwtIssuer"] = stack.agent_identity.issuer
    return outputs


def export_outputs(stack: OmniStack) -> None:
    for key, value in stack_outputs(stack).items():
        pulumi.export(key, value)
