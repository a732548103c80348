"""One message's correlation id in the logs of every function it passed, and PII masked there.

A web chat message goes through webchat -> profile merge -> routing -> notify and the KPI
function (moto, real bus rules and queues); each function's JSON log lines are captured.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from functions.kpi import handler as kpi_module
from functions.notify import handler as notify_module
from functions.profile_merge import handler as merge_module
from functions.routing import handler as routing_module
from functions.webchat import handler as webchat_module
from shared.channels.webchat import compute_user_hash
from tests.helpers import context, deliver_one_batch, http_event
from topology import TOPOLOGY

MODULES = {
    "webchat": webchat_module,
    "profile-merge": merge_module,
    "routing": routing_module,
    "notify": notify_module,
    "kpi": kpi_module,
}


@pytest.fixture
def logs() -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Each function's JSON log lines (by the function name Powertools puts on each line)."""
    buffer = io.StringIO()
    saved = []
    for module in MODULES.values():
        handler = module.logger.registered_handler
        saved.append((handler, handler.setStream(buffer)))
        module.logger.setLevel("INFO")
    by_function: dict[str, list[dict[str, Any]]] = {name: [] for name in MODULES}
    yield by_function
    for handler, stream in reversed(saved):
        handler.setStream(stream)


def collect(buffer_owner: dict[str, list[dict[str, Any]]]) -> str:
    """Fill the per-function lists from the shared buffer; the raw text of every line."""
    handler = next(iter(MODULES.values())).logger.registered_handler
    text = handler.stream.getvalue()
    for raw in text.splitlines():
        if not raw.startswith("{"):
            continue
        line = json.loads(raw)
        name = str(line.get("function_name", "")).removeprefix("omni-test-")
        if name in buffer_owner:
            buffer_owner[name].append(line)
    return text


def drain(stack: dict[Any, str], queue: str) -> int:
    return deliver_one_batch(
        stack[("queue", queue)], queue, MODULES[TOPOLOGY.consumer_of(queue).name].handler
    )


def test_one_correlation_id_through_every_function(
    stack: dict[Any, str], logs: dict[str, list[dict[str, Any]]]
) -> None:
    secret = TOPOLOGY.secret("webchat-identity").local_default
    customer = {
        "account_id": "acct-77",
        "email": "ana.lima@example.com",
        "name": "Ana Lima",
        "user_hash": compute_user_hash(secret, "acct-77"),
    }
    opened = webchat_module.handler(
        http_event("POST", "/webchat/sessions", body={"customer": customer}), context("webchat")
    )
    session = json.loads(opened["body"])
    response = webchat_module.handler(
        http_event(
            "POST",
            "/webchat/sessions/{session_id}/messages",
            path_parameters={"session_id": session["session_id"]},
            body={
                "message_id": "m-corr-1",
                "text": "I was charged twice",
                "sent_at": datetime.now(UTC).isoformat(),
            },
            headers={"authorization": f"Bearer {session['token']}"},
        ),
        context("webchat"),
    )
    assert response["statusCode"] == 202
    for queue in ("profile-merge", "routing", "notify", "kpi", "kpi"):
        drain(stack, queue)

    raw = collect(logs)
    correlation_id = f"webchat#{session['session_id']}:m-corr-1"
    # Webchat logs the message it accepted; profile merge names the message it recorded.
    assert any(line.get("message_id") == "m-corr-1" for line in logs["webchat"])
    assert any(line.get("message_id") == correlation_id for line in logs["profile-merge"])
    # From profile merge on, every function carries the correlation id on its log lines.
    for name in ("profile-merge", "routing", "notify", "kpi"):
        carried = [line for line in logs[name] if line.get("correlation_id") == correlation_id]
        assert carried, (name, logs[name])
    kpi_events = {line["detail_type"] for line in logs["kpi"] if line.get("correlation_id") == correlation_id}
    # The first message of a conversation moves no KPI counter: the kpi rule filters it out
    # on the bus; the acknowledgement (hand-over, started) reaches the KPI function.
    assert kpi_events == {"notification.requested"}
    assert raw.count(correlation_id) >= 5


def test_pii_is_masked_in_the_functions_logs() -> None:
    from shared.platform.observability import new_logger  # noqa: PLC0415

    logger = new_logger(service="pii-check")
    buffer = io.StringIO()
    logger.registered_handler.setStream(buffer)
    logger.info(
        "reply to +4915112345678",
        extra={"email": "ana.lima@example.com", "identities": ["whatsapp:4915112345678"], "id": "conv_01ab"},
    )
    line = json.loads(buffer.getvalue())
    assert line["message"] == "reply to +49*********78"
    assert line["email"] == "a***@example.com"
    assert line["identities"] == ["whatsapp:***********78"]
    assert line["id"] == "conv_01ab"
