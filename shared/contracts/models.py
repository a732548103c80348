"""Read models: what the agent API and the functions see of customers and conversations."""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.contact import ContactChoices

#: Validators are built on first use, not at import (cold start): see bench/coldstart.py.
_DEFERRED = ConfigDict(defer_build=True)


class CustomerIdentity(BaseModel):
    model_config = _DEFERRED

    type: str
    value: str
    verified: bool
    added_at: str
    #: The channel on which we first saw it.
    source: str | None = None
    #: For a claimed identity another customer owns (verified): that customer, a possible match.
    possible_match: str | None = None
    #: The address cannot be reached (an e-mail bounce): ``{at, reason}``.
    undeliverable: dict[str, str] | None = None


class Consent(BaseModel):
    model_config = _DEFERRED

    status: Literal["opted_in", "opted_out"]
    at: str
    #: What changed it: ``sms:STOP``, ``email:unsubscribe``, ``agent:<id>``, ...
    source: str


class AttributeValue(BaseModel):
    """One profile attribute: merges keep the newer value per attribute, and where it came from."""

    model_config = _DEFERRED

    value: Any
    at: str
    #: ``sms``, ``webchat``, ``agent:<id>``, ``merge:<merge id>`` ...
    source: str


class MergeSummary(BaseModel):
    model_config = _DEFERRED

    merge_id: str
    role: Literal["survivor", "merged"]
    other_customer_id: str
    at: str
    #: ``agent:<id>`` or the message that linked the two (``sms#SM...``).
    cause: str
    status: Literal["merged", "unmerged"] = "merged"
    unmerged_at: str | None = None


class AttributeChange(BaseModel):
    """What a merge changed on the survivor (``before`` absent = it had no value)."""

    model_config = _DEFERRED

    field: str
    before: Any = None
    after: Any = None


class MergeRecord(BaseModel):
    """The audit record of one merge; ``POST /customers/{id}/unmerge`` reverses it."""

    model_config = _DEFERRED

    merge_id: str
    survivor_id: str
    merged_id: str
    at: str
    cause: str
    #: The verified identities of the message that linked the profiles (empty for an agent's merge).
    linking_identities: list[str] = Field(default_factory=list)
    #: Identities that moved to the survivor (``type:value``).
    identities: list[str] = Field(default_factory=list)
    changes: list[AttributeChange] = Field(default_factory=list)
    #: Conversations of the merged profile now listed under the survivor.
    conversations: list[str] = Field(default_factory=list)
    #: ``{"source": ..., "target": ...}`` when two open conversations became one thread.
    thread: dict[str, str] | None = None
    status: Literal["merged", "unmerged"] = "merged"
    unmerged_at: str | None = None
    unmerged_by: str | None = None


class Customer(BaseModel):
    model_config = _DEFERRED

    customer_id: str
    display_name: str | None = None
    created_at: str
    identities: list[CustomerIdentity] = Field(default_factory=list)
    open_conversation_id: str | None = None
    #: Consent per channel; a channel missing here has no recorded choice.
    consent: dict[str, Consent] = Field(default_factory=dict)
    #: ``active``; ``merged`` for a profile merged into ``merged_into`` (read through it).
    status: Literal["active", "merged", "erased"] = "active"
    updated_at: str | None = None
    language: str | None = None
    timezone: str | None = None
    tags: list[str] = Field(default_factory=list)
    #: Channels in the order the customer prefers to be reached on (as in ``contact``).
    channel_preferences: list[str] = Field(default_factory=list)
    #: Every contact choice (channels and mode, language, time zone, quiet hours, consent)
    #: as notify applies it, with when the latest was made (docs: README, "Notifications").
    contact: ContactChoices = Field(default_factory=ContactChoices)
    #: Every attribute (name, language, timezone, channel_preferences, custom ones) with its source.
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    #: Latest contact per channel: the send time of the customer's first message of the latest
    #: day (or conversation) on that channel.
    last_seen: dict[str, str] = Field(default_factory=dict)
    #: Contacts in the last 7 / 30 days: conversations the customer opened or reopened, and each
    #: further day they wrote on a channel (not every message: the profile is written per contact).
    contacts_7d: int = 0
    contacts_30d: int = 0
    #: Merges this profile took part in, newest first (survivor or merged-away side).
    merges: list[MergeSummary] = Field(default_factory=list)
    merged_into: str | None = None
    #: What the provider reported about the customer's identity, latest per kind
    #: (``user_changed_number``: ``{at, message_id, from, to}``; ``customer_identity_changed``:
    #: ``{at, message_id, from, identity_hash}``) - the audit of a WhatsApp number change.
    identity_changes: dict[str, dict[str, str]] = Field(default_factory=dict)
    #: The id that was asked for when it had been merged into this customer.
    redirected_from: str | None = None
    #: In a look-up by identity: how this customer holds it - ``verified`` (proven, the owner)
    #: or ``claimed`` (e.g. the profile of unauthenticated mail from that address).
    verification: Literal["verified", "claimed"] | None = None


class Citation(BaseModel):
    """A knowledge-base article a bot answer came from (docs/assistant.md)."""

    model_config = _DEFERRED

    article_id: str
    title: str


class Message(BaseModel):
    model_config = _DEFERRED

    message_id: str
    direction: Literal["inbound", "outbound"]
    channel: str
    text: str
    #: Provider timestamp for inbound messages, our send time for outbound ones (ISO 8601, UTC).
    timestamp: str
    author: str | None = None
    status: str | None = None
    attachments: list[dict[str, Any]] = Field(default_factory=list)
    #: The articles a bot answer came from (the assistant's answers only).
    citations: list[Citation] = Field(default_factory=list)
    #: The customer's reaction to this message (an emoji), if any.
    reaction: str | None = None


class ChannelSwitch(BaseModel):
    model_config = _DEFERRED

    from_channel: str
    to_channel: str
    at: str
    message_id: str


#: Why a decision hands the conversation to a person (the KPIs' hand-overs by reason):
#: ``asked_for_person`` the customer asked for one; ``intent`` the intent's rule sends it to a
#: human queue; ``no_bot_answer`` the bot's look-up had no answer (no order found, no order
#: look-up); ``not_understood`` no intent recognised (the default queue).
#: Why routing handed a conversation to a person: its own rules' reasons, then the assistant's
#: (shared/domain/assistant.py). Counted per reason by the KPI function (docs/kpis.md).
HandoverReason = Literal[
    "asked_for_person",
    "intent",
    "no_bot_answer",
    "not_understood",
    "escalation_rule",
    "sensitive_topic",
    "unhelpful_answers",
    "low_confidence",
    "not_answerable",
    "assistant_error",
]


class RoutingDecision(BaseModel):
    model_config = _DEFERRED

    queue: str
    intent: str
    reason: str
    automated: bool
    message_id: str
    decided_at: str
    #: Language the customer wrote in (answers use it).
    language: str = "en"
    #: 0 (normal) to 9; higher is served first.
    priority: int = 0
    priority_reasons: list[str] = Field(default_factory=list)
    #: The customer asked for a person.
    escalated: bool = False
    #: What the bot answered (automated decisions), kept so a redelivery sends the same text.
    answer: str | None = None
    #: Version of the routing rules that decided.
    rules_version: int | None = None
    #: Why a person gets it (decisions that are not automated).
    handover_reason: HandoverReason | None = None
    #: The assistant (docs/assistant.md): the articles its answer cites, why it handed over,
    #: how sure it was, and what the answer cost (tokens, USD).
    citations: list[Citation] = Field(default_factory=list)
    confidence: float | None = None
    assistant_model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    #: The customer's reaction to the assistant's previous answer: ``helpful`` or ``unhelpful``.
    assistant_feedback: str | None = None


class Transition(BaseModel):
    """One change of a conversation's status: who, when, why."""

    model_config = _DEFERRED

    at: str
    from_status: str
    to_status: str
    #: ``routing``, ``agent:<id>``, ``sla-sweep``, ``customer``.
    by: str
    reason: str
    queue: str | None = None
    agent_id: str | None = None


class Note(BaseModel):
    """An internal note on a conversation: agents see it, the customer never does."""

    model_config = _DEFERRED

    note_id: str
    author: str
    text: str
    at: str


class HandoverMessage(BaseModel):
    model_config = _DEFERRED

    channel: str
    direction: str
    author: str | None = None
    text: str
    timestamp: str


class Handover(BaseModel):
    """What an agent needs to continue without asking again, attached at escalation."""

    model_config = _DEFERRED

    summary: str
    customer_id: str
    display_name: str | None = None
    vip: bool = False
    tags: list[str] = Field(default_factory=list)
    #: ``type:value`` of every identity on the profile.
    identities: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)
    intent: str
    queue: str
    priority: int = 0
    priority_reasons: list[str] = Field(default_factory=list)
    #: What the bot already told the customer (automated answers, acknowledgements).
    bot_answers: list[str] = Field(default_factory=list)
    #: The latest messages across every channel, oldest first.
    last_messages: list[HandoverMessage] = Field(default_factory=list)
    previous_conversation_id: str | None = None
    created_at: str
    #: The assistant handed over: why, what was asked and answered, and the articles it cited.
    handover_reason: str | None = None
    assistant_summary: str | None = None
    citations: list[Citation] = Field(default_factory=list)


class ConversationSummary(BaseModel):
    model_config = _DEFERRED

    conversation_id: str
    customer_id: str
    status: str
    opened_at: str
    last_message_at: str | None = None
    last_channel: str | None = None
    channels: list[str] = Field(default_factory=list)
    message_count: int = 0
    routing: RoutingDecision | None = None
    #: The queue it is in (or was handed over from); the agent it is assigned to.
    queue: str | None = None
    priority: int = 0
    assigned_agent: str | None = None
    #: Since when the customer waits for us (an agent, or the agent's reply), if they do.
    waiting_since: str | None = None
    wait_kind: Literal["agent", "reply"] | None = None
    resolved_at: str | None = None
    #: The conversation this one follows (a new one after the reopen window).
    previous_conversation_id: str | None = None


class SurveyAnswer(BaseModel):
    """The customer's answer to the survey asked after the resolution (docs/kpis.md)."""

    model_config = _DEFERRED

    score: int
    answered_at: str
    #: ``reply`` (a message; ``message_id``) or ``link`` (a score link in an e-mail or web chat).
    via: Literal["reply", "link"] = "reply"
    message_id: str | None = None


class Conversation(ConversationSummary):
    messages: list[Message] = Field(default_factory=list)
    channel_switches: list[ChannelSwitch] = Field(default_factory=list)
    #: Where replies go: the identity of the customer's latest inbound message.
    reply_to: dict[str, Any] | None = None
    handover: Handover | None = None
    transitions: list[Transition] = Field(default_factory=list)
    notes: list[Note] = Field(default_factory=list)
    resolution: str | None = None
    #: Customer Effort Score answer (1-7), CSAT answer (1-5).
    ces: SurveyAnswer | None = None
    csat: SurveyAnswer | None = None
