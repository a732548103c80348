"""One process plays many Lambda containers here: give each test a fresh notify container.

``functions.notify.handler`` builds its notifier (adapters included) once per container,
from the environment it first sees; the handler-level tests run it under moto with
providers' real adapters, the local stack needs the outbox adapters
(``OMNI_OUTBOUND_MODE=local``). In Lambda a container never changes environment.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def fresh_notify_container() -> Iterator[None]:
    from functions.notify import handler as notify  # noqa: PLC0415

    notify._notifier = None
    yield
    notify._notifier = None
