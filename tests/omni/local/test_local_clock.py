"""``POST /_local/clock``: the local stack's clock, shifted back for the demo's past week.

Served to this machine only, within bounds (never ahead, at most 40 days back); it moves
``utc_now`` (what every function and the events' time read). In Lambda nothing can shift
the clock: no Lambda module calls :func:`shift_clock`, and it refuses where the Lambda
runtime runs, and no deployed route leads to it.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from omni.local.console import CLOCK_PATH, MAX_CLOCK_SHIFT_S, LocalConsole
from omni.local.http import LocalRequest, LocalResponse
from shared.contracts.events import utc_now
from shared.platform import settings
from shared.platform.clock import ClockShiftRefused, shift_clock
from tests.helpers import REPO_ROOT
from topology import TOPOLOGY

ROOT = REPO_ROOT


def no_api(request: LocalRequest) -> LocalResponse:
    raise AssertionError(f"no API call expected, got {request.method} {request.path}")


@pytest.fixture
def console(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalConsole]:
    monkeypatch.delenv(settings.LAMBDA_TASK_ROOT, raising=False)
    yield LocalConsole(no_api)
    shift_clock(timedelta(0))


def post(console: LocalConsole, body: object, source_ip: str = "127.0.0.1") -> LocalResponse:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return console.local(LocalRequest("POST", CLOCK_PATH, body=raw, source_ip=source_ip))


def behind() -> float:
    """Seconds ``utc_now`` runs behind the real time."""
    return (datetime.now(UTC) - utc_now()).total_seconds()


def test_the_clock_shifts_utc_now_back_and_returns(console: LocalConsole) -> None:
    shifted = post(console, {"offset_s": -86400})
    assert shifted.status == 200
    assert json.loads(shifted.body) == {"offset_s": -86400}
    assert behind() == pytest.approx(86400, abs=5)
    assert post(console, {"offset_s": -MAX_CLOCK_SHIFT_S}, source_ip="::1").status == 200
    assert behind() == pytest.approx(MAX_CLOCK_SHIFT_S, abs=5)
    assert post(console, {"offset_s": 0}).status == 200
    assert behind() == pytest.approx(0, abs=5)


@pytest.mark.parametrize("source_ip", ["192.0.2.7", "10.0.0.2", "::ffff:203.0.113.9", "not-an-address"])
def test_other_machines_are_refused(console: LocalConsole, source_ip: str) -> None:
    refused = post(console, {"offset_s": -3600}, source_ip=source_ip)
    assert refused.status == 403
    assert b"this machine only" in refused.body
    assert behind() == pytest.approx(0, abs=5)


@pytest.mark.parametrize(
    "body",
    [
        {"offset_s": 1},  # never ahead
        {"offset_s": -MAX_CLOCK_SHIFT_S - 1},
        {"offset_s": -1.5},
        {"offset_s": "-3600"},
        {"offset_s": True},
        {"offset_s": None},
        {},
        b"{",
        b"",
    ],
)
def test_out_of_bounds_and_malformed_shifts_are_refused(console: LocalConsole, body: object) -> None:
    post(console, {"offset_s": -60})
    refused = post(console, body)
    assert refused.status == 400
    assert b"offset_s" in refused.body
    assert behind() == pytest.approx(60, abs=5)  # unchanged


def test_only_post(console: LocalConsole) -> None:
    assert console.local(LocalRequest("GET", CLOCK_PATH)).status == 405


def test_the_clock_is_never_shifted_in_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.LAMBDA_TASK_ROOT, "/var/task")
    with pytest.raises(ClockShiftRefused):
        shift_clock(timedelta(days=-1))
    assert behind() == pytest.approx(0, abs=5)


def mentions(path: Path, name: str) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Name) and node.id == name:
            return True
        if isinstance(node, ast.Attribute) and node.attr == name:
            return True
        if isinstance(node, ast.ImportFrom) and any(alias.name == name for alias in node.names):
            return True
    return False


def test_no_lambda_code_shifts_the_clock_and_no_deployed_route_leads_to_it() -> None:
    setter = ROOT / "shared" / "platform" / "clock.py"
    lambda_code = [path for package in ("shared", "functions") for path in (ROOT / package).rglob("*.py")]
    assert len(lambda_code) > 50
    shifters = [
        str(path.relative_to(ROOT))
        for path in lambda_code
        if path != setter and (mentions(path, "shift_clock") or mentions(path, "set_clock_offset"))
    ]
    assert shifters == []
    assert mentions(ROOT / "omni" / "local" / "console.py", "shift_clock")
    assert [route.path for route, _ in TOPOLOGY.routes() if route.path.startswith("/_local")] == []
