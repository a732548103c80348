"""Make moto's per-request overhead cheaper: its response serializer and its action lookup.

Profiling ``OMNI_LOAD_TEST`` showed two places where moto repeats, on every request, work
whose answer cannot change while the process runs — moto's cost, not the AWS services':

* **Response serialization.** For every member of every structure it writes (each
  attribute of each DynamoDB item, each SQS message field), moto's attribute picker
  instantiates six alias providers and asks each of them which keys the value may be
  stored under (about a hundred picks per request): a fifth of the emulator's CPU.
  For a plain ``dict`` value the answer depends only on the member's name, its shape
  and the shape's current parent (the providers read the object only for its class
  name and a ``Meta`` attribute, which a ``dict`` cannot have) — and botocore's shapes
  are built once per process (``moto.core.utils.get_service_model`` is cached).
  :func:`install` remembers the keys per ``(name, shape, parent)`` for ``dict`` values,
  in the order moto's providers give them; the values are still looked up, transformed
  and written by moto's own code, and any other object goes through moto's providers.
* **Action lookup.** Each request lists the public functions of its response class
  (``inspect.getmembers`` over ~100 members) to check that the action exists;
  the list is now computed once per class.

Used by the embedded emulator of ``omni local`` through :func:`make_moto_responses_fast`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.core import responses as moto_responses
from moto.core import serialize as moto_serialize
from moto.core import utils as moto_utils

_installed = False
_lock = threading.Lock()
#: moto's own, as imported (for the tests that compare the patched answers with moto's).
MOTO_GET_POSSIBLE_KEYS = moto_serialize.XFormedAttributePicker.get_possible_keys
MOTO_METHOD_NAMES_FROM_CLASS = moto_utils.method_names_from_class


def install() -> Callable[[], None]:
    """Patch moto in this process; returns the function that undoes it."""
    picker = moto_serialize.XFormedAttributePicker
    original_keys = picker.get_possible_keys
    original_names = moto_utils.method_names_from_class
    keys_cache: dict[tuple[str, Any, Any], tuple[str, ...]] = {}
    names_cache: dict[object, list[str]] = {}

    def get_possible_keys(self: Any, context: Any) -> Iterable[str]:
        if (
            type(context.obj) is not dict
            or self.alias_providers is not moto_serialize.DEFAULT_ALIAS_PROVIDERS
        ):
            return original_keys(self, context)  # type: ignore[no-any-return]
        shape = context.shape
        # The providers read the shape's parent (set by the serializer just before): key on it.
        cache_key = (context.key, shape, getattr(shape, "parent", None))
        found = keys_cache.get(cache_key)
        if found is None:
            found = tuple(original_keys(self, context))
            with _lock:
                keys_cache[cache_key] = found
        return found

    def method_names_from_class(clazz: object) -> list[str]:
        found = names_cache.get(clazz)
        if found is None:
            found = original_names(clazz)
            with _lock:
                names_cache[clazz] = found
        return list(found)

    picker.get_possible_keys = get_possible_keys  # type: ignore[method-assign, assignment]
    moto_utils.method_names_from_class = method_names_from_class
    moto_responses.method_names_from_class = method_names_from_class  # type: ignore[attr-defined]

    def undo() -> None:
        picker.get_possible_keys = original_keys  # type: ignore[method-assign]
        moto_utils.method_names_from_class = original_names
        moto_responses.method_names_from_class = original_names  # type: ignore[attr-defined]

    return undo


def make_moto_responses_fast() -> None:
    """Idempotent :func:`install` for the process's lifetime (the embedded emulator's)."""
    global _installed  # noqa: PLW0603 - patches moto once per process
    if not _installed:
        install()
        _installed = True
