"""A headless Chromium for the browser tests (the agent console, the web chat widget).

Debian's Chromium driven by Playwright: no browser downloads. Without the browser or the
``playwright`` package the test is skipped, and says so loudly on stderr.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = os.environ.get("OMNI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def skip_loudly(reason: str) -> None:
    message = f"BROWSER TEST DID NOT RUN: {reason}"
    print(f"\n*** {message} ***", file=sys.stderr)
    pytest.skip(message)


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched headless Chromium (a Playwright ``Browser``); skips the test without one."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) and not shutil.which(CHROMIUM):
        skip_loudly(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415
    except ImportError:
        skip_loudly("the playwright Python package is not installed (pip install -e '.[dev]')")
    # launch() gives every run a new, empty profile directory of its own.
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()
