"""A synthetic topology for the local runtime's tests (independent of the real functions)."""

from __future__ import annotations

import logging

import pytest

from tests.omni.local import fake_handlers


@pytest.fixture(autouse=True)
def _reset_calls() -> None:
    fake_handlers.reset()


@pytest.fixture(autouse=True, scope="session")
def _quiet_logs() -> None:
    logging.getLogger("omni.local").setLevel(logging.INFO)
