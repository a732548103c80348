"""Pulumi mock tests of the dashboard and the pipeline alarms.

Uses the mocks ``test_infra_stack`` installs (one set per process); the component is built
on its own under a variant name, so the main stack's registry is untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest

from functions.kpi import processor
from infra.components.dashboard import (
    KPI_METRICS,
    Dashboard,
    DashboardArgs,
    channel_functions,
    dashboard_body,
)
from tests.infra.infra_mocks import REGION, VARIANT_PREFIX, Registry
from tests.infra.stack_mocks import settled
from topology import PROJECT, TOPOLOGY

pytestmark = pytest.mark.filterwarnings("ignore:aws.lambda/microvmsimage:DeprecationWarning")

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
NAME = f"{VARIANT_PREFIX}dashboard"
TOPIC_ARN = "arn:aws:sns:eu-west-3:123456789012:omni-qa-alerts"


def test_the_body_covers_every_queue_function_and_kpi() -> None:
    body = dashboard_body(TOPOLOGY, "qa", "api123", REGION)
    titles = [w["properties"]["title"] for w in body["widgets"]]
    assert any("Inbound per channel" in t for t in titles)
    assert any("Dead-letter" in t for t in titles)
    assert any("Stalled" in t for t in titles)
    metrics = [m for w in body["widgets"] for m in w["properties"]["metrics"]]
    dlqs = {m[3] for m in metrics if m[1] == "ApproximateNumberOfMessagesVisible"}
    assert dlqs == {f"omni-qa-{q.name}-dlq" for q in TOPOLOGY.queues}
    ages = {m[3] for m in metrics if m[1] == "ApproximateAgeOfOldestMessage"}
    assert ages == {f"omni-qa-{q.name}" for q in TOPOLOGY.queues}
    errors = {m[3] for m in metrics if m[1] == "Errors"}
    throttles = {m[3] for m in metrics if m[1] == "Throttles"}
    assert errors == throttles == {f"omni-qa-{f.name}" for f in TOPOLOGY.functions}
    kpis = {m[1] for m in metrics if m[0] == PROJECT and m[3] == "kpi"}
    assert set(KPI_METRICS) <= kpis
    assert {"webchat", "sms", "whatsapp", "email"} <= set(channel_functions(TOPOLOGY))
    assert "agent-api" not in channel_functions(TOPOLOGY)
    assert "links" not in channel_functions(TOPOLOGY)  # public, but carries no messages
    assert all(w["properties"]["region"] == REGION for w in body["widgets"])
    # The KPI metrics the dashboard shows are ones the kpi function emits.
    source = Path(processor.__file__).read_text(encoding="utf-8")
    assert all(f'"{name}"' in source for name in KPI_METRICS)


@pulumi.runtime.test
def test_dashboard_and_alarms_notify_the_alerts_topic() -> pulumi.Output[None]:
    # The stack passes Alarms.topic.arn: the alerts topic of infra/components/alarms.py.
    component = Dashboard(
        NAME,
        DashboardArgs(topology=TOPOLOGY, stage="qa", api_id="api123", region=REGION, topic_arn=TOPIC_ARN),
    )

    def check(registry: Registry) -> None:
        mine = registry.variant(NAME)
        [dashboard] = mine.of_type(DASHBOARD)
        assert dashboard.inputs["dashboardName"] == "omni-qa-operations"
        assert len(json.loads(dashboard.inputs["dashboardBody"])["widgets"]) >= 9
        found = {a.inputs["name"]: a for a in mine.of_type(ALARM)}
        for alarm in found.values():
            assert alarm.inputs["alarmActions"] == alarm.inputs["okActions"] == [TOPIC_ARN]
        for queue in TOPOLOGY.queues:
            dlq = found[f"omni-qa-{queue.name}-dlq-messages"].inputs
            assert dlq["dimensions"] == {"QueueName": f"omni-qa-{queue.name}-dlq"}
            assert (dlq["metricName"], dlq["statistic"], dlq["threshold"]) == (
                "ApproximateNumberOfMessagesVisible",
                "Maximum",
                1,
            )
            assert dlq["comparisonOperator"] == "GreaterThanOrEqualToThreshold"
        for fn in TOPOLOGY.functions:
            rate = found[f"omni-qa-{fn.name}-error-rate"].inputs
            queries = {q["id"]: q for q in rate["metricQueries"]}
            assert queries["errors"]["metric"]["dimensions"] == {"FunctionName": f"omni-qa-{fn.name}"}
            assert "100 * errors / invocations" in queries["rate"]["expression"]
            assert queries["rate"]["returnData"] is True
        spike = found["omni-qa-webhook-4xx-spike"].inputs
        queries = {q["id"]: q for q in spike["metricQueries"]}
        assert queries["refused"]["metric"]["metricName"] == "4xx"
        assert queries["refused"]["metric"]["dimensions"] == {"ApiId": "api123"}
        assert "signing secret" in spike["alarmDescription"]
        assert len(found) == len(TOPOLOGY.queues) + len(TOPOLOGY.functions) + 1

    return settled(component, check=check)
