"""The local runtime's clock shift (``POST /_local/clock``): never in Lambda.

``omni local``'s demo replays a past week through the pipeline with the clock of the
functions (:func:`shared.contracts.events.utc_now`, the events' time) shifted back. In a
Lambda environment (the runtime sets ``LAMBDA_TASK_ROOT``) :func:`shift_clock` refuses, and
no Lambda code calls it (a test checks both).
"""

from __future__ import annotations

import os
from datetime import timedelta

from shared.contracts.events import set_clock_offset
from shared.platform import settings


class ClockShiftRefused(RuntimeError):
    """The clock is shifted by the local runtime only, never in Lambda."""


def shift_clock(offset: timedelta) -> None:
    """Make ``utc_now`` answer ``offset`` away from the real time (local runtime only)."""
    if os.environ.get(settings.LAMBDA_TASK_ROOT):
        raise ClockShiftRefused("the clock is shifted by the local runtime only, never in Lambda")
    set_clock_offset(offset)
