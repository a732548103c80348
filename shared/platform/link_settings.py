"""Where signed links point and the key that signs them: the I/O half of signed links.

The link rules themselves (minting, verifying, scales) are pure and live in
``shared.domain.links``; only the functions that mint or check links import this module.
"""

from __future__ import annotations

import os

from shared.platform import settings
from shared.platform.config import get_secret


def public_base_url() -> str | None:
    """Where signed links point (``OMNI_PUBLIC_API_URL``); None when this deployment has no
    public API URL. The link rules themselves are pure (``shared.domain.links``)."""
    value = os.environ.get(settings.OMNI_PUBLIC_API_URL, "").strip()
    return value.rstrip("/") or None


def links_signing_secret() -> str:
    """The ``links-signing`` secret (Secrets Manager through Powertools Parameters, cached)."""
    return get_secret(settings.LINKS_SIGNING_SECRET_ID)
