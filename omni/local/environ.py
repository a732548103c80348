"""Setting process environment variables for a while, and putting back what was there before.

The local runtime runs every function in one process, so the emulator's endpoint and
credentials, the functions' merged environment and a function's service name during its
cold start are all set in ``os.environ`` and restored afterwards: with this one helper.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


class EnvironmentPatch:
    """Variables set in ``os.environ``, each one's value before the first :meth:`set` kept
    until :meth:`restore` (an unset variable is unset again)."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            self._saved.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def restore(self) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved.clear()


@contextmanager
def patched_environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` set in ``os.environ`` inside the block, the previous values back after it."""
    patch = EnvironmentPatch()
    patch.set(values)
    try:
        yield
    finally:
        patch.restore()
