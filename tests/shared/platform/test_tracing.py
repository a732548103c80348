"""Tracing (issue #8): a Powertools Tracer around every function, created lazily (issue #10).

The tracer must be on every handler, cost nothing at import, stay off locally and in
tests, and in Lambda trace the handler with the correlation id as an annotation. The
X-Ray parts run in a fresh interpreter: patching botocore and configuring the X-Ray
recorder are global to a process, and the rest of the suite must not see them.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra import bundling
from shared.platform import observability
from shared.platform.observability import LazyTracer
from tests.helpers import REPO_ROOT, context, http_event
from topology import TOPOLOGY

ROOT = REPO_ROOT
CONSUMERS = [fn for fn in TOPOLOGY.functions if fn.queue]


def _run(code: str, env: dict[str, str]) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; its last output line is JSON."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "LAMBDA_", "_X_AMZN"))}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**base, "PYTHONPATH": str(ROOT), "AWS_DEFAULT_REGION": "us-east-1", **env},
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("fn", TOPOLOGY.functions, ids=lambda fn: fn.name)
def test_every_function_traces_its_handler(fn: Any) -> None:
    module = importlib.import_module(fn.module)
    assert isinstance(module.tracer, LazyTracer), f"{fn.module} has no tracer = new_tracer()"
    handler = getattr(module, fn.attribute)
    # The outermost wrapper, so that even a 413/415 answered by guard_body is traced.
    assert getattr(handler, "__traced_by__", None) is module.tracer, f"{fn.handler} is not traced"


@pytest.mark.parametrize("fn", CONSUMERS, ids=lambda fn: fn.name)
def test_every_consumer_traces_each_record(fn: Any) -> None:
    module = importlib.import_module(fn.module)
    # A consumer that treats its batch as one unit of work (the knowledge index) traces that.
    unit = getattr(module, "record_handler", None) or module.batch_handler
    assert getattr(unit, "__traced_by__", None) is module.tracer


def test_a_handler_works_with_tracing_disabled(stack: dict[Any, str]) -> None:
    from functions.webchat import handler as webchat  # noqa: PLC0415

    assert os.environ["POWERTOOLS_TRACE_DISABLED"] == "true"
    response = webchat.handler(http_event("POST", "/webchat/sessions"), context("webchat"))
    assert response["statusCode"] == 201, response
    assert json.loads(response["body"])["session_id"]
    # Off: the Powertools Tracer (and the X-Ray SDK it loads) was never created.
    assert webchat.tracer.enabled is False
    assert webchat.tracer.tracer is None


def test_off_outside_lambda_and_when_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED", raising=False)
    monkeypatch.delenv("LAMBDA_TASK_ROOT", raising=False)
    assert observability.tracing_enabled() is False
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    assert observability.tracing_enabled() is True
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    assert observability.tracing_enabled() is False
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "0")
    monkeypatch.setenv("AWS_SAM_LOCAL", "true")
    assert observability.tracing_enabled() is False


def test_a_failing_annotation_never_fails_the_work(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def put_annotation(self, key: str, value: str) -> None:
            raise RuntimeError("no segment")

    monkeypatch.setattr(observability, "_active", Broken())
    observability.annotate_correlation("sms#SM1")
    monkeypatch.setattr(observability, "_active", None)
    observability.annotate_correlation("sms#SM1")


def test_importing_every_handler_loads_no_xray_sdk() -> None:
    modules = [fn.module for fn in TOPOLOGY.functions]
    result = _run(
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps({'xray': sorted(m for m in sys.modules if m.startswith('aws_xray_sdk'))}))",
        # As in Lambda: tracing on. The import must still not load the SDK.
        {"LAMBDA_TASK_ROOT": str(ROOT)},
    )
    assert result["xray"] == []


_TRACED_INVOCATION = """
import json
from datetime import UTC, datetime
from types import SimpleNamespace

import boto3
from botocore.stub import Stubber

from shared.platform.bus import EventPublisher
from shared.contracts.events import Identity, MessageReceived
from shared.platform.observability import new_tracer, set_correlation, new_logger

captured = []


class Capture:
    def send_entity(self, entity):
        captured.append(json.loads(entity.serialize()))

    def set_daemon_address(self, address):
        pass


tracer = new_tracer(service="routing")
logger = new_logger(service="routing")


@tracer.capture_method
def record_handler(correlation_id):
    set_correlation(logger, correlation_id)
    return "done"


@tracer.capture_lambda_handler
def handler(event, context):
    return [record_handler(cid) for cid in event["ids"]]


events = boto3.client("events", region_name="us-east-1")
stubber = Stubber(events)
stubber.add_response("put_events", {"FailedEntryCount": 0, "Entries": [{"EventId": "e1"}, {"EventId": "e2"}]})
stubber.activate()
publisher = EventPublisher(source="omni.sms", bus_name="bus", client=events)
sender = Identity(type="phone", value="+4915112345678", verified=True)
now = datetime.now(UTC)


@tracer.capture_lambda_handler
def webhook(event, context):
    publisher.publish(
        [
            ("message.received", MessageReceived(channel="sms", provider="twilio", provider_message_id=m,
                                                 sender=sender, sent_at=now, received_at=now))
            for m in event["messages"]
        ]
    )
    return "ok"


powertools_tracer = tracer.tracer
from aws_xray_sdk.core import patcher, xray_recorder

xray_recorder.configure(emitter=Capture())
context = SimpleNamespace(function_name="f", aws_request_id="r")
result = handler({"ids": ["sms#SM1", "sms#SM2"]}, context)
result = [*result, webhook({"messages": ["SM3", "SM4"]}, context)]
print(json.dumps({"result": result, "patched": sorted(patcher._PATCHED_MODULES), "segments": captured}))
"""


def test_in_lambda_the_handler_and_each_record_are_traced_with_the_correlation_id() -> None:
    result = _run(
        _TRACED_INVOCATION,
        {
            "LAMBDA_TASK_ROOT": str(ROOT),
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        },
    )
    assert result["result"] == ["done", "done", "ok"]
    # Only the AWS SDK is patched, not every library patch_all knows.
    assert result["patched"] == ["botocore"]
    by_name: dict[str, list[dict[str, Any]]] = {}
    for segment in result["segments"]:
        by_name.setdefault(segment["name"], []).append(segment)
    (handler_segment,) = by_name["## handler"]
    assert handler_segment["annotations"]["Service"] == "routing"
    assert handler_segment["annotations"]["ColdStart"] is True
    # Responses carry customer data: not sent to X-Ray.
    assert "metadata" not in handler_segment
    records = by_name["## __main__.record_handler"]
    assert sorted(r["annotations"]["correlation_id"] for r in records) == ["sms#SM1", "sms#SM2"]
    # A webhook's trace is found by the messages it published (each with CONTAINS).
    (webhook_segment,) = by_name["## webhook"]
    assert webhook_segment["annotations"]["correlation_id"] == "sms#SM3 sms#SM4"
    # botocore is patched: the PutEvents call is a subsegment of the webhook's.
    (put_events,) = by_name["events"]
    assert put_events["aws"]["operation"] == "PutEvents"
    assert put_events["parent_id"] == webhook_segment["id"]


def test_the_xray_sdk_is_a_runtime_dependency_and_ships_without_botocore(tmp_path: Path) -> None:
    deps = [bundling.distribution_name(d) for d in bundling.runtime_dependencies(ROOT / "pyproject.toml")]
    assert "aws-xray-sdk" in deps

    target = tmp_path / "python"
    for name, version, files in (
        ("botocore", "1.35.0", ["botocore/__init__.py", "botocore/data/x.json"]),
        ("python_dateutil", "2.9.0.post0", ["dateutil/__init__.py"]),
        ("aws_xray_sdk", "2.15.0", ["aws_xray_sdk/__init__.py"]),
        ("wrapt", "1.17.0", ["wrapt/__init__.py"]),
    ):
        info = target / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        for file in files:
            (target / file).parent.mkdir(parents=True, exist_ok=True)
            (target / file).write_text("")
        record = [*files, f"{info.name}/RECORD", "../outside.txt"]
        (info / "RECORD").write_text("".join(f"{line},,\n" for line in record))
    (tmp_path / "outside.txt").write_text("not ours")

    removed = bundling.prune_runtime_distributions(target)

    assert removed == ["botocore", "python-dateutil"]
    left = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert left == [
        "aws_xray_sdk-2.15.0.dist-info/RECORD",
        "aws_xray_sdk/__init__.py",
        "wrapt-1.17.0.dist-info/RECORD",
        "wrapt/__init__.py",
    ]
    assert not (target / "botocore").exists()
    assert (tmp_path / "outside.txt").read_text() == "not ours"
