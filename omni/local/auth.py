"""Agent tokens: what API Gateway's JWT authorizer checks in the cloud, emulated locally.

Locally, agent routes accept an HS256 JWT signed with ``OMNI_AGENT_JWT_SECRET``
(default :data:`DEFAULT_AGENT_JWT_SECRET`) that carries ``sub`` and ``exp``.
``omni token --agent ID`` issues one.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping
from typing import Any

import jwt

#: Environment variable holding the local agent JWT signing secret.
AGENT_JWT_SECRET_ENV = "OMNI_AGENT_JWT_SECRET"
#: The signing secret used when :data:`AGENT_JWT_SECRET_ENV` is unset.
DEFAULT_AGENT_JWT_SECRET = "local-agent-jwt-secret"
ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("sub", "exp")


class Unauthorized(Exception):
    """The token is missing, malformed, forged or expired; the message says which."""

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value API Gateway's JWT authorizer answers a refused request with."""
        description = str(self).replace("\\", "").replace('"', "'")
        return f'Bearer scope="" error="invalid_token" error_description="{description}"'


def _reason(exc: jwt.PyJWTError) -> str:
    """Why PyJWT refused a token, in the words of API Gateway's JWT authorizer where it has some."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "the token has expired"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "the token signature is invalid"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the token has no {exc.claim} claim"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "the token is not valid yet"
    if isinstance(exc, jwt.DecodeError):
        return "the token is not a valid JWT"
    return f"the token is invalid: {exc}"


def _quiet_default_key_warning() -> None:
    """PyJWT warns that the 22-byte local default key is short; it is a local-only value.

    Only a warning for a key of exactly that length is silenced (pytest resets warning
    filters per test, hence a call per use rather than once at import).
    """
    category = getattr(jwt, "InsecureKeyLengthWarning", None)
    if category is not None:
        warnings.filterwarnings(
            "ignore", message=f"The HMAC key is {len(DEFAULT_AGENT_JWT_SECRET)} bytes long", category=category
        )


def agent_jwt_secret() -> str:
    return os.environ.get(AGENT_JWT_SECRET_ENV) or DEFAULT_AGENT_JWT_SECRET


def issue_agent_token(
    agent_id: str,
    ttl_s: int = 3600,
    *,
    secret: str | None = None,
    extra_claims: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> str:
    """An HS256 JWT for ``agent_id`` valid for ``ttl_s`` seconds."""
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"sub": agent_id, "iat": issued, "exp": issued + int(ttl_s)}
    if extra_claims:
        claims.update(extra_claims)
    _quiet_default_key_warning()
    return jwt.encode(claims, secret or agent_jwt_secret(), algorithm=ALGORITHM)


def verify_agent_token(token: str, *, secret: str | None = None) -> dict[str, Any]:
    """The claims of a valid token; raises :class:`Unauthorized` otherwise."""
    _quiet_default_key_warning()
    try:
        claims = jwt.decode(
            token,
            secret or agent_jwt_secret(),
            algorithms=[ALGORITHM],
            options={"require": list(REQUIRED_CLAIMS), "verify_aud": False, "verify_iss": False},
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized(_reason(exc)) from exc
    if not isinstance(claims, dict) or not claims.get("sub"):
        raise Unauthorized("the token has no subject")
    return claims


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <jwt>`` header value."""
    if not authorization:
        raise Unauthorized("the Authorization header is missing")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header is not a bearer token")
    return token.strip()
