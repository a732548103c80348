"""The local runtime: the whole topology on an AWS emulator, in one process.

``omni local`` (see :mod:`omni.cli`) and the end-to-end tests use
:class:`omni.local.runtime.LocalRuntime`. This package's ``__init__`` stays light
(no boto3, no moto) so that ``omni topology`` and ``omni token`` start fast; the
runtime is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omni.local.runtime import LocalRuntime

__all__ = ["LocalRuntime"]


def __getattr__(name: str) -> Any:
    if name == "LocalRuntime":
        from omni.local.runtime import LocalRuntime  # noqa: PLC0415

        return LocalRuntime
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
