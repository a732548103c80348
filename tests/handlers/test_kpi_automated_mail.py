"""No survey after the resolution of a conversation whose last message was automatic mail."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import boto3
import pytest

from shared.repositories.conversations import ConversationRepository
from shared.repositories.dynamo import serialise
from tests.handlers.test_kpi_handler import (
    DAY,
    asked,
    conversation,
    deliver,
    drain_kpi_queue,
    message,
    resolve_meta,
    resolved,
)


@pytest.mark.parametrize(("automated", "questions"), [(None, 1), ("list", 0)])
def test_no_survey_for_a_conversation_of_automatic_mail(
    stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch, automated: str | None, questions: int
) -> None:
    monkeypatch.setenv("OMNI_CES_DELAY_S", "0")
    conversation("c-auto", "cus-auto", DAY)
    resolve_meta("c-auto", DAY + timedelta(minutes=1))
    if automated:  # as routing leaves it after routing a newsletter
        boto3.client("dynamodb").update_item(
            TableName=ConversationRepository().table.name,
            Key=serialise({"pk": "CONV#c-auto", "sk": "META"}),
            UpdateExpression="SET automated_mail = :a",
            ExpressionAttributeValues=serialise({":a": automated}),
        )
    deliver(
        message("c-auto", "cus-auto", DAY, new=True),
        resolved("c-auto", "cus-auto", DAY, DAY + timedelta(minutes=1)),
    )
    drain_kpi_queue(stack)
    assert len(asked(stack)) == questions
