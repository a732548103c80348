"""The writes of recording a message and routing it, crash between them and all.

The message's ``SEEN`` item is claimed on its own before the message and its META update are
written (in one transaction), and a new hand-over context is put before the routing decision's
META update. A crash between the two writes is repaired by the redelivery: the message is
recorded once (where the claim points, under the claimed key), counted once, routed once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import botocore.client
import pytest

from shared.contracts.events import Identity
from shared.repositories.conversation_keys import conversation_pk
from shared.repositories.conversations import ConversationNotFound, ConversationRepository
from shared.repositories.customers import PROFILE, customer_pk
from shared.repositories.dynamo import serialise
from tests.helpers.agents import conversation_of
from tests.helpers.pipeline import drain, open_session, run_pipeline, say

PHONE = Identity(type="phone", value="+4915112345678", verified=True)


class Crash(Exception):
    """The function's container died here."""


@contextmanager
def crash_on(operation: str, times: int = 1) -> Iterator[list[str]]:
    """Raise :class:`Crash` instead of the next ``times`` DynamoDB ``operation`` calls."""
    crashed: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def call(client: Any, name: str, params: dict[str, Any]) -> Any:
        if name == operation and len(crashed) < times:
            crashed.append(name)
            raise Crash(name)
        return original(client, name, params)

    botocore.client.BaseClient._make_api_call = call  # type: ignore[method-assign]
    try:
        yield crashed
    finally:
        botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign]


def opened(repository: ConversationRepository) -> None:
    customers = repository.customers
    customers.table.client.put_item(
        TableName=customers.table.name,
        Item=serialise({"pk": customer_pk("cust-1"), "sk": PROFILE, "customer_id": "cust-1"}),
    )
    assert repository.open_for("cust-1", "conv-1", "2026-11-25T10:00:00.000Z", "sms")


def messages(repository: ConversationRepository) -> list[dict[str, Any]]:
    return [
        i
        for i in repository.table.query_all(
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": conversation_pk("conv-1")}},
        )
        if str(i["sk"]).startswith("MSG#")
    ]


def test_a_crash_between_the_claim_and_the_message_is_repaired_by_the_redelivery(
    stack: dict[Any, str],
) -> None:
    repository = ConversationRepository()
    opened(repository)
    with crash_on("TransactWriteItems"), pytest.raises(Crash):
        repository.append_inbound("conv-1", "sms#SM1", "sms", "hello", "2026-11-25T10:00:01.000Z", PHONE)
    assert repository.seen("sms#SM1") is not None  # claimed, not written
    assert messages(repository) == []

    # The provider's retry gets another timestamp (an SMS carries none): written as claimed.
    recorded = repository.append_inbound(
        "conv-1", "sms#SM1", "sms", "hello", "2026-11-25T10:00:07.000Z", PHONE
    )
    assert (recorded.written, recorded.conversation_id, recorded.sequence) == (True, "conv-1", 1)
    again = repository.append_inbound("conv-1", "sms#SM1", "sms", "hello", "2026-11-25T10:00:09.000Z", PHONE)
    assert (again.written, again.conversation_id, again.sequence) == (False, "conv-1", 1)

    [message] = messages(repository)
    assert message["sk"] == "MSG#2026-11-25T10:00:01.000Z#sms#SM1"
    assert message["timestamp"] == "2026-11-25T10:00:01.000Z"
    meta = repository.get_meta("conv-1") or {}
    assert (meta["message_count"], meta["in_seq"]) == (1, 1)


def test_a_message_claimed_for_another_conversation_goes_there(stack: dict[Any, str]) -> None:
    """The claim says where the message was meant to go: a redelivery that would now put it in
    another conversation (the first was resolved and a new one opened meanwhile) does not
    record it twice."""
    repository = ConversationRepository()
    opened(repository)
    repository.table.client.put_item(
        TableName=repository.table.name,
        Item=serialise(
            {
                "pk": conversation_pk("conv-2"),
                "sk": "META",
                "conversation_id": "conv-2",
                "customer_id": "cust-1",
                "status": "open",
                "opened_at": "2026-11-25T11:00:00.000Z",
                "version": 0,
                "message_count": 0,
                "channels": [],
            }
        ),
    )
    with crash_on("TransactWriteItems"), pytest.raises(Crash):
        repository.append_inbound("conv-1", "sms#SM2", "sms", "hi", "2026-11-25T10:00:01.000Z", PHONE)
    recorded = repository.append_inbound("conv-2", "sms#SM2", "sms", "hi", "2026-11-25T11:00:01.000Z", PHONE)
    assert (recorded.written, recorded.conversation_id) == (True, "conv-1")
    assert len(messages(repository)) == 1
    assert (repository.get_meta("conv-2") or {})["message_count"] == 0


def test_a_crash_after_the_hand_over_context_before_the_decision_routes_once(stack: dict[Any, str]) -> None:
    session = open_session()  # no agent has the skill: the conversation stays queued
    say(session, "m-1", "I want to talk to a person about my invoice")
    drain(stack, "profile-merge")
    sqs = boto3.client("sqs")
    url = stack[("queue", "routing")]
    [event] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    sqs.delete_message(QueueUrl=url, ReceiptHandle=event["ReceiptHandle"])
    sqs.send_message(QueueUrl=url, MessageBody=event["Body"])
    # The hand-over goes to the queue with the transition and its history item (a transaction).
    with crash_on("TransactWriteItems") as crashed:
        result = drain(stack, "routing")
    assert crashed
    assert len(result["batchItemFailures"]) == 1
    conversation_id = conversation_of(session)
    assert (ConversationRepository().get_meta(conversation_id) or {})["status"] == "open"
    assert ConversationRepository().get_handover(conversation_id) is not None  # put before the crash

    sqs.send_message(QueueUrl=url, MessageBody=event["Body"])  # SQS delivers it again
    run_pipeline(stack)
    conversation = ConversationRepository().get(conversation_id)
    assert conversation is not None
    assert [t.to_status for t in conversation.transitions] == ["open", "queued"]
    assert conversation.handover is not None
    assert conversation.handover.queue == "billing"
    assert [m.direction for m in conversation.messages] == ["inbound", "outbound"]  # one acknowledgement


def test_a_claim_for_a_conversation_that_is_not_there_is_given_up(stack: dict[Any, str]) -> None:
    """Else the message would later pass for an erased person's (its claim pointing nowhere)."""
    repository = ConversationRepository()
    with pytest.raises(ConversationNotFound):
        repository.append_inbound("conv-gone", "sms#SM3", "sms", "hi", "2026-11-25T10:00:01.000Z", PHONE)
    assert repository.seen("sms#SM3") is None
    assert not repository.merger().recorded_in_erased("sms#SM3")
