"""The hand-over context stays under 1 KB (one write unit): its copies of messages are cut to fit."""

from __future__ import annotations

from typing import Literal

from shared.contracts.models import Customer, Handover, Message, RoutingDecision
from shared.domain.handover import FITTED_TEXT, LAST_MESSAGES, MAX_SIZE, build_handover, fit, size_of
from tests.helpers.dynamo_size import WRITE_UNIT, item_size

NOW = "2026-12-07T10:00:00.000000Z"


def decision() -> RoutingDecision:
    return RoutingDecision(
        queue="billing",
        intent="billing",
        reason="the customer asked for a person; intent 'billing' goes to the billing queue",
        automated=False,
        message_id="sms#SM1",
        decided_at=NOW,
        escalated=True,
        priority=2,
        priority_reasons=["negative words"],
    )


def message(i: int, direction: Literal["inbound", "outbound"], text: str) -> Message:
    return Message(
        message_id=f"m-{i}",
        direction=direction,
        channel="sms",
        text=text,
        timestamp=f"2026-12-07T09:{i:02d}:00.000000Z",
        author="bot" if direction == "outbound" else "customer",
    )


def build(messages: list[Message]) -> Handover:
    customer = Customer.model_validate(
        {"customer_id": "cus_1", "display_name": "Ana Example", "identities": [], "created_at": NOW}
    )
    return build_handover("cus_1", customer, {}, messages, decision(), "vip", None, NOW)


def test_a_long_conversation_is_cut_to_the_newest_messages_and_stays_under_the_limit() -> None:
    long = "my invoice is wrong again, " * 20  # 540 characters
    messages = [
        message(i, "inbound" if i % 2 == 0 else "outbound", f"{i}: {long}") for i in range(2 * LAST_MESSAGES)
    ]
    handover = build(messages)
    assert size_of(handover) <= MAX_SIZE
    key = {"pk": "CONV#conv_01m974sr4jwdt2kp7awzfm910v", "sk": "HANDOVER"}
    assert item_size({**key, **handover.model_dump(exclude_none=True)}) < WRITE_UNIT
    kept = handover.last_messages
    # The newest message is kept (cut), older ones go first.
    assert kept[-1].text.startswith(f"{2 * LAST_MESSAGES - 1}: ")
    assert all(len(m.text) <= FITTED_TEXT for m in kept)
    assert handover.bot_answers
    assert handover.bot_answers[-1].startswith(f"{2 * LAST_MESSAGES - 1}: ")


def test_a_short_conversation_is_kept_whole() -> None:
    messages = [
        message(0, "inbound", "What are your opening hours?"),
        message(1, "outbound", "We are open Monday to Friday, 8:00-20:00."),
        message(2, "inbound", "I want to talk to a person about my invoice"),
    ]
    handover = build(messages)
    assert [m.text for m in handover.last_messages] == [m.text for m in messages]
    assert handover.bot_answers == ["We are open Monday to Friday, 8:00-20:00."]
    assert fit(handover) is handover


def test_the_size_is_the_stored_item_size() -> None:
    """``size_of`` is DynamoDB's item size (names + values) without the key, or a little more."""
    handover = build([message(0, "inbound", "ünïcödé " * 30), message(1, "outbound", "ok")])
    stored = item_size(handover.model_dump(exclude_none=True))
    assert stored <= size_of(handover) <= stored + 10
    key = {"pk": "CONV#conv_01m974sr4jwdt2kp7awzfm910v", "sk": "HANDOVER"}
    assert item_size(key) + MAX_SIZE < WRITE_UNIT
