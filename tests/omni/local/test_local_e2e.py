"""HTTP -> function -> bus -> rule -> queue -> consumer -> table, all local."""

from __future__ import annotations

import os

import pytest
import requests

from omni.local.runtime import LocalRuntime
from tests.helpers.local import make_topology


def test_http_event_flows_through_bus_rule_queue_to_the_table() -> None:
    before = dict(os.environ)
    with LocalRuntime(make_topology(), port=0, stage="e2e") as runtime:
        for n in range(3):
            response = requests.post(
                f"{runtime.base_url}/things", json={"id": f"thing-{n}", "text": f"hello {n}"}, timeout=10
            )
            assert response.status_code == 202
            assert response.json() == {"accepted": f"thing-{n}"}
        runtime.wait_idle(timeout=15)

        table = runtime.client("dynamodb")
        for n in range(3):
            item = table.get_item(
                TableName="omni-e2e-items", Key={"pk": {"S": f"thing-{n}"}, "sk": {"S": "item"}}
            )
            assert item["Item"]["text"] == {"S": f"hello {n}"}
            assert item["Item"]["source"] == {"S": "omni.test"}
            assert item["Item"]["detail_type"] == {"S": "thing.happened"}
        assert runtime.queue_depth("things") == {"visible": 0, "in_flight": 0, "delayed": 0}
        assert runtime.queue_depth("things", dlq=True)["visible"] == 0
        assert runtime.invoker is not None
        assert runtime.invoker.errors == 0
    # The runtime puts the process environment back as it found it.
    assert dict(os.environ) == before


def test_wait_idle_times_out_while_work_is_pending() -> None:
    with LocalRuntime(make_topology(), port=0, stage="busy") as runtime:
        runtime.pollers["things"].stop()
        requests.post(f"{runtime.base_url}/things", json={"id": "x"}, timeout=10)
        with pytest.raises(TimeoutError, match="queue things"):
            runtime.wait_idle(timeout=0.3)
        runtime.pollers["things"].start()
        runtime.wait_idle(timeout=10)
