"""The state file a running ``omni local`` leaves for other ``omni`` commands.

``.omni/local.json`` (in the directory ``omni local`` was started from; ``.omni/`` is
gitignored) holds::

    {
      "version": 1,
      "pid": 12345,
      "stage": "local",
      "region": "us-east-1",
      "endpoint_url": "http://127.0.0.1:54321",
      "base_url": "http://127.0.0.1:8080",
      "started_at": "2025-01-01T12:00:00Z",
      "physical": {"table:outbox": "omni-local-outbox", "queue:notify": "http://...", ...}
    }

The runtime removes it when it stops (if it is still its own).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATE_VERSION = 1
DEFAULT_STATE_FILE = Path(".omni") / "local.json"


def write_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"version": STATE_VERSION, "pid": os.getpid(), **state}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_state(path: Path = DEFAULT_STATE_FILE) -> dict[str, Any] | None:
    """The state of the running stack, or ``None`` when there is no (readable) state file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remove_state(path: Path) -> None:
    """Remove the state file if this process wrote it."""
    state = read_state(path)
    if state is not None and state.get("pid") == os.getpid():
        path.unlink(missing_ok=True)
