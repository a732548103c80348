"""The edge both Twilio functions (SMS, voice) share: signed form parsing and its errors.

``install(app, logger)`` makes a resolver answer a refused Twilio request (bad or
missing signature, wrong body) with its 4xx and a malformed form with 400 and the
fields; ``verified_form(app, model)`` checks ``X-Twilio-Signature`` over the URL Twilio
called and validates the parameters as ``model``.
"""

from __future__ import annotations

from typing import TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from pydantic import BaseModel, ValidationError

from shared.channels import twilio
from shared.platform import settings
from shared.platform.config import get_secret
from shared.platform.http import error, install_error_handlers, public_url, raw_body

M = TypeVar("M", bound=BaseModel)


def install(app: APIGatewayHttpResolver, logger: Logger) -> None:
    install_error_handlers(app)

    @app.exception_handler(twilio.TwilioRequestError)
    def _refused(exc: twilio.TwilioRequestError) -> Response:
        logger.info("Twilio request refused", extra={"status": exc.status, "reason": str(exc)})
        return error(exc.status, str(exc))

    @app.exception_handler(ValidationError)
    def _malformed(exc: ValidationError) -> Response:
        problems = [
            {"field": ".".join(str(p) for p in item["loc"]) or "body", "problem": item["msg"]}
            for item in exc.errors()
        ]
        logger.info("Twilio request malformed", extra={"problems": problems})
        return error(400, "; ".join(f"{p['field']}: {p['problem']}" for p in problems), problems=problems)


def verified_form(app: APIGatewayHttpResolver, model: type[M]) -> M:
    """The request's parameters, after the signature check, validated as ``model``."""
    event = app.current_event.raw_event
    params = twilio.verified_form(
        get_secret(settings.TWILIO_AUTH_TOKEN_SECRET_ID),
        public_url(event),
        raw_body(event),
        app.current_event.headers.get(twilio.SIGNATURE_HEADER),
    )
    return model.model_validate(params)


def twiml(body: str = twilio.EMPTY_TWIML) -> Response:
    return Response(status_code=200, content_type=twilio.TWIML_CONTENT_TYPE, body=body)
