"""Make moto's EventBridge delivery stop rebuilding a JSONPath parser for every target.

For every event it delivers to a target, moto's ``EventTemplateParser.parse`` compiles
each path of the target's input map (without an ``InputTransformer``, the nine paths of
the default map: ``$.id``, ``$.detail``, ...) with ``jsonpath_ng.ext.parse``, which builds
a new parser each time: the PLY parser tables are read and checked again (≈ 5 ms of CPU
per delivered event on this machine) — moto's cost, not EventBridge's.

:func:`install` makes ``jsonpath_ng.ext.parse``, while moto's ``EventTemplateParser.parse``
runs in the calling thread (and only then), return the expression compiled the first
time for that path. A compiled expression is an immutable tree, and ``find`` reads it
only, so the matches — and the delivered events — are the same. Everything else is
moto's own code.

Used by the embedded emulator of ``omni local`` through :func:`make_moto_events_fast`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import jsonpath_ng.ext
from moto.events import utils as events_utils

_local = threading.local()
_installed = False
_lock = threading.Lock()
#: moto's own, as imported (for the tests that compare the patched answers with moto's).
MOTO_TEMPLATE_PARSE = events_utils.EventTemplateParser.__dict__["parse"].__func__


def install() -> Callable[[], None]:
    """Patch moto in this process; returns the function that undoes it."""
    template_parser = events_utils.EventTemplateParser
    original_template_parse = template_parser.__dict__["parse"]  # the staticmethod itself
    original_jsonpath_parse = jsonpath_ng.ext.parse
    compiled: dict[tuple[str, Any], Any] = {}

    def jsonpath_parse(path: str, debug: bool | None = None) -> Any:
        if not getattr(_local, "delivering", False) or not isinstance(path, str):
            return original_jsonpath_parse(path, debug=debug)
        found = compiled.get((path, debug))
        if found is None:
            found = original_jsonpath_parse(path, debug=debug)
            with _lock:
                compiled[(path, debug)] = found
        return found

    def parse(input_template: str, input_paths_map: dict[str, Any], event: Any) -> dict[str, Any]:
        _local.delivering = True
        try:
            return original_template_parse.__func__(input_template, input_paths_map, event)  # type: ignore[no-any-return]
        finally:
            _local.delivering = False

    jsonpath_ng.ext.parse = jsonpath_parse
    template_parser.parse = staticmethod(parse)  # type: ignore[method-assign, assignment]

    def undo() -> None:
        jsonpath_ng.ext.parse = original_jsonpath_parse
        template_parser.parse = original_template_parse  # type: ignore[method-assign]

    return undo


def make_moto_events_fast() -> None:
    """Idempotent :func:`install` for the process's lifetime (the embedded emulator's)."""
    global _installed  # noqa: PLW0603 - patches moto once per process
    if not _installed:
        install()
        _installed = True
