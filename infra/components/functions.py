"""The Lambda functions: role and policy, log group, function, and their queue/schedule triggers.

Every function gets its own role with ONE inline policy, built from the grants of the
topology (``topology.iam_actions``) on the granted resources only, plus what
every function needs on its own things: consuming its queue, writing to its log group,
sending X-Ray traces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.common import (
    RUNTIME,
    TYPE_PREFIX,
    PolicyStatement,
    assume_role_policy,
    check_log_retention,
    physical_name,
    policy_json,
    sid,
)
from infra.components.encryption import function_key_statement
from infra.components.packages import FunctionPackage
from topology import (
    QUEUE_CONSUMER_ACTIONS,
    Function,
    ResourceKind,
    Topology,
    function_environment,
    iam_actions,
    mints_links,
)

ResourceKey = tuple[ResourceKind, str]

#: What a function needs on its own log group (the group exists, so no CreateLogGroup).
LOG_ACTIONS = ("logs:CreateLogStream", "logs:PutLogEvents")
#: What active tracing needs; X-Ray has no resource-level permissions, hence "*".
XRAY_ACTIONS = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")


@dataclass(frozen=True)
class ResourceRef:
    """A deployed resource a function may be granted."""

    #: What the function's environment gets: table name, queue URL, bus name, secret name, bucket name.
    physical: pulumi.Input[str]
    arn: pulumi.Input[str]
    #: More ARNs a grant on this resource covers (an e-mail identity's configuration set).
    extra_arns: tuple[pulumi.Input[str], ...] = ()


@dataclass(frozen=True)
class FunctionsArgs:
    topology: Topology
    stage: str
    #: The code of each function by declared name.
    packages: Mapping[str, FunctionPackage]
    layer_arns: Sequence[pulumi.Input[str]]
    #: Every table, queue, bus, secret and bucket, by (kind, declared name).
    resources: Mapping[ResourceKey, ResourceRef]
    #: Overrides every function's ``log_retention_days``.
    log_retention_days: int | None = None
    #: The stack's customer-managed key: it encrypts the log groups, and each role may use
    #: it for the encrypted resources it is granted (``encryption.function_key_statement``).
    kms_key_arn: pulumi.Input[str] | None = None
    #: The region (``kms:ViaService`` names regional service endpoints); with ``kms_key_arn``.
    region: pulumi.Input[str] | None = None
    #: The HTTP API's public endpoint, for the functions that put links to it in messages
    #: (``topology.mints_links``: they get ``OMNI_PUBLIC_API_URL``).
    public_api_url: pulumi.Input[str] | None = None
    #: The Lambda runtime of every function (a stack setting: ``runtime``).
    runtime: str = RUNTIME


def grant_resources(kind: ResourceKind, arn: str) -> list[str]:
    """The IAM resources of a grant: a table's indexes are resources of their own; a
    bucket grant is about its objects (``s3:GetObject`` on the bucket ARN grants nothing)."""
    if kind == "table":
        return [arn, f"{arn}/index/*"]
    if kind == "bucket":
        return [f"{arn}/*"]
    return [arn]


def policy_keys(fn: Function) -> list[ResourceKey]:
    """Every resource ``fn``'s policy names: its grants and the queue it consumes."""
    keys: list[ResourceKey] = [(grant.kind, grant.resource) for grant in fn.grants]
    if fn.queue:
        keys.append(("queue", fn.queue))
    return list(dict.fromkeys(keys))


def execution_policy(
    fn: Function,
    arns: Mapping[ResourceKey, str | Sequence[str]],
    log_group_arn: str,
    key_statement: PolicyStatement | None = None,
) -> list[PolicyStatement]:
    """The statements of ``fn``'s execution role, given the deployed ARNs (one per
    resource, or several: an e-mail identity and the configuration set its sends use),
    and its statement on the stack's KMS key, if it touches encrypted resources."""
    statements: list[PolicyStatement] = []
    used: set[str] = set()

    def add(name: str, actions: Sequence[str], resources: str | list[str]) -> None:
        statement_id, n = name, 1
        while statement_id in used:
            n += 1
            statement_id = f"{name}{n}"
        used.add(statement_id)
        statements.append(
            {"Sid": statement_id, "Effect": "Allow", "Action": list(actions), "Resource": resources}
        )

    for grant in fn.grants:
        add(
            sid(grant.access, grant.kind, grant.resource),
            iam_actions(grant),
            [
                resource
                for arn in _as_list(arns[(grant.kind, grant.resource)])
                for resource in grant_resources(grant.kind, arn)
            ],
        )
    if fn.queue:
        add(sid("consume queue", fn.queue), QUEUE_CONSUMER_ACTIONS, _as_list(arns[("queue", fn.queue)]))
    add("WriteOwnLogs", LOG_ACTIONS, [f"{log_group_arn}:*"])
    add("SendTraces", XRAY_ACTIONS, "*")
    if key_statement is not None:
        statements.append(key_statement)
    return statements


def _key_statement(fn: Function, args: FunctionsArgs) -> pulumi.Output[PolicyStatement | None]:
    if args.kms_key_arn is None:
        return pulumi.Output.from_input(None)
    if args.region is None:
        raise ValueError("FunctionsArgs.region is required with kms_key_arn (kms:ViaService)")
    return pulumi.Output.all(args.kms_key_arn, args.region).apply(
        lambda values: function_key_statement(fn, values[0], values[1])
    )


def _as_list(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


class Functions(pulumi.ComponentResource):
    """Every declared function with its role, log group and queue/schedule triggers."""

    roles: dict[str, aws.iam.Role]
    policies: dict[str, aws.iam.RolePolicy]
    log_groups: dict[str, aws.cloudwatch.LogGroup]
    functions: dict[str, aws.lambda_.Function]
    event_source_mappings: dict[str, aws.lambda_.EventSourceMapping]
    scheduler_roles: dict[str, aws.iam.Role]
    schedules: dict[tuple[str, str], aws.scheduler.Schedule]
    arns: dict[str, pulumi.Output[str]]
    names: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: FunctionsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:Functions", name, None, opts)
        if args.log_retention_days is not None:
            check_log_retention(args.log_retention_days)
        self.roles, self.policies, self.log_groups, self.functions = {}, {}, {}, {}
        self.event_source_mappings, self.scheduler_roles, self.schedules = {}, {}, {}
        for fn in args.topology.functions:
            self._add_function(name, fn, args)
        self.arns = {key: f.arn for key, f in self.functions.items()}
        self.names = {key: f.name for key, f in self.functions.items()}
        self.register_outputs({"arns": self.arns, "names": self.names})

    def _add_function(self, name: str, fn: Function, args: FunctionsArgs) -> None:
        child = pulumi.ResourceOptions(parent=self)
        prefix = f"{name}-{fn.name}"
        deployed_name = physical_name(args.stage, fn.name)

        log_group = aws.cloudwatch.LogGroup(
            f"{prefix}-logs",
            name=f"/aws/lambda/{deployed_name}",
            retention_in_days=check_log_retention(args.log_retention_days or fn.log_retention_days),
            kms_key_id=args.kms_key_arn,
            opts=child,
        )
        role = aws.iam.Role(
            f"{prefix}-role",
            description=f"Execution role of {deployed_name}.",
            assume_role_policy=assume_role_policy("lambda.amazonaws.com"),
            opts=child,
        )
        keys = policy_keys(fn)
        policy = aws.iam.RolePolicy(
            f"{prefix}-policy",
            name="execution",
            role=role.id,
            policy=pulumi.Output.all(
                log_group.arn,
                _key_statement(fn, args),
                *(
                    pulumi.Output.all(args.resources[key].arn, *args.resources[key].extra_arns)
                    for key in keys
                ),
            ).apply(
                lambda values: policy_json(
                    execution_policy(fn, dict(zip(keys, values[2:], strict=True)), values[0], values[1])
                )
            ),
            opts=child,
        )
        granted = [(grant.kind, grant.resource) for grant in fn.grants]
        # Only the functions that mint links wait for (and depend on) the API's endpoint.
        public_api_url = args.public_api_url if mints_links(fn) else None
        environment = pulumi.Output.all(
            public_api_url, *(args.resources[key].physical for key in granted)
        ).apply(
            lambda values: function_environment(
                args.topology,
                fn,
                dict(zip(granted, values[1:], strict=True)),
                args.stage,
                public_api_url=values[0],
            )
        )
        package = args.packages[fn.name]
        function = aws.lambda_.Function(
            prefix,
            name=deployed_name,
            description=fn.description,
            role=role.arn,
            runtime=args.runtime,
            architectures=[fn.architecture],
            handler=fn.handler,
            memory_size=fn.memory_mb,
            timeout=fn.timeout_s,
            code=package.archive,
            code_sha256=package.code_sha256,
            layers=list(args.layer_arns),
            environment=aws.lambda_.FunctionEnvironmentArgs(variables=environment),
            tracing_config=aws.lambda_.FunctionTracingConfigArgs(mode="Active"),
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="Text", log_group=log_group.name),
            # The policy first, so the function can log (and its trigger can poll) from the start.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        self.log_groups[fn.name], self.roles[fn.name] = log_group, role
        self.policies[fn.name], self.functions[fn.name] = policy, function

        if fn.queue:
            queue = args.topology.queue(fn.queue)
            self.event_source_mappings[fn.name] = aws.lambda_.EventSourceMapping(
                f"{prefix}-{queue.name}-source",
                event_source_arn=args.resources[("queue", queue.name)].arn,
                function_name=function.arn,
                batch_size=queue.batch_size,
                maximum_batching_window_in_seconds=queue.max_batching_window_s,
                function_response_types=["ReportBatchItemFailures"],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
            )
        if fn.schedules:
            self._add_schedules(prefix, fn, deployed_name, function)

    def _add_schedules(
        self, prefix: str, fn: Function, deployed_name: str, function: aws.lambda_.Function
    ) -> None:
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            f"{prefix}-scheduler-role",
            description=f"Lets EventBridge Scheduler invoke {deployed_name}.",
            assume_role_policy=assume_role_policy("scheduler.amazonaws.com"),
            opts=child,
        )
        policy = aws.iam.RolePolicy(
            f"{prefix}-scheduler-policy",
            name="invoke",
            role=role.id,
            policy=function.arn.apply(
                lambda arn: policy_json(
                    [
                        {
                            "Sid": "InvokeFunction",
                            "Effect": "Allow",
                            "Action": ["lambda:InvokeFunction"],
                            "Resource": [arn],
                        }
                    ]
                )
            ),
            opts=child,
        )
        self.scheduler_roles[fn.name] = role
        for schedule in fn.schedules:
            self.schedules[(fn.name, schedule.name)] = aws.scheduler.Schedule(
                f"{prefix}-{schedule.name}",
                name=f"{deployed_name}-{schedule.name}",
                schedule_expression=schedule.expression,
                flexible_time_window=aws.scheduler.ScheduleFlexibleTimeWindowArgs(mode="OFF"),
                target=aws.scheduler.ScheduleTargetArgs(arn=function.arn, role_arn=role.arn),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
            )
