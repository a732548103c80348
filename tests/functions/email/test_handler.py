"""The e-mail function under moto: SES Lambda-action events, the raw mail in S3, the bus.

Each test stores a fixture .eml where the receipt rule's S3 action would (bucket of
``INBOUND_EMAIL_BUCKET``, key ``INBOUND_EMAIL_PREFIX`` + SES message id) and invokes
the handler with the documented SES event (``fixtures/email/ses_lambda_event.json``).
What the function published is read from the profile-merge queue the bus rule feeds.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from functions.email import handler as email_handler
from functions.email.handler import handler
from functions.profile_merge.handler import handler as profile_merge
from shared.contracts.events import Identity
from shared.platform.bus import PublishError
from shared.repositories.conversations import ConversationRepository
from shared.repositories.customers import CustomerRepository
from shared.repositories.outbox import OutboxRepository
from tests.helpers import FIXTURES as SHARED_FIXTURES
from tests.helpers import context, sqs_event
from tests.helpers.email import PREFIX, SES_SENT_ID, bucket, published, receive, ses_event
from topology import TOPOLOGY

FIXTURES = SHARED_FIXTURES / "email"
TOKEN = "conv_01m88xwbstv2gb0cpyxfmw27cw"


def only_detail(stack: dict[Any, str]) -> dict[str, Any]:
    [event] = published(stack)
    assert event["source"] == "omni.email"
    assert event["detail-type"] == "message.received"
    return event["detail"]


# --------------------------------------------------------------------------- #
def test_plain_mail_is_published_as_a_verified_email_message(stack: dict[Any, str]) -> None:
    result = receive(stack, "plain.eml", "plain0000000000000000000000000000000001")
    assert result == {
        "results": [
            {
                "ses_message_id": "plain0000000000000000000000000000000001",
                "status": "published",
                "conversation_hint": None,
            }
        ]
    }
    detail = only_detail(stack)
    assert detail["channel"] == "email"
    assert detail["provider"] == "ses"
    assert detail["provider_message_id"] == "plain0000000000000000000000000000000001"
    assert detail["sender"] == {"type": "email", "value": "ana.lima@example.com", "verified": True}
    assert detail["display_name"] == "Ana Lima"
    assert detail["recipient"] == "support@shop.example"
    assert detail["text"].startswith("Hello,\n\nmy invoice 2026-118")
    assert detail["sent_at"] == "2026-11-25T07:00:02.028000Z"  # mail.timestamp
    assert detail["metadata"]["subject"] == "My invoice is wrong"
    assert detail["metadata"]["dmarc"] == "PASS"
    assert (
        detail["metadata"]["raw"] == f"s3://{bucket(stack)}/{PREFIX}plain0000000000000000000000000000000001"
    )


def test_html_only_mail_publishes_its_text(stack: dict[Any, str]) -> None:
    receive(stack, "html_only.eml", "html00000000000000000000000000000000001")
    detail = only_detail(stack)
    assert detail["text"].startswith("Hallo Team,\n\nmeine Bestellung ist nicht angekommen.")
    assert "never shown" not in detail["text"]
    assert "Ihre Bestellung wurde versandt" not in detail["text"]  # the quoted history
    assert detail["metadata"]["body_format"] == "html"


def test_attachments_point_at_their_part_of_the_raw_mail(stack: dict[Any, str]) -> None:
    receive(stack, "multipart_attachment.eml", "multi0000000000000000000000000000000001")
    detail = only_detail(stack)
    raw = f"s3://{bucket(stack)}/{PREFIX}multi0000000000000000000000000000000001"
    assert detail["attachments"] == [
        {"type": "image/png", "url": f"{raw}#part-4", "size": 70, "name": "photo.png"},
        {"type": "application/pdf", "url": f"{raw}#part-5", "size": 45, "name": "Lieferschein März.pdf"},
    ]
    assert detail["text"] == "The vase arrived broken, see the photo and the delivery note."


@pytest.mark.parametrize(
    "stored_id",
    [SES_SENT_ID, f"{SES_SENT_ID}@email.amazonses.com", f"<{SES_SENT_ID}@email.amazonses.com>"],
)
def test_reply_is_threaded_into_the_conversation_of_the_mail_we_sent(
    stack: dict[Any, str], stored_id: str
) -> None:
    outbox = OutboxRepository()
    outbox.start(
        {
            "notification_id": "ntf_shipped",
            "created_at": "2026-11-24T09:00:00.000000Z",
            "conversation_id": "conv_X",
            "channel": "email",
        }
    )
    outbox.mark("ntf_shipped", "sent", "2026-11-24T09:00:01.000000Z", provider_message_id=stored_id)
    result = receive(stack, "reply_in_reply_to.eml", "reply0000000000000000000000000000000001")
    assert result["results"][0]["conversation_hint"] == "conv_X"
    detail = only_detail(stack)
    assert detail["conversation_hint"] == "conv_X"
    assert detail["metadata"]["threaded_by"] == "in-reply-to"
    assert detail["text"] == 'It has not arrived yet, the tracking page says "label created".'


def test_a_reply_to_a_message_we_did_not_send_is_not_threaded(stack: dict[Any, str]) -> None:
    receive(stack, "reply_in_reply_to.eml", "reply0000000000000000000000000000000002")
    detail = only_detail(stack)
    assert detail["conversation_hint"] is None
    assert "threaded_by" not in detail["metadata"]


def test_plus_address_token_threads_the_reply(stack: dict[Any, str]) -> None:
    result = receive(
        stack,
        "plus_token.eml",
        "token0000000000000000000000000000000001",
        recipients=[f"support+{TOKEN}@shop.example"],
    )
    assert result["results"][0]["conversation_hint"] == TOKEN
    detail = only_detail(stack)
    assert detail["conversation_hint"] == TOKEN
    assert detail["metadata"]["threaded_by"] == "reply-token"
    assert detail["recipient"] == "support@shop.example"


def test_dmarc_failing_sender_is_not_a_verified_identity(stack: dict[Any, str]) -> None:
    receive(
        stack,
        "dmarc_fail.eml",
        "dmarc0000000000000000000000000000000001",
        verdicts={"spf": "FAIL", "dkim": "FAIL", "dmarc": "FAIL"},
        dmarc_policy="reject",
    )
    detail = only_detail(stack)
    assert detail["sender"] == {"type": "email", "value": "security@bank.example", "verified": False}
    assert detail["metadata"]["dmarc"] == "FAIL"
    assert detail["metadata"]["dmarc_policy"] == "reject"


def test_the_same_ses_message_twice_is_recorded_once_downstream(stack: dict[Any, str]) -> None:
    ses_id = "dup00000000000000000000000000000000001"
    receive(stack, "plain.eml", ses_id)
    handler(ses_event(ses_id), context("email"))  # Lambda's asynchronous retry of the same event
    events = published(stack)
    assert len(events) == 2
    first, second = (e["detail"] for e in events)
    assert {k: v for k, v in first.items() if k != "received_at"} == {
        k: v for k, v in second.items() if k != "received_at"
    }
    batch = sqs_event([json.dumps(event) for event in events], queue="profile-merge")
    assert profile_merge(batch, context("profile-merge"))["batchItemFailures"] == []
    customer_id = CustomerRepository().owner_of(Identity(type="email", value="ana.lima@example.com"))
    assert customer_id is not None
    conversation_id = CustomerRepository().get_profile(customer_id)["open_conversation_id"]
    messages = ConversationRepository().messages(conversation_id)
    assert [(m.message_id, m.channel) for m in messages] == [(f"email#{ses_id}", "email")]


# --------------------------------------------------------------------------- #
# Failures: permanent ones are logged and skipped, transient ones raised for Lambda's retries
# --------------------------------------------------------------------------- #
def test_unparseable_mail_is_logged_and_skipped(
    stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    logged: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(email_handler.logger, "error", lambda msg, extra: logged.append((msg, extra)))
    result = receive(stack, "malformed.eml", "bad00000000000000000000000000000000001")
    [outcome] = result["results"]
    assert (outcome["status"], outcome["error"]) == ("skipped", "UnparseableEmail")
    assert published(stack) == []
    [(_, extra)] = logged
    assert extra["error"] == "UnparseableEmail"
    assert extra["ses_message_id"] == "bad00000000000000000000000000000000001"
    assert extra["reason"] == "the raw mail has no header section"


def test_missing_raw_mail_is_logged_and_skipped(stack: dict[Any, str]) -> None:
    result = handler(ses_event("gone0000000000000000000000000000000001"), context("email"))
    [outcome] = result["results"]
    assert (outcome["status"], outcome["error"]) == ("skipped", "RawMailMissing")
    assert published(stack) == []


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"Records": []},
        {"Records": [{"eventSource": "aws:sqs", "body": "{}"}]},
        {"Records": [{"eventSource": "aws:ses", "ses": {"mail": {"messageId": "../../etc"}}}]},
    ],
)
def test_an_event_that_is_not_from_ses_is_logged_and_skipped(stack: dict[Any, str], event: Any) -> None:
    [outcome] = handler(event, context("email"))["results"]
    assert (outcome["status"], outcome["error"]) == ("skipped", "InvalidSesEvent")
    assert published(stack) == []


def test_s3_errors_other_than_a_missing_object_are_raised_for_a_retry(stack: dict[Any, str]) -> None:
    boto3.client("s3").delete_bucket(Bucket=bucket(stack))
    with pytest.raises(ClientError) as raised:
        handler(ses_event("nobucket000000000000000000000000000001"), context("email"))
    assert raised.value.response["Error"]["Code"] == "NoSuchBucket"


def test_a_failed_publish_is_raised_for_a_retry(
    stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(events: Any) -> None:
        raise PublishError([{"ErrorCode": "ThrottlingException"}])

    monkeypatch.setattr(email_handler.publisher, "publish", refuse)
    with pytest.raises(PublishError):
        receive(stack, "plain.eml", "throttled000000000000000000000000000001")


def test_a_failing_delivery_log_does_not_lose_the_mail(
    stack: dict[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(provider_message_id: str) -> str | None:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "Query")

    monkeypatch.setattr(email_handler.threads.outbox, "notification_for_provider_id", unavailable)
    result = receive(stack, "reply_in_reply_to.eml", "slowlog0000000000000000000000000000001")
    assert result["results"][0]["status"] == "published"
    assert only_detail(stack)["conversation_hint"] is None


def test_an_s3_action_event_names_the_object(stack: dict[Any, str]) -> None:
    boto3.client("s3").put_object(
        Bucket=bucket(stack), Key="elsewhere/mail-1", Body=(FIXTURES / "plain.eml").read_bytes()
    )
    event = ses_event("s3action00000000000000000000000000001")
    event["Records"][0]["ses"]["receipt"]["action"] = {
        "type": "S3",
        "topicArn": "arn:aws:sns:us-east-1:123456789012:example-topic",
        "bucketName": bucket(stack),
        "objectKey": "elsewhere/mail-1",
    }
    assert handler(event, context("email"))["results"][0]["status"] == "published"
    assert only_detail(stack)["metadata"]["raw"] == f"s3://{bucket(stack)}/elsewhere/mail-1"


def test_the_prefix_the_function_reads_is_the_one_the_receipt_rule_writes() -> None:
    fn = TOPOLOGY.function("email")
    assert fn.email is not None
    assert fn.environment[email_handler.PREFIX_ENV] == fn.email.prefix
    assert TOPOLOGY.bucket(fn.email.bucket).env_var == email_handler.BUCKET_ENV
