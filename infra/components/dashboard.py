"""The operations dashboard and the alarms on the pipeline's health.

One CloudWatch dashboard (``omni-<stage>``): inbound messages per channel, pipeline
latency (age of the oldest message per queue), dead-letter queue depth, errors and
throttles per function, API 4xx/5xx, stalled hand-overs, and the customer-experience KPIs
the ``kpi`` function emits (docs/kpis.md).

Alarms, all notifying the alerts topic of :mod:`infra.components.alarms`:

* ``<queue>-dlq-messages`` - any message in a dead-letter queue (something failed for good);
* ``<function>-error-rate`` - more than :data:`ERROR_RATE_PERCENT` % of a function's
  invocations failed over 5 minutes (and at least :data:`MIN_ERRORS` errors);
* ``webhook-4xx-spike`` - over 5 minutes at least :data:`MIN_4XX` requests and more than
  :data:`RATE_4XX_PERCENT` % of all requests were refused with a 4xx: providers' webhooks
  failing signature checks after a rotated or mistyped signing secret look like this.

Everything is derived from :data:`topology.TOPOLOGY` and the stage (physical names
are deterministic), plus the API's id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.common import TYPE_PREFIX, physical_name
from topology import PROJECT, Function, Topology

ERROR_RATE_PERCENT = 5
MIN_ERRORS = 3
MIN_4XX = 20
RATE_4XX_PERCENT = 20
#: The KPI metrics of functions/kpi (namespace omni, dimensions service=kpi and stage).
KPI_METRICS = (
    "ConversationsStarted",
    "ConversationsResolved",
    "FirstContactResolutions",
    "FirstContactResolutionsLost",
    "ConversationsReopened",
    "RepeatContacts",
    "ChannelSwitches",
    "HandedOver",
    "StalledHandovers",
    "AutomatedResolutions",
)
KPI_TIMES = ("FirstResponseTime", "ResolutionTime")
STALLED_METRIC = "StalledConversations"


@dataclass(frozen=True)
class DashboardArgs:
    topology: Topology
    stage: str
    api_id: pulumi.Input[str]
    region: pulumi.Input[str]
    #: The SNS topic the alarms notify (``Alarms.topic.arn``).
    topic_arn: pulumi.Input[str]


def channel_functions(topology: Topology) -> list[str]:
    """Functions that receive customers' messages: webhooks (routes, not the agent API) and e-mail.

    The signed-links endpoint (``/links/...``: unsubscribe clicks, survey answers) is public
    too but carries no messages, so it is not a channel.
    """

    def is_channel(fn: Function) -> bool:
        if fn.email is not None:
            return True
        if not fn.routes or any(route.auth == "agent" for route in fn.routes):
            return False
        return not all(route.path.startswith("/links/") for route in fn.routes)

    return [fn.name for fn in topology.functions if is_channel(fn)]


def dashboard_body(topology: Topology, stage: str, api_id: str, region: str) -> dict[str, Any]:
    """The dashboard's JSON body (pure: used by the component and by tests)."""

    def fn(name: str) -> str:
        return physical_name(stage, name)

    def widget(
        title: str, metrics: list[list[Any]], x: int, y: int, stat: str = "Sum", **extra: Any
    ) -> dict[str, Any]:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": 12,
            "height": 6,
            "properties": {
                "title": title,
                "region": region,
                "stat": stat,
                "period": 300,
                "view": "timeSeries",
                "metrics": metrics,
                **extra,
            },
        }

    names = [f.name for f in topology.functions]
    queues = [q.name for q in topology.queues]
    widgets = [
        widget(
            "Inbound per channel (invocations)",
            [
                ["AWS/Lambda", "Invocations", "FunctionName", fn(n), {"label": n}]
                for n in channel_functions(topology)
            ],
            0,
            0,
        ),
        widget(
            "Pipeline latency: age of the oldest message (s)",
            [["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", fn(q), {"label": q}] for q in queues],
            12,
            0,
            stat="Maximum",
        ),
        widget(
            "Dead-letter queues: messages",
            [
                [
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesVisible",
                    "QueueName",
                    fn(f"{q}-dlq"),
                    {"label": f"{q}-dlq"},
                ]
                for q in queues
            ],
            0,
            6,
            stat="Maximum",
        ),
        widget(
            "Errors per function",
            [["AWS/Lambda", "Errors", "FunctionName", fn(n), {"label": n}] for n in names],
            12,
            6,
        ),
        widget(
            "Throttles per function",
            [["AWS/Lambda", "Throttles", "FunctionName", fn(n), {"label": n}] for n in names],
            0,
            12,
        ),
        widget(
            "HTTP API: requests, 4xx, 5xx",
            [
                ["AWS/ApiGateway", metric, "ApiId", api_id, {"label": metric}]
                for metric in ("Count", "4xx", "5xx")
            ],
            12,
            12,
        ),
        widget(
            "Stalled hand-overs",
            [[PROJECT, STALLED_METRIC, "service", "sla-sweep", "stage", stage]],
            0,
            18,
            annotations={"horizontal": [{"label": "any stalled", "value": 1}]},
        ),
        widget(
            "KPIs (counts, see docs/kpis.md)",
            [[PROJECT, metric, "service", "kpi", "stage", stage] for metric in KPI_METRICS],
            12,
            18,
        ),
        widget(
            "KPIs: first response and resolution time p50/p90 (s)",
            [
                [
                    PROJECT,
                    metric,
                    "service",
                    "kpi",
                    "stage",
                    stage,
                    {"stat": stat, "label": f"{metric} {stat}"},
                ]
                for metric in KPI_TIMES
                for stat in ("p50", "p90")
            ],
            0,
            24,
            stat="p50",
        ),
        widget(
            "KPIs: Customer Effort Score (1-7)",
            [[PROJECT, "CustomerEffortScore", "service", "kpi", "stage", stage, {"stat": "Average"}]],
            12,
            24,
            stat="Average",
        ),
    ]
    return {"widgets": widgets}


def _query(
    id_: str, namespace: str, metric: str, dimensions: Mapping[str, pulumi.Input[str]], stat: str = "Sum"
) -> Any:
    return aws.cloudwatch.MetricAlarmMetricQueryArgs(
        id=id_,
        return_data=False,
        metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
            namespace=namespace, metric_name=metric, dimensions=dimensions, stat=stat, period=300
        ),
    )


class Dashboard(pulumi.ComponentResource):
    dashboard: aws.cloudwatch.Dashboard
    alarms: dict[str, aws.cloudwatch.MetricAlarm]

    def __init__(self, name: str, args: DashboardArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(f"{TYPE_PREFIX}:Dashboard", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        stage, topology = args.stage, args.topology
        body = pulumi.Output.all(args.api_id, args.region).apply(
            lambda values: json.dumps(dashboard_body(topology, stage, str(values[0]), str(values[1])))
        )
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=physical_name(stage, "operations"),
            dashboard_body=body,
            opts=child,
        )
        actions = [args.topic_arn]
        self.alarms = {}

        def alarm(key: str, **kwargs: Any) -> None:
            self.alarms[key] = aws.cloudwatch.MetricAlarm(
                f"{name}-{key}",
                name=physical_name(stage, key),
                alarm_actions=actions,
                ok_actions=actions,
                treat_missing_data="notBreaching",
                opts=child,
                **kwargs,
            )

        for queue in topology.queues:
            alarm(
                f"{queue.name}-dlq-messages",
                alarm_description=(
                    f"A message reached the dead-letter queue of {queue.name}: it failed "
                    f"{queue.max_receive_count} times. Inspect it (omni dlq show {queue.name}), fix the "
                    f"cause, redrive it (omni dlq redrive {queue.name})."
                ),
                namespace="AWS/SQS",
                metric_name="ApproximateNumberOfMessagesVisible",
                dimensions={"QueueName": physical_name(stage, queue.dlq_name)},
                statistic="Maximum",
                period=60,
                evaluation_periods=1,
                threshold=1,
                comparison_operator="GreaterThanOrEqualToThreshold",
            )
        for fn in topology.functions:
            dims = {"FunctionName": physical_name(stage, fn.name)}
            alarm(
                f"{fn.name}-error-rate",
                alarm_description=(
                    f"More than {ERROR_RATE_PERCENT} % of the invocations of {fn.name} failed in 5 minutes."
                ),
                evaluation_periods=1,
                threshold=ERROR_RATE_PERCENT,
                comparison_operator="GreaterThanThreshold",
                metric_queries=[
                    _query("errors", "AWS/Lambda", "Errors", dims),
                    _query("invocations", "AWS/Lambda", "Invocations", dims),
                    aws.cloudwatch.MetricAlarmMetricQueryArgs(
                        id="rate",
                        label="error rate (%)",
                        return_data=True,
                        expression=(
                            f"IF(errors >= {MIN_ERRORS} AND invocations > 0, 100 * errors / invocations, 0)"
                        ),
                    ),
                ],
            )
        api = {"ApiId": args.api_id}
        alarm(
            "webhook-4xx-spike",
            alarm_description=(
                f"More than {RATE_4XX_PERCENT} % of the API's requests (at least {MIN_4XX}) were "
                "refused with a 4xx in 5 minutes. When the failing routes are webhooks, a provider's "
                "signing secret (twilioAuthToken, metaAppSecret) is probably wrong or was rotated."
            ),
            evaluation_periods=1,
            threshold=RATE_4XX_PERCENT,
            comparison_operator="GreaterThanThreshold",
            metric_queries=[
                _query("refused", "AWS/ApiGateway", "4xx", api),
                _query("requests", "AWS/ApiGateway", "Count", api),
                aws.cloudwatch.MetricAlarmMetricQueryArgs(
                    id="rate",
                    label="4xx rate (%)",
                    return_data=True,
                    expression=f"IF(refused >= {MIN_4XX} AND requests > 0, 100 * refused / requests, 0)",
                ),
            ],
        )
        self.register_outputs({"dashboard_name": self.dashboard.dashboard_name})
