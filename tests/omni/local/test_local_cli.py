"""The omni command: topology, token, outbox, and `omni local` as a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest
import requests
from boto3.dynamodb.types import TypeSerializer

from omni import cli
from omni.local import auth
from omni.local.runtime import LocalRuntime
from tests.helpers import REPO_ROOT
from tests.helpers.local import make_topology
from topology import TOPOLOGY

OMNI = [sys.executable, "-m", "omni.cli"]
REPO = REPO_ROOT


def test_topology_json_lists_every_function(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["topology", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [fn["name"] for fn in data["functions"]] == [fn.name for fn in TOPOLOGY.functions]
    assert data == json.loads(json.dumps(TOPOLOGY.to_dict()))


def test_topology_summary_and_speed() -> None:
    started = time.monotonic()
    done = subprocess.run(
        [*OMNI, "topology"], capture_output=True, text=True, check=True, cwd=REPO, timeout=60
    )
    assert time.monotonic() - started < 10
    for fn in TOPOLOGY.functions:
        assert f"function {fn.name}" in done.stdout
    # `omni topology` must not drag the emulator or boto3 in.
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from omni import cli; cli.main(['topology']); "
            "print(sorted(m for m in ('boto3', 'moto', 'botocore') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        timeout=60,
    )
    assert probe.stdout.strip().endswith("[]")


def test_token_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["token", "--agent", "agent-42"]) == 0
    claims = auth.verify_agent_token(capsys.readouterr().out.strip())
    assert claims["sub"] == "agent-42"
    assert 3590 <= claims["exp"] - time.time() <= 3601


DELIVERIES: list[dict[str, Any]] = [
    {
        "notification_id": "n-2",
        "created_at": "2025-01-01T10:00:02.000000Z",
        "channel": "sms",
        "recipient": {"type": "phone", "value": "+15550001"},
        "status": "sent",
        "text": "second\nline",
    },
    {
        "notification_id": "n-1",
        "created_at": "2025-01-01T10:00:01.000000Z",
        "channel": "webchat",
        "recipient": "session-1",
        "status": "delivered",
        "text": "first",
        "attempts": 1,
    },
    {
        "notification_id": "n-3",
        "created_at": "2025-01-01T10:00:03.000000Z",
        "channel": "email",
        "recipient": "a@example.com",
        "status": "failed",
        "text": "third",
    },
]


def test_outbox_lists_deliveries_of_the_running_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_file = tmp_path / ".omni" / "local.json"
    with LocalRuntime(make_topology(), port=0, stage="cli", state_file=state_file) as runtime:
        state = json.loads(state_file.read_text())
        assert state["endpoint_url"] == runtime.endpoint_url
        assert state["base_url"] == runtime.base_url
        assert state["stage"] == "cli"
        assert state["pid"] == os.getpid()
        assert state["physical"]["table:outbox"] == "omni-cli-outbox"

        assert cli.main(["outbox", "--state-file", str(state_file)]) == 0
        assert "no deliveries in omni-cli-outbox" in capsys.readouterr().out

        table = runtime.client("dynamodb")
        serializer = TypeSerializer()
        for item in DELIVERIES:
            table.put_item(
                TableName="omni-cli-outbox",
                Item={key: serializer.serialize(value) for key, value in item.items()},
            )
        assert cli.main(["outbox", "--state-file", str(state_file)]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert len(lines) == 3
        assert lines[0].split() == [
            "2025-01-01T10:00:01.000000Z",
            "webchat",
            "session-1",
            "delivered",
            "first",
        ]
        assert lines[1].split() == [
            "2025-01-01T10:00:02.000000Z",
            "sms",
            "phone:+15550001",
            "sent",
            "second",
            "line",
        ]
        assert lines[2].startswith("2025-01-01T10:00:03.000000Z")  # newest last

        assert (
            cli.main(
                [
                    "outbox",
                    "--json",
                    "--endpoint",
                    runtime.endpoint_url,
                    "--stage",
                    "cli",
                    "--state-file",
                    str(tmp_path / "none.json"),
                ]
            )
            == 0
        )
        items = json.loads(capsys.readouterr().out)
        assert [item["notification_id"] for item in items] == ["n-1", "n-2", "n-3"]
        assert items[0]["attempts"] == 1
    assert not state_file.exists()  # removed when the runtime stopped


def test_outbox_without_a_running_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["outbox", "--state-file", str(tmp_path / "missing.json")]) == 1
    assert "omni local" in capsys.readouterr().err


def test_demo_is_played_when_present(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    played: list[tuple[str, bool]] = []

    def play(base_url: str, *, history: bool = False) -> None:
        played.append((base_url, history))

    monkeypatch.setitem(sys.modules, "omni.demo", types.SimpleNamespace(play_with_assistant=play))
    cli._play_demo("http://127.0.0.1:1")
    assert played == [("http://127.0.0.1:1", True)]  # the assistant, the journey, then the past week
    monkeypatch.setitem(sys.modules, "omni.demo", None)
    cli._play_demo("http://127.0.0.1:1")
    assert "demo" in capsys.readouterr().err


def test_omni_token_refuses_me_and_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["token", "--agent", "me"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "/agents/me stands for the agent the token belongs to" in captured.err


def test_the_access_log_pauses_while_the_demo_plays(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging  # noqa: PLC0415

    access_log = logging.getLogger("omni.local.http")
    monkeypatch.setattr(access_log, "level", logging.INFO)
    levels: list[bool] = []

    def play(base_url: str, *, history: bool = False) -> None:
        levels.append(access_log.isEnabledFor(logging.INFO))
        raise RuntimeError("the demo stumbled")

    monkeypatch.setitem(sys.modules, "omni.demo", types.SimpleNamespace(play_with_assistant=play))
    cli._play_demo("http://127.0.0.1:1")
    assert levels == [False]  # no "GET /... -> 200" lines between the demo's own
    assert access_log.isEnabledFor(logging.WARNING)
    assert access_log.level == logging.INFO  # back once it is over, even after a failure


def test_omni_local_serves_until_signalled(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("AWS_ENDPOINT_URL", None)
    process = subprocess.Popen(
        [*OMNI, "local", "--port", "0", "--stage", "clitest"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        state_file = tmp_path / ".omni" / "local.json"
        deadline = time.monotonic() + 30
        while not state_file.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not state_file.exists():
            process.kill()
            pytest.fail(f"omni local did not start: {process.communicate()[0]}")
        state = json.loads(state_file.read_text())
        health = requests.get(f"{state['base_url']}/healthz", timeout=10)
        assert health.status_code == 200
        assert health.json()["stage"] == "clitest"
        assert set(health.json()["pollers"]) == {queue.name for queue in TOPOLOGY.queues}

        outbox = subprocess.run(
            [*OMNI, "outbox"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=True
        )
        assert "no deliveries in omni-clitest-outbox" in outbox.stdout

        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert "omni local serving on http://127.0.0.1:" in output
    # `make run` says where a person can chat as a customer.
    assert f"answer in the console): {state['base_url']}/widget/demo.html" in output
    assert not state_file.exists()
