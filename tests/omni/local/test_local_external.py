"""The runtime against an emulator the developer runs (AWS_ENDPOINT_URL), twice in a row."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from omni.local.runtime import LocalRuntime
from tests.helpers.local import make_topology


@pytest.fixture
def external_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    requests.post(f"{endpoint}/moto-api/reset", timeout=10)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    try:
        yield endpoint
    finally:
        server.stop()


def test_runtime_uses_the_external_endpoint_and_provisions_idempotently(
    external_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for run, secret_value in enumerate(("first-value", "second-value")):
        monkeypatch.setenv("OMNI_TEST_API_KEY", secret_value)
        with LocalRuntime(make_topology(), port=0, stage="ext") as runtime:
            assert runtime.endpoint_url == external_endpoint
            assert not runtime.emulator.embedded
            assert requests.post(f"{runtime.base_url}/things", json={"id": f"run-{run}"}, timeout=10).ok
            runtime.wait_idle(timeout=15)

        # The resources live on in the external emulator after the runtime stopped.
        session = boto3.session.Session(region_name="us-east-1")
        dynamodb = session.client("dynamodb", endpoint_url=external_endpoint)
        tables = dynamodb.list_tables()["TableNames"]
        assert {"omni-ext-items", "omni-ext-outbox"} <= set(tables)
        outbox = dynamodb.describe_table(TableName="omni-ext-outbox")["Table"]
        assert outbox["KeySchema"] == [{"AttributeName": "notification_id", "KeyType": "HASH"}]
        assert outbox["GlobalSecondaryIndexes"][0]["IndexName"] == "by-provider-id"
        ttl = dynamodb.describe_time_to_live(TableName="omni-ext-outbox")["TimeToLiveDescription"]
        assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
        items = dynamodb.scan(TableName="omni-ext-items")["Items"]
        assert sorted(item["pk"]["S"] for item in items) == [f"run-{n}" for n in range(run + 1)]

        sqs = session.client("sqs", endpoint_url=external_endpoint)
        urls = sqs.list_queues(QueueNamePrefix="omni-ext-")["QueueUrls"]
        assert sorted(url.rsplit("/", 1)[1] for url in urls) == [
            "omni-ext-pt",
            "omni-ext-pt-dlq",
            "omni-ext-things",
            "omni-ext-things-dlq",
            "omni-ext-work",
            "omni-ext-work-dlq",
        ]
        attributes = sqs.get_queue_attributes(
            QueueUrl=next(u for u in urls if u.endswith("-work")), AttributeNames=["All"]
        )["Attributes"]
        assert attributes["VisibilityTimeout"] == "60"
        redrive = json.loads(attributes["RedrivePolicy"])
        assert int(redrive["maxReceiveCount"]) == 3
        assert redrive["deadLetterTargetArn"].endswith(":omni-ext-work-dlq")

        events = session.client("events", endpoint_url=external_endpoint)
        rules = events.list_rules(EventBusName="omni-ext-test-events")["Rules"]
        assert [rule["Name"] for rule in rules] == ["omni-ext-thing-happened"]
        targets = events.list_targets_by_rule(
            Rule="omni-ext-thing-happened", EventBusName="omni-ext-test-events"
        )
        assert len(targets["Targets"]) == 1

        secrets = session.client("secretsmanager", endpoint_url=external_endpoint)
        assert secrets.get_secret_value(SecretId="omni-ext-api-key")["SecretString"] == secret_value
