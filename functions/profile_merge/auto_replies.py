"""Automatic replies (out-of-office, vacation notices) become a note for the agent.

An auto-reply is no customer request: it opens no conversation, reopens none, creates no
customer and is never routed (so nothing answers it: RFC 3834). It is written as an
internal note on the conversation it answers - the one the channel threaded it into, else
the sender's open conversation - where the agent sees that the customer is away.
"""

from __future__ import annotations

import hashlib

from shared.contracts.events import MessageReceived, format_timestamp
from shared.contracts.models import Note
from shared.domain.identity import normalise
from shared.repositories.conversations import ConversationNotFound, ConversationRepository
from shared.repositories.customers import CustomerRepository

#: Notes are read by agents: the auto-reply's first part is enough.
MAX_NOTE_CHARS = 4000


def note_id_of(message: MessageReceived) -> str:
    """The same auto-reply always gives the same note (a redelivery writes it once)."""
    return "note_auto_" + hashlib.sha256(message.message_key.encode()).hexdigest()[:26]


def note_text(message: MessageReceived, sender: str) -> str:
    subject = message.metadata.get("subject")
    head = f"Automatic reply from {sender}" + (f' ("{subject}")' if subject else "") + ":"
    text = f"{head}\n{message.text}".strip()
    return text if len(text) <= MAX_NOTE_CHARS else text[: MAX_NOTE_CHARS - 1] + "…"


def note_auto_reply(
    customers: CustomerRepository, conversations: ConversationRepository, message: MessageReceived
) -> tuple[str | None, str | None]:
    """``(customer id, conversation id)`` the note was written to; ``None`` for the conversation
    when there is none to write it to (the auto-reply is then dropped)."""
    sender = normalise(message.sender)
    customer_id = customers.owner_of(sender) if sender.verified else None
    conversation_id: str | None = None
    hinted = conversations.state(message.conversation_hint) if message.conversation_hint else None
    if hinted is not None and hinted.status != "merged":
        reply_to = (hinted.reply_to or {}).get("value")
        # A hint is only a pointer: the conversation must be the sender's.
        if (customer_id and hinted.customer_id == customer_id) or reply_to == sender.value:
            customer_id = hinted.customer_id or None
            conversation_id = hinted.conversation_id or message.conversation_hint
    if conversation_id is None and customer_id:
        conversation_id = (customers.get_profile(customer_id) or {}).get("open_conversation_id")
    if not conversation_id:
        return customer_id, None
    note = Note(
        note_id=note_id_of(message),
        author=f"{message.channel}:auto-reply",
        text=note_text(message, sender.value),
        at=format_timestamp(message.sent_at),
    )
    try:
        conversations.add_note(conversation_id, note)
    except ConversationNotFound:
        return customer_id, None
    return customer_id, conversation_id
