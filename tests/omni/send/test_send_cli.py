"""``omni send``: what a person typing it sees before anything reaches a stack."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

import pytest

from omni import cli
from omni.send import HttpResult, twilio


def test_an_impossible_sender_fails_validation_before_any_output(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[Any] = []
    monkeypatch.setattr(twilio, "http", lambda *args, **kwargs: sent.append(args))
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err), pytest.raises(SystemExit) as exited:
        cli.main(["send", "sms", "--from", "12345", "hello", "--base-url", "http://stack.invalid"])
    assert exited.value.code == 2
    assert out.getvalue() == ""  # no MessageSid for a message that was never sent
    assert "--from: not a possible phone number: '12345'" in err.getvalue()
    assert sent == []


def test_a_possible_sender_is_sent_as_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[bytes] = []

    def fake_http(method: str, url: str, body: bytes | None = None, headers: Any = None) -> HttpResult:
        sent.append(body or b"")
        return HttpResult(200, b"<Response/>", "text/xml")

    monkeypatch.setattr(twilio, "http", fake_http)
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli.main(
            ["send", "sms", "--from", "+49 151 12345678", "hi", "--base-url", "http://stack.invalid"]
        )
    assert code == 0
    assert out.getvalue().startswith("MessageSid SM")
    assert b"From=%2B49+151+12345678" in sent[0]


def test_no_stack_listening_is_one_line_not_a_traceback() -> None:
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err), pytest.raises(SystemExit) as exited:
        cli.main(["send", "sms", "--from", "+4915112345678", "hi", "--base-url", "http://127.0.0.1:9"])
    assert str(exited.value.code).startswith("omni send: cannot reach http://127.0.0.1:9/webhooks/sms")
