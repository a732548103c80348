"""Public signed links: one-click unsubscribe (RFC 8058), contact preferences, survey answers by link.

``GET /links/{purpose}?t=<token>[&score=<n>]`` changes nothing (mail scanners and link
previewers fetch every link): it checks the token and answers a small HTML page that says
what will happen, with a button. ``POST`` to the same URL does it:

* ``unsubscribe`` - the customer is opted out of the token's channel (e-mail); this is
  also the RFC 8058 one-click request mail clients send with the body
  ``List-Unsubscribe=One-Click``. A second click changes nothing and answers 200 again.
* ``preferences`` - the GET page is a form with the customer's contact choices
  (:mod:`shared.contracts.contact`); the POST records the fields filled in (channels and
  mode, time zone, quiet hours, language, channels never to use). An invalid field is a 400
  naming it.
* ``ces`` / ``csat`` - ``feedback.submitted`` is published with the score (query or
  form field ``score``, checked against the survey's scale); the KPI function counts
  the first answer per conversation.

A bad token is a 400 (malformed) or 403 (forged, for another purpose), an expired one
410, an unknown purpose 404; oversized bodies and other content types are refused by
:func:`shared.platform.http.guard_body`. Pages are HTML unless the caller asks for JSON only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, get_args

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from functions.links import actions, pages
from shared.contracts.contact import ContactChoices
from shared.contracts.events import Channel, utc_now
from shared.contracts.names import FEEDBACK_SUBMITTED
from shared.domain import links
from shared.platform import link_settings
from shared.platform.bus import EventPublisher
from shared.platform.http import guard_body, install_error_handlers, raw_body
from shared.platform.observability import new_logger, new_tracer
from shared.repositories.customers import CustomerRepository

#: A one-click body is 26 bytes; a browser's form with a score a few more.
MAX_BODY_BYTES = 2048
CHANNELS = frozenset(get_args(Channel))
#: ``InvalidLink`` reasons that mean "not ours" rather than "broken" (403, not 400).
_FORBIDDEN = ("the link's signature is not valid", "the link is not for this purpose")

logger = new_logger()
tracer = new_tracer()
app = APIGatewayHttpResolver()
install_error_handlers(app)

customers = CustomerRepository()
publisher = EventPublisher(source="omni.links")


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _wants_json() -> bool:
    accept = (app.current_event.headers.get("accept") or "").lower()
    return "application/json" in accept and "text/html" not in accept


def _answer(page: pages.Page, **extra: Any) -> Response[Any]:
    if _wants_json():
        body: dict[str, Any] = {"title": page.title, "message": page.message, **extra}
        if page.status >= 400:
            body = {"error": page.title, "message": page.message}
        return Response(
            status_code=page.status,
            content_type=content_types.APPLICATION_JSON,
            body=body,
            headers=dict(pages.PAGE_HEADERS),
        )
    return Response(
        status_code=page.status,
        content_type="text/html; charset=utf-8",
        body=page.render(),
        headers=dict(pages.PAGE_HEADERS),
    )


def _claims(purpose: str) -> tuple[links.LinkClaims, str]:
    if purpose not in links.PURPOSES:
        raise Refused(404, "there is no such link")
    token = app.current_event.get_query_string_value("t") or ""
    if not token:
        raise Refused(400, "the link has no token; open the whole link from the message")
    try:
        claims = links.verify(link_settings.links_signing_secret(), token, purpose)  # type: ignore[arg-type]
    except links.InvalidLink as exc:
        status = 410 if exc.expired else 403 if exc.reason in _FORBIDDEN else 400
        raise Refused(status, exc.reason) from exc
    if claims.channel not in CHANNELS:
        raise Refused(400, "the link names no channel we know")
    return claims, token


def _score(purpose: str, raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    low, high = links.SCALES[purpose]
    # At most 3 digits: int() of thousands of digits raises (and is slow) before any check.
    if not raw.isascii() or not raw.strip().isdigit() or len(raw.strip()) > 3:
        raise Refused(400, f"score must be a whole number between {low} and {high}")
    score = int(raw.strip())
    try:
        links.check_score(purpose, score)
    except links.InvalidLink as exc:
        raise Refused(400, exc.reason) from exc
    return score


def _refused(exc: Refused, purpose: str) -> Response[Any]:
    logger.info("link refused", extra={"purpose": purpose[:20], "status": exc.status, "reason": exc.reason})
    return _answer(pages.problem(exc.status, exc.reason))


def _current(claims: links.LinkClaims) -> tuple[str, ContactChoices]:
    customer_id = actions.active_customer(customers, claims.customer_id)
    choices = customers.contact_choices(customer_id) if customer_id else None
    if customer_id is None or choices is None:
        raise Refused(410, "we no longer hold any data about you, so there is nothing to choose")
    return customer_id, choices


def _show_preferences(claims: links.LinkClaims, token: str) -> Response[Any]:
    _, choices = _current(claims)
    return _answer(
        pages.preferences_form(token, choices), purpose="preferences", contact=choices.model_dump()
    )


def _save_preferences(claims: links.LinkClaims, form: dict[str, str], now: datetime) -> Response[Any]:
    _current(claims)
    try:
        patch = pages.preferences_patch(form)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise Refused(400, f"nothing was saved; {problems}") from exc
    written_to = actions.set_preferences(customers, claims, patch, now)
    logger.info(
        "preferences set by link",
        extra={
            "customer_id": written_to,
            "channel": claims.channel,
            "fields": sorted(patch.model_fields_set),
        },
    )
    _, choices = _current(claims)
    return _answer(pages.preferences_saved(), status="saved", contact=choices.model_dump())


@app.get("/links/<purpose>")
def show(purpose: str) -> Response[Any]:
    """The confirmation page; changes nothing."""
    try:
        claims, token = _claims(purpose)
        if purpose == "unsubscribe":
            return _answer(pages.unsubscribe_confirm(token), purpose=purpose)
        if purpose == "preferences":
            return _show_preferences(claims, token)
        score = _score(purpose, app.current_event.get_query_string_value("score"))
        if not claims.conversation_id:
            raise Refused(400, "the link does not name a conversation")
        return _answer(pages.survey_confirm(purpose, token, score, links.SCALES[purpose]), purpose=purpose)
    except Refused as exc:
        return _refused(exc, purpose)


@app.post("/links/<purpose>")
def act(purpose: str) -> Response[Any]:
    """Unsubscribe, or record the survey answer."""
    try:
        claims, _ = _claims(purpose)
        try:
            form = pages.parse_form(raw_body(app.current_event.raw_event), dict(app.current_event.headers))
        except pages.BadForm as exc:
            raise Refused(400, str(exc)) from exc
        now = utc_now()
        if purpose == "preferences":
            return _save_preferences(claims, form, now)
        if purpose == "unsubscribe":
            one_click = form.get(pages.ONE_CLICK_KEY)
            if one_click is not None and one_click != pages.ONE_CLICK_VALUE:
                raise Refused(400, f"{pages.ONE_CLICK_KEY} must be {pages.ONE_CLICK_VALUE}")
            done = actions.unsubscribe(customers, claims, now)
            logger.info(
                "unsubscribed by link",
                extra={
                    "customer_id": done.customer_id or claims.customer_id,
                    "channel": claims.channel,
                    "result": done.result,
                    "changed": done.changed,
                    "one_click": one_click is not None,
                },
            )
            return _answer(pages.unsubscribed(), status="unsubscribed", channel=claims.channel)
        query_score = _score(purpose, app.current_event.get_query_string_value("score"))
        form_score = _score(purpose, form.get("score"))
        if query_score is not None and form_score is not None and query_score != form_score:
            raise Refused(400, "the form and the link give different scores")
        score = query_score if query_score is not None else form_score
        if score is None:
            low, high = links.SCALES[purpose]
            raise Refused(400, f"score is required: a whole number between {low} and {high}")
        try:
            event = actions.feedback(claims, purpose, score, now)  # type: ignore[arg-type]
        except (actions.NoConversation, ValidationError) as exc:
            reason = (
                str(exc) if isinstance(exc, actions.NoConversation) else "the link's claims are not valid"
            )
            raise Refused(400, reason) from exc
        publisher.publish([(FEEDBACK_SUBMITTED, event)])
        logger.info(
            "survey answered by link",
            extra={"conversation_id": event.conversation_id, "survey": purpose, "score": score},
        )
        return _answer(pages.thanks(score), status="recorded", survey=purpose, score=score)
    except Refused as exc:
        return _refused(exc, purpose)


@tracer.capture_lambda_handler
@guard_body(MAX_BODY_BYTES, accept=pages.FORM_TYPES)
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
