"""Request and response bodies of the web chat routes (validated at the edge)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

_ID = r"^[A-Za-z0-9_.:\-]+$"


class CustomerInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    email: Annotated[str, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    account_id: Annotated[str, Field(min_length=1, max_length=200, pattern=_ID)] | None = None
    #: hex HMAC-SHA256 of account_id (or, without one, email) with the identity secret.
    user_hash: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")] | None = None


class CreateSessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    customer: CustomerInfo | None = None


class SessionCreated(BaseModel):
    model_config = ConfigDict(defer_build=True)

    session_id: str
    token: str
    expires_at: int
    #: True when the customer's account id / e-mail were proven by user_hash.
    verified: bool


class PostMessageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    #: The browser's id for the message; sending it again is harmless.
    message_id: Annotated[str, Field(min_length=1, max_length=100, pattern=_ID)]
    text: Annotated[str, Field(min_length=1, max_length=4000)]
    sent_at: AwareDatetime


class MessageAccepted(BaseModel):
    model_config = ConfigDict(defer_build=True)

    message_id: str
    status: Literal["accepted"] = "accepted"
    #: True when this message id had been accepted before.
    duplicate: bool


class Source(BaseModel):
    model_config = ConfigDict(defer_build=True)

    article_id: str
    title: str


class SessionMessage(BaseModel):
    model_config = ConfigDict(defer_build=True)

    message_id: str
    direction: Literal["inbound", "outbound"]
    text: str
    timestamp: str
    #: ``customer``, ``bot`` or ``agent:<id>``.
    author: str | None = None
    #: An agent's first name (the widget shows the hand-over: "you are now talking to Ines").
    author_name: str | None = None
    #: The knowledge-base articles a bot answer came from.
    sources: list[Source] = Field(default_factory=list)
    #: The survey this message asks (the widget offers its scores as buttons).
    survey: Literal["ces", "csat"] | None = None


class SessionMessages(BaseModel):
    model_config = ConfigDict(defer_build=True)

    session_id: str
    messages: list[SessionMessage]
