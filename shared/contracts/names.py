"""Names the functions use at run time: the project, the event source prefix, the bus's detail types.

Part of the topology (``topology/`` re-exports every name here and builds the rules
from them); kept in a module of its own so that a function can name an event without
loading the whole declaration at cold start. Schemas of the events: ``shared/contracts/events.py``.
Environment variable names: ``shared/platform/settings.py``.
"""

from __future__ import annotations

from typing import Final

PROJECT: Final = "omni"
EVENT_SOURCE_PREFIX: Final = "omni."

# Detail types of the events on the bus (their schemas live in shared/contracts/events.py).
MESSAGE_RECEIVED: Final = "message.received"
MESSAGE_RECORDED: Final = "message.recorded"
NOTIFICATION_REQUESTED: Final = "notification.requested"
#: A provider's delivery receipt for a message we sent (published by the channel webhooks).
DELIVERY_STATUS_CHANGED: Final = "delivery.status_changed"
AGENT_ASSIGNED: Final = "agent.assigned"
CONVERSATION_STALLED: Final = "conversation.stalled"
CONVERSATION_RESOLVED: Final = "conversation.resolved"
CONVERSATION_REOPENED: Final = "conversation.reopened"
#: A customer answered a survey (CES or CSAT) through a signed link (e-mail, web chat).
FEEDBACK_SUBMITTED: Final = "feedback.submitted"
#: Behaviour events the company systems publish (source ``omni.<system>``; functions/proactive/events.py).
ORDER_STATUS_CHECKED: Final = "order.status_checked"
PAGE_VIEWED: Final = "page.viewed"
BEHAVIOUR_EVENTS = (ORDER_STATUS_CHECKED, PAGE_VIEWED)
#: Events the KPI function counts (see docs/kpis.md).
KPI_EVENTS = (
    MESSAGE_RECORDED,
    NOTIFICATION_REQUESTED,
    AGENT_ASSIGNED,
    CONVERSATION_STALLED,
    CONVERSATION_RESOLVED,
    CONVERSATION_REOPENED,
    FEEDBACK_SUBMITTED,
)
