"""What a message reads does not grow with the conversation: its 2nd message and its 502nd read the same.

Two web chat customers write about an invoice (handed over to the billing queue); one of the
conversations then holds 500 more messages. The next message of each goes through profile
merge and routing (and notify's facts of each conversation are read), every DynamoDB read
counted: items read and read units (from item sizes, DynamoDB's rules) are equal.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.client
import pytest

from bench.meter import item_size, read_units
from functions.notify.facts import conversation_facts
from functions.profile_merge.handler import handler as profile_merge
from functions.routing.handler import handler as routing
from functions.webchat.handler import handler as webchat
from shared.repositories.conversation_keys import conversation_pk, message_sk
from shared.repositories.conversations import ConversationRepository
from shared.repositories.dynamo import serialise
from tests.helpers import context, deliver_one_batch, http_event

LONG = 500


@contextmanager
def counting_reads() -> Iterator[Counter[str]]:
    """Items read and read units of every DynamoDB read made meanwhile, by operation."""
    counted: Counter[str] = Counter()
    original = botocore.client.BaseClient._make_api_call

    def call(client: Any, operation: str, params: dict[str, Any]) -> Any:
        response = original(client, operation, params)
        if client.meta.service_model.service_name != "dynamodb":
            return response
        for action in params.get("TransactItems", [params] if "Item" in params or "Key" in params else []):
            for body in action.values() if "TransactItems" in params else [action]:
                key = body.get("Key") or body.get("Item") or {}
                if operation != "GetItem" and "sk" in key:
                    counted[f"write {key['sk']['S'].split('#')[0]}"] += 1
        consistent = bool(params.get("ConsistentRead"))
        items: list[dict[str, Any]] = []
        if operation == "GetItem" and "Item" in response:
            items = [response["Item"]]
        elif operation == "Query":
            items = response.get("Items", [])
            counted["scanned"] += response.get("ScannedCount", len(items))
            counted["rru"] += read_units(sum(item_size(i) for i in items), consistent)
            counted["items"] += len(items)
            return response
        elif operation == "BatchGetItem":
            items = [i for found in response.get("Responses", {}).values() for i in found]
        counted["items"] += len(items)
        counted["rru"] += sum(read_units(item_size(i), consistent) for i in items)
        return response

    botocore.client.BaseClient._make_api_call = call  # type: ignore[method-assign]
    try:
        yield counted
    finally:
        botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign]


def open_session() -> dict[str, Any]:
    response = webchat(http_event("POST", "/webchat/sessions", body={}), context("webchat"))
    assert response["statusCode"] == 201, response
    return json.loads(response["body"])


def say(session: dict[str, Any], message_id: str, text: str) -> None:
    response = webchat(
        http_event(
            "POST",
            "/webchat/sessions/{session_id}/messages",
            path_parameters={"session_id": session["session_id"]},
            body={"message_id": message_id, "text": text, "sent_at": datetime.now(UTC).isoformat()},
            headers={"authorization": f"Bearer {session['token']}"},
        ),
        context("webchat"),
    )
    assert response["statusCode"] == 202, response


def route(stack: dict[Any, str]) -> None:
    for queue, handler in (("profile-merge", profile_merge), ("routing", routing)):
        assert deliver_one_batch(stack[("queue", queue)], queue, handler) == 1
    # The acknowledgements of the first messages are not this test's subject.
    sqs = boto3.client("sqs")
    url = stack[("queue", "notify")]
    for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def conversation_of(session: dict[str, Any]) -> str:
    table = boto3.resource("dynamodb").Table(ConversationRepository().table.name)
    metas = [i for i in table.scan()["Items"] if i["sk"] == "META"]
    messages = [i for i in table.scan()["Items"] if str(i["sk"]).startswith("MSG#")]
    ids = {str(m["pk"]).removeprefix("CONV#") for m in messages if session["session_id"] in str(m)}
    [found] = [str(m["conversation_id"]) for m in metas if m["conversation_id"] in ids]
    return found


def lengthen(conversation_id: str, count: int) -> None:
    """``count`` earlier messages in the conversation (state for this test, not a journey)."""
    repository = ConversationRepository()
    start = datetime.now(UTC) - timedelta(days=1)
    items = []
    for n in range(count):
        at = (start + timedelta(seconds=n)).isoformat()
        items.append(
            {
                "pk": conversation_pk(conversation_id),
                "sk": message_sk(at, f"old-{n}"),
                "message_id": f"old-{n}",
                "direction": "inbound" if n % 2 else "outbound",
                "channel": "webchat",
                "text": f"an earlier message of this long conversation, number {n}",
                "timestamp": at,
                "author": "customer" if n % 2 else "agent",
            }
        )
    client = repository.table.client
    for chunk in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": serialise(i)}} for i in items[chunk : chunk + 25]]
        client.batch_write_item(RequestItems={repository.table.name: requests})


@pytest.mark.usefixtures("stack")
def test_reads_per_message_do_not_grow_with_the_conversation(stack: dict[Any, str]) -> None:
    short, long = open_session(), open_session()
    say(short, "s-1", "My invoice is wrong")
    with counting_reads() as first:
        route(stack)
    assert first["write HANDOVER"] == 1  # handed over: the context is written once
    say(long, "l-1", "My invoice is wrong")
    route(stack)
    long_id = conversation_of(long)
    lengthen(long_id, LONG)

    say(short, "s-2", "My invoice is still wrong")
    with counting_reads() as at_length_1:
        route(stack)
    say(long, "l-2", "My invoice is still wrong")
    with counting_reads() as at_length_500:
        route(stack)
    assert at_length_1["items"] > 0
    assert at_length_500 == at_length_1
    # Already waiting in the billing queue: the hand-over context is neither rebuilt nor rewritten.
    assert at_length_1["write HANDOVER"] == 0
    assert at_length_1["write MSG"] == 1

    repository = ConversationRepository()
    with counting_reads() as notify_short:
        assert conversation_facts(conversation_of(short), repository) is not None
    with counting_reads() as notify_long:
        facts = conversation_facts(long_id, repository)
    assert facts is not None
    assert facts.last_inbound_channel == "webchat"
    # Notify reads the latest messages (at most RECENT_MESSAGES), never the whole conversation.
    assert notify_long["items"] <= 1 + 50
    assert notify_long["rru"] <= 2 * notify_short["rru"] + 4
