"""The conversation's hot items stay under 1 KB (one write unit each): META, rewritten with every
message, and the hand-over context, put with every new hand-over. What the agent API shows of
the conversation (the routing decision with its reason, the hand-over context) is unchanged."""

from __future__ import annotations

from typing import Any

import boto3

from tests.helpers.agents import call, conversation_of
from tests.helpers.dynamo_size import WRITE_UNIT, item_size
from tests.helpers.pipeline import open_session, run_pipeline, say

LONG = "my invoice is wrong, I was charged twice and nobody explains why, " * 6


def items(stack: dict[Any, str], conversation_id: str) -> dict[str, dict[str, Any]]:
    table = boto3.resource("dynamodb").Table(stack[("table", "conversations")])
    key = {"pk": f"CONV#{conversation_id}"}
    return {sk: table.get_item(Key={**key, "sk": sk}).get("Item") or {} for sk in ("META", "HANDOVER")}


def test_meta_and_the_handover_stay_under_one_write_unit_after_typical_routed_messages(
    stack: dict[Any, str],
) -> None:
    session = open_session()
    sizes: list[tuple[str, int, int]] = []
    for i, text in enumerate(
        (
            "What are your opening hours?",
            "Hi, my invoice is wrong, I was charged twice",
            LONG,
            "Where is my parcel? The tracking has not moved",
            "Can I talk to a person please",
        )
    ):
        say(session, f"m-{i}", text)
        run_pipeline(stack)
        found = items(stack, conversation_of(session))
        sizes.append((text[:20], item_size(found["META"]), item_size(found["HANDOVER"])))
    assert all(meta < WRITE_UNIT and handover < WRITE_UNIT for _, meta, handover in sizes), sizes
    meta = items(stack, conversation_of(session))["META"]
    assert "queued_at" not in meta  # ``waiting_since`` says it
    # The agent API still shows the decision with its reason, and the hand-over context.
    status, conversation = call("GET", f"/conversations/{conversation_of(session)}", "agent-x")
    assert status == 200, conversation
    assert conversation["routing"]["reason"]
    assert conversation["routing"]["message_id"].endswith("m-4")
    handover = conversation["handover"]
    assert handover["bot_answers"]
    assert handover["summary"]
    assert handover["last_messages"][-1]["text"] == "Can I talk to a person please"
