"""boto3 clients, created once per container (their creation is part of the cold start).

Clients honour the standard ``AWS_ENDPOINT_URL`` variable, which is how the local
runtime and the tests point them at the emulator.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

_lock = threading.Lock()


@cache
def _client(service: str) -> Any:
    import boto3  # noqa: PLC0415 - imported on first use, not at module import

    with _lock:  # boto3's default session is not thread-safe while creating clients
        return boto3.client(service)  # type: ignore[call-overload]  # any service, by name


def client(service: str) -> Any:
    return _client(service)


def reset_clients() -> None:
    """Forget cached clients (tests change endpoints and credentials between cases)."""
    _client.cache_clear()
