"""Pulumi mock tests of the infrastructure program: no CLI, no provider plugin, no AWS, no network.

The stack is built once from ``topology.TOPOLOGY`` with the mocks of
``infra_mocks``; each test waits for every resource to be registered and then checks
what was registered against the topology.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pulumi
import pytest

from tests.infra.infra_mocks import (
    ACCOUNT,
    REGION,
    STACK,
    VARIANT_PREFIX,
    Registered,
    Registry,
)
from tests.infra.stack_mocks import MOCKS, settled

# pulumi_aws warns about one of its own deprecated resources when its lambda module loads.
pytestmark = [
    pytest.mark.filterwarnings("ignore:aws.lambda/microvmsimage:DeprecationWarning"),
    # ... and about its own deprecated S3 "V2" resources when its s3 module loads (buckets).
    pytest.mark.filterwarnings("ignore:.*deprecated in favor of.*:DeprecationWarning"),
]

from topology import TOPOLOGY  # noqa: E402 - stdlib only, safe before the mocks

# Every declared secret's config key, each with its own value (tests compare them).
CONFIG = {f"omni:{secret.config_key}": f"{secret.name}-value-for-tests" for secret in TOPOLOGY.secrets}
# The SES identity every e-mail identity grant is scoped to (required config).
SENDER_IDENTITY = "mail.shop.example"
CONFIG |= {f"omni:{identity.config_key}": SENDER_IDENTITY for identity in TOPOLOGY.email_identities}

pulumi.runtime.set_all_config(CONFIG, secret_keys=list(CONFIG))

from infra.bundling import runtime_dependencies  # noqa: E402
from infra.components import Functions, FunctionsArgs, ResourceRef, Tables, TablesArgs  # noqa: E402
from infra.components.common import RUNTIME  # noqa: E402
from infra.components.packages import FunctionPackage  # noqa: E402
from infra.settings import REPO_ROOT, StackSettings  # noqa: E402
from infra.stack import OmniStack, build_stack, stack_outputs  # noqa: E402
from topology import (  # noqa: E402
    BUS,
    QUEUE_CONSUMER_ACTIONS,
    TOPOLOGY,
    Function,
    Grant,
    ResourceKind,
    Schedule,
    Topology,
    function_environment,
    iam_actions,
    mints_links,
)

LAMBDA = "aws:lambda/function:Function"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
TABLE = "aws:dynamodb/table:Table"
QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
BUS_TYPE = "aws:cloudwatch/eventBus:EventBus"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
ARCHIVE = "aws:cloudwatch/eventArchive:EventArchive"
SECRET = "aws:secretsmanager/secret:Secret"
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
ESM = "aws:lambda/eventSourceMapping:EventSourceMapping"
PERMISSION = "aws:lambda/permission:Permission"
LAYER = "aws:lambda/layerVersion:LayerVersion"
API = "aws:apigatewayv2/api:Api"
INTEGRATION = "aws:apigatewayv2/integration:Integration"
ROUTE = "aws:apigatewayv2/route:Route"
AUTHORIZER = "aws:apigatewayv2/authorizer:Authorizer"
STAGE = "aws:apigatewayv2/stage:Stage"
USER_POOL = "aws:cognito/userPool:UserPool"
USER_POOL_CLIENT = "aws:cognito/userPoolClient:UserPoolClient"
SCHEDULE = "aws:scheduler/schedule:Schedule"
BUCKET = "aws:s3/bucket:Bucket"
KEY = "aws:kms/key:Key"
ALIAS = "aws:kms/alias:Alias"
TOPIC = "aws:sns/topic:Topic"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
BUCKET_SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
#: The resource kinds encrypted with the stack's key, and the service that uses it for each.
ENCRYPTED_KINDS = {"table": "dynamodb", "queue": "sqs", "bus": "events", "bucket": "s3"}

# How a secret value travels over Pulumi's RPC (part of its wire protocol).
_SIG_KEY, _SECRET_SIG = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"


def physical(name: str) -> str:
    return f"omni-{STACK}-{name}"


# --------------------------------------------------------------------------- #
# The stack, built once
# --------------------------------------------------------------------------- #


@dataclasses.dataclass
class Built:
    stack: OmniStack
    #: Every call of the layer installer: the requirements it was asked to install.
    installs: list[list[str]]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    installs: list[list[str]] = []

    def fake_installer(requirements: Sequence[str], target: Path) -> None:  # no pip, no network
        installs.append(list(requirements))
        target.mkdir(parents=True)
        (target / "fake_dependency.py").write_text("VERSION = '1'\n")

    settings = dataclasses.replace(StackSettings.from_config(), build_dir=tmp_path_factory.mktemp("build"))
    stack = build_stack(settings, layer_installer=fake_installer)
    return Built(stack=stack, installs=installs)


def components(stack: OmniStack) -> list[pulumi.Resource]:
    return [value for value in vars(stack).values() if isinstance(value, pulumi.ComponentResource)]


def run_checks(built: Built, check: Callable[[Registry], None]) -> pulumi.Output[None]:
    return settled(*components(built.stack), check=lambda registry: check(registry.main()))


def statements(policy: str | dict[str, Any]) -> list[dict[str, Any]]:
    document = json.loads(policy) if isinstance(policy, str) else policy
    found = document["Statement"]
    return found if isinstance(found, list) else [found]


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def lambda_of(registry: Registry, fn: Function) -> Registered:
    return registry.one(LAMBDA, name=physical(fn.name))


def role_policy_of(registry: Registry, fn: Function) -> Registered:
    role = next(r for r in registry.of_type(ROLE) if r.arn == lambda_of(registry, fn).inputs["role"])
    return registry.one(ROLE_POLICY, role=role.id)


def expected_physical_names(registry: Registry) -> dict[tuple[ResourceKind, str], str]:
    names: dict[tuple[ResourceKind, str], str] = {("bus", BUS.name): physical(BUS.name)}
    names.update({("table", t.name): physical(t.name) for t in TOPOLOGY.tables})
    names.update({("secret", s.name): physical(s.name) for s in TOPOLOGY.secrets})
    for queue in TOPOLOGY.queues:
        names[("queue", queue.name)] = registry.one(QUEUE, name=physical(queue.name)).state["url"]
    names.update({("bucket", b.name): f"{physical(b.name)}-{ACCOUNT}" for b in TOPOLOGY.buckets})
    names.update({("email-identity", i.name): SENDER_IDENTITY for i in TOPOLOGY.email_identities})
    for ws in TOPOLOGY.websocket_apis:
        api = registry.one(API, name=physical(f"{ws.name}-ws"))
        names[("websocket", ws.name)] = f"https://{api.id}.execute-api.{REGION}.amazonaws.com/{STACK}"
    return names


def arn_of(registry: Registry, kind: str, name: str) -> str:
    if kind == "bucket":  # bucket names end with the account id: they are global
        return registry.one(BUCKET, bucket=f"{physical(name)}-{ACCOUNT}").arn
    if kind == "email-identity":  # verified outside the stack: referenced by its configured name
        return f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/{SENDER_IDENTITY}"
    if kind == "websocket":  # posting to the stage's connections, nothing else
        api = registry.one(API, name=physical(f"{name}-ws"))
        return f"{api.state['executionArn']}/{STACK}/POST/@connections/*"
    typ = {"table": TABLE, "queue": QUEUE, "bus": BUS_TYPE, "secret": SECRET}[kind]
    return registry.one(typ, name=physical(name)).arn


# --------------------------------------------------------------------------- #
# Functions and their triggers
# --------------------------------------------------------------------------- #


@pulumi.runtime.test
def test_every_declared_function_is_a_lambda_as_declared(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        lambdas = registry.of_type(LAMBDA)
        assert sorted(r.inputs["name"] for r in lambdas) == sorted(
            physical(f.name) for f in TOPOLOGY.functions
        )
        layer = registry.one(LAYER)
        for fn in TOPOLOGY.functions:
            inputs = lambda_of(registry, fn).inputs
            assert inputs["handler"] == fn.handler
            assert inputs["runtime"] == RUNTIME == "python3.13"
            assert inputs["architectures"] == ["arm64"]
            assert inputs["memorySize"] == fn.memory_mb
            assert inputs["timeout"] == fn.timeout_s
            assert inputs["tracingConfig"] == {"mode": "Active"}
            assert inputs["layers"] == [layer.arn]
            artifact = built.stack.bundle.functions[fn.name]
            assert inputs["code"].path == str(artifact.path)
            assert inputs["codeSha256"] == artifact.base64_sha256
            # Logs go to the function's own log group, kept as long as the topology says.
            log_group = registry.one(LOG_GROUP, name=f"/aws/lambda/{physical(fn.name)}")
            assert inputs["loggingConfig"]["logGroup"] == log_group.inputs["name"]
            assert log_group.inputs["retentionInDays"] == fn.log_retention_days

    return run_checks(built, check)


@pulumi.runtime.test
def test_function_environment_names_the_deployed_resources(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        names = expected_physical_names(registry)
        endpoint = registry.one(API, protocolType="HTTP").state["apiEndpoint"]
        for fn in TOPOLOGY.functions:
            env = lambda_of(registry, fn).inputs["environment"]["variables"]
            assert env == function_environment(TOPOLOGY, fn, names, STACK, public_api_url=endpoint)
            assert env["OMNI_STAGE"] == STACK
        webchat = lambda_of(registry, TOPOLOGY.function("webchat")).inputs["environment"]["variables"]
        assert webchat["WEBCHAT_TABLE"] == "omni-test-webchat"
        assert webchat["EVENT_BUS_NAME"] == "omni-test-events"
        assert webchat["WEBCHAT_TOKEN_SECRET_ID"] == "omni-test-webchat-token"
        # Only granted resources: notify may not publish, so it does not learn the bus.
        assert (
            "EVENT_BUS_NAME"
            not in lambda_of(registry, TOPOLOGY.function("notify")).inputs["environment"]["variables"]
        )

    return run_checks(built, check)


@pulumi.runtime.test
def test_functions_that_mint_links_learn_the_public_api_url(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        endpoint = registry.one(API, protocolType="HTTP").state["apiEndpoint"]
        assert endpoint.startswith("https://")
        minting = {fn.name for fn in TOPOLOGY.functions if mints_links(fn)}
        # Derived from the links-signing grant: notify (unsubscribe), kpi (survey answers),
        # links (checks them); nobody else holds the secret or learns the URL.
        assert {"notify", "kpi", "links"} <= minting
        for fn in TOPOLOGY.functions:
            env = lambda_of(registry, fn).inputs["environment"]["variables"]
            if fn.name in minting:
                assert env["OMNI_PUBLIC_API_URL"] == endpoint
                assert env["LINKS_SIGNING_SECRET_ID"] == physical("links-signing")
            else:
                assert "OMNI_PUBLIC_API_URL" not in env
                assert "LINKS_SIGNING_SECRET_ID" not in env
        # The links routes are public (their token is the credential) and throttled like webhooks.
        for method in ("GET", "POST"):
            route = registry.one(ROUTE, routeKey=f"{method} /links/{{purpose}}")
            assert route.inputs.get("authorizationType", "NONE") == "NONE"
            assert not route.inputs.get("authorizerId")
        settings = registry.one(STAGE, name="$default").inputs["routeSettings"]
        throttled = {s["routeKey"]: (s["throttlingRateLimit"], s["throttlingBurstLimit"]) for s in settings}
        assert throttled["GET /links/{purpose}"] == throttled["POST /webhooks/sms"]
        assert throttled["POST /links/{purpose}"] == throttled["POST /webhooks/sms"]

    return run_checks(built, check)


@pulumi.runtime.test
def test_every_http_route_is_wired_to_its_function(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        api = registry.one(API, protocolType="HTTP")
        assert api.inputs["protocolType"] == "HTTP"
        declared = TOPOLOGY.routes()
        assert sorted(r.inputs["routeKey"] for r in registry.where(ROUTE, apiId=api.id)) == sorted(
            route.route_key for route, _ in declared
        )
        for route, fn in declared:
            registered = registry.one(ROUTE, routeKey=route.route_key)
            assert registered.inputs["apiId"] == api.id
            integration_id = registered.inputs["target"].removeprefix("integrations/")
            integration = next(i for i in registry.where(INTEGRATION, apiId=api.id) if i.id == integration_id)
            assert integration.inputs["apiId"] == api.id
            assert integration.inputs["integrationType"] == "AWS_PROXY"
            assert integration.inputs["integrationUri"] == lambda_of(registry, fn).arn
            assert integration.inputs["payloadFormatVersion"] == "2.0"
        # One integration per function with routes, none for the others.
        with_routes = [fn for fn in TOPOLOGY.functions if fn.routes]
        assert sorted(
            i.inputs["integrationUri"] for i in registry.where(INTEGRATION, apiId=api.id)
        ) == sorted(lambda_of(registry, fn).arn for fn in with_routes)

    return run_checks(built, check)


@pulumi.runtime.test
def test_agent_routes_use_the_jwt_authorizer_and_public_routes_do_not(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        authorizer = registry.one(AUTHORIZER)
        pool, client = registry.one(USER_POOL), registry.one(USER_POOL_CLIENT)
        assert authorizer.inputs["authorizerType"] == "JWT"
        assert authorizer.inputs["identitySources"] == ["$request.header.Authorization"]
        # No agentJwtIssuer/agentJwtAudience in the config: the stack's own Cognito pool issues.
        assert authorizer.inputs["jwtConfiguration"] == {
            "issuer": f"https://cognito-idp.{REGION}.amazonaws.com/{pool.id}",
            "audiences": [client.id],
        }
        assert client.inputs["userPoolId"] == pool.id
        assert pool.inputs["adminCreateUserConfig"] == {"allowAdminCreateUserOnly": True}
        agent_routes = [route for route, _ in TOPOLOGY.routes() if route.auth == "agent"]
        assert agent_routes, "the topology declares agent routes"
        for route, _ in TOPOLOGY.routes():
            inputs = registry.one(ROUTE, routeKey=route.route_key).inputs
            if route.auth == "agent":
                assert inputs["authorizationType"] == "JWT"
                assert inputs["authorizerId"] == authorizer.id
            else:
                assert inputs.get("authorizationType", "NONE") == "NONE"
                assert not inputs.get("authorizerId")

    return run_checks(built, check)


@pulumi.runtime.test
def test_api_gateway_may_invoke_exactly_the_functions_with_routes(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        api = registry.one(API, protocolType="HTTP")
        # Those of the HTTP API (the WebSocket API's are checked with it, below).
        permissions = [
            p
            for p in registry.of_type(PERMISSION)
            if p.inputs["sourceArn"].startswith(api.state["executionArn"] + "/")
        ]
        assert sorted(p.inputs["function"] for p in permissions) == sorted(
            physical(fn.name) for fn in TOPOLOGY.functions if fn.routes
        )
        for permission in permissions:
            assert permission.inputs["action"] == "lambda:InvokeFunction"
            assert permission.inputs["principal"] == "apigateway.amazonaws.com"
            assert permission.inputs["sourceArn"] == f"{api.state['executionArn']}/*/*"

    return run_checks(built, check)


@pulumi.runtime.test
def test_websocket_api_routes_invoke_their_functions_from_its_stage_only(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        assert TOPOLOGY.websocket_apis, "the topology declares a WebSocket API"
        for ws in TOPOLOGY.websocket_apis:
            api = registry.one(API, name=physical(f"{ws.name}-ws"))
            assert api.inputs["protocolType"] == "WEBSOCKET"
            assert api.inputs["routeSelectionExpression"] == "$request.body.action"
            stage = registry.one(STAGE, apiId=api.id)
            assert stage.inputs["name"] == STACK
            assert stage.inputs["autoDeploy"] is True
            declared = TOPOLOGY.websocket_routes(ws.name)
            assert {route.route_key for route, _ in declared} >= {"$connect", "$disconnect"}
            assert sorted(r.inputs["routeKey"] for r in registry.where(ROUTE, apiId=api.id)) == sorted(
                route.route_key for route, _ in declared
            )
            for route, fn in declared:
                registered = registry.one(ROUTE, apiId=api.id, routeKey=route.route_key)
                # No authorizer: $connect checks the session token itself.
                assert registered.inputs.get("authorizationType", "NONE") == "NONE"
                integration_id = registered.inputs["target"].removeprefix("integrations/")
                integration = next(
                    i for i in registry.where(INTEGRATION, apiId=api.id) if i.id == integration_id
                )
                assert integration.inputs["integrationType"] == "AWS_PROXY"
                assert integration.inputs["integrationUri"] == lambda_of(registry, fn).state["invokeArn"]
            permissions = [
                p
                for p in registry.of_type(PERMISSION)
                if p.inputs["sourceArn"].startswith(api.state["executionArn"] + "/")
            ]
            assert sorted(p.inputs["function"] for p in permissions) == sorted(
                {physical(fn.name) for _, fn in declared}
            )
            for permission in permissions:
                assert permission.inputs["principal"] == "apigateway.amazonaws.com"
                assert permission.inputs["sourceArn"] == f"{api.state['executionArn']}/{STACK}/*"
        # notify may post to the web chat connections, and no other function may.
        managers = [fn.name for fn in TOPOLOGY.functions if any(g.kind == "websocket" for g in fn.grants)]
        assert managers == ["notify"]

    return run_checks(built, check)


@pulumi.runtime.test
def test_default_stage_throttles_and_logs(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        stage = registry.one(STAGE, name="$default")
        assert stage.inputs["name"] == "$default"
        assert stage.inputs["autoDeploy"] is True
        assert stage.inputs["apiId"] == registry.one(API, protocolType="HTTP").id
        defaults = stage.inputs["defaultRouteSettings"]
        assert defaults["throttlingRateLimit"] == TOPOLOGY.default_throttle.rate_per_s > 0
        assert defaults["throttlingBurstLimit"] == TOPOLOGY.default_throttle.burst > 0
        settings = {s["routeKey"]: s for s in stage.inputs["routeSettings"]}
        throttled = {route.route_key: route.throttle for route, _ in TOPOLOGY.routes() if route.throttle}
        assert set(settings) == set(throttled)
        for key, throttle in throttled.items():
            assert settings[key]["throttlingRateLimit"] == throttle.rate_per_s
            assert settings[key]["throttlingBurstLimit"] == throttle.burst
        access = stage.inputs["accessLogSettings"]
        log_group = registry.one(LOG_GROUP, name="/aws/apigateway/omni-test-api")
        assert access["destinationArn"] == log_group.arn
        assert "$context.requestId" in access["format"]

    return run_checks(built, check)


@pulumi.runtime.test
def test_every_queue_consumer_has_an_event_source_mapping(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        mappings = registry.of_type(ESM)
        consumers = [fn for fn in TOPOLOGY.functions if fn.queue]
        assert len(mappings) == len(consumers) == len(TOPOLOGY.queues)
        for fn in consumers:
            assert fn.queue is not None
            queue = TOPOLOGY.queue(fn.queue)
            mapping = registry.one(ESM, functionName=lambda_of(registry, fn).arn)
            assert mapping.inputs["eventSourceArn"] == arn_of(registry, "queue", queue.name)
            assert mapping.inputs["batchSize"] == queue.batch_size
            assert mapping.inputs["maximumBatchingWindowInSeconds"] == queue.max_batching_window_s
            assert mapping.inputs["functionResponseTypes"] == ["ReportBatchItemFailures"]

    return run_checks(built, check)


# --------------------------------------------------------------------------- #
# Queues, bus, rules
# --------------------------------------------------------------------------- #


@pulumi.runtime.test
def test_every_queue_has_a_dlq_and_outlasts_its_consumer(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        assert len(registry.of_type(QUEUE)) == 2 * len(TOPOLOGY.queues)
        for queue in TOPOLOGY.queues:
            main = registry.one(QUEUE, name=physical(queue.name))
            dlq = registry.one(QUEUE, name=physical(queue.dlq_name))
            redrive = json.loads(main.inputs["redrivePolicy"])
            assert redrive == {"deadLetterTargetArn": dlq.arn, "maxReceiveCount": queue.max_receive_count}
            consumer = TOPOLOGY.consumer_of(queue.name)
            assert main.inputs["visibilityTimeoutSeconds"] == queue.visibility_timeout_s
            assert main.inputs["visibilityTimeoutSeconds"] >= 6 * consumer.timeout_s
            assert main.inputs["messageRetentionSeconds"] == queue.retention_s
            assert dlq.inputs["messageRetentionSeconds"] == queue.dlq_retention_s
            assert "redrivePolicy" not in dlq.inputs
            key = registry.one(KEY)
            for q in (main, dlq):
                assert q.inputs["kmsMasterKeyId"] == key.arn
                assert q.inputs["kmsDataKeyReusePeriodSeconds"] == 3600  # ~1 KMS call/hour/queue
                assert "sqsManagedSseEnabled" not in q.inputs

    return run_checks(built, check)


@pulumi.runtime.test
def test_bus_and_archive(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        bus = registry.one(BUS_TYPE)
        assert bus.inputs["name"] == physical(BUS.name)
        archive = registry.one(ARCHIVE)
        assert archive.inputs["eventSourceArn"] == bus.arn
        assert archive.inputs["retentionDays"] == BUS.archive_retention_days

    return run_checks(built, check)


@pulumi.runtime.test
def test_each_rule_feeds_its_queue_with_its_pattern(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        bus = registry.one(BUS_TYPE)
        assert len(registry.of_type(RULE)) == len(TOPOLOGY.rules)
        assert len(registry.of_type(TARGET)) == len(TOPOLOGY.rules)
        for rule in TOPOLOGY.rules:
            registered = registry.one(RULE, name=physical(rule.name))
            assert registered.inputs["eventBusName"] == bus.inputs["name"]
            assert json.loads(registered.inputs["eventPattern"]) == rule.event_pattern
            target = registry.one(TARGET, rule=registered.inputs["name"])
            assert target.inputs["eventBusName"] == bus.inputs["name"]
            assert target.inputs["arn"] == arn_of(registry, "queue", rule.target_queue)

    return run_checks(built, check)


@pulumi.runtime.test
def test_queue_policies_let_only_their_rules_send(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        targeted = {rule.target_queue for rule in TOPOLOGY.rules}
        assert len(registry.of_type(QUEUE_POLICY)) == len(targeted)
        for queue_name in targeted:
            queue = registry.one(QUEUE, name=physical(queue_name))
            policy = registry.one(QUEUE_POLICY, queueUrl=queue.state["url"])
            expected_sources = {
                registry.one(RULE, name=physical(rule.name)).arn
                for rule in TOPOLOGY.rules
                if rule.target_queue == queue_name
            }
            sources = set()
            for statement in statements(policy.inputs["policy"]):
                assert statement["Effect"] == "Allow"
                assert statement["Principal"] == {"Service": "events.amazonaws.com"}
                assert as_list(statement["Action"]) == ["sqs:SendMessage"]
                assert as_list(statement["Resource"]) == [queue.arn]
                sources.add(statement["Condition"]["ArnEquals"]["aws:SourceArn"])
            assert sources == expected_sources

    return run_checks(built, check)


# --------------------------------------------------------------------------- #
# Permissions
# --------------------------------------------------------------------------- #


def _policy_documents(registry: Registry) -> list[tuple[str, str]]:
    found = []
    for resource in registry.resources:
        for key in ("policy", "assumeRolePolicy"):
            if key in resource.inputs:
                found.append((resource.name, resource.inputs[key]))
    return found


@pulumi.runtime.test
def test_no_policy_statement_anywhere_has_a_wildcard_action(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        documents = _policy_documents(registry)
        # Roles' trust policies, their inline policies and the queue policies.
        assert len(documents) >= 2 * len(TOPOLOGY.functions) + len(TOPOLOGY.queues)
        for owner, document in documents:
            for statement in statements(document):
                assert "NotAction" not in statement, owner
                assert statement["Effect"] == "Allow", owner
                for action in as_list(statement["Action"]):
                    assert "*" not in action, f"{owner}: wildcard action {action!r}"

    return run_checks(built, check)


@pulumi.runtime.test
def test_each_function_role_grants_exactly_its_declared_access(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        # One role per function, plus one per schedule (EventBridge Scheduler's own role).
        schedules = sum(len(fn.schedules) for fn in TOPOLOGY.functions)
        roles = registry.of_type(ROLE)
        assert len(roles) == len(TOPOLOGY.functions) + schedules
        assert len(registry.of_type(ROLE_POLICY)) == len(TOPOLOGY.functions) + schedules
        for fn in TOPOLOGY.functions:
            role = next(r for r in roles if r.arn == lambda_of(registry, fn).inputs["role"])
            assert not role.inputs.get("managedPolicyArns")
            assert statements(role.inputs["assumeRolePolicy"]) == [
                {
                    "Sid": "AssumeRole",
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ]
            expected: set[tuple[str, str]] = set()
            for grant in fn.grants:
                arn = arn_of(registry, grant.kind, grant.resource)
                resources = [arn, f"{arn}/index/*"] if grant.kind == "table" else [arn]
                if grant.kind == "bucket":  # object actions: on the objects, not the bucket
                    resources = [f"{arn}/*"]
                expected |= {(action, res) for action in iam_actions(grant) for res in resources}
            if fn.queue:
                queue_arn = arn_of(registry, "queue", fn.queue)
                expected |= {(action, queue_arn) for action in QUEUE_CONSUMER_ACTIONS}
            # The stack's key: decrypt what it reads, generate data keys for what it writes.
            key_arn = registry.one(KEY).arn
            encrypted = [g for g in fn.grants if g.kind in ENCRYPTED_KINDS]
            services = {ENCRYPTED_KINDS[g.kind] for g in encrypted} | ({"sqs"} if fn.queue else set())
            if services:
                expected.add(("kms:Decrypt", key_arn))
            if any(g.access != "read" for g in encrypted):
                expected.add(("kms:GenerateDataKey", key_arn))
            log_group = registry.one(LOG_GROUP, name=f"/aws/lambda/{physical(fn.name)}")

            granted: set[tuple[str, str]] = set()
            for statement in statements(role_policy_of(registry, fn).inputs["policy"]):
                assert statement["Effect"] == "Allow"
                actions, resources = as_list(statement["Action"]), as_list(statement["Resource"])
                if any(action.startswith("xray:") for action in actions):
                    assert sorted(actions) == ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
                    assert resources == ["*"]
                elif any(action.startswith("logs:") for action in actions):
                    assert sorted(actions) == ["logs:CreateLogStream", "logs:PutLogEvents"]
                    assert resources == [f"{log_group.arn}:*"]
                elif any(action.startswith("kms:") for action in actions):
                    assert resources == [key_arn], fn.name
                    assert statement["Condition"] == {
                        "StringEquals": {
                            "kms:ViaService": sorted(f"{svc}.{REGION}.amazonaws.com" for svc in services)
                        }
                    }, fn.name
                    granted |= {(action, res) for action in actions for res in resources}
                else:
                    assert "*" not in resources, f"{fn.name}: {actions} on every resource"
                    granted |= {(action, res) for action in actions for res in resources}
            assert granted == expected, fn.name

    return run_checks(built, check)


# --------------------------------------------------------------------------- #
# Tables and secrets
# --------------------------------------------------------------------------- #


@pulumi.runtime.test
def test_every_table_is_on_demand_with_pitr_and_sse(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        assert len(registry.of_type(TABLE)) == len(TOPOLOGY.tables)
        for table in TOPOLOGY.tables:
            inputs = registry.one(TABLE, name=physical(table.name)).inputs
            assert inputs["billingMode"] == "PAY_PER_REQUEST"
            assert inputs["pointInTimeRecovery"] == {"enabled": True}
            assert inputs["serverSideEncryption"]["enabled"] is True
            assert inputs["deletionProtectionEnabled"] is True  # the default of deletionProtection
            assert inputs["hashKey"] == table.partition_key
            assert inputs.get("rangeKey") == table.sort_key
            assert sorted((a["name"], a["type"]) for a in inputs["attributes"]) == sorted(
                (name, "S") for name in table.key_attributes
            )
            gsis = {g["name"]: g for g in inputs.get("globalSecondaryIndexes", [])}
            assert set(gsis) == {gsi.name for gsi in table.gsis}
            for gsi in table.gsis:
                keys = [(k["attributeName"], k["keyType"]) for k in gsis[gsi.name]["keySchemas"]]
                assert keys == [(gsi.partition_key, "HASH")] + (
                    [(gsi.sort_key, "RANGE")] if gsi.sort_key else []
                )
                assert gsis[gsi.name]["projectionType"] == gsi.projection
                if gsi.projection == "INCLUDE":
                    assert gsis[gsi.name]["nonKeyAttributes"] == list(gsi.non_key_attributes)
                else:
                    assert not gsis[gsi.name].get("nonKeyAttributes")
            if table.ttl_attribute:
                assert inputs["ttl"] == {"attributeName": table.ttl_attribute, "enabled": True}
            else:
                assert "ttl" not in inputs

    return run_checks(built, check)


@pulumi.runtime.test
def test_secrets_hold_the_config_values_as_secrets(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        assert len(registry.of_type(SECRET)) == len(TOPOLOGY.secrets)
        for secret in TOPOLOGY.secrets:
            created = registry.one(SECRET, name=physical(secret.name))
            assert created.inputs["recoveryWindowInDays"] == 30
            version = registry.one(SECRET_VERSION, secretId=created.id)
            assert version.inputs["secretString"] == {
                _SIG_KEY: _SECRET_SIG,
                "value": CONFIG[f"omni:{secret.config_key}"],
            }

    return run_checks(built, check)


# --------------------------------------------------------------------------- #
# Encryption at rest with the stack's customer-managed key, and secrets kept out of env vars
# --------------------------------------------------------------------------- #


def key_policy_statements(registry: Registry) -> list[dict[str, Any]]:
    return statements(registry.one(KEY).inputs["policy"])


@pulumi.runtime.test
def test_one_customer_managed_key_with_rotation_and_an_alias(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        key = registry.one(KEY)
        assert key.inputs["enableKeyRotation"] is True
        assert key.inputs["keyUsage"] == "ENCRYPT_DECRYPT"
        assert key.inputs["customerMasterKeySpec"] == "SYMMETRIC_DEFAULT"
        assert key.inputs["deletionWindowInDays"] == 30  # deletion protection is on by default
        alias = registry.one(ALIAS)
        assert alias.inputs == {"name": f"alias/{physical('data')}", "targetKeyId": key.state["keyId"]}

    return run_checks(built, check)


@pulumi.runtime.test
def test_key_policy_lets_each_service_use_the_key_for_the_stack_only(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        found = key_policy_statements(registry)
        by_principal: dict[str, list[dict[str, Any]]] = {}
        for statement in found:
            assert statement["Effect"] == "Allow"
            assert statement["Resource"] == "*"  # in a key policy: this key
            assert "*" not in json.dumps(statement["Principal"])
            principal = statement["Principal"].get("Service") or statement["Principal"]["AWS"]
            by_principal.setdefault(principal, []).append(statement)
        # The account administers the key; IAM policies (the roles below) decide who uses it.
        [root] = by_principal[f"arn:aws:iam::{ACCOUNT}:root"]
        assert {"kms:PutKeyPolicy", "kms:ScheduleKeyDeletion", "kms:Decrypt"} <= set(root["Action"])
        assert "Condition" not in root
        # CloudWatch Logs: the stack's log groups only (encryption context = the log group ARN).
        [logs] = by_principal[f"logs.{REGION}.amazonaws.com"]
        assert logs["Condition"] == {
            "ArnLike": {
                "kms:EncryptionContext:aws:logs:arn": [
                    f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{physical('')}*",
                    f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/apigateway/{physical('')}*",
                ]
            }
        }
        for group in registry.of_type(LOG_GROUP):
            assert any(
                group.arn.startswith(pattern.rstrip("*"))
                for pattern in logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
            ), group.inputs["name"]
        # EventBridge: the bus and its archive (context = the bus ARN), and the queues of this account.
        bus = registry.one(BUS_TYPE)
        events = by_principal["events.amazonaws.com"]
        conditions = [s.get("Condition") for s in events]
        assert {"StringEquals": {"kms:EncryptionContext:aws:events:event-bus:arn": bus.arn}} in conditions
        assert {"StringEquals": {"aws:SourceAccount": ACCOUNT}} in conditions
        for statement in events:
            if "Condition" not in statement:
                assert statement["Action"] == ["kms:DescribeKey"]
        # CloudWatch alarms publish to the encrypted alerts topic (AWS-managed SNS keys cannot allow it).
        [alarms] = by_principal["cloudwatch.amazonaws.com"]
        assert alarms["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT}}
        # SES stores mail in the encrypted bucket, for the stack's receipt rules only.
        [ses] = by_principal["ses.amazonaws.com"]
        assert ses["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
        assert ses["Condition"]["ArnLike"]["aws:SourceArn"] == [
            f"arn:aws:ses:{REGION}:{ACCOUNT}:receipt-rule-set/{physical('email')}:receipt-rule/{physical(fn.name)}"
            for fn in TOPOLOGY.functions
            if fn.email is not None
        ]

    return run_checks(built, check)


@pulumi.runtime.test
def test_every_table_uses_the_customer_managed_key(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        key = registry.one(KEY)
        tables = registry.of_type(TABLE)
        assert len(tables) == len(TOPOLOGY.tables)
        for table in tables:
            assert table.inputs["serverSideEncryption"] == {"enabled": True, "kmsKeyArn": key.arn}, table.name

    return run_checks(built, check)


@pulumi.runtime.test
def test_bus_and_archive_use_the_customer_managed_key(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        key = registry.one(KEY)
        assert registry.one(BUS_TYPE).inputs["kmsKeyIdentifier"] == key.arn
        assert registry.one(ARCHIVE).inputs["kmsKeyIdentifier"] == key.arn

    return run_checks(built, check)


@pulumi.runtime.test
def test_every_log_group_has_retention_and_the_customer_managed_key(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        key = registry.one(KEY)
        groups = registry.of_type(LOG_GROUP)
        # One per function, plus the HTTP API's access logs.
        assert len(groups) >= len(TOPOLOGY.functions) + 1
        for group in groups:
            assert group.inputs["kmsKeyId"] == key.arn, group.inputs["name"]
            assert group.inputs["retentionInDays"] in {1, 3, 5, 7, 14, 30, 60, 90, 180, 365}, group.name

    return run_checks(built, check)


@pulumi.runtime.test
def test_inbound_bucket_and_alerts_topic_use_the_customer_managed_key(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        key = registry.one(KEY)
        assert TOPOLOGY.buckets
        for declared in TOPOLOGY.buckets:
            bucket = registry.one(BUCKET, bucket=f"{physical(declared.name)}-{ACCOUNT}")
            [rule] = registry.one(BUCKET_SSE, bucket=bucket.id).inputs["rules"]
            assert rule == {
                "applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": key.arn},
                "bucketKeyEnabled": True,
            }
        topic = registry.one(TOPIC, name=physical("alerts"))
        assert topic.inputs["kmsMasterKeyId"] == key.arn

    return run_checks(built, check)


@pulumi.runtime.test
def test_no_function_environment_holds_a_secret_value(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        secret_values = {CONFIG[f"omni:{s.config_key}"] for s in TOPOLOGY.secrets}
        secret_values |= {s.local_default for s in TOPOLOGY.secrets if s.local_default}
        secret_ids = {registry.one(SECRET, name=physical(s.name)).inputs["name"] for s in TOPOLOGY.secrets}
        secret_ids |= {registry.one(SECRET, name=physical(s.name)).arn for s in TOPOLOGY.secrets}
        for fn in TOPOLOGY.functions:
            variables = lambda_of(registry, fn).inputs["environment"]["variables"]
            for name, value in variables.items():
                assert isinstance(value, str), (fn.name, name)
                assert value not in secret_values, f"{fn.name}: {name} holds a secret value"
                for secret_value in secret_values:
                    if len(secret_value) >= 8:
                        assert secret_value not in value, f"{fn.name}: {name} contains a secret value"
            for grant in fn.grants:
                if grant.kind == "secret":
                    assert variables[TOPOLOGY.secret(grant.resource).env_var] in secret_ids, fn.name

    return run_checks(built, check)


@pulumi.runtime.test
def test_every_dlq_has_an_alarm_that_notifies_the_alerts_topic(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        topic = registry.one(TOPIC, name=physical("alerts"))
        for queue in TOPOLOGY.queues:
            dlq = physical(queue.dlq_name)
            alarms = [
                a
                for a in registry.of_type(ALARM)
                if a.inputs.get("namespace") == "AWS/SQS" and a.inputs.get("dimensions") == {"QueueName": dlq}
            ]
            assert len(alarms) == 1, dlq
            [alarm] = alarms
            assert alarm.inputs["metricName"] == "ApproximateNumberOfMessagesVisible"
            assert (alarm.inputs["threshold"], alarm.inputs["comparisonOperator"]) == (
                1,
                "GreaterThanOrEqualToThreshold",
            )
            assert alarm.inputs["alarmActions"] == [topic.arn]

    return run_checks(built, check)


# --------------------------------------------------------------------------- #
# Packaging as the stack uses it, and the stack's outputs
# --------------------------------------------------------------------------- #


@pulumi.runtime.test
def test_layer_holds_the_runtime_dependencies_without_boto3(built: Built) -> pulumi.Output[None]:
    def check(registry: Registry) -> None:
        expected = runtime_dependencies(REPO_ROOT / "pyproject.toml")
        assert built.installs == [expected]
        assert not any(req.lower().startswith("boto3") for req in expected)
        layer = registry.one(LAYER)
        assert layer.inputs["compatibleRuntimes"] == ["python3.13"]
        assert layer.inputs["compatibleArchitectures"] == ["arm64"]
        assert layer.inputs["code"].path == str(built.stack.bundle.layer.path)
        assert layer.inputs["sourceCodeHash"] == built.stack.bundle.layer.base64_sha256

    return run_checks(built, check)


@pulumi.runtime.test
def test_stack_outputs(built: Built) -> pulumi.Output[None]:
    outputs = stack_outputs(built.stack)

    def check(values: dict[str, Any]) -> None:
        registry = MOCKS.registry().main()
        api = registry.one(API, protocolType="HTTP")
        assert values["apiUrl"] == api.state["apiEndpoint"]
        assert values["tableNames"] == {t.name: physical(t.name) for t in TOPOLOGY.tables}
        assert values["busName"] == physical(BUS.name)
        assert values["queueUrls"] == {
            q.name: f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{physical(q.name)}"
            for q in TOPOLOGY.queues
        }
        assert values["cognitoUserPoolId"] == registry.one(USER_POOL).id
        assert values["cognitoUserPoolClientId"] == registry.one(USER_POOL_CLIENT).id

    return pulumi.Output.from_input(outputs).apply(check)


# --------------------------------------------------------------------------- #
# Variants: components built with other arguments
# --------------------------------------------------------------------------- #


@pulumi.runtime.test
def test_a_declared_schedule_invokes_only_its_function(tmp_path: Path) -> pulumi.Output[None]:
    sweeper = Function(
        name="sweeper",
        handler="functions.sweeper.handler.handler",
        source_dir="functions/sweeper",
        description="Closes idle conversations.",
        schedules=(Schedule(name="every-5-min", rate_minutes=5),),
        grants=(Grant("table", "conversations", "readwrite"),),
    )
    topology = Topology(
        bus=BUS, tables=TOPOLOGY.tables, queues=(), rules=(), secrets=(), functions=(sweeper,)
    )
    table_arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/omni-sched-conversations"
    prefix = f"{VARIANT_PREFIX}scheduled"
    functions = Functions(
        prefix,
        FunctionsArgs(
            topology=topology,
            stage="sched",
            packages={"sweeper": FunctionPackage(pulumi.FileArchive(str(tmp_path)), code_sha256="x")},
            layer_arns=[],
            resources={
                ("table", "conversations"): ResourceRef(physical="omni-sched-conversations", arn=table_arn)
            },
        ),
    )

    def check(all_registered: Registry) -> None:
        registry = all_registered.variant(prefix)
        function = registry.one(LAMBDA, name="omni-sched-sweeper")
        schedule = registry.one(SCHEDULE)
        assert schedule.inputs["scheduleExpression"] == "rate(5 minutes)"
        assert schedule.inputs["flexibleTimeWindow"] == {"mode": "OFF"}
        assert schedule.inputs["target"]["arn"] == function.arn
        role = next(r for r in registry.of_type(ROLE) if r.arn == schedule.inputs["target"]["roleArn"])
        trust = statements(role.inputs["assumeRolePolicy"])
        assert [s["Principal"] for s in trust] == [{"Service": "scheduler.amazonaws.com"}]
        invoke = statements(registry.one(ROLE_POLICY, role=role.id).inputs["policy"])
        assert [(as_list(s["Action"]), as_list(s["Resource"])) for s in invoke] == [
            (["lambda:InvokeFunction"], [function.arn])
        ]
        # No queue, no event source mapping.
        assert not registry.of_type(ESM)

    return settled(functions, check=check)


@pulumi.runtime.test
def test_deletion_protection_can_be_turned_off() -> pulumi.Output[None]:
    prefix = f"{VARIANT_PREFIX}unprotected"
    tables = Tables(
        prefix, TablesArgs(tables=TOPOLOGY.tables[:1], stage="scratch", deletion_protection=False)
    )

    def check(all_registered: Registry) -> None:
        inputs = all_registered.variant(prefix).one(TABLE).inputs
        assert inputs["deletionProtectionEnabled"] is False
        assert inputs["pointInTimeRecovery"] == {"enabled": True}

    return settled(tables, check=check)


def test_settings_from_config_with_an_external_issuer() -> None:
    namespace = "omni-external-idp"
    for key, value in {
        **{secret.config_key: secret.name for secret in TOPOLOGY.secrets},
        **{identity.config_key: "Shop.Example" for identity in TOPOLOGY.email_identities},
        "agentJwtIssuer": "https://idp.example.com/",
        "agentJwtAudience": "omni-agents",
        "deletionProtection": "false",
        "logRetentionDays": "90",
    }.items():
        pulumi.runtime.set_config(f"{namespace}:{key}", value)
    settings = StackSettings.from_config(config=pulumi.Config(namespace), stage="prod")
    assert settings.stage == "prod"
    assert settings.agent_jwt_issuer == "https://idp.example.com/"
    assert settings.agent_jwt_audience == "omni-agents"
    assert settings.deletion_protection is False
    assert settings.log_retention_days == 90
    assert set(settings.secret_values) == {s.name for s in TOPOLOGY.secrets}
    assert settings.email_identities == {i.name: "shop.example" for i in TOPOLOGY.email_identities}


def test_settings_refuse_what_cannot_be_deployed() -> None:
    with pytest.raises(ValueError, match="agentJwtAudience"):
        StackSettings(stage="dev", secret_values={}, agent_jwt_issuer="https://idp.example.com/")
    with pytest.raises(ValueError, match="log retention"):
        StackSettings(stage="dev", secret_values={}, log_retention_days=42)
    with pytest.raises(ValueError, match="stack name"):
        StackSettings(stage="dev.eu", secret_values={})


def test_missing_secret_config_fails() -> None:
    with pytest.raises(pulumi.ConfigMissingError):
        StackSettings.from_config(config=pulumi.Config("omni-unconfigured"), stage="dev")


def test_a_role_gets_on_the_key_only_what_its_grants_need() -> None:
    from infra.components.encryption import function_key_statement  # noqa: PLC0415

    def fn(grants: tuple[Grant, ...], queue: str | None = None) -> Function:
        return Function(
            name="f",
            handler="functions.f.handler.handler",
            source_dir="functions/f",
            description="f",
            grants=grants,
            queue=queue,
        )

    key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/k"
    # Nothing encrypted: no statement at all.
    assert function_key_statement(fn((Grant("secret", "s", "get"),)), key, REGION) is None
    # A consumer that only reads: decrypt, through SQS and DynamoDB only.
    reader = function_key_statement(fn((Grant("table", "t", "read"),), queue="q"), key, REGION)
    assert reader == {
        "Sid": "UseStackKey",
        "Effect": "Allow",
        "Action": ["kms:Decrypt"],
        "Resource": [key],
        "Condition": {
            "StringEquals": {
                "kms:ViaService": [f"dynamodb.{REGION}.amazonaws.com", f"sqs.{REGION}.amazonaws.com"]
            }
        },
    }
    # A producer: data keys too (SQS producers also decrypt).
    writer = function_key_statement(
        fn((Grant("queue", "q", "send"), Grant("secret", "s", "get"))), key, REGION
    )
    assert writer is not None
    assert writer["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert writer["Condition"] == {"StringEquals": {"kms:ViaService": [f"sqs.{REGION}.amazonaws.com"]}}
