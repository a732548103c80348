"""The events on the bus: one pydantic model per detail type.

These are the contracts between the functions. A channel webhook publishes
:class:`MessageReceived`; profile merge publishes :class:`MessageRecorded`; routing
publishes :class:`NotificationRequested`. Any company system may publish
``notification.requested`` too. Every event carries the keys that make its
consumer idempotent, so an event delivered twice has one effect.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_serializer,
    model_serializer,
)

from shared.contracts import names
from shared.contracts.channels import Channel
from shared.contracts.models import Citation, RoutingDecision

#: Our delivery statuses of an outbound message (the outbox's, in order).
DeliveryStatus = Literal["queued", "sent", "delivered", "read", "failed"]
IdentityType = Literal[
    "phone",
    "email",
    "whatsapp",
    "whatsapp_user",
    "messenger",
    "instagram",
    "webchat",
    "account",
    "external",
]
#: ``whatsapp_user`` is WhatsApp's business-scoped user id (BSUID, e.g. ``US.13491208655302741918``):
#: the only id of a customer who uses a WhatsApp username instead of sharing the number.

SCHEMA_VERSION = 1


#: How far the local stack's clock is shifted (``omni local``'s demo replays past days through
#: the pipeline: ``POST /_local/clock``). Always zero in Lambda: only
#: :func:`shared.platform.clock.shift_clock` sets it, and it refuses there.
_clock_offset = timedelta(0)


def utc_now() -> datetime:
    return datetime.now(UTC) + _clock_offset


def set_clock_offset(offset: timedelta) -> None:
    """Called by :func:`shared.platform.clock.shift_clock` only (it refuses in Lambda)."""
    global _clock_offset  # noqa: PLW0603 - one clock per process, shifted by the local runtime only
    _clock_offset = offset


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with microseconds: sorts as text in the same order as in time."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    schema_version: int = SCHEMA_VERSION

    @field_serializer("*", when_used="json", check_fields=False)
    def _serialise_datetimes(self, value: object) -> object:
        if isinstance(value, datetime):
            return format_timestamp(value)
        return value


class Identity(BaseModel):
    """A way to reach or recognise a customer, normalised (see shared.domain.identity)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    type: IdentityType
    value: Annotated[str, Field(min_length=1, max_length=320)]
    #: Proven by the channel (the sending phone, a signed session) rather than typed by the customer.
    verified: bool = False

    @property
    def key(self) -> str:
        return f"{self.type}:{self.value}"


_Short = Annotated[str, Field(max_length=200)]
_Long = Annotated[str, Field(max_length=2000)]


class _Content(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class ContactCard(_Content):
    """A contact the customer shared (vCard-like: names, phone numbers, e-mail addresses)."""

    kind: Literal["contact"] = "contact"
    name: _Short = ""
    phones: tuple[_Short, ...] = ()
    emails: tuple[_Short, ...] = ()
    organization: _Short | None = None


class Location(_Content):
    kind: Literal["location"] = "location"
    latitude: float
    longitude: float
    name: _Short | None = None
    address: _Long | None = None


class ChosenReply(_Content):
    """The button or list row the customer tapped: its title and our id/payload for it."""

    kind: Literal["reply"] = "reply"
    title: _Short = ""
    reply_id: _Short | None = None
    description: _Short | None = None


class Media(_Content):
    """An image, video, audio, document or sticker; ``media_id`` is the provider's id to fetch it."""

    kind: Literal["media"] = "media"
    media_type: Annotated[str, Field(max_length=50)]
    media_id: _Short | None = None
    mime_type: Annotated[str, Field(max_length=100)] | None = None
    caption: _Long | None = None
    filename: _Short | None = None


class OrderItem(_Content):
    product_id: _Short
    quantity: int = 1
    price: float | None = None
    currency: Annotated[str, Field(max_length=3)] | None = None


class Order(_Content):
    kind: Literal["order"] = "order"
    catalog_id: _Short | None = None
    items: tuple[OrderItem, ...] = ()
    note: _Long | None = None


class AdReferral(_Content):
    """The ad or post the customer came from (click-to-chat)."""

    kind: Literal["referral"] = "referral"
    source_type: _Short | None = None
    source_id: _Short | None = None
    source_url: Annotated[str, Field(max_length=2048)] | None = None
    headline: _Short | None = None
    body: _Long | None = None


#: What an attachment holds beyond a file: one of the structured kinds above.
RichContent = Annotated[
    ContactCard | Location | ChosenReply | Media | Order | AdReferral, Field(discriminator="kind")
]


class Attachment(BaseModel):
    """A file (``url``) or a structured piece of content (``content``: a contact card, a location, ...)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    type: Annotated[str, Field(max_length=100)]
    url: Annotated[str, Field(max_length=2048)] = ""
    size: int | None = None
    name: str | None = None
    content: RichContent | None = None

    @model_serializer(mode="wrap")
    def _without_empty_content(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A plain file attachment serialises as it always did (no ``content: null``).
        data: dict[str, Any] = handler(self)
        if data.get("content") is None:
            data.pop("content", None)
        return data


#: ``reaction`` (an emoji on an earlier message, named in ``metadata["reaction_to"]``) and
#: ``system`` (the provider reports a changed number or identity) are recorded, never answered.
MessageKind = Literal["message", "call", "call_status", "transcription", "consent", "reaction", "system"]
#: A message a machine sent (RFC 3834): never answered automatically. ``bounce``: a delivery
#: failure report; ``auto_reply``: an out-of-office or other automatic answer;
#: ``auto_generated``: other machine-sent mail; ``list``: bulk or mailing-list mail.
AutomatedKind = Literal["bounce", "auto_reply", "auto_generated", "list"]
ConsentKeyword = Literal["opt_out", "opt_in", "help"]


class MessageReceived(_Event):
    """Detail of ``message.received``: one inbound message, in canonical form."""

    detail_type: Literal["message.received"] = names.MESSAGE_RECEIVED
    #: ``message`` for what the customer wrote; ``call``/``call_status``/``transcription`` for
    #: voice; ``consent`` for an opt-out/opt-in keyword, which changes consent instead of
    #: opening a conversation.
    kind: MessageKind = "message"
    #: Set when ``kind`` is ``consent``.
    keyword: ConsentKeyword | None = None
    channel: Channel
    provider: Annotated[str, Field(min_length=1, max_length=50)]
    provider_message_id: Annotated[str, Field(min_length=1, max_length=200)]
    #: The identity the channel proves sent the message (the phone, the web chat session, ...).
    sender: Identity
    #: Further identities the message carries (verified ones from a signed session, claimed ones).
    identities: tuple[Identity, ...] = ()
    display_name: Annotated[str, Field(max_length=200)] | None = None
    #: Our address the customer wrote to (number, page, mailbox, web chat session).
    recipient: Annotated[str, Field(max_length=320)] | None = None
    text: Annotated[str, Field(max_length=20_000)] = ""
    attachments: tuple[Attachment, ...] = ()
    #: When the provider says the message was sent; conversations are ordered by it.
    sent_at: AwareDatetime
    received_at: AwareDatetime
    #: A conversation the channel threaded the message into (e-mail In-Reply-To, reply token).
    #: Used only when it belongs to the customer the message resolves to.
    conversation_hint: str | None = None
    #: Channel-specific facts worth keeping: e-mail subject and SPF/DKIM/DMARC verdicts,
    #: call status and duration, the provider's message type, ...
    metadata: dict[str, str] = Field(default_factory=dict)
    #: Sent by a machine, decided by the channel: no acknowledgement, bot answer or survey.
    automated: AutomatedKind | None = None

    @property
    def message_key(self) -> str:
        """Natural idempotency key of the message: the provider's id within its channel."""
        return f"{self.channel}#{self.provider_message_id}"


class ProfileFacts(BaseModel):
    """The customer's profile as profile merge read it for the message (``version``: the
    profile's), carried on ``message.recorded`` so routing decides without reading it again."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    version: int = 0
    display_name: str | None = None
    language: str | None = None
    tags: list[str] = Field(default_factory=list)
    #: channel -> ``opted_in`` | ``opted_out``.
    consent: dict[str, str] = Field(default_factory=dict)


class AssistantFacts(BaseModel):
    """The assistant's small state of a conversation: what its next answer needs (the bot's
    answers in a row that did not help, the terms of the question it answered last)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    unhelpful: int = 0
    terms: list[str] = Field(default_factory=list)
    answers: int = 0


class ConversationFacts(BaseModel):
    """The conversation as profile merge's recording of the message left it: what routing
    decides on, carried on ``message.recorded`` so routing does not read it again.

    ``version`` is the conversation's version after the recording: routing writes its decision
    with the condition that the conversation is still at it (else it reads it again and
    decides on the current state). Small by design (an event is priced per 64 KB): the
    routing decision is the one kept with the conversation (without the assistant's answer,
    citations and usage)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    conversation_id: str
    customer_id: str
    version: Annotated[int, Field(ge=0)]
    status: str = "open"
    queue: str | None = None
    priority: int = 0
    queue_rank: str | None = None
    waiting_since: str | None = None
    assigned_agent: str | None = None
    channels: list[str] = Field(default_factory=list)
    last_inbound_channel: str | None = None
    last_inbound_at: str | None = None
    previous_conversation_id: str | None = None
    #: The latest routing decision (its answer, citations and usage left out).
    routing: RoutingDecision | None = None
    #: That decision was an answer citing knowledge-base articles.
    routing_cited: bool = False
    #: That decision's details (answer, citations, usage) are kept beside the conversation.
    routing_detailed: bool = False
    #: Number of the latest routed message, and whether its reply was left out.
    routed_seq: int | None = None
    routed_quiet: bool = False
    #: The message by which the customer closed the conversation the bot answered.
    closed_by: str | None = None
    resolved_at: str | None = None
    reopened_at: str | None = None
    #: When the customer was last acknowledged (seconds since the epoch).
    acknowledged_at: int | None = None
    #: The kind of automatic mail the conversation holds (no survey after its resolution).
    automated_mail: str | None = None
    #: The bot-resolution clock (set while the bot's answer waits for the customer).
    bot_answered_in: str | None = None
    bot_answered_at: str | None = None
    bot_last_inbound: str | None = None
    assistant: AssistantFacts | None = None
    #: An earlier layout's routing state (never on an event: its list grows): the messages
    #: routed, the decision before the latest, and whether the customer waited for it.
    routed_messages: list[str] = Field(default_factory=list)
    previous_routing: RoutingDecision | None = None
    routing_waited: bool = False


class MessageRecorded(_Event):
    """Detail of ``message.recorded``: profile merge put the message in a conversation."""

    detail_type: Literal["message.recorded"] = names.MESSAGE_RECORDED
    #: As on ``message.received``: routing decides on what customers say, not on call events.
    kind: MessageKind = "message"
    customer_id: str
    conversation_id: str
    message_id: str
    channel: Channel
    text: str = ""
    sent_at: AwareDatetime
    #: Where replies go: the identity the message came from.
    reply_to: Identity
    #: The conversation was opened by this message.
    new_conversation: bool = False
    #: The customer's previous message in this conversation came on another channel.
    channel_switch: bool = False
    #: The message may have reopened a resolved conversation (set whenever it joined one
    #: that was not the customer's open conversation; the KPI function checks).
    reopened: bool = False
    #: The message answers the survey asked after the conversation's resolution: it was
    #: recorded without reopening the conversation and is not routed.
    survey: Literal["ces", "csat"] | None = None
    survey_score: Annotated[int, Field(ge=1, le=7)] | None = None
    #: The inbound message this event stems from (default: ``message_id``); logged by every consumer.
    correlation_id: str | None = None
    #: As on ``message.received``: a machine sent it, routing answers nothing automatically.
    automated: AutomatedKind | None = None
    #: The message's number among the conversation's inbound messages (1, 2, ...): routing
    #: records the latest number it routed on the conversation, so a redelivery (or an
    #: earlier message arriving after a later one was routed) is not routed again. None when
    #: unknown (then routing falls back to the message's ``SEEN`` marker).
    sequence: Annotated[int, Field(ge=1)] | None = None
    #: The customer's profile facts routing decides on; absent on events published by an
    #: earlier version (routing then reads the profile).
    customer: ProfileFacts | None = None
    #: The conversation's facts and version after the message was recorded; absent on events
    #: published by an earlier version and on redeliveries that recorded nothing (routing then
    #: reads the conversation).
    conversation: ConversationFacts | None = None


class InboundFacts(BaseModel):
    """The customer's inbound message a reply answers."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    message_id: str
    channel: Channel
    sent_at: AwareDatetime

    @field_serializer("sent_at", when_used="json")
    def _serialise_sent_at(self, value: datetime) -> str:
        return format_timestamp(value)


class NotificationRequested(_Event):
    """Detail of ``notification.requested``: something should reach a customer.

    ``notification_id`` is the idempotency key: requesting the same id twice sends once.
    """

    detail_type: Literal["notification.requested"] = names.NOTIFICATION_REQUESTED
    notification_id: Annotated[str, Field(min_length=1, max_length=200)]
    customer_id: str
    kind: Literal["reply", "acknowledgement", "notification"]
    urgency: Literal["transactional", "marketing"] = "transactional"
    text: Annotated[str, Field(max_length=4096)] = ""
    template: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)
    conversation_id: str | None = None
    #: Channel and address to use; when absent notify chooses from the customer's preferences.
    channel: Channel | None = None
    to: Identity | None = None
    #: Who wrote it: ``bot``, ``agent:<id>`` or the requesting system.
    author: str = "bot"
    #: The first name the customer may see for an agent's reply (web chat: "you are now talking to Ines").
    author_name: Annotated[str, Field(max_length=100)] | None = None
    #: The survey this message asks (its answer is a score on the survey's scale).
    survey: Literal["ces", "csat"] | None = None
    #: Template language wanted (BCP 47, e.g. ``pt-BR``); default: the customer's, then the template's.
    language: Annotated[str, Field(max_length=35)] | None = None
    #: Cannot wait for the end of the customer's quiet hours (security alerts, one-time codes).
    urgent: bool = False
    #: E-mail subject for free text (templates bring their own).
    subject: Annotated[str, Field(max_length=300)] | None = None
    #: E-mail: the Message-ID of the customer's e-mail this answers (default: their latest one).
    in_reply_to: Annotated[str, Field(max_length=998)] | None = None
    #: The inbound message (or API request) that caused it; logged by every consumer.
    correlation_id: Annotated[str, Field(max_length=300)] | None = None
    #: A ``reply`` that may be the conversation's first response (the bot's first automated
    #: answer, an agent's reply in a conversation the bot never answered). Only these reach
    #: the KPI function, which keeps the first one.
    first_response: bool = False
    #: An ``acknowledgement`` of the conversation's first hand-over to a human queue (routing
    #: sets it unless its previous decision had handed over already). Only these reach the KPIs.
    first_handover: bool = False
    #: The knowledge-base articles a bot answer came from (recorded on the message).
    citations: list[Citation] = Field(default_factory=list)
    #: The assistant answered (a ``reply`` with citations) or handed over (an ``acknowledgement``
    #: with ``handover_reason``): these reach the KPIs too, with the model's usage (docs/kpis.md).
    assisted: bool = False
    handover_reason: Annotated[str, Field(max_length=60)] | None = None
    input_tokens: Annotated[int, Field(ge=0)] = 0
    output_tokens: Annotated[int, Field(ge=0)] = 0
    cost_usd: Annotated[float, Field(ge=0)] = 0.0
    #: A reply to the customer's message: that message (routing sets it), so notify knows the
    #: channel's service window and the e-mail to thread under without reading the conversation.
    answering: InboundFacts | None = None


EVENT_MODELS: dict[str, type[_Event]] = {
    names.MESSAGE_RECEIVED: MessageReceived,
    names.MESSAGE_RECORDED: MessageRecorded,
    names.NOTIFICATION_REQUESTED: NotificationRequested,
}


class AgentAssigned(_Event):
    """Detail of ``agent.assigned``: a conversation was handed to an agent.

    For a console or chat tool to tell the agent; ``handover_summary`` is the one-line
    context (the full hand-over is on the conversation). Idempotency key:
    ``(conversation_id, agent_id, assigned_at)``.
    """

    detail_type: Literal["agent.assigned"] = names.AGENT_ASSIGNED
    conversation_id: str
    customer_id: str
    agent_id: str
    queue: str
    intent: str | None = None
    priority: int = 0
    #: ``sticky`` (served this customer before), ``best_match``, ``transfer``, ``picked``.
    reason: str
    assigned_at: str
    handover_summary: str = ""
    correlation_id: str | None = None


class ConversationStalled(_Event):
    """Detail of ``conversation.stalled``: a customer has waited longer than the queue's SLA.

    ``wait_kind`` is ``agent`` (nobody took the conversation) or ``reply`` (the agent has
    not answered). Emitted once per wait: idempotency key ``(conversation_id, waiting_since)``.
    """

    detail_type: Literal["conversation.stalled"] = names.CONVERSATION_STALLED
    conversation_id: str
    customer_id: str
    queue: str
    wait_kind: Literal["agent", "reply"]
    waiting_since: str
    waited_seconds: int
    sla_seconds: int
    assigned_agent: str | None = None
    priority: int = 0
    detected_at: str
    correlation_id: str | None = None


EVENT_MODELS[names.AGENT_ASSIGNED] = AgentAssigned
EVENT_MODELS[names.CONVERSATION_STALLED] = ConversationStalled


class ConversationResolved(_Event):
    """Detail of ``conversation.resolved``: a conversation was resolved (by an agent or the bot).

    For the KPIs (``functions/kpi``). Idempotency key: ``(conversation_id, resolved_at)``.
    """

    detail_type: Literal["conversation.resolved"] = names.CONVERSATION_RESOLVED
    conversation_id: str
    customer_id: str
    #: The routing intent (``general`` when none was recognised).
    intent: str = "general"
    #: Channels the customer used in it, in order of first use.
    channels: tuple[str, ...] = ()
    channel_switches: int = 0
    opened_at: str
    resolved_at: str
    first_response_at: str | None = None
    #: ``bot`` or ``agent:<id>``.
    resolved_by: str
    #: A human was involved (asked for, or routed to a queue).
    escalated: bool = False
    #: How often it was reopened before this resolution.
    reopened: int = 0
    #: Language of the conversation (routing), for the CES question.
    language: str | None = None
    correlation_id: str | None = None


class ConversationReopened(_Event):
    """Detail of ``conversation.reopened``: the customer wrote again after a resolution.

    Idempotency key: ``(conversation_id, reopened_at)``.
    """

    detail_type: Literal["conversation.reopened"] = names.CONVERSATION_REOPENED
    conversation_id: str
    customer_id: str
    reopened_at: str
    resolved_at: str | None = None
    message_id: str | None = None
    correlation_id: str | None = None


EVENT_MODELS[names.CONVERSATION_RESOLVED] = ConversationResolved
EVENT_MODELS[names.CONVERSATION_REOPENED] = ConversationReopened


class DeliveryStatusChanged(_Event):
    """Detail of ``delivery.status_changed``: a provider's receipt for a message we sent.

    Published by the channel webhooks for every receipt of a delivery in the outbox
    (duplicates included: the consumer is monotonic, so a repeat or a late ``sent`` after
    ``delivered`` has no effect). ``notification_id`` is the outbound message's id in the
    conversation timeline.
    """

    detail_type: Literal["delivery.status_changed"] = names.DELIVERY_STATUS_CHANGED
    notification_id: Annotated[str, Field(min_length=1, max_length=200)]
    channel: Channel
    provider_message_id: Annotated[str, Field(min_length=1, max_length=300)]
    status: DeliveryStatus
    #: When the provider says it happened (ISO 8601, UTC).
    at: str
    error_code: Annotated[str, Field(max_length=100)] | None = None
    correlation_id: str | None = None
    #: The customer the message was for (from the delivery log), when known.
    customer_id: Annotated[str, Field(max_length=100)] | None = None
    #: An address the provider says cannot be reached (an e-mail bounce): recorded as
    #: undeliverable on the customer's profile.
    undeliverable: Identity | None = None


EVENT_MODELS[names.DELIVERY_STATUS_CHANGED] = DeliveryStatusChanged


class FeedbackSubmitted(_Event):
    """Detail of ``feedback.submitted``: a customer answered a survey through a signed link,
    or reacted to the assistant's answer (``helpful``: 1 it helped, 0 it did not; published by
    routing from the customer's next message, docs/assistant.md).

    Published by the public links endpoint (``shared/domain/links.py``) when a customer clicks a
    score in an e-mail or in the web chat; a survey answered by a plain reply is read
    from the message itself. Idempotency key: ``(conversation_id, survey)`` - the first
    answer counts, a second click changes nothing.
    """

    detail_type: Literal["feedback.submitted"] = names.FEEDBACK_SUBMITTED
    customer_id: Annotated[str, Field(min_length=1, max_length=100)]
    conversation_id: Annotated[str, Field(min_length=1, max_length=100)]
    survey: Literal["ces", "csat", "helpful"]
    #: CES 1-7 (7 = very easy), CSAT 1-5 (5 = very satisfied), helpful 0-1; checked against the
    #: survey's scale.
    score: Annotated[int, Field(ge=0, le=7)]
    #: The channel the survey was sent on (where the link was).
    channel: Channel
    answered_at: str
    correlation_id: str | None = None


EVENT_MODELS[names.FEEDBACK_SUBMITTED] = FeedbackSubmitted
