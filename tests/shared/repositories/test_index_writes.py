"""The conversations table's index writes are at their floor: a further message of a conversation
that stays where it is writes no index entry (its queue rank, its wait and its customer key are
not rewritten, not even with the same values), and only a move to another queue rewrites the
two queue indexes' keys. Index writes are counted the way DynamoDB bills them (the benchmark's
meter: a changed key is a delete and a put, entering or leaving a sparse index or a changed
projected attribute one write, the same values none).
"""

from __future__ import annotations

from typing import Any

import boto3

from bench.meter import Meter, TableSchema
from shared.repositories.conversations import conversation_pk
from shared.repositories.dynamo import serialise
from tests.helpers.agents import add_agent, conv, conversation_of
from tests.helpers.pipeline import open_session, run_pipeline, say


def index_meter(table: str) -> Meter:
    described = boto3.client("dynamodb").describe_table(TableName=table)["Table"]
    meter = Meter("http://127.0.0.1:1", "us-east-1")  # never called: the schema is given
    meter._schemas[table] = TableSchema(
        tuple(k["AttributeName"] for k in described["KeySchema"]),
        {
            g["IndexName"]: (
                tuple(k["AttributeName"] for k in g["KeySchema"]),
                g["Projection"]["ProjectionType"],
                tuple(g["Projection"].get("NonKeyAttributes") or ()),
            )
            for g in described["GlobalSecondaryIndexes"]
        },
    )
    return meter


def test_a_further_message_writes_no_index_entry_and_a_move_rewrites_only_the_queue_keys(
    stack: dict[Any, str],
) -> None:
    table = stack[("table", "conversations")]
    meter = index_meter(table)
    client = boto3.client("dynamodb")
    session = open_session()
    conversation_id = ""

    def meta() -> dict[str, Any]:
        key = serialise({"pk": conversation_pk(conversation_id), "sk": "META"})
        return dict(client.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"])

    def message(n: int, text: str) -> list[tuple[str, str, str]]:
        """Send one message through the pipeline; the index writes its META changes cost."""
        before = meta() if conversation_id else None
        say(session, f"m-{n}", text)
        run_pipeline(stack)
        after = meta()
        assert before != after  # META did change (counters, timestamps, the decision)
        return [(w.index, w.cause, w.attributes) for w in meter._gsi_writes(table, before, after)]

    say(session, "m-0", "I want to talk to a person about my invoice")
    run_pipeline(stack)
    conversation_id = conversation_of(session)
    # Queued in billing (no agent has the skill), waiting for an agent.
    assert meta()["queued_in"] == {"S": "billing"}

    assert message(1, "and one more thing about the invoice, please hurry") == []
    assert message(2, "are you there? it is about the invoice") == []
    # A new topic moves it to another queue: the two queue indexes' keys change (a delete and a
    # put each, as DynamoDB bills a changed key); the customer index is left alone.
    moved = message(3, "Actually I want to cancel my contract")
    assert sorted((index, cause) for index, cause, _ in moved) == [
        ("queued", "key changed"),
        ("waiting", "key changed"),
    ], moved
    assert meta()["queued_in"] == {"S": "retention"}

    # With an agent: assigned and accepted, the customer waits for the agent's reply. Further
    # messages while that wait is open write no index entry (the wait keeps its start).
    add_agent("rita", {"retention": 5})
    assert conv("POST", "accept", conversation_id, "rita")[0] == 200
    message(4, "hello? still waiting")
    assert meta()["wait_kind"] == {"S": "reply"}
    assert message(5, "hello again, still waiting for an answer") == []
