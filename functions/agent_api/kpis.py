"""Agent API: the customer-experience KPIs of a date range (definitions: docs/kpis.md).

``GET /kpis?from=YYYY-MM-DD&to=YYYY-MM-DD[&channel=][&intent=]`` adds up the counters of
those days (UTC; both included) - one query per month of the range, never a scan - and
computes every KPI from the sums.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict

from functions.agent_api.deps import json_body
from shared.domain.kpis import report, sum_counters
from shared.platform.http import documented, error
from shared.repositories.kpis import KpiRepository

router = APIGatewayHttpRouter()
repository = KpiRepository()
#: Longest range one request may ask for.
MAX_DAYS = 366


class Kpis(BaseModel):
    model_config = ConfigDict(defer_build=True)

    from_day: str
    to_day: str
    channel: str | None = None
    intent: str | None = None
    kpis: dict[str, float | int | None]
    counters: dict[str, int]
    #: Where each KPI is defined.
    definitions: str = "docs/kpis.md"


@router.get("/kpis", responses=documented(200, Kpis, 400, 401))
def get_kpis(
    start: Annotated[date, Query(alias="from", description="first day, YYYY-MM-DD (UTC)")],
    end: Annotated[date, Query(alias="to", description="last day, YYYY-MM-DD (UTC), included")],
    channel: Annotated[str | None, Query(max_length=40)] = None,
    intent: Annotated[str | None, Query(max_length=60)] = None,
) -> Response[dict[str, Any]]:
    # ``format: date`` in the OpenAPI document: a day that does not exist is refused before this.
    if end < start:
        return error(400, "'to' is before 'from'")
    if (end - start).days + 1 > MAX_DAYS:
        return error(400, f"at most {MAX_DAYS} days per request")
    rows = [
        row
        for row in repository.counters(start, end)
        if (channel is None or row.get("channel") == channel)
        and (intent is None or row.get("intent") == intent)
    ]
    computed = report(sum_counters(rows))
    return json_body(
        200,
        Kpis(
            from_day=start.isoformat(),
            to_day=end.isoformat(),
            channel=channel,
            intent=intent,
            kpis=computed.kpis,
            counters=computed.counters,
        ),
    )
