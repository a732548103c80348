"""The web chat widget: ``static/omni-chat.js`` (plain JavaScript, no build step) and a demo shop page.

``omni local`` serves both at ``/widget/`` (:mod:`omni.local.widget`); the Pulumi stack
uploads the script to the console's private bucket behind CloudFront under a versioned
name (:func:`versioned_name`) and the stable ``widget/omni-chat.js``
(:mod:`infra.components.console`).
"""

from __future__ import annotations

import gzip
import hashlib
from html import escape
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
SCRIPT = STATIC_DIR / "omni-chat.js"
DEMO_PAGE = "demo.html"
#: The budget of the script, gzipped (what a host page downloads).
MAX_GZIPPED_BYTES = 30 * 1024
#: The key prefix in the bucket (and the path on the distribution).
PREFIX = "widget"


def gzipped_size(path: Path = SCRIPT) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9))


def version(path: Path = SCRIPT) -> str:
    """The first 10 hex digits of the script's SHA-256: a new name for every change."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


def versioned_name(path: Path = SCRIPT) -> str:
    """``omni-chat.<version>.js``: cached for a year, replaced by a new name, never changed."""
    return f"omni-chat.{version(path)}.js"


def script_tag(script_url: str, api: str, socket: str | None = None, **theme: str) -> str:
    """The tag a host page adds (``theme``: color, title, greeting, position, lang)."""
    attributes = [f'src="{escape(script_url)}"', f'data-api="{escape(api)}"']
    if socket:
        attributes.append(f'data-socket="{escape(socket)}"')
    attributes += [f'data-{key}="{escape(value)}"' for key, value in theme.items()]
    return f"<script {' '.join(attributes)} async></script>"


def content_security_policy(api: str, socket: str | None, script_origin: str = "'self'") -> str:
    """The CSP a host page needs for the widget (what the README lists)."""
    connect = " ".join(part for part in (api, socket) if part)
    return (
        f"default-src 'self'; script-src 'self' {script_origin}; connect-src 'self' {connect}; "
        "img-src 'self' data:; style-src 'self'; frame-ancestors 'none'"
    ).replace("'self' 'self'", "'self'")
