"""The conversation's META item stays under one write unit (1,024 bytes, as the benchmark's meter
counts them) in every state that carries the index attributes: answered by the bot
(``bot-answered``), queued and waiting with a VIP's priority (``queued``, ``waiting``), stalled
and overflowed (the SLA sweep), assigned, accepted and waiting for the agent's reply, stalled
again. The assistant's decision and state (``routing``, ``assistant``) are left out of the sum:
they move off META separately.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3

from bench.meter import attribute_sizes, item_size
from functions.sla_sweep.sweep import sweep
from shared.repositories.agents import AgentRepository
from shared.repositories.conversations import ConversationRepository, conversation_pk
from shared.repositories.customers import CustomerRepository
from shared.repositories.dynamo import serialise
from shared.services.desk import Desk
from tests.helpers.agents import add_agent, conv, conversation_of
from tests.helpers.pipeline import open_session, run_pipeline, say, verified_ana

WRITE_UNIT = 1024
#: The assistant's part of META (its decision with answer and citations, its state).
ASSISTANT = ("routing", "assistant")
#: An agent id as Cognito issues them (a UUID): the longest value META copies of an agent.
AGENT = "3f6c1d2e-8a4b-4c7d-9e0f-1a2b3c4d5e6f"


def raw_meta(stack: dict[Any, str], conversation_id: str) -> dict[str, Any]:
    key = serialise({"pk": conversation_pk(conversation_id), "sk": "META"})
    table = stack[("table", "conversations")]
    return dict(boto3.client("dynamodb").get_item(TableName=table, Key=key, ConsistentRead=True)["Item"])


def size_without_assistant(meta: dict[str, Any]) -> int:
    return item_size({k: v for k, v in meta.items() if k not in ASSISTANT})


def test_meta_stays_under_one_write_unit_in_every_state_with_index_attributes(stack: dict[Any, str]) -> None:
    customers = CustomerRepository()
    conversations = ConversationRepository(customers=customers)
    desk = Desk(conversations, AgentRepository(), customers)
    published: list[Any] = []
    sizes: dict[str, tuple[int, dict[str, int]]] = {}

    def measure(state: str, *present: str) -> None:
        meta = raw_meta(stack, conversation_id)
        assert set(present) <= set(meta), (state, sorted(meta))
        sizes[state] = (size_without_assistant(meta), attribute_sizes(meta))

    session = open_session(verified_ana())
    say(session, "m-0", "What are your opening hours?")
    run_pipeline(stack)
    conversation_id = conversation_of(session)
    measure("answered by the bot", "bot_answered_in", "bot_answered_at", "bot_last_inbound")

    # Angry (a higher priority) and asking for a person about the invoice: billing, no agent has it.
    say(session, "m-1", "This is unacceptable, I am furious: I want to talk to a person about my invoice")
    run_pipeline(stack)
    measure("queued", "queued_in", "queue_rank", "wait_queue", "waiting_since", "wait_kind")

    now = datetime.now(UTC)
    sweep(conversations, desk, published.extend, now + timedelta(minutes=11))  # billing's SLA: 10 min
    measure("queued and stalled", "stalled_for", "stalled_at")
    sweep(conversations, desk, published.extend, now + timedelta(minutes=21))  # overflow after 20 min
    measure("overflowed", "overflowed_from", "stalled_for", "queued_in")

    add_agent(AGENT, {"general": 5})
    sweep(conversations, desk, published.extend, now + timedelta(minutes=22))
    measure("assigned", "assigned_agent", "assigned_at", "wait_queue")
    assert conv("POST", "accept", conversation_id, AGENT)[0] == 200
    measure("accepted")
    say(session, "m-2", "Hello? I am still waiting for an answer about the invoice, this is ridiculous")
    run_pipeline(stack)
    measure("waiting for the agent's reply", "wait_queue", "waiting_since", "wait_kind", "accepted_at")
    sweep(conversations, desk, published.extend, now + timedelta(hours=2))  # the reply SLA: 30 min
    measure("reply stalled", "stalled_for", "stalled_at", "accepted_at")

    report = {
        state: (size, sorted((n, a) for a, n in attrs.items() if a not in ASSISTANT)[-3:])
        for state, (size, attrs) in sizes.items()
    }
    assert all(size < WRITE_UNIT for size, _ in sizes.values()), report
    # Not only under the unit: room for longer customer and conversation ids, names of queues.
    assert max(size for size, _ in sizes.values()) < WRITE_UNIT - 128, report
