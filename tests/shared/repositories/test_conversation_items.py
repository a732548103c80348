"""The conversations table's item layout, under moto: a small META item, the history,
channel switches and hand-over in their own items, the routed marker, and indexes that
project only what their readers use.
"""

from __future__ import annotations

from typing import Any

import boto3

from bench.meter import item_size
from shared.contracts.events import Identity
from shared.repositories.conversations import ConversationRepository, conversation_pk
from shared.repositories.customers import PROFILE, customer_pk
from shared.repositories.dynamo import serialise
from shared.services.desk import resolved_event
from tests.helpers.agents import add_agent, conv, conversation_of
from tests.helpers.pipeline import drain, open_session, run_pipeline, say, verified_ana
from topology import TOPOLOGY

#: Attributes that grow with the conversation or are large: never on META.
NOT_ON_META = ("transitions", "channel_switches", "handover", "routed_messages", "previous_routing")


def raw_meta(stack: dict[Any, str], conversation_id: str) -> dict[str, Any]:
    client = boto3.client("dynamodb")
    key = serialise({"pk": conversation_pk(conversation_id), "sk": "META"})
    table = stack[("table", "conversations")]
    return dict(client.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"])


def test_meta_stays_small_while_the_conversation_grows_and_the_api_shows_the_same_journey(
    stack: dict[Any, str],
) -> None:
    add_agent("ana", {"billing": 5})
    session = open_session(verified_ana())
    say(session, "m-0", "What are your opening hours?")
    run_pipeline(stack)
    say(session, "m-1", "I want to talk to a person about my invoice")
    run_pipeline(stack)
    conversation_id = conversation_of(session)
    assert conv("POST", "accept", conversation_id, "ana")[0] == 200
    early = raw_meta(stack, conversation_id)
    for n in range(2, 8):
        say(session, f"m-{n}", f"and one more thing about the invoice, number {n}")
        run_pipeline(stack)
    meta = raw_meta(stack, conversation_id)

    assert item_size(meta) < 1024, item_size(meta)
    # Six more messages add nothing that grows: the size is the same to within the counters.
    assert abs(item_size(meta) - item_size(early)) <= 4
    assert not set(NOT_ON_META) & set(meta)

    status, conversation = conv("GET", "", conversation_id, "ana")
    assert status == 200
    assert [(t["from_status"], t["to_status"], t["by"]) for t in conversation["transitions"]] == [
        ("new", "open", "customer"),
        ("open", "bot", "routing"),
        ("bot", "queued", "routing"),
        ("queued", "assigned", "routing"),
        ("assigned", "active", "agent:ana"),
    ]
    assert conversation["handover"]["intent"] == "billing"
    assert conversation["handover"]["bot_answers"][0].startswith("We are open")
    assert conversation["message_count"] == 10  # 8 from the customer, the bot's answer, an acknowledgement
    assert conversation["routing"]["message_id"].endswith("m-1")

    # The routed marker sits on META, written in the same update as the decision: the number
    # of the latest routed message (m-1, the customer's second; the agent has the later ones)
    # and no reply left out. The SEEN items are written once (the claim of the message id);
    # the message items carry their number.
    repository = ConversationRepository()
    stored = repository.get_meta(conversation_id) or {}
    assert (stored["routed_seq"], stored["in_seq"]) == (2, 8)
    assert "routed_quiet" not in stored
    inbound = [m for m in conversation["messages"] if m["direction"] == "inbound"]
    for number, message in enumerate(inbound, start=1):
        seen = repository.seen(message["message_id"]) or {}
        assert set(seen) == {"pk", "sk", "conversation_id", "message_sk"}
        stored_message = repository.table.get(
            {"pk": conversation_pk(conversation_id), "sk": seen["message_sk"]}
        )
        assert (stored_message or {})["seq"] == number


def test_channel_switches_and_reopenings_are_items_read_back_in_order_and_counted_on_meta(
    stack: dict[Any, str],
) -> None:
    repository = ConversationRepository()
    customers = repository.customers
    customers.table.client.put_item(
        TableName=customers.table.name,
        Item=serialise({"pk": customer_pk("cust-1"), "sk": PROFILE, "customer_id": "cust-1"}),
    )
    now = "2026-11-25T10:00:00.000Z"
    assert repository.open_for("cust-1", "conv-1", now, "webchat", reopen_window_hours=72)
    phone = Identity(type="phone", value="+4915112345678", verified=True)
    written = [
        ("w-1", "webchat", "2026-11-25T10:00:01.000Z"),
        ("s-1", "sms", "2026-11-25T10:00:02.000Z"),
        ("s-2", "sms", "2026-11-25T10:00:03.000Z"),
        ("w-2", "webchat", "2026-11-25T10:00:04.000Z"),
    ]
    for message_id, channel, at in written:
        assert repository.append_inbound("conv-1", message_id, channel, "hello", at, phone).written
    # A redelivery (even with another timestamp) records nothing and switches nothing.
    assert not repository.append_inbound(
        "conv-1", "s-1", "sms", "hello", "2026-11-25T10:00:09.000Z", phone
    ).written

    conversation = repository.get("conv-1")
    assert conversation is not None
    assert [(s.from_channel, s.to_channel, s.message_id) for s in conversation.channel_switches] == [
        ("webchat", "sms", "s-1"),
        ("sms", "webchat", "w-2"),
    ]
    assert conversation.message_count == 4
    meta = repository.get_meta("conv-1") or {}
    assert meta["switch_count"] == 2
    assert not set(NOT_ON_META) & set(meta)

    # Resolved while a message was on its way: it reopens, once, and the history says so.
    repository.table.client.update_item(
        TableName=repository.table.name,
        Key=serialise({"pk": conversation_pk("conv-1"), "sk": "META"}),
        UpdateExpression="SET #s = :r, resolved_at = :at",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues=serialise({":r": "resolved", ":at": "2026-11-25T10:00:05.000Z"}),
    )
    assert repository.append_inbound(
        "conv-1", "w-3", "webchat", "still there?", "2026-11-25T10:00:06.000Z", phone
    ).written
    reopened = repository.get("conv-1")
    assert reopened is not None
    assert reopened.status == "open"
    assert [(t.from_status, t.to_status) for t in reopened.transitions] == [
        ("new", "open"),
        ("resolved", "open"),
    ]
    meta = repository.get_meta("conv-1") or {}
    _, event = resolved_event(meta, "2026-11-25T11:00:00.000Z", "agent:ana")
    assert (event.reopened, event.channel_switches) == (1, 2)  # type: ignore[attr-defined]


def test_items_written_by_the_earlier_layout_still_read_back(stack: dict[Any, str]) -> None:
    """A META item that still holds the lists (written before they moved to their own items)."""
    repository = ConversationRepository()
    legacy = {
        "pk": conversation_pk("conv-old"),
        "sk": "META",
        "conversation_id": "conv-old",
        "customer_id": "cust-old",
        "status": "resolved",
        "opened_at": "2026-11-01T10:00:00.000Z",
        "version": 4,
        "message_count": 2,
        "channels": ["webchat", "sms"],
        "transitions": [
            {
                "at": "2026-11-01T10:00:00.000Z",
                "from_status": "new",
                "to_status": "open",
                "by": "customer",
                "reason": "x",
            },
            {
                "at": "2026-11-02T10:00:00.000Z",
                "from_status": "resolved",
                "to_status": "open",
                "by": "customer",
                "reason": "y",
            },
        ],
        "channel_switches": [
            {
                "from_channel": "webchat",
                "to_channel": "sms",
                "at": "2026-11-01T10:01:00.000Z",
                "message_id": "s",
            }
        ],
        "handover": {
            "summary": "An unnamed customer wrote on sms about billing.",
            "customer_id": "cust-old",
            "intent": "billing",
            "queue": "billing",
            "created_at": "2026-11-01T10:02:00.000Z",
        },
        "routed_messages": ["s"],
    }
    repository.table.client.put_item(TableName=repository.table.name, Item=serialise(legacy))
    conversation = repository.get("conv-old")
    assert conversation is not None
    assert [t.to_status for t in conversation.transitions] == ["open", "open"]
    assert [s.to_channel for s in conversation.channel_switches] == ["sms"]
    assert conversation.handover is not None
    assert conversation.handover.intent == "billing"
    assert (repository.get_handover("conv-old") or {}).get("queue") == "billing"
    _, event = resolved_event(legacy, "2026-11-03T10:00:00.000Z", "agent:ana")
    assert (event.reopened, event.channel_switches) == (1, 1)  # type: ignore[attr-defined]


def test_indexes_project_only_what_their_readers_use(stack: dict[Any, str]) -> None:
    # No agent has the skill: the conversation stays queued.
    session = open_session(verified_ana())
    say(session, "m-1", "I want to talk to a person about my invoice")
    run_pipeline(stack)
    conversation_id = conversation_of(session)
    client = boto3.client("dynamodb")
    table_name = stack[("table", "conversations")]
    described = {
        g["IndexName"]: g["Projection"]
        for g in client.describe_table(TableName=table_name)["Table"]["GlobalSecondaryIndexes"]
    }
    [table] = [t for t in TOPOLOGY.tables if t.name == "conversations"]
    for gsi in table.gsis:
        assert gsi.projection != "ALL", gsi.name  # META is rewritten on every hop: never copied whole
        expected: dict[str, Any] = {"ProjectionType": gsi.projection}
        if gsi.non_key_attributes:
            expected["NonKeyAttributes"] = list(gsi.non_key_attributes)
        assert described[gsi.name] == expected

    repository = ConversationRepository()
    [head] = repository.queued("billing", full=False)
    assert set(head) == {"pk", "sk", "queued_in", "queue_rank", "conversation_id"}
    [full] = repository.queued("billing")
    assert (full["conversation_id"], full["status"], full["message_count"]) == (conversation_id, "queued", 2)
    [waiting] = repository.waiting_since_before("billing", "9999")
    assert waiting["wait_kind"] == "agent"
    assert waiting["status"] == "queued"
    assert "message_count" not in waiting
    assert "routing" not in waiting
    [summary] = repository.list_for_customer(full["customer_id"])
    assert (summary.conversation_id, summary.message_count, summary.queue) == (conversation_id, 2, "billing")
    assert (repository.latest_for_customer(full["customer_id"]) or {}).get("version") == full["version"]


def test_a_redelivered_routing_asks_for_the_same_reply_or_none(stack: dict[Any, str]) -> None:
    """The second message to the same queue is not acknowledged, not even when redelivered."""
    session = open_session()  # no agent has the skill: the conversation stays queued
    say(session, "m-1", "I want to talk to a person about my invoice")
    drain(stack, "profile-merge")
    sqs = boto3.client("sqs")
    url = stack[("queue", "routing")]
    [first] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    sqs.send_message(QueueUrl=url, MessageBody=first["Body"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    run_pipeline(stack)
    say(session, "m-2", "my invoice is still wrong, a person please")
    drain(stack, "profile-merge")
    [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    sqs.send_message(QueueUrl=url, MessageBody=message["Body"])
    sqs.send_message(QueueUrl=url, MessageBody=message["Body"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    while drain(stack, "routing")["count"]:
        pass
    assert drain(stack, "notify")["count"] == 0  # nothing to say: not even twice

    conversation_id = conversation_of(session)
    status, conversation = conv("GET", "", conversation_id, "ana")
    assert status == 200
    assert [m["direction"] for m in conversation["messages"]] == ["inbound", "outbound", "inbound"]
    assert [t["to_status"] for t in conversation["transitions"]] == ["open", "queued"]
    # The marker on META: the second message was routed, its reply left out.
    meta = ConversationRepository().get_meta(conversation_id) or {}
    assert (meta["routed_seq"], meta["routed_quiet"]) == (2, True)

    # The first message was acknowledged once; redelivered now (after the second was routed),
    # it asks for nothing and changes nothing.
    versions = meta["version"]
    sqs.send_message(QueueUrl=url, MessageBody=first["Body"])
    assert drain(stack, "routing")["count"] == 1
    assert drain(stack, "notify")["count"] == 0
    again = ConversationRepository().get_meta(conversation_id) or {}
    assert (again["version"], again["message_count"]) == (versions, 3)
