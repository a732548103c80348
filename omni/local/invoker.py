"""Invoke functions the way Lambda does, one warm "container" per function.

Each function's handler module is imported on its first invocation and kept (a warm
container). ``handler(event, context)`` gets a JSON copy of the event and a fresh
:class:`~omni.local.lambda_context.LambdaContext`; its return value goes through
JSON like Lambda's response does. Exceptions are caught and logged, never raised
into the runtime.

Deviations from Lambda, on purpose:

* Invocations of one function run one at a time (``serialize=True``, the default), as
  in a single container (reserved concurrency 1): handler code written for Lambda need
  not be thread-safe, and the runtime's threads would otherwise share its globals.
* The timeout is not enforced (a thread cannot be killed): an invocation that runs
  longer than the function's timeout is logged as an error, and its result is kept.
* All functions share one process and one environment (see ``LocalRuntime``).
  ``POWERTOOLS_SERVICE_NAME`` is set to the function's name while its module is
  imported, so module-level Powertools objects get the right service.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from omni.local.emulator import DEFAULT_ACCOUNT_ID, DEFAULT_REGION
from omni.local.environ import patched_environment
from omni.local.lambda_context import LambdaContext
from omni.local.provision import DEFAULT_STAGE, physical_name
from shared.platform import settings
from topology import Function

logger = logging.getLogger("omni.local.invoker")

Handler = Callable[[Any, Any], Any]

#: Only one module import at a time: environment tweaks during import are process-wide.
_IMPORT_LOCK = threading.RLock()


@dataclass(frozen=True)
class InvocationResult:
    function: str
    request_id: str
    ok: bool
    value: Any = None
    #: ``"Handled"``-style error kind: the exception's type name, ``"Runtime.ImportModuleError"``,
    #: ``"Runtime.MarshalError"``; ``None`` when ``ok``.
    error_type: str | None = None
    error_message: str | None = None
    duration_ms: float = 0.0
    timed_out: bool = False


class Invoker:
    """Calls the handlers of the functions of a topology."""

    def __init__(
        self,
        functions: Mapping[str, Function] | list[Function] | tuple[Function, ...],
        *,
        stage: str = DEFAULT_STAGE,
        region: str = DEFAULT_REGION,
        account_id: str = DEFAULT_ACCOUNT_ID,
        serialize: bool = True,
    ) -> None:
        items = functions.values() if isinstance(functions, Mapping) else functions
        self.functions: dict[str, Function] = {fn.name: fn for fn in items}
        self.stage = stage
        self.region = region
        self.account_id = account_id
        self._handlers: dict[str, Handler] = {}
        self._locks: dict[str, threading.Lock] = {name: threading.Lock() for name in self.functions}
        self._serialize = serialize
        self._state = threading.Condition()
        self._running = 0
        self._generation = 0
        self.invocations = 0
        self.errors = 0

    # ------------------------------------------------------------------ #
    @property
    def running(self) -> int:
        """Invocations in progress."""
        with self._state:
            return self._running

    @property
    def generation(self) -> int:
        """Grows whenever an invocation starts or ends (for idle detection)."""
        with self._state:
            return self._generation

    def activity(self) -> tuple[int, int]:
        """``(running, generation)`` read together."""
        with self._state:
            return self._running, self._generation

    # ------------------------------------------------------------------ #
    def handler_for(self, fn: Function) -> Handler:
        """Import the function's module once (a cold start) and return its handler."""
        handler = self._handlers.get(fn.name)
        if handler is not None:
            return handler
        with _IMPORT_LOCK:
            handler = self._handlers.get(fn.name)
            if handler is not None:
                return handler
            with patched_environment({settings.POWERTOOLS_SERVICE_NAME: fn.name}):
                module = importlib.import_module(fn.module)
            handler = getattr(module, fn.attribute)
            if not callable(handler):
                raise TypeError(f"{fn.handler} is not callable")
            self._handlers[fn.name] = handler
            logger.debug("loaded %s for function %s", fn.handler, fn.name)
            return handler

    def context_for(self, fn: Function) -> LambdaContext:
        return LambdaContext.for_function(
            physical_name(self.stage, fn.name),
            memory_mb=fn.memory_mb,
            timeout_s=fn.timeout_s,
            region=self.region,
            account_id=self.account_id,
        )

    def invoke(self, function: str | Function, event: Any) -> InvocationResult:
        """Run one invocation synchronously; never raises for handler problems."""
        fn = function if isinstance(function, Function) else self.functions[function]
        context = self.context_for(fn)
        with self._state:
            self._running += 1
            self._generation += 1
            self.invocations += 1
        started = time.monotonic()
        try:
            lock = self._locks.setdefault(fn.name, threading.Lock())
            if self._serialize:
                with lock:
                    result = self._call(fn, event, context)
            else:
                result = self._call(fn, event, context)
        finally:
            with self._state:
                self._running -= 1
                self._generation += 1
                self._state.notify_all()
        duration_ms = (time.monotonic() - started) * 1000
        timed_out = duration_ms > fn.timeout_s * 1000
        if timed_out:
            logger.error(
                "%s: invocation %s ran %.0f ms, over its %d s timeout (Lambda would have stopped it; "
                "not enforced locally)",
                fn.name,
                context.aws_request_id,
                duration_ms,
                fn.timeout_s,
            )
        if not result.ok:
            with self._state:
                self.errors += 1
        return InvocationResult(
            function=fn.name,
            request_id=context.aws_request_id,
            ok=result.ok,
            value=result.value,
            error_type=result.error_type,
            error_message=result.error_message,
            duration_ms=duration_ms,
            timed_out=timed_out,
        )

    def _call(self, fn: Function, event: Any, context: LambdaContext) -> InvocationResult:
        request_id = context.aws_request_id
        try:
            handler = self.handler_for(fn)
        except Exception as exc:
            logger.exception("%s: cannot load handler %s", fn.name, fn.handler)
            return InvocationResult(
                fn.name,
                request_id,
                ok=False,
                error_type="Runtime.ImportModuleError",
                error_message=f"{type(exc).__name__}: {exc}",
            )
        try:
            # Lambda hands the handler a freshly decoded JSON document.
            payload = json.loads(json.dumps(event))
        except (TypeError, ValueError) as exc:
            logger.error("%s: the event is not JSON serialisable: %s", fn.name, exc)
            return InvocationResult(
                fn.name,
                request_id,
                ok=False,
                error_type="InvalidRequestContentException",
                error_message=str(exc),
            )
        try:
            value = handler(payload, context)
        except (Exception, SystemExit) as exc:
            logger.exception("%s: invocation %s failed", fn.name, request_id)
            return InvocationResult(
                fn.name, request_id, ok=False, error_type=type(exc).__name__, error_message=str(exc)
            )
        try:
            value = json.loads(json.dumps(value))
        except (TypeError, ValueError) as exc:
            logger.error(
                "%s: invocation %s returned a value that is not JSON serialisable: %s",
                fn.name,
                request_id,
                exc,
            )
            return InvocationResult(
                fn.name, request_id, ok=False, error_type="Runtime.MarshalError", error_message=str(exc)
            )
        return InvocationResult(fn.name, request_id, ok=True, value=value)
