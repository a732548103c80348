"""The embedded emulator: environment, one server per process, fresh state per runtime."""

from __future__ import annotations

import os

import boto3
import pytest

from omni.local.emulator import ENDPOINT_ENV, Emulator
from omni.local.runtime import LocalRuntime
from tests.helpers.local import make_topology


def test_emulator_exports_and_restores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    names = (ENDPOINT_ENV, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_REGION")
    for name in names:
        monkeypatch.delenv(name, raising=False)
    with Emulator() as emulator:
        assert emulator.embedded
        assert emulator.running
        assert os.environ[ENDPOINT_ENV] == emulator.endpoint_url
        assert os.environ["AWS_DEFAULT_REGION"] == "us-east-1"
        assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"
        # Any boto3 client created now reaches the emulator.
        boto3.client("sqs").create_queue(QueueName="emulator-probe")
        assert boto3.client("sqs").list_queues(QueueNamePrefix="emulator-probe")["QueueUrls"]
    for name in (ENDPOINT_ENV, "AWS_ACCESS_KEY_ID", "AWS_DEFAULT_REGION"):
        assert name not in os.environ


def test_runtimes_in_one_process_share_the_server_and_start_empty() -> None:
    with LocalRuntime(make_topology(), port=0, stage="first") as first:
        endpoint = first.endpoint_url
        warm_client = boto3.client("dynamodb")  # like a client a handler module made at import
        warm_client.put_item(TableName="omni-first-items", Item={"pk": {"S": "a"}, "sk": {"S": "b"}})
        with LocalRuntime(make_topology(), port=0, stage="nested") as nested:
            assert nested.endpoint_url == endpoint
            assert nested.emulator.embedded
            # A runtime started while another one runs does not wipe its resources.
            key = {"pk": {"S": "a"}, "sk": {"S": "b"}}
            assert warm_client.get_item(TableName="omni-first-items", Key=key)["Item"]
        assert os.environ[ENDPOINT_ENV] == endpoint
    assert ENDPOINT_ENV not in os.environ or os.environ[ENDPOINT_ENV] != endpoint

    with LocalRuntime(make_topology(), port=0, stage="second") as second:
        assert second.endpoint_url == endpoint
        tables = warm_client.list_tables()["TableNames"]  # the old client still works
        assert "omni-second-items" in tables
        assert "omni-first-items" not in tables  # and the emulator started empty
