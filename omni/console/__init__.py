"""The agent console: a single-page app in plain HTML/JS/CSS under ``static/`` (no build step).

``omni local`` serves it at ``/console`` (:mod:`omni.local.console`); the Pulumi stack
uploads the same files to a private S3 bucket behind CloudFront
(:mod:`infra.components.console`). Each writes its own ``config.js``
(:func:`config_script`), which tells the page where the agent API is and how agents sign in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STATIC_DIR = Path(__file__).resolve().parent / "static"
CONFIG_FILE = "config.js"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".json": "application/json",
}


def content_type(path: Path) -> str:
    return CONTENT_TYPES.get(path.suffix, "application/octet-stream")


def static_files(static_dir: Path = STATIC_DIR) -> list[Path]:
    """The files to serve, in name order (a ``config.js`` there would be replaced, so it is left out)."""
    return sorted(p for p in static_dir.iterdir() if p.is_file() and p.name != CONFIG_FILE)


def config_script(config: dict[str, Any]) -> str:
    """``config.js``: sets ``window.OMNI_CONSOLE`` (keys: see the top of ``static/app.js``)."""
    return f"window.OMNI_CONSOLE = {json.dumps(config, sort_keys=True)};\n"
