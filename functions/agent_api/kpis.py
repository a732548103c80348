"""Agent API: the customer-experience KPIs of a date range (definitions: docs/kpis.md).

``GET /kpis?from=YYYY-MM-DD&to=YYYY-MM-DD[&channel=][&intent=]`` adds up the counters of
those days (UTC; both included) - one query per month of the range, never a scan - and
computes every KPI from the sums.

``GET /kpis/daily`` (same parameters, at most 31 days, supervisors only) gives the same
KPIs for every day of the range and the breakdowns the console's supervisor view draws.
"""

from datetime import date, timedelta
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import BaseModel, ConfigDict, Field

from functions.agent_api.deps import is_supervisor, json_body
from shared.domain.kpis import ai_handovers_by_reason, report, sum_counters
from shared.platform.http import documented, error
from shared.repositories.kpis import KpiRepository

router = APIGatewayHttpRouter()
repository = KpiRepository()
#: Longest range one request may ask for.
MAX_DAYS = 366


class AssistantKpis(BaseModel):
    """The assistant's KPIs (docs/kpis.md, "The assistant"); also in ``kpis`` as ``assistant_*``."""

    model_config = ConfigDict(defer_build=True)

    answers: int = Field(description="Answers the assistant gave from the knowledge base.")
    conversations: int = Field(description="Conversations the assistant answered at least once.")
    resolved: int = Field(description="Of those, resolved by the bot without a hand-over.")
    resolution_rate: float | None = Field(description="resolved / conversations.")
    handovers_by_reason: dict[str, int] = Field(
        description="The assistant's hand-overs to a person (one per conversation) by reason: "
        "asked_for_person, escalation_rule, sensitive_topic, unhelpful_answers, low_confidence, "
        "not_answerable, assistant_error."
    )
    citations_per_answer: float | None = Field(description="Articles cited per answer.")
    tokens_per_answer: float | None = Field(description="Model tokens (input + output) per answer.")
    model_cost_usd: float = Field(description="Model cost (Converse usage x list price), USD.")
    model_cost_per_answer_usd: float | None = Field(description="model_cost_usd / answers.")
    helpful_rate: float | None = Field(
        description="Share of 'was this helpful?' reactions that said it helped (first per conversation)."
    )
    feedback_answers: int = Field(description="'Was this helpful?' reactions counted.")


def assistant_section(kpis: dict[str, float | None], counters: dict[str, int]) -> AssistantKpis:
    return AssistantKpis(
        answers=int(kpis["assistant_answers"] or 0),
        conversations=int(kpis["assistant_conversations"] or 0),
        resolved=int(kpis["assistant_resolved"] or 0),
        resolution_rate=kpis["assistant_resolution_rate"],
        handovers_by_reason=ai_handovers_by_reason(counters),
        citations_per_answer=kpis["citations_per_answer"],
        tokens_per_answer=kpis["tokens_per_answer"],
        model_cost_usd=float(kpis["model_cost_usd"] or 0.0),
        model_cost_per_answer_usd=kpis["model_cost_per_answer_usd"],
        helpful_rate=kpis["assistant_helpful_rate"],
        feedback_answers=int(kpis["assistant_feedback_answers"] or 0),
    )


class Kpis(BaseModel):
    model_config = ConfigDict(defer_build=True)

    from_day: str
    to_day: str
    channel: str | None = None
    intent: str | None = None
    kpis: dict[str, float | int | None]
    counters: dict[str, int]
    #: Hand-overs to a person by why routing handed them over (docs/kpis.md).
    handed_over_by_reason: dict[str, int]
    assistant: AssistantKpis
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
            handed_over_by_reason=computed.handed_over_by_reason,
            assistant=assistant_section(computed.kpis, computed.counters),
        ),
    )


#: Longest range of the supervisor view's daily series (its "30 days" and a spare day).
MAX_SERIES_DAYS = 31


class KpiDay(BaseModel):
    model_config = ConfigDict(defer_build=True)

    day: str
    kpis: dict[str, float | int | None]


class KpiSeries(BaseModel):
    """The supervisor view's charts: every day of the range, and the range as a whole."""

    model_config = ConfigDict(defer_build=True)

    from_day: str
    to_day: str
    channel: str | None = None
    intent: str | None = None
    #: One entry per day of the range (days without traffic included), oldest first.
    days: list[KpiDay]
    #: The whole range (the same figures ``GET /kpis`` gives for it).
    kpis: dict[str, float | int | None]
    counters: dict[str, int]
    #: Conversations started per channel of the conversation (the filters applied).
    started_by_channel: dict[str, int]
    #: Hand-overs to a person by why routing handed them over (docs/kpis.md).
    handed_over_by_reason: dict[str, int]
    #: Hand-overs to a human queue per intent of the conversation.
    handed_over_by_intent: dict[str, int]
    #: The channels and intents seen in the range, whatever the filters: what a filter can offer.
    channels: list[str]
    intents: list[str]
    definitions: str = "docs/kpis.md"


def _by(rows: list[dict[str, Any]], dimension: str, counter: str) -> dict[str, int]:
    totals: dict[str, int] = {}
    for row in rows:
        value = int(row.get(counter) or 0)
        if value:
            name = str(row.get(dimension))
            totals[name] = totals.get(name, 0) + value
    return dict(sorted(totals.items()))


@router.get("/kpis/daily", responses=documented(200, KpiSeries, 400, 401, 403))
def get_kpi_series(
    start: Annotated[date, Query(alias="from", description="first day, YYYY-MM-DD (UTC)")],
    end: Annotated[date, Query(alias="to", description="last day, YYYY-MM-DD (UTC), included")],
    channel: Annotated[str | None, Query(max_length=40)] = None,
    intent: Annotated[str | None, Query(max_length=60)] = None,
) -> Response[dict[str, Any]]:
    """The KPIs of every day of a range of at most 31 days, for the console's supervisor view.

    Supervisors only. One query per month partition the range touches (two at most), never a scan."""
    if not is_supervisor(router):
        return error(403, "the supervisor view is for supervisors")
    # ``format: date`` in the OpenAPI document: a day that does not exist is refused before this.
    if end < start:
        return error(400, "'to' is before 'from'")
    if (end - start).days + 1 > MAX_SERIES_DAYS:
        return error(400, f"at most {MAX_SERIES_DAYS} days per request")
    every = repository.daily(start, end)
    rows = [
        row
        for row in every
        if (channel is None or row.get("channel") == channel)
        and (intent is None or row.get("intent") == intent)
    ]
    per_day: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        per_day.setdefault(str(row.get("day") or str(row["sk"])[:10]), []).append(row)
    days = [
        KpiDay(day=day.isoformat(), kpis=report(sum_counters(per_day.get(day.isoformat(), []))).kpis)
        for day in (start + timedelta(days=offset) for offset in range((end - start).days + 1))
    ]
    whole = report(sum_counters(rows))
    return json_body(
        200,
        KpiSeries(
            from_day=start.isoformat(),
            to_day=end.isoformat(),
            channel=channel,
            intent=intent,
            days=days,
            kpis=whole.kpis,
            counters=whole.counters,
            handed_over_by_reason=whole.handed_over_by_reason,
            started_by_channel=_by(rows, "channel", "started"),
            handed_over_by_intent=_by(rows, "intent", "escalated"),
            channels=sorted({str(row.get("channel")) for row in every if row.get("channel")}),
            intents=sorted({str(row.get("intent")) for row in every if row.get("intent")}),
        ),
    )
