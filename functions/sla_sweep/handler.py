"""SLA sweep, every minute: ``conversation.stalled`` events and metrics, overflow, assignment,
bot resolutions of conversations whose customer stayed silent after the bot's answer.

Metrics (CloudWatch embedded metric format, namespace ``omni``, dimensions ``service`` and
``stage``): ``StalledConversations`` (the alarm in ``infra/components/alarms.py`` watches
it), ``OverflowedConversations``, ``AssignedBySweep``, ``BotResolutions``.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.sla_sweep.sweep import sweep
from shared import bootstrap
from shared.contracts.events import utc_now
from shared.platform import settings
from shared.platform.observability import new_logger, new_tracer, set_stage_dimension

STALLED_METRIC = "StalledConversations"

logger = new_logger()
tracer = new_tracer()
metrics = Metrics()
conversations = bootstrap.conversations()
publisher = bootstrap.publisher("omni.sla-sweep")
desk = bootstrap.desk


def _publish(events: Any) -> None:
    if events:
        publisher.publish(events)


@tracer.capture_lambda_handler
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    set_stage_dimension(metrics, settings.stage())
    result = sweep(conversations, desk(), _publish, utc_now())
    # Always emitted (zero included), so the alarm sees data rather than "missing".
    metrics.add_metric(name=STALLED_METRIC, unit=MetricUnit.Count, value=len(result.stalled))
    metrics.add_metric(name="OverflowedConversations", unit=MetricUnit.Count, value=len(result.overflowed))
    metrics.add_metric(name="AssignedBySweep", unit=MetricUnit.Count, value=result.assigned)
    metrics.add_metric(name="BotResolutions", unit=MetricUnit.Count, value=len(result.bot_resolved))
    summary = {
        "stalled": [s.conversation_id for s in result.stalled],
        "overflowed": result.overflowed,
        "assigned": result.assigned,
        "bot_resolved": result.bot_resolved,
    }
    logger.info("sla sweep done", extra=summary)
    return summary
