"""Web chat: identity verification and session tokens. Pure functions, no AWS.

A browser cannot keep a secret, so it never signs anything itself:

* the company's site proves who a logged-in customer is with
  ``user_hash = hex(HMAC-SHA256(identity secret, account_id or else email))``, computed
  on its server with the secret it shares with us (as Intercom and Chatwoot do);
* we hand the browser a session token signed with a secret that never leaves AWS; it
  names the session and the identities we verified when the session was opened.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.contracts.events import Identity, MessageReceived

TOKEN_ISSUER = "omni-webchat"
TOKEN_AUDIENCE = "webchat-session"
TOKEN_TTL_S = 24 * 3600
PROVIDER = "omni-webchat"
_ALGORITHM = "HS256"


class InvalidToken(Exception):
    """The session token is missing, forged, expired or for another session."""


class InvalidUserHash(Exception):
    """A ``user_hash`` was sent but does not match: the claimed identity is not proven."""


def compute_user_hash(identity_secret: str, value: str) -> str:
    return hmac.new(identity_secret.encode(), value.encode(), hashlib.sha256).hexdigest()


def user_hash_subject(account_id: str | None, email: str | None) -> str | None:
    """What the site signs: the account id when there is one, otherwise the e-mail."""
    return account_id or email


def verify_user_hash(identity_secret: str, account_id: str | None, email: str | None, user_hash: str) -> None:
    subject = user_hash_subject(account_id, email)
    if subject is None:
        raise InvalidUserHash("user_hash needs an account_id or an email to sign")
    expected = compute_user_hash(identity_secret, subject)
    if not hmac.compare_digest(expected, user_hash.strip().lower()):
        raise InvalidUserHash("user_hash does not match")


@dataclass(frozen=True)
class SessionClaims:
    session_id: str
    verified: bool
    account_id: str | None = None
    email: str | None = None
    name: str | None = None


def issue_token(token_secret: str, claims: SessionClaims, now_epoch: int, ttl_s: int = TOKEN_TTL_S) -> str:
    payload: dict[str, Any] = {
        "iss": TOKEN_ISSUER,
        "aud": TOKEN_AUDIENCE,
        "sub": claims.session_id,
        "iat": now_epoch,
        "exp": now_epoch + ttl_s,
        "vrf": claims.verified,
    }
    for key, value in (("acct", claims.account_id), ("email", claims.email), ("name", claims.name)):
        if value is not None:
            payload[key] = value
    import jwt  # noqa: PLC0415 - loaded when a token is issued or verified, not at cold start

    return jwt.encode(payload, token_secret, algorithm=_ALGORITHM)


def verify_token(token_secret: str, token: str, session_id: str) -> SessionClaims:
    import jwt  # noqa: PLC0415 - loaded when a token is issued or verified, not at cold start

    try:
        payload = jwt.decode(
            token,
            token_secret,
            algorithms=[_ALGORITHM],
            audience=TOKEN_AUDIENCE,
            issuer=TOKEN_ISSUER,
            options={"require": ["exp", "sub", "iat"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    if not hmac.compare_digest(str(payload["sub"]), session_id):
        raise InvalidToken("token belongs to another session")
    return SessionClaims(
        session_id=payload["sub"],
        verified=bool(payload.get("vrf")),
        account_id=payload.get("acct"),
        email=payload.get("email"),
        name=payload.get("name"),
    )


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise InvalidToken("missing Authorization header")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("Authorization must be 'Bearer <token>'")
    return token.strip()


def inbound_message(
    claims: SessionClaims, message_id: str, text: str, sent_at: datetime, received_at: datetime
) -> MessageReceived:
    """The canonical ``message.received`` for a message typed into a web chat session.

    The session itself is the verified sender (only its token holder can write to it).
    Account id and e-mail count as verified only when ``user_hash`` proved them; else
    they are claims. A browser clock ahead of ours would sort the message into the
    future, so a timestamp later than its arrival is taken as the arrival time.
    """
    identities = []
    if claims.account_id:
        identities.append(Identity(type="account", value=claims.account_id, verified=claims.verified))
    if claims.email:
        identities.append(Identity(type="email", value=claims.email, verified=claims.verified))
    return MessageReceived(
        channel="webchat",
        provider=PROVIDER,
        # Browser message ids are unique within their session only.
        provider_message_id=f"{claims.session_id}:{message_id}",
        sender=Identity(type="webchat", value=claims.session_id, verified=True),
        identities=tuple(identities),
        display_name=claims.name,
        recipient="webchat",
        text=text,
        sent_at=min(sent_at, received_at),
        received_at=received_at,
    )
