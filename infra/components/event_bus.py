"""The custom EventBridge bus, its archive, and the rules that feed the queues."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.common import TYPE_PREFIX, PolicyStatement, physical_name, policy_json, sid
from topology import EventBus, EventRule


@dataclass(frozen=True)
class QueueRef:
    """A deployed queue, as a rule target."""

    arn: pulumi.Input[str]
    url: pulumi.Input[str]


@dataclass(frozen=True)
class EventBusArgs:
    bus: EventBus
    rules: Sequence[EventRule]
    stage: str
    #: The target queues by declared name.
    queues: Mapping[str, QueueRef]
    #: The customer-managed key of the bus's events and of its archive (None: AWS-owned key).
    kms_key_arn: pulumi.Input[str] | None = None


def rule_delivery_statement(rule_name: str, rule_arn: str, queue_arn: str) -> PolicyStatement:
    """Lets EventBridge send to a queue, for one rule only."""
    return {
        "Sid": sid("events from", rule_name),
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
    }


def queue_policy(rules: Sequence[EventRule], arns: Sequence[str]) -> str:
    """The policy of a queue fed by ``rules``; ``arns`` is the queue's ARN then each rule's."""
    queue_arn, rule_arns = arns[0], arns[1:]
    return policy_json(
        [
            rule_delivery_statement(rule.name, rule_arn, queue_arn)
            for rule, rule_arn in zip(rules, rule_arns, strict=True)
        ]
    )


class EventBusComponent(pulumi.ComponentResource):
    """The bus, an archive of every event on it, and one rule -> queue target per declared rule."""

    bus: aws.cloudwatch.EventBus
    archive: aws.cloudwatch.EventArchive | None
    rules: dict[str, aws.cloudwatch.EventRule]
    targets: dict[str, aws.cloudwatch.EventTarget]
    queue_policies: dict[str, aws.sqs.QueuePolicy]

    def __init__(self, name: str, args: EventBusArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:EventBus", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        bus_name = physical_name(args.stage, args.bus.name)
        self.bus = aws.cloudwatch.EventBus(
            f"{name}-bus", name=bus_name, kms_key_identifier=args.kms_key_arn, opts=child
        )
        self.archive = None
        if args.bus.archive_retention_days > 0:
            self.archive = aws.cloudwatch.EventArchive(
                f"{name}-archive",
                name=f"{bus_name}-archive",
                description=f"Every event on {bus_name}, for replay.",
                event_source_arn=self.bus.arn,
                retention_days=args.bus.archive_retention_days,
                kms_key_identifier=args.kms_key_arn,
                opts=child,
            )
        self.rules, self.targets = {}, {}
        for rule in args.rules:
            queue = args.queues[rule.target_queue]
            self.rules[rule.name] = aws.cloudwatch.EventRule(
                f"{name}-{rule.name}",
                name=physical_name(args.stage, rule.name),
                description=rule.description or None,
                event_bus_name=self.bus.name,
                event_pattern=json.dumps(rule.event_pattern),
                opts=child,
            )
            self.targets[rule.name] = aws.cloudwatch.EventTarget(
                f"{name}-{rule.name}-target",
                rule=self.rules[rule.name].name,
                event_bus_name=self.bus.name,
                arn=queue.arn,
                opts=child,
            )
        # A queue has one policy, so every rule targeting it gets a statement in the same one.
        self.queue_policies = {}
        for queue_name in dict.fromkeys(rule.target_queue for rule in args.rules):
            queue = args.queues[queue_name]
            feeding = [rule for rule in args.rules if rule.target_queue == queue_name]
            self.queue_policies[queue_name] = aws.sqs.QueuePolicy(
                f"{name}-{queue_name}-policy",
                queue_url=queue.url,
                policy=pulumi.Output.all(
                    pulumi.Output.from_input(queue.arn), *(self.rules[rule.name].arn for rule in feeding)
                ).apply(functools.partial(queue_policy, feeding)),
                opts=child,
            )
        self.register_outputs(
            {
                "bus_name": self.bus.name,
                "bus_arn": self.bus.arn,
                "rules": {k: r.arn for k, r in self.rules.items()},
            }
        )
