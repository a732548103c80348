"""SES receiving, emulated (omni.local.email), and the buckets the local runtime provisions."""

from __future__ import annotations

import argparse
import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.email.models import SesEvent
from omni.local import email as ses
from omni.local.http import LocalRequest
from omni.local.invoker import InvocationResult, Invoker
from omni.local.provision import bucket_name, provision
from omni.send import email as send_email
from tests.helpers import FIXTURES as SHARED_FIXTURES
from topology import (
    BUS,
    TOPOLOGY,
    Bucket,
    EmailReceiving,
    Function,
    Grant,
    Topology,
)

FIXTURES = SHARED_FIXTURES / "email"
DOCUMENTED = json.loads((FIXTURES / "ses_lambda_event.json").read_text())["Records"][0]
PLAIN = (FIXTURES / "plain.eml").read_bytes()
MULTI = (FIXTURES / "multipart_attachment.eml").read_bytes()

INBOX = Function(
    name="inbox",
    handler="tests.omni.local.nothing.handler",
    source_dir="tests/local",
    description="receives e-mail",
    email=EmailReceiving(bucket="mail", prefix="in/"),
    grants=(Grant("bucket", "mail", "read"),),
)
TOPO = Topology(
    bus=BUS,
    tables=(),
    queues=(),
    rules=(),
    secrets=(),
    functions=(INBOX,),
    buckets=(Bucket(name="mail", expire_after_days=7),),
)


class FakeInvoker:
    """Stands in for the runtime's invoker: records events, fails the first ``failures`` calls."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def invoke(self, fn: Function, event: Any) -> InvocationResult:
        with self._lock:
            self.events.append(event)
            failed = len(self.events) <= self.failures
        if failed:
            return InvocationResult(fn.name, "req", ok=False, error_type="RuntimeError", error_message="boom")
        return InvocationResult(fn.name, "req", ok=True, value={"results": []})


@pytest.fixture
def aws() -> Iterator[boto3.Session]:
    with mock_aws():
        yield boto3.Session(region_name="us-east-1")


def receiving(session: boto3.Session, invoker: Any, topology: Topology = TOPO) -> ses.SesReceiving:
    provisioned = provision(topology, session, stage="t")
    return ses.SesReceiving(
        topology,
        provisioned.physical,
        s3=session.client("s3"),
        invoker=invoker,
        region="us-east-1",
        account_id="123456789012",
        stage="t",
        retry_delay_s=0,
    )


def settle(receiver: ses.SesReceiving, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while receiver.pending:
        assert time.monotonic() < deadline, "deliveries still pending"
        time.sleep(0.01)


# --------------------------------------------------------------------------- #
# Buckets
# --------------------------------------------------------------------------- #
def test_provision_creates_private_encrypted_expiring_buckets_idempotently(aws: boto3.Session) -> None:
    first = provision(TOPO, aws, stage="Dev_1")
    again = provision(TOPO, aws, stage="Dev_1")
    name = first.physical[("bucket", "mail")]
    assert name == again.physical[("bucket", "mail")] == "omni-dev-1-mail-123456789012"
    s3 = aws.client("s3")
    assert s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    [rule] = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    [lifecycle] = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
    assert (lifecycle["Status"], lifecycle["Expiration"]["Days"]) == ("Enabled", 7)
    assert first.as_json()["bucket:mail"] == name


def test_bucket_names_are_valid_s3_names() -> None:
    assert bucket_name("prod", "inbound-email", "123456789012") == "omni-prod-inbound-email-123456789012"
    assert bucket_name("EU_Prod", "x", "1") == "omni-eu-prod-x-1"
    with pytest.raises(ValueError, match="not a valid S3 bucket name"):
        bucket_name("a" * 23, "a-very-long-bucket-name-indeed", "123456789012")


# --------------------------------------------------------------------------- #
# The S3 action and the Lambda action's event
# --------------------------------------------------------------------------- #
def test_a_received_mail_is_stored_and_delivered_with_the_documented_event(aws: boto3.Session) -> None:
    invoker = FakeInvoker()
    receiver = receiving(aws, invoker)
    received = receiver.receive(MULTI)
    settle(receiver)
    assert received.bucket == "omni-t-mail-123456789012"
    assert received.key == f"in/{received.message_id}"
    assert len(received.message_id) == 40
    assert received.message_id.isalnum()

    stored = aws.client("s3").get_object(Bucket=received.bucket, Key=received.key)["Body"].read()
    assert stored.endswith(MULTI)  # the mail as sent, with SES's headers on top
    top = stored[: len(stored) - len(MULTI)].decode()
    assert top.startswith("Return-Path: <ana.lima@example.com>\r\nReceived: from omni-local by inbound-smtp")
    assert "X-SES-Spam-Verdict: PASS\r\n" in top
    assert "dmarc=pass header.from=example.com;" in top

    [event] = invoker.events
    [record] = event["Records"]
    assert record.keys() == DOCUMENTED.keys()
    mail, receipt = record["ses"]["mail"], record["ses"]["receipt"]
    assert mail.keys() == DOCUMENTED["ses"]["mail"].keys()
    assert receipt.keys() == DOCUMENTED["ses"]["receipt"].keys()
    assert mail["messageId"] == received.message_id
    assert mail["source"] == "ana.lima@example.com"
    assert mail["destination"] == ["support@shop.example", "ana.backup@example.com"]
    assert mail["commonHeaders"]["from"] == ["Ana Lima <ana.lima@example.com>"]
    assert mail["commonHeaders"]["subject"] == "Damaged item (photos attached)"
    assert {"name": "Message-ID", "value": "<CAF1multi0006@mail.example.com>"} in mail["headers"]
    assert receipt["recipients"] == ["support@shop.example", "ana.backup@example.com"]
    assert receipt["action"] == {
        "type": "Lambda",
        "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:omni-t-inbox",
        "invocationType": "Event",
    }
    for name in ses.VERDICT_NAMES:
        assert receipt[f"{name}Verdict"] == {"status": "PASS"}
    assert "dmarcPolicy" not in receipt
    parsed = SesEvent.model_validate(event)  # what the e-mail function accepts
    assert parsed.records[0].ses.mail.message_id == received.message_id


def test_verdicts_and_recipients_can_be_given(aws: boto3.Session) -> None:
    invoker = FakeInvoker()
    receiver = receiving(aws, invoker)
    receiver.receive(
        PLAIN,
        verdicts={"dmarc": "fail", "spf": "GRAY"},
        recipients=["help@shop.example"],
        dmarc_policy="reject",
    )
    settle(receiver)
    receipt = invoker.events[0]["Records"][0]["ses"]["receipt"]
    assert receipt["dmarcVerdict"] == {"status": "FAIL"}
    assert receipt["spfVerdict"] == {"status": "GRAY"}
    assert receipt["dkimVerdict"] == {"status": "PASS"}
    assert receipt["dmarcPolicy"] == "reject"
    assert receipt["recipients"] == ["help@shop.example"]


def test_a_failing_function_is_retried_twice_like_lambda_async_invocation(aws: boto3.Session) -> None:
    invoker = FakeInvoker(failures=2)
    receiver = receiving(aws, invoker)
    receiver.receive(PLAIN)
    settle(receiver)
    assert len(invoker.events) == 3
    assert invoker.events[0] == invoker.events[2]  # the same event every attempt
    assert (receiver.delivered, receiver.dropped) == (1, 0)

    always = FakeInvoker(failures=99)
    dropping = receiving(aws, always)
    dropping.receive(PLAIN)
    settle(dropping)
    assert len(always.events) == ses.ASYNC_ATTEMPTS == 3
    assert (dropping.delivered, dropping.dropped) == (0, 1)


def test_redelivering_a_stored_mail_repeats_its_event(aws: boto3.Session) -> None:
    invoker = FakeInvoker()
    receiver = receiving(aws, invoker)
    received = receiver.receive(PLAIN)
    settle(receiver)
    again = receiver.redeliver(received.key)
    settle(receiver)
    assert again == received
    assert invoker.events[0] == invoker.events[1]

    # A mail nobody received through the emulator (copied in by hand) gets a stable event too.
    s3 = aws.client("s3")
    s3.put_object(Bucket=received.bucket, Key="in/handmade1", Body=PLAIN)
    receiver.redeliver("in/handmade1")
    receiver.redeliver("in/handmade1")
    settle(receiver)
    assert invoker.events[2] == invoker.events[3]
    assert invoker.events[2]["Records"][0]["ses"]["mail"]["messageId"] == "handmade1"

    # Outside the prefix it is a new mail, stored under the prefix.
    s3.put_object(Bucket=received.bucket, Key="upload.eml", Body=PLAIN)
    fresh = receiver.redeliver("upload.eml")
    assert fresh.key == f"in/{fresh.message_id}" != received.key
    settle(receiver)


def test_the_emulated_event_is_what_the_real_email_function_accepts(stack: dict[Any, str]) -> None:
    session = boto3.Session(region_name="us-east-1")
    receiver = ses.SesReceiving(
        TOPOLOGY,
        stack,
        s3=session.client("s3"),
        invoker=Invoker(TOPOLOGY.functions, stage="test"),
        region="us-east-1",
        account_id="123456789012",
        stage="test",
        retry_delay_s=0,
    )
    received = receiver.receive(PLAIN, verdicts={"dmarc": "FAIL"})
    settle(receiver)
    assert (receiver.delivered, receiver.dropped) == (1, 0)
    [message] = session.client("sqs").receive_message(QueueUrl=stack[("queue", "profile-merge")])["Messages"]
    detail = json.loads(message["Body"])["detail"]
    assert detail["provider_message_id"] == received.message_id
    assert detail["sender"] == {"type": "email", "value": "ana.lima@example.com", "verified": False}
    assert detail["metadata"]["dmarc"] == "FAIL"
    assert detail["text"].startswith("Hello,")


# --------------------------------------------------------------------------- #
# The control route
# --------------------------------------------------------------------------- #
def request(
    method: str, path: str, body: bytes = b"", query: str = "", content_type: str = ""
) -> LocalRequest:
    headers = [("Content-Type", content_type)] if content_type else []
    return LocalRequest(method=method, path=path, query=query, headers=headers, body=body)


def test_control_route(aws: boto3.Session) -> None:
    invoker = FakeInvoker()
    receiver = receiving(aws, invoker)
    listed = receiver.handle(request("GET", "/_local/email"))
    assert (listed.status, json.loads(listed.body)) == (
        200,
        {"functions": {"inbox": {"bucket": "omni-t-mail-123456789012", "prefix": "in/"}}},
    )
    accepted = receiver.handle(
        request(
            "POST",
            "/_local/email/inbox",
            PLAIN,
            "dmarc=FAIL&to=a@shop.example,b@shop.example",
            "message/rfc822",
        )
    )
    assert accepted.status == 202
    body = json.loads(accepted.body)
    assert body["function"] == "inbox"
    assert body["key"] == f"in/{body['messageId']}"
    settle(receiver)
    receipt = invoker.events[0]["Records"][0]["ses"]["receipt"]
    assert receipt["recipients"] == ["a@shop.example", "b@shop.example"]
    assert receipt["dmarcVerdict"] == {"status": "FAIL"}

    redelivered = receiver.handle(
        request(
            "POST", "/_local/email/inbox", json.dumps({"key": body["key"]}).encode(), "", "application/json"
        )
    )
    assert (redelivered.status, json.loads(redelivered.body)) == (202, body)
    settle(receiver)

    refused = {
        "unknown function": (request("POST", "/_local/email/nope", PLAIN), 404),
        "wrong method": (request("GET", "/_local/email/inbox"), 405),
        "post to the list": (request("POST", "/_local/email", PLAIN), 405),
        "empty mail": (request("POST", "/_local/email/inbox", b"\r\n"), 400),
        "bad verdict": (request("POST", "/_local/email/inbox", PLAIN, "dmarc=MAYBE"), 400),
        "unknown verdict": (request("POST", "/_local/email/inbox", PLAIN, "arc=PASS"), 400),
        "bad policy": (request("POST", "/_local/email/inbox", PLAIN, "dmarc_policy=drop"), 400),
        "no recipient": (request("POST", "/_local/email/inbox", b"From: a@b.example\n\nhi"), 400),
        "bad json": (request("POST", "/_local/email/inbox", b"{", "", "application/json"), 400),
        "json without key": (request("POST", "/_local/email/inbox", b"{}", "", "application/json"), 400),
        "missing key": (
            request("POST", "/_local/email/inbox", b'{"key": "in/none"}', "", "application/json"),
            404,
        ),
        "other bucket": (
            request("POST", "/_local/email/inbox", b'{"key": "in/x", "bucket": "b"}', "", "application/json"),
            400,
        ),
        "deeper path": (request("POST", "/_local/email/inbox/more", PLAIN), 404),
    }
    for case, (bad, status) in refused.items():
        answer = receiver.handle(bad)
        assert answer.status == status, case
        assert json.loads(answer.body)["message"], case
    assert len(invoker.events) == 2  # nothing refused was delivered


# --------------------------------------------------------------------------- #
# omni send email (against no server: argument handling)
# --------------------------------------------------------------------------- #
def _args(**overrides: Any) -> argparse.Namespace:
    defaults: dict[str, Any] = {
        "file": None,
        "redeliver": None,
        "base_url": "http://127.0.0.1:9",
        "function": "email",
        "dmarc_policy": None,
        "to": None,
        **dict.fromkeys(send_email.VERDICTS),
    }
    return argparse.Namespace(**{**defaults, **overrides})


def test_send_email_arguments(tmp_path: Path) -> None:
    out = io.StringIO()
    assert send_email.send_email(_args(), out) == 2
    assert send_email.send_email(_args(file="x.eml", redeliver="in/x"), out) == 2
    assert send_email.send_email(_args(file=str(tmp_path / "missing.eml")), out) == 2
    assert "cannot read" in out.getvalue()
    query = send_email._query(_args(dmarc="FAIL", spf="GRAY", dmarc_policy="reject", to=["a@x.example"]))
    assert query == "spf=GRAY&dmarc=FAIL&dmarc_policy=reject&to=a%40x.example"
