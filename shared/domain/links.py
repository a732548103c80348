"""Signed links we put in messages to customers: one-click unsubscribe, contact preferences,
survey answers.

A link carries its own claims (who, which conversation, which channel, what for, until
when) and an HMAC-SHA256 over them with the ``links-signing`` secret, so the public
endpoint that receives the click needs no lookup to trust it and no state to expire it:

    <base url>/links/<purpose>?t=<claims>.<signature>[&score=<n>]

``claims`` is the base64url (unpadded) JSON of :class:`LinkClaims`; ``signature`` is the
base64url HMAC of ``omni-link-v1.<purpose>.<claims>``. The purpose is inside the MAC, so a
token minted for an unsubscribe link cannot be replayed as a survey answer and vice versa.
A survey link's score is a query parameter outside the token: one token serves the seven
(CES) or five (CSAT) score links of one question, and the endpoint checks the score
against the survey's scale.

Everything here is pure apart from :func:`signing_secret`, which reads the secret through
Powertools Parameters (cached for five minutes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import asdict, dataclass
from typing import Literal
from urllib.parse import urlencode

from shared.platform import settings

Purpose = Literal["unsubscribe", "preferences", "ces", "csat"]
PURPOSES: tuple[str, ...] = ("unsubscribe", "preferences", "ces", "csat")
#: Environment variable with the secret's id (``Secret("links-signing").env_var``).
SECRET_ENV_VAR = settings.LINKS_SIGNING_SECRET_ID
#: Environment variable with the public base URL of the HTTP API (no trailing slash), set by
#: the Pulumi program from the API's endpoint and by the local runtime from its own address,
#: for every function that mints links.
BASE_URL_ENV_VAR = settings.OMNI_PUBLIC_API_URL
#: Unsubscribe and preferences links work for a year (mail sits in inboxes); survey links for 30 days.
LIFETIME_S: dict[str, int] = {
    "unsubscribe": 365 * 86400,
    "preferences": 365 * 86400,
    "ces": 30 * 86400,
    "csat": 30 * 86400,
}
#: Score scale per survey.
SCALES: dict[str, tuple[int, int]] = {"ces": (1, 7), "csat": (1, 5)}
_VERSION = b"omni-link-v1"
_MAX_TOKEN_CHARS = 1024


class InvalidLink(ValueError):
    """The link was tampered with, expired, or is not for this purpose (HTTP 400/403 with ``reason``)."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expired = expired


@dataclass(frozen=True)
class LinkClaims:
    purpose: str
    customer_id: str
    #: The channel the message with the link went out on (``email``, ``webchat``...).
    channel: str
    #: Unix time after which the link is refused.
    expires: int
    conversation_id: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, purpose: str, claims_b64: str) -> bytes:
    message = b".".join((_VERSION, purpose.encode(), claims_b64.encode()))
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def sign(
    secret: str,
    purpose: Purpose,
    *,
    customer_id: str,
    channel: str,
    conversation_id: str | None = None,
    now: float | None = None,
    lifetime_s: int | None = None,
) -> str:
    """A token for ``purpose`` (see the module's docstring for its format)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown link purpose {purpose!r}")
    if not secret:
        raise ValueError("the links signing secret is empty")
    issued = time.time() if now is None else now
    claims = LinkClaims(
        purpose=purpose,
        customer_id=customer_id,
        channel=channel,
        expires=int(issued) + (LIFETIME_S[purpose] if lifetime_s is None else lifetime_s),
        conversation_id=conversation_id,
    )
    body = {k: v for k, v in asdict(claims).items() if v is not None}
    claims_b64 = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    return f"{claims_b64}.{_b64(_mac(secret, purpose, claims_b64))}"


def verify(secret: str, token: str, purpose: Purpose, *, now: float | None = None) -> LinkClaims:
    """The claims of a genuine, unexpired token for ``purpose``; :class:`InvalidLink` otherwise."""
    if not token or len(token) > _MAX_TOKEN_CHARS or token.count(".") != 1:
        raise InvalidLink("the link is malformed")
    claims_b64, signature_b64 = token.split(".")
    try:
        signature = _unb64(signature_b64)
    except (binascii.Error, ValueError) as exc:
        raise InvalidLink("the link is malformed") from exc
    # Constant time; the purpose is part of the MAC, so a token of another purpose fails here.
    if not hmac.compare_digest(signature, _mac(secret, purpose, claims_b64)):
        raise InvalidLink("the link's signature is not valid")
    try:
        body = json.loads(_unb64(claims_b64))
        claims = LinkClaims(
            purpose=str(body["purpose"]),
            customer_id=str(body["customer_id"]),
            channel=str(body["channel"]),
            expires=int(body["expires"]),
            conversation_id=body.get("conversation_id"),
        )
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise InvalidLink("the link is malformed") from exc
    if claims.purpose != purpose:
        raise InvalidLink("the link is not for this purpose")
    if (time.time() if now is None else now) > claims.expires:
        raise InvalidLink("the link has expired", expired=True)
    return claims


def link_url(base_url: str, purpose: Purpose, token: str, *, score: int | None = None) -> str:
    """``<base_url>/links/<purpose>?t=<token>[&score=<n>]`` (``base_url`` without a trailing slash)."""
    query = {"t": token}
    if score is not None:
        low, high = SCALES[purpose]
        if not low <= score <= high:
            raise ValueError(f"{purpose} score {score} is outside {low}-{high}")
        query["score"] = str(score)
    return f"{base_url.rstrip('/')}/links/{purpose}?{urlencode(query)}"


def check_score(purpose: str, score: int) -> None:
    """Raise :class:`InvalidLink` when ``score`` is outside the survey's scale."""
    low, high = SCALES[purpose]
    if not low <= score <= high:
        raise InvalidLink(f"score must be between {low} and {high}")
