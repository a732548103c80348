"""Names the functions use at run time: the project, the event source prefix, the bus's detail types.

Part of the topology (``topology/`` re-exports every name here and builds the rules
from them); kept in a module of its own so that a function can name an event without
loading the whole declaration at cold start. Schemas of the events: ``shared/contracts/events.py``.
"""

from __future__ import annotations

PROJECT = "omni"
EVENT_SOURCE_PREFIX = "omni."

# Detail types of the events on the bus (their schemas live in shared/contracts/events.py).
MESSAGE_RECEIVED = "message.received"
MESSAGE_RECORDED = "message.recorded"
NOTIFICATION_REQUESTED = "notification.requested"
#: A provider's delivery receipt for a message we sent (published by the channel webhooks).
DELIVERY_STATUS_CHANGED = "delivery.status_changed"
AGENT_ASSIGNED = "agent.assigned"
CONVERSATION_STALLED = "conversation.stalled"
CONVERSATION_RESOLVED = "conversation.resolved"
CONVERSATION_REOPENED = "conversation.reopened"
#: A customer answered a survey (CES or CSAT) through a signed link (e-mail, web chat).
FEEDBACK_SUBMITTED = "feedback.submitted"
#: Behaviour events the company systems publish (source ``omni.<system>``; functions/proactive/events.py).
ORDER_STATUS_CHECKED = "order.status_checked"
PAGE_VIEWED = "page.viewed"
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

#: Environment variable that holds the web chat WebSocket API's management endpoint
#: (``topology`` sets it from the same constant; a test checks the two agree).
WEBCHAT_WEBSOCKET_ENDPOINT_ENV = "WEBCHAT_WEBSOCKET_ENDPOINT"
