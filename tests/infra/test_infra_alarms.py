"""Pulumi mock test of the alarm component: the stalled-conversations alarm watches what the sweep emits.

Uses the mocks ``test_infra_stack`` installs (one set of mocks per process); the component
is built on its own under a variant name, so it does not touch the main stack's registry.
"""

from __future__ import annotations

import pulumi
import pytest

from functions.sla_sweep.handler import STALLED_METRIC
from infra.components.alarms import STALLED_METRIC as ALARMED_METRIC
from infra.components.alarms import Alarms, AlarmsArgs, stalled_conversations_alarm
from tests.infra.infra_mocks import VARIANT_PREFIX, Registry
from tests.infra.stack_mocks import settled
from topology import PROJECT, TOPOLOGY

pytestmark = pytest.mark.filterwarnings("ignore:aws.lambda/microvmsimage:DeprecationWarning")

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
NAME = f"{VARIANT_PREFIX}alarms"


@pulumi.runtime.test
def test_stalled_conversations_alarm_notifies_the_alerts_topic() -> pulumi.Output[None]:
    # The alarm's dimensions are what Powertools Metrics puts on the sweep's metric:
    # service = the function's name, and the stage the sweep sets as default dimension.
    assert ALARMED_METRIC == STALLED_METRIC
    assert TOPOLOGY.function("sla-sweep").schedules
    component = Alarms(NAME, AlarmsArgs(stage="qa", alarms=(stalled_conversations_alarm("qa"),)))

    def check(registry: Registry) -> None:
        mine = registry.variant(NAME)
        [alarm] = mine.of_type(ALARM)
        [topic] = mine.of_type(TOPIC)
        inputs = alarm.inputs
        assert inputs["name"] == "omni-qa-stalled-conversations"
        assert (inputs["namespace"], inputs["metricName"], inputs["statistic"]) == (
            PROJECT,
            STALLED_METRIC,
            "Sum",
        )
        assert inputs["dimensions"] == {"service": "sla-sweep", "stage": "qa"}
        assert (inputs["threshold"], inputs["comparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
        assert (inputs["period"], inputs["evaluationPeriods"], inputs["treatMissingData"]) == (
            300,
            1,
            "notBreaching",
        )
        assert topic.inputs["name"] == "omni-qa-alerts"
        assert len(inputs["alarmActions"]) == 1

    return settled(component, check=check)
