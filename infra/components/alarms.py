"""CloudWatch alarms on the metrics the functions emit, and the SNS topic they notify.

The SLA sweep (``functions/sla_sweep``) emits ``StalledConversations`` every minute in
the embedded metric format (namespace ``omni``, dimensions ``service`` and ``stage``);
the alarm fires when any conversation stalls. Subscribe people or a chat tool to the
topic (``omni-<stage>-alerts``) to hear about it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.components.common import TYPE_PREFIX, physical_name
from topology import PROJECT

#: The metric the SLA sweep emits (functions/sla_sweep/handler.py STALLED_METRIC).
STALLED_METRIC = "StalledConversations"


@dataclass(frozen=True)
class MetricAlarmSpec:
    name: str
    metric_name: str
    dimensions: dict[str, str]
    description: str
    namespace: str = PROJECT
    statistic: str = "Sum"
    period_s: int = 300
    evaluation_periods: int = 1
    threshold: float = 1
    comparison: str = "GreaterThanOrEqualToThreshold"
    #: No data (the sweep did not run) is reported by the function's own error alarms, not this one.
    treat_missing_data: str = "notBreaching"


def stalled_conversations_alarm(stage: str) -> MetricAlarmSpec:
    return MetricAlarmSpec(
        name="stalled-conversations",
        metric_name=STALLED_METRIC,
        dimensions={"service": "sla-sweep", "stage": stage},
        description=(
            "A customer waited longer than the queue's SLA for an agent or a reply (conversation.stalled)."
        ),
    )


@dataclass(frozen=True)
class AlarmsArgs:
    stage: str
    alarms: Sequence[MetricAlarmSpec] = field(default_factory=tuple)
    #: The customer-managed key of the topic; its key policy lets CloudWatch alarms use it
    #: (they cannot publish to a topic encrypted with the AWS-managed ``alias/aws/sns``).
    kms_key_arn: pulumi.Input[str] | None = None


class Alarms(pulumi.ComponentResource):
    topic: aws.sns.Topic
    alarms: dict[str, aws.cloudwatch.MetricAlarm]

    def __init__(self, name: str, args: AlarmsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:Alarms", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.topic = aws.sns.Topic(
            f"{name}-topic",
            name=physical_name(args.stage, "alerts"),
            kms_master_key_id=args.kms_key_arn if args.kms_key_arn is not None else "alias/aws/sns",
            opts=child,
        )
        self.alarms = {}
        for spec in args.alarms:
            self.alarms[spec.name] = aws.cloudwatch.MetricAlarm(
                f"{name}-{spec.name}",
                name=physical_name(args.stage, spec.name),
                alarm_description=spec.description,
                namespace=spec.namespace,
                metric_name=spec.metric_name,
                dimensions=spec.dimensions,
                statistic=spec.statistic,
                period=spec.period_s,
                evaluation_periods=spec.evaluation_periods,
                threshold=spec.threshold,
                comparison_operator=spec.comparison,
                treat_missing_data=spec.treat_missing_data,
                alarm_actions=[self.topic.arn],
                ok_actions=[self.topic.arn],
                opts=child,
            )
        self.register_outputs({"topic_arn": self.topic.arn})
