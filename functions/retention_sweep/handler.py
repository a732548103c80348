"""Retention sweep, hourly: erases the customers whose last contact is older than the retention period.

``OMNI_RETENTION_DAYS`` (default 365) after a customer's last contact, the profile,
its identities, merge records, conversations and messages are erased exactly like
``DELETE /customers/{id}`` (tombstones keep replays of old events out). The sweep
reads the sparse ``retention`` index of the customers table one past day at a time
(``shared.domain.retention``), never scans. A run stops taking new customers when less than
a minute of its time is left; the next run carries on.

Metrics (namespace ``omni``, dimensions ``service`` and ``stage``): ``RetentionErased``
(customers erased), ``RetentionMoved`` (index entries corrected to a later day).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared import bootstrap
from shared.contracts.events import format_timestamp, utc_now
from shared.platform import settings
from shared.platform.observability import new_logger, new_tracer, set_stage_dimension
from shared.services.profiles.erasure import sweep_retention

ERASED_METRIC = "RetentionErased"
#: Stop taking new customers when less time than this is left (one erasure is a few seconds).
RESERVE_MS = 60_000

logger = new_logger()
tracer = new_tracer()
metrics = Metrics()
customers = bootstrap.customers()
merger = bootstrap.merger()


@tracer.capture_lambda_handler
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    set_stage_dimension(metrics, settings.stage())
    now = utc_now()
    result = sweep_retention(
        customers,
        merger,
        format_timestamp(now),
        int(now.timestamp()),
        keep_going=lambda: context.get_remaining_time_in_millis() > RESERVE_MS,
    )
    metrics.add_metric(name=ERASED_METRIC, unit=MetricUnit.Count, value=len(result.erased))
    metrics.add_metric(name="RetentionMoved", unit=MetricUnit.Count, value=len(result.moved))
    # Ids only: nothing about the erased people is logged.
    summary = {
        "erased": result.erased,
        "moved": len(result.moved),
        "checked": result.checked,
        "complete": result.complete,
    }
    logger.info("retention sweep done", extra=summary)
    return summary
