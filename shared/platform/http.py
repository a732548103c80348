"""What every HTTP function does at its edge: size and content-type checks, errors as 4xx.

Bad input gets a 4xx with a reason, never a 500: pydantic validation errors become
400 (Powertools answers 422 by default), a body over the limit 413, a body that is
not JSON 415 (``multipart/form-data`` included, with or without a boundary), a JSON
body that does not parse or nests deeper than :data:`MAX_JSON_DEPTH` levels 400. When
the bus refuses an event we answer 503, so the caller retries and nothing accepted is lost.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, ConfigDict

from shared.platform import settings
from shared.platform.bus import PublishError

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

#: Deepest nesting of objects and arrays a JSON body may have. No request of ours needs more
#: than a handful of levels; Python's parser gives up (``RecursionError``) near 1,000.
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """A payload-format-2.0 response, for answers given before the resolver runs."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_types.APPLICATION_JSON, **(headers or {})},
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def error(status: int, message: str, **extra: Any) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"error": HTTPStatus(status).phrase, "message": message, **extra},
    )


class ErrorBody(BaseModel):
    model_config = ConfigDict(defer_build=True)

    error: str
    message: str


def documented(success: int, model: type[BaseModel], *errors: int) -> dict[int, OpenAPIResponse]:
    """OpenAPI ``responses`` for a route: its success body and the errors it can answer."""
    responses: dict[int, OpenAPIResponse] = {
        success: {
            "description": HTTPStatus(success).phrase,
            "content": {"application/json": {"model": model}},
        }
    }
    for status in errors:
        responses[status] = {
            "description": HTTPStatus(status).phrase,
            "content": {"application/json": {"model": ErrorBody}},
        }
    return responses


def body_size(event: Mapping[str, Any]) -> int:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return len(base64.b64decode(body, validate=False))
    return len(body.encode())


def json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep objects and arrays nest in ``text`` (counting stops just past ``limit``).

    A scan of the raw text, not a parse: it is what keeps a hostile body away from the
    recursive parser. Brackets inside strings do not count.
    """
    depth = deepest = 0
    for bracket in _JSON_BRACKET.finditer(_JSON_STRING.sub('""', text)):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                break
    return deepest


#: The names these answers have always carried (``HTTPStatus(413).phrase`` is the older wording).
_PHRASES = {413: "Payload Too Large", 415: "Unsupported Media Type"}


def _refusal(status: int, message: str) -> dict[str, Any]:
    return json_response(
        status, {"error": _PHRASES.get(status, HTTPStatus(status).phrase), "message": message}
    )


def check_body(
    event: Mapping[str, Any],
    max_bytes: int,
    accept: tuple[str, ...] = (content_types.APPLICATION_JSON,),
    parse_json: bool = True,
) -> dict[str, Any] | None:
    """The 4xx answer for a body this route must not parse (``None`` when it may).

    ``parse_json=False`` leaves the JSON checks to the route (a webhook checks the
    signature of the raw bytes first, and answers 401 before reading anything).
    """
    size = body_size(event)
    if size > max_bytes:
        return _refusal(413, f"body is {size} bytes; the limit is {max_bytes}")
    if not size:
        return None
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in accept:
        return _refusal(415, f"send {' or '.join(accept)}, not {content_type or 'no content type'}")
    if content_type != content_types.APPLICATION_JSON or not parse_json:
        return None
    try:
        text = raw_body(event).decode()
    except (UnicodeDecodeError, ValueError):
        return _refusal(400, "the body is not UTF-8 text")
    if json_depth(text) > MAX_JSON_DEPTH:
        return _refusal(400, f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        json.loads(text)
    except (ValueError, RecursionError) as exc:
        return _refusal(400, f"the body is not JSON: {exc}")
    return None


def guard_body(
    max_bytes: int, accept: tuple[str, ...] = (content_types.APPLICATION_JSON,), parse_json: bool = True
) -> Callable[[Handler], Handler]:
    """Refuse oversized, unparseable, too deeply nested bodies and bodies of another content
    type before the resolver parses anything (see :func:`check_body`)."""

    def wrap(handler: Handler) -> Handler:
        def guarded(event: dict[str, Any], context: Any) -> dict[str, Any]:
            refused = check_body(event, max_bytes, accept, parse_json)
            return refused if refused is not None else handler(event, context)

        return guarded

    return wrap


PUBLIC_BASE_URL_ENV = settings.OMNI_PUBLIC_BASE_URL


def public_url(event: Mapping[str, Any]) -> str:
    """The URL the caller used, as providers sign it (Twilio signs the full URL).

    ``OMNI_PUBLIC_BASE_URL`` wins when set (the local stack, a proxy in front of the API);
    otherwise it is the API's own domain, which is also right for a custom domain.
    """
    path = event.get("rawPath") or "/"
    query = event.get("rawQueryString") or ""
    base = os.environ.get(PUBLIC_BASE_URL_ENV)
    if not base:
        base = f"https://{(event.get('requestContext') or {}).get('domainName', '')}"
    return base.rstrip("/") + path + (f"?{query}" if query else "")


def raw_body(event: Mapping[str, Any]) -> bytes:
    """The body exactly as sent (signatures are computed over these bytes)."""
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body)
    return body.encode()


def install_error_handlers(app: APIGatewayHttpResolver) -> None:
    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response:
        problems = []
        for item in exc.errors():
            location = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
            problems.append({"field": location or "body", "problem": item.get("msg", item.get("type"))})
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems) or "invalid request"
        return error(400, summary, problems=problems)

    @app.exception_handler(UnicodeDecodeError)
    def _not_text(exc: UnicodeDecodeError) -> Response:
        # Raised while the body is decoded for validation, before any route code runs.
        return error(400, "the body is not UTF-8 text")

    @app.exception_handler(RecursionError)
    def _too_deep(exc: RecursionError) -> Response:
        # A last line of defence: bodies are depth-checked before the resolver runs.
        return error(400, f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels")

    @app.exception_handler(PublishError)
    def _bus_unavailable(exc: PublishError) -> Response:
        response = error(503, "could not accept the message right now; retry")
        response.headers["Retry-After"] = "1"
        return response
